/**
 * A guest memory region moved under a running device (vring.mem-table.replace, proto.mem-slots.add-rem): where
 * it goes, and the old mapping filled with a pattern that shows a back-end still writing there.
 */
import type { MemoryRegion } from '../../harness/memory/guest-memory.js';

/** The region moved, and where to: a user address and an mmap offset that no region had. */
export const MOVED_REGION = 0x0n;
export const MOVED_TO = { userAddress: 0x7d00_0000_0000n, mmapOffset: 0x5000n } as const;

/** What the old mapping is filled with once the region moved: a back-end still using it reads this. */
const STALE = Uint8Array.of(0x57, 0xa1, 0xe0, 0x1d, 0x0b, 0x5e, 0x1e, 0x7e);

/** The region's bytes in its (old) mapping. */
function regionBytes(region: MemoryRegion): Uint8Array {
  return region.bytes.subarray(Number(region.mmapOffset), Number(region.mmapOffset + region.size));
}

/** Fills the old mapping of a moved region with STALE. */
export function staleOldMapping(old: MemoryRegion): void {
  const bytes = regionBytes(old);
  for (let i = 0; i < bytes.length; i++) bytes[i] = STALE[i % STALE.length]!;
}

/** Offsets in the old mapping's region that no longer hold STALE: written by a back-end still using it. */
export function writtenSinceStale(old: MemoryRegion): number[] {
  const bytes = regionBytes(old);
  const written: number[] = [];
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== STALE[i % STALE.length]) written.push(i);
  return written;
}
