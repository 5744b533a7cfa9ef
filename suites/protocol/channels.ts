/**
 * The channels besides the main socket (vhost-user.rst: Back-end communication, Migration): the back-end
 * request channel of SET_BACKEND_REQ_FD, and the dirty page log of SET_LOG_BASE.
 */

import { expect } from 'chai';
import { BackendError, SkipError } from '../../harness/errors.js';
import type { FrontendDevice } from '../../harness/frontend/device.js';
import { encodeLogDescription, encodeU64 } from '../../harness/protocol/messages.js';
import {
  hasBit,
  ProtocolFeature,
  protocolFeatureList,
  VHOST_LOG_PAGE,
  VirtioFeature,
} from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { closeFd } from '../../harness/sys/libc.js';
import { SharedMemory } from '../../harness/sys/memfd.js';
import { checkReply } from '../../harness/transport/connection.js';
import type { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from '../common/device.js';
import { NEEDS_DATA_PATH, namingFindings, openBlock, quietMs } from '../vring/common.js';
import { offeredFeatures, openSession } from './common.js';

const ChannelSpec = {
  backendCommunication: 'vhost-user.rst#back-end-communication',
  communication: 'vhost-user.rst#communication',
  migration: 'vhost-user.rst#migration',
} as const;

const bit = (b: number): bigint => 1n << BigInt(b);
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/**
 * A log of `size` bytes at `offset` of a fresh memfd (owned by the check's scope), and SET_LOG_BASE with it,
 * sent as QEMU sends it (no need_reply). The back-end must answer (Communication: "SET_LOG_BASE (if
 * VHOST_USER_PROTOCOL_F_LOG_SHMFD)"); QEMU reads the reply whatever its size, and back-ends answer with a u64
 * (libvhost-user) or nothing (DPDK), so both sizes pass. Returns the log's bytes and the reply's size.
 */
async function setLogBase(
  ctx: CheckContext,
  session: FrontendSession,
  size: number,
  offset = 0,
): Promise<{ log: Uint8Array; replySize: number; replyValue: bigint | undefined }> {
  const memory = new SharedMemory(offset + size, 'vhu-conform dirty log');
  ctx.scope.defer('dirty log memfd', () => memory.close());
  const { connection } = session;
  await connection.send('SET_LOG_BASE', {
    payload: encodeLogDescription({ size: BigInt(size), offset: BigInt(offset) }),
    fds: [memory.fd],
  });
  const reply = await connection.nextFrame('the reply to SET_LOG_BASE');
  try {
    checkReply('SET_LOG_BASE', reply, reply.payload.length === 0 ? 0 : 8, 0, connection.recent());
  } finally {
    for (const fd of reply.fds) closeFd(fd);
  }
  return {
    log: memory.bytes.subarray(offset, offset + size),
    replySize: reply.payload.length,
    replyValue: reply.payload.length === 8 ? reply.payload.readBigUInt64LE() : undefined,
  };
}

function isMarked(log: Uint8Array, gpa: bigint): boolean {
  const page = gpa / BigInt(VHOST_LOG_PAGE);
  const byte = log[Number(page / 8n)];
  return byte !== undefined && ((byte >> Number(page % 8n)) & 1) === 1;
}

function markedPages(log: Uint8Array): number {
  let count = 0;
  for (const byte of log) for (let b = byte; b; b &= b - 1) count++;
  return count;
}

/** Bytes of log that cover every guest page of the device's memory, rounded up to whole pages. */
function logSizeFor(device: FrontendDevice): number {
  const end = device.memory.regions.reduce((max, r) => {
    const last = r.guestAddress + r.size;
    return last > max ? last : max;
  }, 0n);
  const bytes = Number((end + BigInt(VHOST_LOG_PAGE) * 8n - 1n) / (BigInt(VHOST_LOG_PAGE) * 8n));
  return Math.ceil(bytes / VHOST_LOG_PAGE) * VHOST_LOG_PAGE;
}

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

/** After the vring checks: it builds on the data path (vring.blk.read-write). */
export const logDirtyChecks = defineChecks('protocol', [
  {
    id: 'proto.log.dirty',
    detail:
      "with `VHOST_F_LOG_ALL` and `VHOST_VRING_F_LOG` set on a running ring, a block read marks both pages of a buffer across a page boundary and the used ring's pages (at `log_guest_addr`) in the log",
    title: 'with VHOST_F_LOG_ALL, the pages a block read writes and the used ring are marked in the log',
    severity: 'SHOULD',
    spec: ChannelSpec.migration,
    rule: 'vhost-user.rst (QEMU 7.2), Migration: "All the modifications to memory pointed by vring "descriptor" should be marked. Modifications to "used" vring should be marked if ``VHOST_VRING_F_LOG`` is part of ring\'s flags."',
    needs: ['proto.log.set-base', NEEDS_DATA_PATH],
    async run(ctx) {
      requireDevice(ctx, 'block', 'this check makes virtio-blk requests (sectors written and read back)');
      if (!hasBit(await offeredFeatures(ctx), VirtioFeature.VHOST_F_LOG_ALL))
        throw new SkipError('VHOST_F_LOG_ALL is not offered');
      const { session, device, ring, blk, features, scratch } = await openBlock(ctx, {
        protocolFeatures: 'require',
        requiredProtocolFeatures: bit(ProtocolFeature.LOG_SHMFD),
      });
      if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.LOG_SHMFD))
        throw new SkipError('VHOST_USER_PROTOCOL_F_LOG_SHMFD is not offered');
      // As QEMU starts logging on a running device: the log, VHOST_F_LOG_ALL, then each ring's address.
      const { log } = await setLogBase(ctx, session, logSizeFor(device));
      await session.expectAck('SET_FEATURES', encodeU64(features | bit(VirtioFeature.VHOST_F_LOG_ALL)));
      const logAddress = await device.setRingLogging(0, true);
      log.fill(0);

      // Two sectors into a buffer that crosses a page boundary: two data pages to mark.
      const area = device.memory.alloc(2 * VHOST_LOG_PAGE, VHOST_LOG_PAGE);
      const boundary = area + BigInt(VHOST_LOG_PAGE);
      const data = [
        { gpa: boundary - 512n, len: 512 },
        { gpa: boundary, len: 512 },
      ];
      const slot = ring.queue.lastUsedIdx & (ring.queue.size - 1);
      await blk.read(scratch, 2, { data });

      const expected: Array<{ what: string; gpa: bigint }> = [
        { what: 'the data buffer below the page boundary', gpa: data[0]!.gpa },
        { what: 'the data buffer above the page boundary', gpa: data[1]!.gpa },
        { what: `used ring element ${slot}`, gpa: logAddress + 4n + 8n * BigInt(slot) },
        { what: 'used.idx', gpa: logAddress + 2n },
      ];
      const missing = expected.filter((e) => !isMarked(log, e.gpa));
      const marked = markedPages(log);
      if (missing.length) {
        const pages = missing.map(
          (m) => `${m.what} (guest ${hex(m.gpa)}, page ${hex(m.gpa / BigInt(VHOST_LOG_PAGE))})`,
        );
        expect.fail(
          `the device wrote ${pages.join('; ')} but did not mark it in the log ` +
            `(${marked} page${marked === 1 ? '' : 's'} marked in all, log_guest_addr ${hex(logAddress)})`,
        );
      }
      return await namingFindings(
        ctx,
        `${marked} pages marked, among them both data pages and the used ring's (log_guest_addr ${hex(logAddress)})`,
        blk,
      );
    },
  },
]);
