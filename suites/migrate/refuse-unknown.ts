/**
 * migrate.refuse-unknown: the destination of a move is given, with SET_FEATURES, the virtio features the
 * guest has (what the run's front-end profile negotiates with the source) and, when it lacks none of them, a
 * transport bit it does not offer. A back-end that acks that with 0 says it honours a feature it has not got:
 * the guest goes on using it (packed rings, in-order use) against a device that does not, and breaks later,
 * where a refusal would have failed the move. proto.negotiation.subset is the other side: fewer bits than
 * offered are taken.
 *
 * SHOULD, not MUST: no sentence says MUST of the back-end. vhost-user.rst's SET_FEATURES has no normative
 * word; REPLY_ACK's MUST is to answer, and what the answer says is a "should"; the virtio spec's MUSTs on
 * feature bits bind the driver ("MUST NOT accept a feature which the device did not offer", the rule such a
 * front-end breaks) and a device that does not accept the set (it "MUST fail to set the FEATURES_OK device
 * status bit"), not one that acks a set it was never offered.
 */
import { BackendError, SkipError } from '../../harness/errors.js';
import {
  ackFeatures,
  initTargetSession,
  type Started,
  virtioFeatureList,
} from '../../harness/frontend/profiles.js';
import { attachedTo, frontendConnection, serveOnSocketPath } from '../../harness/process/probes.js';
import { decodeU64, encodeU64 } from '../../harness/protocol/messages.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';

const FEATURE_BITS = 'virtio-spec#sec-basic-facilities-of-a-virtio-device-feature-bits';

/**
 * Transport bits a newer source may have negotiated, in the order one is picked when the destination lacks
 * none of the guest's: a guest on packed rings or in-order use is the move that breaks silently.
 */
const CANDIDATES: readonly number[] = [
  VirtioFeature.VIRTIO_F_RING_PACKED,
  VirtioFeature.VIRTIO_F_IN_ORDER,
  VirtioFeature.VIRTIO_RING_F_EVENT_IDX,
  VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC,
  VirtioFeature.VIRTIO_F_ACCESS_PLATFORM,
  VirtioFeature.VIRTIO_F_NOTIFY_ON_EMPTY,
];

const bit = (n: number): bigint => 1n << BigInt(n);
const hex = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;

/** The destination's connection, and its name in messages. */
async function destination(ctx: CheckContext): Promise<{ connection: Connection; name: string }> {
  const target = ctx.target.destination ?? null;
  if (target === null)
    return {
      connection: await frontendConnection(ctx),
      name: ctx.target.connect !== null ? 'the attached back-end' : 'a launch of the back-end under test',
    };
  if ('connect' in target)
    return {
      connection: await attachedTo(ctx, target.connect, 'the destination back-end (--migrate-to-connect)'),
      name: `the back-end at ${target.connect} (--migrate-to-connect)`,
    };
  return {
    connection: (await serveOnSocketPath(ctx, [], target)).connection,
    name: `${target.binary} (--migrate-to)`,
  };
}

/** The virtio features the run's profile negotiates with the back-end under test: what a guest there has. */
async function sourceFeatures(ctx: CheckContext): Promise<bigint> {
  const session = new FrontendSession(await frontendConnection(ctx));
  const started = await initTargetSession(ctx, session, { protocol: true });
  session.connection.close();
  return ackFeatures(started, started.offered);
}

/** The set given to the destination: the guest's, and a bit it does not offer when it lacks none of them. */
function featuresToGive(guest: bigint, started: Started): { given: bigint; unknown: bigint; why: string } {
  const lacking = guest & ~started.offered;
  if (lacking !== 0n)
    return {
      given: guest,
      unknown: lacking,
      why: 'negotiated on the source, not offered by the destination',
    };
  const pick = CANDIDATES.find((n) => !hasBit(started.offered, n));
  let extra = pick;
  // Every candidate offered: the highest bit nobody has defined for a device yet.
  for (let n = 63; extra === undefined && n > 40; n--) if (!hasBit(started.offered, n)) extra = n;
  if (extra === undefined)
    throw new SkipError(`the destination offers ${hex(started.offered)}: no bit left to add`);
  return { given: guest | bit(extra), unknown: bit(extra), why: 'not offered by the destination' };
}

