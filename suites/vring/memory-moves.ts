/**
 * A guest memory region moved under a running device (vring.mem-table.replace, proto.mem-slots.add-rem): where
 * it goes, and the old mapping filled with a pattern that shows a back-end still writing there.
 */
import { BackendError } from '../../harness/errors.js';
import type { MemoryRegion } from '../../harness/memory/guest-memory.js';
import { hex } from './common.js';

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
function writtenSinceStale(old: MemoryRegion): number[] {
  const bytes = regionBytes(old);
  const written: number[] = [];
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== STALE[i % STALE.length]) written.push(i);
  return written;
}

/**
 * Runs `exercise` (traffic with its buffers in the moved region) and judges the move: a write into the old
 * mapping fails first, naming the exercise's own failure too; else the exercise's failure, prefixed by
 * `how` (how the back-end learnt of the move). Errors that are not the back-end's pass through.
 */
export async function expectMoved(
  old: MemoryRegion,
  how: string,
  exercise: () => Promise<void>,
): Promise<void> {
  let failure: Error | undefined;
  try {
    await exercise();
  } catch (err) {
    if (!(err instanceof BackendError)) throw err;
    failure = err;
  }
  const written = writtenSinceStale(old);
  if (written.length) {
    throw new BackendError(
      `after ${how}, the back-end still uses the old mapping of guest ${hex(old.guestAddress)} (user ` +
        `${hex(old.userAddress)}, mmap offset ${hex(old.mmapOffset)}): it wrote ${written.length} byte(s) there, ` +
        `the first at guest ${hex(old.guestAddress + BigInt(written[0]!))}` +
        (failure ? `; ${failure.message}` : ''),
      { cause: failure },
    );
  }
  if (failure) throw new BackendError(`after ${how}: ${failure.message}`, { cause: failure });
}
