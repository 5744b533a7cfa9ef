/**
 * Memory slots (vhost-user.rst: VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS, GET_MAX_MEM_SLOTS, ADD_MEM_REG,
 * REM_MEM_REG): with the feature QEMU sends guest memory region by region instead of SET_MEM_TABLE, after
 * asking how many regions the back-end takes.
 */
import { expect } from 'chai';
import { sectorPattern } from '../../harness/devices/block/blk.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import type { RegionLayout } from '../../harness/memory/guest-memory.js';
import { encodeU64 } from '../../harness/protocol/messages.js';
import { ProtocolFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { openBlock } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import {
  expectSectors,
  hex,
  namingFindings,
  preserving,
  readSectors,
  writeSectors,
} from '../vring/common.js';
import { expectNewMapping, MOVED_REGION, MOVED_SECTORS, MOVED_TO, staleOldMapping } from '../vring/memory.js';
import { openSession, ProtocolSpec } from './common.js';

/**
 * The most regions the slots check adds: QEMU caps what a back-end reports at its platform's RAM slots
 * (ACPI_MAX_RAM_SLOTS, 256, on x86 and Arm), so a front-end never relies on more.
 */
const SLOTS_CHECKED = 256;

/** Regions of one page, 1 MiB apart in guest and in user space, none adjacent. */
function pageRegions(count: number): RegionLayout[] {
  return Array.from({ length: count }, (_, i) => ({
    guestAddress: 0x4000_0000n + BigInt(i) * 0x10_0000n,
    size: 0x1000n,
    userAddress: 0x7c00_0000_0000n + BigInt(i) * 0x10_0000n,
    mmapOffset: 0n,
  }));
}

export const memSlotChecks = defineChecks('protocol', [
  {
    id: 'proto.reply.get-max-mem-slots',
    detail:
      "with `CONFIGURE_MEM_SLOTS`, `GET_MAX_MEM_SLOTS` replies a u64 of at least 1; that many one-page regions (256 at most, QEMU's cap) are taken with `ADD_MEM_REG`, and it replies the same after",
    title:
      'with CONFIGURE_MEM_SLOTS, GET_MAX_MEM_SLOTS has a well-formed reply of at least 1, and that many regions are taken',
    severity: 'SHOULD',
    spec: ProtocolSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_MAX_MEM_SLOTS: "The back-end should return the message with a u64 payload containing the maximum number of memory slots for QEMU to expose to the guest."; and VHOST_USER_ADD_MEM_REG: "The message payload contains a memory region descriptor struct, describing a region of guest memory which the back-end device must map in."',
    needs: ['proto.negotiation.before-set-features', 'proto.reply-ack.accepted'],
    async run(ctx) {
      // As QEMU starts a back-end: the protocol features, then GET_MAX_MEM_SLOTS before SET_FEATURES.
      const session = await openSession(ctx);
      await session.getFeatures();
      if (!session.offersProtocolFeatures)
        throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      await session.getProtocolFeatures();
      if (!session.offers(ProtocolFeature.CONFIGURE_MEM_SLOTS)) {
        throw new SkipError('VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS is not offered');
      }
      const replyAck = session.offers(ProtocolFeature.REPLY_ACK);
      await session.setProtocolFeatures(
        (1n << BigInt(ProtocolFeature.CONFIGURE_MEM_SLOTS)) |
          (replyAck ? 1n << BigInt(ProtocolFeature.REPLY_ACK) : 0n),
      );
      const slots = await session.connection.requestU64('GET_MAX_MEM_SLOTS');
      expect(Number(slots), 'GET_MAX_MEM_SLOTS: the memory slots for guest memory').to.be.at.least(1);
      await session.expectAck('SET_FEATURES', encodeU64(session.features!));
      await session.expectAck('SET_OWNER');

      // The front-end relies on the number: as many regions are added, each acked 0 (without REPLY_ACK,
      // each followed by a GET_FEATURES round trip, so a back-end that drops the connection shows).
      const count = Number(slots < BigInt(SLOTS_CHECKED) ? slots : BigInt(SLOTS_CHECKED));
      const device = new FrontendDevice(session, ctx.scope, { layout: pageRegions(count) });
      for (const [i, region] of device.memory.regions.entries()) {
        try {
          await device.addMemoryRegion(region.guestAddress);
        } catch (err) {
          if (!(err instanceof BackendError)) throw err;
          const which = `region ${i + 1} of the ${count} GET_MAX_MEM_SLOTS allows`;
          throw new BackendError(`ADD_MEM_REG of ${which}: ${err.message}`, { cause: err });
        }
      }
      const again = await session.connection.requestU64('GET_MAX_MEM_SLOTS');
      expect(
        Number(again),
        `GET_MAX_MEM_SLOTS once ${count} regions are in (it answered ${slots} first)`,
      ).to.equal(Number(slots));
      return (
        `${slots} memory slots; ${count} one-page regions added with ADD_MEM_REG` +
        `${replyAck ? ', each acked 0' : ''}${count < slots ? ` (QEMU uses no more than ${SLOTS_CHECKED})` : ''}; ` +
        'GET_MAX_MEM_SLOTS the same after'
      );
    },
  },
  {
    id: 'proto.mem-slots.add-rem',
    detail:
      'with `CONFIGURE_MEM_SLOTS`, guest memory sent region by region with `ADD_MEM_REG` carries virtio-blk traffic; a region removed with `REM_MEM_REG` (no fd) and added in a new memfd at the same guest address is used there, the old mapping no more',
    title:
      'with CONFIGURE_MEM_SLOTS, memory added region by region carries requests, and a region removed and added anew in another memfd is used there',
    severity: 'MUST',
    spec: ProtocolSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_ADD_MEM_REG: "The message payload contains a memory region descriptor struct, describing a region of guest memory which the back-end device must map in."; and VHOST_USER_REM_MEM_REG: "The message payload contains a memory region descriptor struct, describing a region of guest memory which the back-end device must unmap."',
    // What vring.blk.read-write builds on as well (the set-up is the same): it runs later, so it cannot be named.
    needs: [
      'proto.reply.get-max-mem-slots',
      // The qemu profile's block start hands the inflight buffer back first.
      'proto.inflight.get-fd',
      'proto.negotiation.subset',
      'proto.reply-ack.accepted',
      'proto.config.get',
    ],
    async run(ctx) {
      const { device, blk, scratch } = await openBlock(ctx, { memorySlots: true, writes: true });
      const regions = device.memory.regions.length;
      await preserving(blk, scratch, MOVED_SECTORS, async () => {
        const first = sectorPattern(scratch, MOVED_SECTORS, freshSeed());
        await writeSectors(blk, scratch, first);
        expectSectors(
          `read back, guest memory sent as ${regions} ADD_MEM_REG`,
          first,
          await readSectors(blk, scratch, MOVED_SECTORS),
          scratch,
        );

        // The ring keeps running, with nothing in flight, as when QEMU hot-plugs memory.
        const old = device.replaceRegion(MOVED_REGION, MOVED_TO);
        await device.removeMemoryRegion(old);
        await device.addMemoryRegion(MOVED_REGION);
        staleOldMapping(old);
        await expectNewMapping(
          blk,
          scratch,
          old,
          `REM_MEM_REG of guest ${hex(MOVED_REGION)} (user ${hex(old.userAddress)}) and ADD_MEM_REG of it in a ` +
            `new memfd at user ${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}`,
        );
      });
      return await namingFindings(
        ctx,
        `guest memory sent as ${regions} ADD_MEM_REG carried ${MOVED_SECTORS} sectors written and read back; ` +
          `guest ${hex(MOVED_REGION)} removed with REM_MEM_REG and added in a new memfd (user ` +
          `${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}): the next ${MOVED_SECTORS} went ` +
          'through it, the old mapping untouched',
        blk,
      );
    },
  },
]);
