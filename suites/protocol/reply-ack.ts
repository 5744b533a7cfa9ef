/** REPLY_ACK on requests the back-end must refuse (vhost-user.rst: REPLY_ACK, Front-end message types). */
import { expect } from 'chai';
import { BackendError } from '../../harness/errors.js';
import { encodeVringState } from '../../harness/protocol/messages.js';
import { ProtocolFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { ProtocolSpec, sessionWith } from './common.js';

/** Requests that cannot be honoured, with why. */
const INVALID: Array<{ what: string; index: number; num: number }> = [
  { what: 'SET_VRING_NUM for vring 200, beyond any queue count', index: 200, num: 8 },
  { what: 'SET_VRING_NUM of 0 entries', index: 0, num: 0 },
  { what: 'SET_VRING_NUM of 3 entries, not a power of two', index: 0, num: 3 },
];

export const replyAckChecks = defineChecks('protocol', [
  {
    id: 'proto.reply-ack.invalid',
    title: 'with REPLY_ACK, an invalid request is answered with a non-zero ack',
    severity: 'SHOULD',
    spec: ProtocolSpec.replyAck,
    needs: ['proto.reply-ack.accepted'],
    async run(ctx) {
      const results: string[] = [];
      for (const invalid of INVALID) {
        // A fresh back-end for each: the spec lets it close the connection on a bad request.
        const session = await sessionWith(ctx, ProtocolFeature.REPLY_ACK, 'REPLY_ACK');
        await session.expectAck('SET_OWNER');
        let ack: bigint | undefined;
        try {
          ack = await session.request(
            'SET_VRING_NUM',
            encodeVringState({ index: invalid.index, num: invalid.num }),
          );
        } catch (err) {
          if (!(err instanceof BackendError)) throw err;
          expect.fail(`${invalid.what}: no ack, ${err.message}`);
        }
        expect(ack, `${invalid.what} was acked as a success`).to.not.equal(0n);
        results.push(`${invalid.what}: ack ${ack}`);
      }
      return results.join('; ');
    },
  },
]);
