/**
 * The messages of protocol features a back-end offers: STATUS (SET_STATUS, GET_STATUS), RESET_DEVICE,
 * INFLIGHT_SHMFD (GET_INFLIGHT_FD, SET_INFLIGHT_FD) and CONFIG's SET_CONFIG (vhost-user.rst: Front-end message
 * types, Inflight I/O tracking). Each check skips, saying so, when the feature is not offered.
 */
import { expect } from 'chai';
import { sectorPattern } from '../../harness/devices/block/blk.js';
import { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import {
  type DeviceConfig,
  decodeU64,
  encodeDeviceConfig,
  encodeInflightDescription,
  encodeU64,
} from '../../harness/protocol/messages.js';
import { DeviceConfigFlag, DeviceStatus, hasBit, ProtocolFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { defineChecks } from '../../harness/runner/check.js';
import { closeFd, fstatSize, mmapShared } from '../../harness/sys/libc.js';
import type { FrontendSession } from '../../harness/transport/session.js';
import { COMPLETION_RULES, openBlock, QUEUE_SIZE } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import { expectSectors, NEEDS_DATA_PATH, namingFindings } from '../vring/common.js';
import { configSpaceOf, MIN_QUEUES, offeredProtocolFeatures, openSession, ProtocolSpec } from './common.js';

const FeatureSpec = {
  messages: ProtocolSpec.messages,
  inflight: 'vhost-user.rst#inflight-i-o-tracking',
} as const;

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const bit = (n: number) => 1n << BigInt(n);

/**
 * A session that negotiated `required` (skipping, with the reason, when it is not offered) and those of
 * `optional` that are offered; no SET_FEATURES yet.
 */
async function sessionWithFeatures(
  ctx: CheckContext,
  required: { bit: number; name: string },
  optional: number[] = [],
): Promise<FrontendSession> {
  const session = await openSession(ctx);
  await session.getFeatures();
  if (!session.offersProtocolFeatures) throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
  const offered = await session.getProtocolFeatures();
  if (!hasBit(offered, required.bit))
    throw new SkipError(`VHOST_USER_PROTOCOL_F_${required.name} is not offered`);
  const wanted = optional.reduce((acc, n) => acc | bit(n), bit(required.bit)) & offered;
  const ack = await session.setProtocolFeatures(wanted);
  if (ack !== undefined && ack !== 0n) throw new BackendError(`SET_PROTOCOL_FEATURES was acked with ${ack}`);
  return session;
}

/** SET_FEATURES with the whole offer, then SET_OWNER: the start QEMU makes before using the features here. */
async function takeOffer(session: FrontendSession): Promise<void> {
  await session.expectAck('SET_FEATURES', encodeU64(session.features!));
  await session.expectAck('SET_OWNER');
}

/** GET_STATUS: a well-formed u64 reply (same request, version 1, reply flag, 8 bytes, no fd). */
function getStatus(session: FrontendSession): Promise<bigint> {
  return session.connection.requestU64('GET_STATUS');
}

/** GET_CONFIG of `size` bytes from 0: the bytes, or a BackendError for the empty reply that reports a failure. */
async function getConfig(session: FrontendSession, size: number): Promise<Buffer> {
  const reply = await session.getConfig(size);
  if (!reply) throw new BackendError(`GET_CONFIG of ${size} bytes failed (an empty reply)`);
  return reply;
}

/** A field of the device's config space that is read-only to the driver, whatever was negotiated. */
/** SET_CONFIG (flags 0: a driver's write) of a read-only field with every bit flipped. */
function readOnlyWrite(ctx: CheckContext): {
  size: number;
  field: string;
  config: (before: Buffer) => DeviceConfig;
} {
  const type = ctx.target.type ?? '';
  const space = configSpaceOf(ctx);
  const field = space?.readOnly;
  if (!space || !field)
    throw new SkipError(`no read-only config field is known for device type ${type || '(unknown)'}`);
  return {
    size: space.size,
    field: `${field.name} (bytes ${field.offset}-${field.offset + field.size - 1})`,
    config: (before) => ({
      offset: field.offset,
      size: field.size,
      flags: DeviceConfigFlag.WRITABLE,
      payload: Buffer.from(before.subarray(field.offset, field.offset + field.size).map((b) => ~b & 0xff)),
    }),
  };
}

/** Bytes of a split queue region in the inflight buffer (vhost-user.rst "Inflight I/O tracking"). */
function inflightSplitRegionSize(queueSize: number): number {
  // QueueRegionSplit: features u64, version, desc_num, last_batch_head, used_idx (u16 each); then queueSize
  // DescStateSplit entries: inflight u8, padding[5], next u16, counter u64.
  return 16 + 16 * queueSize;
}

/** The queue size the inflight check asks for: QEMU's default for vhost-user-blk. */
const INFLIGHT_QUEUE_SIZE = 128;

export const featureChecks = defineChecks('protocol', [
  {
    id: 'proto.status.round-trip',
    detail:
      'with `STATUS`, `GET_STATUS` (a well-formed u64 reply) returns each status `SET_STATUS` set: 0x1, 0x3, 0xb, then 0',
    title: 'with STATUS, GET_STATUS returns what SET_STATUS set',
    severity: 'SHOULD',
    spec: FeatureSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_STATUS: "this message is submitted by the front-end to query the back-end for its device status as defined in the Virtio specification" (no normative word; virtio spec, Device Status Field: "The device status field starts out as 0, and is reinitialized to 0 by the device during reset."); interoperability (QEMU 7.2 hw/virtio/vhost-user.c vhost_user_add_status: GET_STATUS, then SET_STATUS of what it read with the new bits): GET_STATUS returns what SET_STATUS set',
    interop: true,
    needs: ['proto.negotiation.before-set-features'],
    async run(ctx) {
      const session = await sessionWithFeatures(ctx, { bit: ProtocolFeature.STATUS, name: 'STATUS' });
      await takeOffer(session);
      const initial = await getStatus(session);
      // The statuses a driver sets in turn while it initializes the device, then 0 (a reset, in the virtio
      // spec's terms). DRIVER_OK is left out: no ring is set up here.
      const steps = [
        DeviceStatus.ACKNOWLEDGE,
        DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER,
        DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK,
        0n,
      ];
      for (const status of steps) {
        await session.expectAck('SET_STATUS', encodeU64(status));
        const read = await getStatus(session);
        expect(hex(read), `GET_STATUS after SET_STATUS ${hex(status)}`).to.equal(hex(status));
      }
      return `GET_STATUS was ${hex(initial)} at first, then returned ${steps.map(hex).join(', ')} as set`;
    },
  },
  {
    id: 'proto.inflight.get-fd',
    detail:
      "with `INFLIGHT_SHMFD`, `GET_INFLIGHT_FD` replies with one fd holding mmap_offset + mmap_size bytes, at least the spec's split layout (16 + 16 per entry) for the queues asked; `SET_INFLIGHT_FD` takes it",
    title: 'with INFLIGHT_SHMFD, GET_INFLIGHT_FD hands out a buffer of the size it announces',
    severity: 'SHOULD',
    spec: FeatureSpec.inflight,
    rule: 'vhost-user.rst (QEMU 7.2), Communication: "Most of the requests don\'t require replies. Here is a list of the ones that do:" (among them "``VHOST_USER_GET_INFLIGHT_FD`` (if ``VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD``)"); and Inflight I/O tracking: "For split virtqueue, queue region can be implemented as:" (no normative word for the size); interoperability (QEMU 7.2 hw/virtio/vhost-user.c vhost_user_get_inflight_fd maps mmap_size bytes at mmap_offset of the fd; libvhost-user and DPDK use the split layout): a buffer of the size it announces, holding that layout',
    interop: true,
    needs: ['proto.reply-ack.accepted'],
    async run(ctx) {
      const session = await sessionWithFeatures(
        ctx,
        { bit: ProtocolFeature.INFLIGHT_SHMFD, name: 'INFLIGHT_SHMFD' },
        [ProtocolFeature.REPLY_ACK],
      );
      await takeOffer(session);
      // As QEMU asks at start: the device's queues, its ring size; the back-end fills in the rest.
      const numQueues = MIN_QUEUES[ctx.target.type ?? ''] ?? 1;
      const { reply, fd } = await session.getInflightFd(numQueues, INFLIGHT_QUEUE_SIZE);
      if (fd === undefined) expect.fail('GET_INFLIGHT_FD answered mmap_size 0 and no fd: no buffer');
      ctx.scope.defer(`inflight fd ${fd}`, () => closeFd(fd));
      const { connection } = session;
      // The spec says a queue region "can be implemented as" its QueueRegionSplit; it is the one layout it
      // describes, and the one libvhost-user and DPDK use: a buffer smaller than that holds no known layout.
      const needed = BigInt(numQueues * inflightSplitRegionSize(INFLIGHT_QUEUE_SIZE));
      expect(
        reply.mmapSize >= needed,
        `mmap_size ${reply.mmapSize}: ${numQueues} split queue region${numQueues === 1 ? '' : 's'} of ` +
          `${INFLIGHT_QUEUE_SIZE} entries take ${needed} bytes (16 + 16 per entry each)`,
      ).to.equal(true);
      const fileSize = BigInt(fstatSize(fd));
      expect(
        fileSize >= reply.mmapOffset + reply.mmapSize,
        `the fd holds ${fileSize} bytes, less than mmap_offset ${reply.mmapOffset} + mmap_size ` +
          `${reply.mmapSize}: a front-end touching the end of its mapping gets SIGBUS`,
      ).to.equal(true);
      // Mapped as QEMU maps it; a fresh buffer is zero ("Zero value indicates an uninitialized buffer").
      let mapping: ReturnType<typeof mmapShared>;
      try {
        mapping = mmapShared(fd, Number(reply.mmapSize), Number(reply.mmapOffset));
      } catch (err) {
        expect.fail(`the buffer cannot be mapped as QEMU maps it: ${(err as Error).message}`);
      }
      const zero = new Uint8Array(mapping.buffer).every((b) => b === 0);
      mapping.unmap();
      // Handed back as QEMU does right after: accepted (acked 0 with REPLY_ACK, else the connection lives).
      const back = encodeInflightDescription({
        numQueues,
        queueSize: INFLIGHT_QUEUE_SIZE,
        mmapSize: reply.mmapSize,
        mmapOffset: reply.mmapOffset,
      });
      if (session.replyAckFor('SET_INFLIGHT_FD')) {
        const ack = decodeU64(
          await connection.request('SET_INFLIGHT_FD', 8, { payload: back, fds: [fd], needReply: true }),
          'SET_INFLIGHT_FD',
        );
        expect(ack, 'the ack of SET_INFLIGHT_FD with the buffer GET_INFLIGHT_FD gave').to.equal(0n);
      } else {
        await connection.send('SET_INFLIGHT_FD', { payload: back, fds: [fd] });
        await connection.requestU64('GET_FEATURES');
      }
      return (
        `${reply.mmapSize} bytes at offset ${reply.mmapOffset} of a ${fileSize}-byte fd for ${numQueues} x ` +
        `${INFLIGHT_QUEUE_SIZE} (at least ${needed} needed)${zero ? ', zeroed' : ', not zeroed'}; SET_INFLIGHT_FD accepted`
      );
    },
  },
  {
    id: 'proto.config.set',
    detail:
      'with `CONFIG`, `SET_CONFIG` (flags 0) of a read-only field (blk capacity, gpu num_scanouts) leaves `GET_CONFIG` unchanged',
    title: 'with CONFIG, SET_CONFIG of a read-only field leaves the config unchanged',
    severity: 'MUST',
    spec: FeatureSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_SET_CONFIG: "The vhost-user back-end must check the flags field, and back-ends MUST NOT accept SET_CONFIG for read-only configuration space fields unless the live migration bit is set."',
    needs: ['proto.config.get'],
    async run(ctx) {
      // "back-ends MUST NOT accept SET_CONFIG for read-only configuration space fields unless the live
      // migration bit is set": a driver's write (flags 0) to one must not change what GET_CONFIG shows.
      const session = await sessionWithFeatures(ctx, { bit: ProtocolFeature.CONFIG, name: 'CONFIG' });
      const write = readOnlyWrite(ctx);
      const before = await getConfig(session, write.size);
      const config = write.config(before);
      let after: Buffer;
      let closed = '';
      try {
        await session.request('SET_CONFIG', encodeDeviceConfig(config));
        after = await getConfig(session, write.size);
      } catch (err) {
        if (!(err instanceof BackendError)) throw err;
        // It may close the connection over a request it refuses. In attach mode the same device is read
        // again over a new connection; a launched one would be a new device, with nothing to tell.
        if (ctx.target.connect === null)
          return `SET_CONFIG of ${write.field} closed the connection: refused (${err.message})`;
        session.connection.close();
        closed = ', read on a new connection (the back-end closed the first one)';
        after = await getConfig(
          await sessionWithFeatures(ctx, { bit: ProtocolFeature.CONFIG, name: 'CONFIG' }),
          write.size,
        );
      }
      const changed = before.findIndex((byte, i) => after[i] !== byte);
      if (changed >= 0) {
        expect.fail(
          `SET_CONFIG with flags 0 wrote ${config.payload.toString('hex')} over ${write.field}, and GET_CONFIG ` +
            `changed from byte ${changed} on: ${before.subarray(changed, changed + 8).toString('hex')} before, ` +
            `${after.subarray(changed, changed + 8).toString('hex')} after`,
        );
      }
      return `${write.field} unchanged by a driver's SET_CONFIG${closed}`;
    },
  },
  {
    id: 'proto.config.set.refused',
    detail:
      "with `CONFIG` and `REPLY_ACK`, that `SET_CONFIG` is acked non-zero (the ack's meaning is a SHOULD of `REPLY_ACK`)",
    title: 'with CONFIG and REPLY_ACK, SET_CONFIG of a read-only field is acked non-zero',
    severity: 'SHOULD',
    spec: ProtocolSpec.replyAck,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_PROTOCOL_F_REPLY_ACK: "The payload should be set to zero on success or non-zero on failure, unless the message already has an explicit reply body."',
    needs: ['proto.config.set', 'proto.reply-ack.accepted'],
    async run(ctx) {
      // The MUST NOT is about the config (proto.config.set); that a refusal shows in the ack is REPLY_ACK's
      // "The payload should be set to zero on success or non-zero on failure": a SHOULD.
      const protocol = await offeredProtocolFeatures(ctx);
      if (protocol === undefined) throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      if (!hasBit(protocol, ProtocolFeature.CONFIG))
        throw new SkipError('VHOST_USER_PROTOCOL_F_CONFIG is not offered');
      if (!hasBit(protocol, ProtocolFeature.REPLY_ACK))
        throw new SkipError('REPLY_ACK is not offered: a refusal has no way to show');
      const write = readOnlyWrite(ctx);
      const session = await sessionWithFeatures(ctx, { bit: ProtocolFeature.CONFIG, name: 'CONFIG' }, [
        ProtocolFeature.REPLY_ACK,
      ]);
      const before = await getConfig(session, write.size);
      let ack: bigint | undefined;
      try {
        ack = await session.request('SET_CONFIG', encodeDeviceConfig(write.config(before)));
      } catch (err) {
        if (!(err instanceof BackendError)) throw err;
        expect.fail(`SET_CONFIG of ${write.field} with need_reply: no ack, ${err.message}`);
      }
      expect(ack, `SET_CONFIG of ${write.field} with flags 0 was acked as a success`).to.not.equal(0n);
      return `SET_CONFIG of ${write.field} acked ${ack}`;
    },
  },
]);

/**
 * RESET_DEVICE sets a device up again and moves data through it: it runs after the vring checks, building on
 * the data path they establish (a broken data path is their finding, not this check's).
 */
export const resetDeviceChecks = defineChecks('protocol', [
  {
    id: 'proto.reset-device',
    detail:
      'with `RESET_DEVICE`, the device starts again from scratch: features renegotiated, a new ring reads and writes data, `GET_STATUS` 0 (with `STATUS`)',
    title: 'after RESET_DEVICE the device starts again from scratch',
    severity: 'SHOULD',
    spec: FeatureSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_RESET_DEVICE: "Ask the vhost user back-end to disable all rings and reset all internal device state to the initial state, ready to be reinitialized. The back-end retains ownership of the device throughout the reset operation." (no normative word); interoperability (QEMU 7.2 hw/virtio/vhost-user.c vhost_user_reset_device sends it at a device reset, then sets the device up again): the device starts again from scratch',
    interop: true,
    needs: [NEEDS_DATA_PATH],
    async run(ctx) {
      // "disable all rings and reset all internal device state to the initial state, ready to be
      // reinitialized. The back-end retains ownership": features are negotiated anew, rings set up anew.
      const protocol = await offeredProtocolFeatures(ctx);
      if (protocol === undefined) throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      if (!hasBit(protocol, ProtocolFeature.RESET_DEVICE))
        throw new SkipError('VHOST_USER_PROTOCOL_F_RESET_DEVICE is not offered');
      const { session, blk, features, scratch } = await openBlock(ctx, {
        protocolFeatures: 'require',
        writes: true,
        requiredProtocolFeatures: bit(ProtocolFeature.RESET_DEVICE) | bit(ProtocolFeature.STATUS),
      });
      const acked = session.ackedProtocolFeatures;
      const status = hasBit(acked, ProtocolFeature.STATUS);
      const original = await blk.read(scratch, 1);
      const seed = freshSeed();
      const before = sectorPattern(scratch, 1, seed);
      const after = sectorPattern(scratch, 1, seed ^ 0x5a5a5a5a);
      let restored = false;
      try {
        await blk.write(scratch, before);
        expectSectors('before RESET_DEVICE', before, await blk.read(scratch, 1), scratch);
        if (status) {
          await session.expectAck(
            'SET_STATUS',
            encodeU64(
              DeviceStatus.ACKNOWLEDGE |
                DeviceStatus.DRIVER |
                DeviceStatus.FEATURES_OK |
                DeviceStatus.DRIVER_OK,
            ),
          );
        }
        // As QEMU sends it: no need_reply (the back-end may forget REPLY_ACK with the rest); a GET_FEATURES
        // round trip shows it was read and the connection survived.
        await session.connection.send('RESET_DEVICE');
        await session.getFeatures();
        const offered = await session.getProtocolFeatures();
        const ack = await session.setProtocolFeatures(acked & offered);
        expect(ack ?? 0n, 'the ack of SET_PROTOCOL_FEATURES after RESET_DEVICE').to.equal(0n);
        let statusNote = 'STATUS not offered';
        if (status) {
          const read = await getStatus(session);
          expect(
            hex(read),
            'GET_STATUS after RESET_DEVICE: the device status is back to its initial 0',
          ).to.equal('0x0');
          statusNote = 'GET_STATUS 0 after it';
        }
        await session.expectAck('SET_FEATURES', encodeU64(features));
        // A device set up again as at first: new guest memory, a new ring at index 0, enabled.
        const device = new FrontendDevice(session, ctx.scope);
        await device.setMemTable();
        const ring = await device.setUpRing(0, QUEUE_SIZE);
        await device.enable(0, true);
        const again = new BlkDriver(ring, {
          timeoutMs: ctx.timeoutMs,
          maxSectors: blk.maxSectors,
          keep: COMPLETION_RULES,
        });
        expectSectors(
          'after RESET_DEVICE, on the ring set up again',
          before,
          await again.read(scratch, 1),
          scratch,
        );
        await again.write(scratch, after);
        expectSectors(
          'after RESET_DEVICE, written and read back',
          after,
          await again.read(scratch, 1),
          scratch,
        );
        await again.write(scratch, original);
        restored = true;
        return await namingFindings(
          ctx,
          `a sector written before RESET_DEVICE read back on a ring set up again from scratch, and rewritten; ${statusNote}`,
          blk,
          again,
        );
      } finally {
        // Attach mode checks someone else's disk: put the sector back if the first ring still takes it.
        if (!restored) await blk.write(scratch, original).catch(() => undefined);
      }
    },
  },
]);