export const refuseUnknownChecks = defineChecks(
  'migrate',
  [
    {
      id: 'migrate.refuse-unknown',
      title:
        'a destination given SET_FEATURES with a virtio feature it does not offer refuses it (REPLY_ACK non-zero, or it closes the connection)',
      detail:
        "the destination of the move (a launch of the back-end under test; with `--migrate-to`, that binary; with `--migrate-to-connect`, the back-end there; in attach mode the attached one) started as the front-end profile starts it, with `REPLY_ACK`, then `SET_FEATURES` with need_reply of the virtio features the profile negotiates with the back-end under test (the guest's) and, unless the destination lacks some of those already, one transport bit it does not offer (`VIRTIO_F_RING_PACKED`, else `IN_ORDER`, `EVENT_IDX`, `INDIRECT_DESC`, `ACCESS_PLATFORM`, `NOTIFY_ON_EMPTY`): a non-zero ack or the connection closed passes, an ack of 0 fails naming the bits, a death by a signal fails; without `REPLY_ACK` a refusal shows only as a close, so a connection left open is a skip",
      severity: 'SHOULD',
      spec: FEATURE_BITS,
      rule:
        'vhost-user.rst (QEMU 7.2), VHOST_USER_PROTOCOL_F_REPLY_ACK: "The payload should be set to zero on ' +
        'success or non-zero on failure, unless the message already has an explicit reply body."; ' +
        'Communication: "If *back-end* detects some error such as incompatible features, it may also close the ' +
        'connection."; virtio spec, Driver Requirements: Feature Bits: "The driver MUST NOT accept a feature ' +
        'which the device did not offer" (the front-end\'s rule, broken here on purpose, as a front-end moving a ' +
        'guest to a lesser host does), and Device Requirements: Feature Bits: "The device SHOULD accept any ' +
        'valid subset of features the driver accepts, otherwise it MUST fail to set the FEATURES_OK device ' +
        'status bit when the driver writes it." (a set with a bit not offered is no valid subset). SHOULD: no ' +
        'sentence says MUST of a back-end acking such a set; DPDK 22.11 refuses it (vhost_user_set_features, ' +
        'lib/vhost/vhost_user.c: "received invalid negotiated features", ack 1), libvhost-user 7.2 takes it ' +
        '(vu_set_features_exec stores the payload as it comes)',
      // Acks are judged by proto.reply-ack.accepted: one that acks every SET_FEATURES non-zero fails there.
      needs: ['proto.reply-ack.accepted'],
      async run(ctx) {
        const guest = await sourceFeatures(ctx);
        const { connection, name } = await destination(ctx);
        const session = new FrontendSession(connection);
        const started = await initTargetSession(ctx, session, {
          protocol: true,
          extra: bit(ProtocolFeature.REPLY_ACK),
        });
        const { given, unknown, why } = featuresToGive(guest, started);
        const device = started.device;
        const named = virtioFeatureList(unknown, device).join(', ');
        const asked = `SET_FEATURES ${hex(given)} to ${name}, with ${named} ${why} (it offers ${hex(started.offered)})`;
        const replyAck = hasBit(session.ackedProtocolFeatures, ProtocolFeature.REPLY_ACK);
        let ack: bigint | undefined;
        try {
          if (replyAck) {
            const reply = await connection.request('SET_FEATURES', 8, {
              payload: encodeU64(given),
              needReply: true,
            });
            ack = decodeU64(reply, 'SET_FEATURES');
          } else {
            await connection.send('SET_FEATURES', { payload: encodeU64(given) });
            await connection.requestU64('GET_FEATURES');
          }
        } catch (err) {
          const ended = connection.endedWith;
          if (ended === undefined) throw err;
          if (/killed by/.test(ended))
            throw new BackendError(`${asked}: ${ended}, not a refusal but a crash`);
          return `${asked}: refused by closing the connection (${ended})`;
        }
        if (!replyAck)
          throw new SkipError(
            `${asked}: the connection stayed open and no REPLY_ACK was negotiated (${
              started.protocol ? 'not offered' : 'no protocol features'
            }): a refusal and an acceptance look alike`,
          );
        if (ack === 0n)
          throw new BackendError(
            `${asked}: acked 0, as if it could honour ${named}; the guest would go on with what the device does not do instead of the move failing`,
          );
        return `${asked}: refused, REPLY_ACK ${ack}`;
      },
    },
  ],
  { destructive: true },
);
