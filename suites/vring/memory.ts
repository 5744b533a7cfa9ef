/**
 * Guest memory that changes under a device (vhost-user.rst: SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG): a
 * region moved to a new memfd, at another user address and mmap offset, must be used through its new mapping
 * once the back-end was told, and the old mapping no more. Region A (guest 0x0) is the one moved: it holds the
 * first data segment and the status byte of every request, and no ring.
 */

import { sectorPattern } from '../../harness/devices/block/blk.js';
import type { BlkDriver } from '../../harness/devices/block/driver.js';
import { restartDevice, stopDevice } from '../../harness/frontend/profiles.js';
import type { MemoryRegion } from '../../harness/memory/guest-memory.js';
import { defineChecks } from '../../harness/runner/check.js';
import { openBlock } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import { memTableReplace, onBlock } from './any-device.js';
import {
  COMPLETIONS_LEFT,
  expectSectors,
  hex,
  namingFindings,
  preserving,
  readSectors,
  VringRule,
  VringSpec,
  writeSectors,
} from './common.js';
import { expectMoved, MOVED_REGION, MOVED_TO, staleOldMapping } from './memory-moves.js';

export { MOVED_REGION, MOVED_TO, staleOldMapping };

/** Sectors each exercise writes and reads back. */
export const MOVED_SECTORS = 16;

/**
 * Writes a fresh pattern over MOVED_SECTORS sectors from `scratch` and reads it back, with the first data
 * segment and the status byte of each request in the moved region; then checks that the old mapping (filled
 * with STALE) was not written. `how` says how the back-end learnt of the move, for the failure message.
 */
export async function expectNewMapping(
  blk: BlkDriver,
  scratch: bigint,
  old: MemoryRegion,
  how: string,
): Promise<void> {
  const data = sectorPattern(scratch, MOVED_SECTORS, freshSeed());
  await expectMoved(old, how, async () => {
    await writeSectors(blk, scratch, data);
    expectSectors('read back', data, await readSectors(blk, scratch, MOVED_SECTORS), scratch);
  });
}

export const memoryChecks = defineChecks('vring', [
  {
    id: 'vring.mem-table.replace',
    detail:
      'with the ring stopped by `GET_VRING_BASE`, `SET_MEM_TABLE` moves a region to a new memfd at another user address and mmap offset; restarted at the base, data goes through the new mapping, never the old',
    title:
      'with the ring stopped, SET_MEM_TABLE moving a region to a new memfd is used once the ring restarts',
    severity: 'MUST',
    spec: VringSpec.messages,
    rule:
      `${VringRule.usedLen}, at the buffer's guest address in the region as the last table gave it ` +
      `(${COMPLETIONS_LEFT}): ` +
      'vhost-user.rst (QEMU 7.2), VHOST_USER_SET_MEM_TABLE: "Sets the memory map regions on the back-end so it can ' +
      'translate the vring addresses." (no normative word; a write into the old mapping fails the check too)',
    needs: ['vring.restart'],
    async run(ctx) {
      // Not a block device: the samples' buffers (the parts the device writes) in the moved region; their
      // replies judged through the new mapping, the old one unwritten. A net sample is only read: its frame
      // must come back intact (a stale read shows there), and a back-end that does not loop frames is a skip.
      if (!onBlock(ctx)) return await memTableReplace(ctx);
      const { device, blk, scratch, started } = await openBlock(ctx, { writes: true });
      let base = 0;
      await preserving(blk, scratch, MOVED_SECTORS, async () => {
        const first = sectorPattern(scratch, MOVED_SECTORS, freshSeed());
        await writeSectors(blk, scratch, first);
        expectSectors('read back', first, await readSectors(blk, scratch, MOVED_SECTORS), scratch);

        // Stopped, as the front-end (profile) stops a device before it changes its memory table; then
        // restarted at the base in the profile's order.
        base = (await stopDevice(started, device, [0])).get(0)!.availIndex;
        const old = device.replaceRegion(MOVED_REGION, MOVED_TO);
        await device.setMemTable();
        staleOldMapping(old);
        await restartDevice(started, device, new Map([[0, base]]), true);
        await expectNewMapping(
          blk,
          scratch,
          old,
          `GET_VRING_BASE, SET_MEM_TABLE with guest ${hex(MOVED_REGION)} in a new memfd at user ` +
            `${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}, and the restart at base ${base}`,
        );
      });
      return await namingFindings(
        ctx,
        `stopped at base ${base}; SET_MEM_TABLE moved guest ${hex(MOVED_REGION)} to a new memfd (user ` +
          `${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}); after the restart ` +
          `${MOVED_SECTORS} sectors were written and read back through it, and the old mapping was not touched`,
        blk,
      );
    },
  },
]);
