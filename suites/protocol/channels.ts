/**
 * The channels besides the main socket (vhost-user.rst: Back-end communication, Migration): the back-end
 * request channel of SET_BACKEND_REQ_FD, and the dirty page log's SET_LOG_BASE (its use: dirty-log.ts).
 */
import { expect } from 'chai';
import { BackendError, SkipError } from '../../harness/errors.js';
import { encodeU64 } from '../../harness/protocol/messages.js';
import { ProtocolFeature, protocolFeatureList, VHOST_LOG_PAGE } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { quietMs } from '../vring/common.js';
import { openSession } from './common.js';
import { setLogBase } from './dirty-log.js';

const ChannelSpec = {
  backendCommunication: 'vhost-user.rst#back-end-communication',
  communication: 'vhost-user.rst#communication',
  migration: 'vhost-user.rst#migration',
} as const;

const bit = (b: number): bigint => 1n << BigInt(b);
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

export const channelChecks = defineChecks('protocol', [
  {
    id: 'proto.backend-req.channel',
    detail:
      'with `BACKEND_REQ`, `SET_BACKEND_REQ_FD` (one end of a socketpair) is acked with 0, the back-end keeps the channel open, and every back-end request on it is well-formed (known id, version 1, no reply flag, its size and fds, its feature negotiated); the harness answers need_reply as QEMU does',
    title:
      'SET_BACKEND_REQ_FD is acked with 0, the channel stays open, and what the back-end sends on it is well-formed',
    severity: 'MUST',
    spec: ChannelSpec.backendCommunication,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_SET_SLAVE_REQ_FD: "If ``VHOST_USER_PROTOCOL_F_REPLY_ACK`` is negotiated, the back-end must respond with zero for success, non-zero otherwise."; and Message Specification, Header: "Lower 2 bits are the version (currently 0x01)"',
    needs: ['proto.reply-ack.accepted'],
    async run(ctx) {
      // QEMU's order: protocol features, then the channel, then SET_OWNER and SET_FEATURES.
      const session = await openSession(ctx);
      const features = await session.getFeatures();
      if (!session.offersProtocolFeatures)
        throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      const offered = await session.getProtocolFeatures();
      if (!session.offers(ProtocolFeature.BACKEND_REQ))
        throw new SkipError('VHOST_USER_PROTOCOL_F_BACKEND_REQ is not offered');
      const wanted =
        bit(ProtocolFeature.BACKEND_REQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG);
      const acked = await session.setProtocolFeatures(offered & wanted);
      if (acked !== undefined && acked !== 0n)
        throw new BackendError(`SET_PROTOCOL_FEATURES was acked with ${acked}`);
      const { channel, ack } = await session.setUpBackendChannel({ features });
      ctx.scope.defer('back-end request channel', () => channel.close());
      if (ack !== undefined) expect(ack, 'the REPLY_ACK of SET_BACKEND_REQ_FD').to.equal(0n);
      await session.expectAck('SET_OWNER');
      await session.expectAck('SET_FEATURES', encodeU64(features));
      // Time for a back-end to send what it sends at start-up, or to drop the channel.
      const quiet = quietMs(ctx);
      await new Promise((resolve) => setTimeout(resolve, quiet));
      await session.getFeatures();
      const wire = channel.recent().join(' | ') || 'nothing';
      expect(
        channel.closedByBackend,
        `the back-end closed its end of the channel within ${quiet} ms (channel: ${wire})`,
      ).to.equal(false);
      if (channel.problems.length)
        expect.fail(`malformed back-end requests: ${channel.problems.join('; ')} (channel: ${wire})`);
      const sent = channel.requests.map((r) => r.name);
      return (
        `negotiated ${protocolFeatureList(offered & wanted).join(', ')}; SET_BACKEND_REQ_FD acked ` +
        `${ack ?? '(no REPLY_ACK)'}; the channel stayed open ${quiet} ms; the back-end sent ` +
        `${sent.length ? sent.join(', ') : 'nothing'} on it`
      );
    },
  },
  {
    id: 'proto.log.set-base',
    detail:
      'with `LOG_SHMFD`, `SET_LOG_BASE` (a memfd log at an offset) gets one reply, as QEMU waits for (a u64, or empty as QEMU also takes)',
    title: 'with LOG_SHMFD, SET_LOG_BASE is answered',
    severity: 'MUST',
    spec: ChannelSpec.communication,
    rule: 'vhost-user.rst (QEMU 7.2), Communication: "Most of the requests don\'t require replies. Here is a list of the ones that do:" (among them "``VHOST_USER_SET_LOG_BASE`` (if ``VHOST_USER_PROTOCOL_F_LOG_SHMFD``)")',
    needs: ['proto.reply.get-protocol-features', 'proto.negotiation.before-set-features'],
    async run(ctx) {
      const session = await openSession(ctx);
      const features = await session.getFeatures();
      if (!session.offersProtocolFeatures)
        throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      await session.getProtocolFeatures();
      if (!session.offers(ProtocolFeature.LOG_SHMFD))
        throw new SkipError('VHOST_USER_PROTOCOL_F_LOG_SHMFD is not offered');
      await session.setProtocolFeatures(bit(ProtocolFeature.LOG_SHMFD));
      await session.expectAck('SET_FEATURES', encodeU64(features));
      await session.expectAck('SET_OWNER');
      // The log 4 KiB into its memfd: the offset is part of the message.
      const { replySize, replyValue } = await setLogBase(ctx, session, 0x8000, VHOST_LOG_PAGE);
      // One reply, not two: the next request gets its own.
      await session.getFeatures();
      return replySize === 0
        ? 'answered with an empty reply (QEMU takes any size; the spec table says u64)'
        : `answered with u64 ${hex(replyValue!)}`;
    },
  },
]);
