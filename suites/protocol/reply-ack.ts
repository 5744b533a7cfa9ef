/** REPLY_ACK on requests the back-end must refuse (vhost-user.rst: REPLY_ACK, Front-end message types). */
import { expect } from 'chai';
import { BackendError, SkipError, VhuError } from '../../harness/errors.js';
import { encodeMemoryRegions, encodeVringState } from '../../harness/protocol/messages.js';
import { type FrontendRequestName, ProtocolFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { ProtocolSpec, sessionWith } from './common.js';

/** Without MQ: past virtio-pci's 16-bit queue_select, so no device a front-end exposes has that vring. */
const NO_SUCH_VRING = 0x1_0000;

/**
 * A vring index no reading of GET_QUEUE_NUM N allows: N rings, N queue pairs (QEMU's net front-end reads it
 * so: 2N rings), or N pairs and a control queue (vrings 0..2N); hence 2N+1. Without MQ, NO_SUCH_VRING.
 */
async function missingVring(ctx: CheckContext): Promise<{ index: number; why: string }> {
  let queues: bigint;
  try {
    const session = await sessionWith(ctx, ProtocolFeature.MQ, 'MQ');
    queues = await session.connection.requestU64('GET_QUEUE_NUM');
    session.connection.close();
  } catch (err) {
    if (!(err instanceof SkipError)) throw err;
    return {
      index: NO_SUCH_VRING,
      why: `beyond any device's queues (MQ not offered: no GET_QUEUE_NUM to ask; virtio-pci's queue index is 16 bits)`,
    };
  }
  const index = 2 * Number(queues) + 1;
  return {
    index,
    why: `beyond GET_QUEUE_NUM ${queues} read as rings, as queue pairs, or as pairs and a control queue (2 x ${queues} + 1)`,
  };
}

/** Requests that cannot be honoured, with why. */
function invalidRequests(vring: {
  index: number;
  why: string;
}): Array<{ what: string; request: FrontendRequestName; payload: Buffer }> {
  return [
    {
      what: `SET_VRING_NUM for vring ${vring.index}, ${vring.why}`,
      request: 'SET_VRING_NUM',
      payload: encodeVringState({ index: vring.index, num: 8 }),
    },
    ...FIXED_INVALID,
  ];
}

const FIXED_INVALID: Array<{ what: string; request: FrontendRequestName; payload: Buffer }> = [
  {
    what: 'SET_VRING_NUM of 0 entries',
    request: 'SET_VRING_NUM',
    payload: encodeVringState({ index: 0, num: 0 }),
  },
  {
    what: 'SET_VRING_NUM of 3 entries, not a power of two',
    request: 'SET_VRING_NUM',
    payload: encodeVringState({ index: 0, num: 3 }),
  },
  {
    // "In the ancillary data there is an array of file descriptors for each memory mapped region."
    what: 'SET_MEM_TABLE with a region and no fd',
    request: 'SET_MEM_TABLE',
    payload: encodeMemoryRegions({
      regions: [{ guestAddress: 0n, size: 0x10_0000n, userAddress: 0x7f00_0000_0000n, mmapOffset: 0n }],
    }),
  },
];

export const replyAckChecks = defineChecks(
  'protocol',
  [
    {
      id: 'proto.reply-ack.invalid',
      detail:
        "with `REPLY_ACK`, `SET_VRING_NUM` for a vring that does not exist (2N+1 for `GET_QUEUE_NUM` N, past N rings, N queue pairs as QEMU's net front-end reads it, or N pairs and a control queue; 65536 without `MQ`), of 0 entries, or of 3 entries, and `SET_MEM_TABLE` with a region and no fd, are acked non-zero (each on a fresh back-end)",
      title: 'with REPLY_ACK, an invalid request is answered with a non-zero ack',
      severity: 'SHOULD',
      spec: ProtocolSpec.replyAck,
      rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_PROTOCOL_F_REPLY_ACK: "The payload should be set to zero on success or non-zero on failure, unless the message already has an explicit reply body."; and Communication: "If *back-end* detects some error such as incompatible features, it may also close the connection. This should only happen in exceptional circumstances."',
      needs: ['proto.reply-ack.accepted'],
      async run(ctx) {
        const results: string[] = [];
        const wrong: string[] = [];
        for (const [i, invalid] of invalidRequests(await missingVring(ctx)).entries()) {
          // A fresh back-end for each: the spec lets it close the connection on a bad request.
          let session: Awaited<ReturnType<typeof sessionWith>>;
          try {
            session = await sessionWith(ctx, ProtocolFeature.REPLY_ACK, 'REPLY_ACK');
            await session.expectAck('SET_OWNER');
          } catch (err) {
            // In attach mode one back-end takes them all: one that died of a former request takes no more.
            if (i === 0 || err instanceof SkipError || !(err instanceof VhuError)) throw err;
            results.push(
              `not tried from ${invalid.what} on: no session after the former ones (${err.message})`,
            );
            break;
          }
          let ack: bigint | undefined;
          try {
            ack = await session.request(invalid.request, invalid.payload);
          } catch (err) {
            if (!(err instanceof BackendError)) throw err;
            wrong.push(`${invalid.what}: no ack, ${err.message}`);
            continue;
          }
          if (ack === 0n) wrong.push(`${invalid.what}: acked 0, as a success`);
          else results.push(`${invalid.what}: ack ${ack}`);
        }
        if (wrong.length) expect.fail([...wrong, ...results].join('; '));
        return results.join('; ');
      },
    },
  ],
  { destructive: true },
);
