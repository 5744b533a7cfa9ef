/**
 * The split virtqueue's layout in guest memory (virtio spec, "Split Virtqueues"): descriptor and ring flags,
 * the sizes and offsets of the descriptor table, available and used rings, descriptors written and read as
 * raw fields, event suppression by index, and the one-access 16-bit cells the indices live in. What the
 * driver (split.ts) and every code that lays out or malforms a split ring by hand share.
 */
import { VirtqueueError, VirtqueueErrorCode } from './errors.js';

/** virtq_desc.flags bits (VIRTQ_DESC_F_*). */
export const VirtqDescFlag = {
  NEXT: 1, // the buffer continues via `next`
  WRITE: 2, // device write-only (otherwise device read-only)
  INDIRECT: 4, // the buffer is a table of descriptors
} as const;
/** virtq_avail.flags: the driver does not want used buffer notifications (only without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** virtq_used.flags: the device does not want available buffer notifications (only without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** The largest queue size: the highest power of two a 16-bit index can tell full from empty with. */
export const MAX_QUEUE_SIZE = 32768;

/** Sizes, alignments and field offsets of the three parts (spec table "Virtqueue Part, Alignment, Size"). */
export const SplitLayout = {
  DESC_SIZE: 16, // le64 addr @0, le32 len @8, le16 flags @12, le16 next @14
  DESC_ALIGN: 16,
  AVAIL_ALIGN: 2,
  USED_ALIGN: 4,
  AVAIL_FLAGS: 0,
  AVAIL_IDX: 2,
  AVAIL_RING: 4, // le16 ring[size], then le16 used_event
  USED_FLAGS: 0,
  USED_IDX: 2,
  USED_RING: 4, // virtq_used_elem ring[size] (le32 id, le32 len), then le16 avail_event
  USED_ELEM_SIZE: 8,
} as const;

/** Bytes of the descriptor table: 16 * size. */
export function descTableSize(size: number): number {
  return SplitLayout.DESC_SIZE * size;
}
/** Bytes of the available ring: 6 + 2 * size (used_event included). */
export function availRingSize(size: number): number {
  return 6 + 2 * size;
}
/** Bytes of the used ring: 6 + 8 * size (avail_event included). */
export function usedRingSize(size: number): number {
  return 6 + SplitLayout.USED_ELEM_SIZE * size;
}
/** Offset of used_event in the available ring: right after ring[size]. */
export function usedEventOffset(size: number): number {
  return SplitLayout.AVAIL_RING + 2 * size;
}
/** Offset of avail_event in the used ring: right after ring[size]. */
export function availEventOffset(size: number): number {
  return SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * size;
}

/**
 * The spec's vring_need_event on wrapping u16 indices: true when moving an index from `oldIdx` to `newIdx`
 * passed `eventIdx`, i.e. (u16)(new - event - 1) < (u16)(new - old).
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/**
 * One descriptor exactly as written into a table (split layout): nothing about it is checked but that each
 * field fits its width. What robustness checks post to find how a device takes malformed chains.
 */
export interface RawDescriptor {
  addr: bigint;
  len: number;
  /** VIRTQ_DESC_F_* bits, any combination (unknown bits included). */
  flags: number;
  next: number;
}

/** A used element as the device wrote it, unchecked. */
export interface RawUsedElement {
  id: number;
  len: number;
}

/** Writes `desc` as entry `index` of the table in `view`; throws ARGUMENT only when a field does not fit. */
export function writeRawDescriptor(view: DataView, index: number, desc: RawDescriptor): void {
  const at = index * SplitLayout.DESC_SIZE;
  if (!Number.isInteger(index) || index < 0 || at + SplitLayout.DESC_SIZE > view.byteLength) {
    throw new VirtqueueError(
      VirtqueueErrorCode.ARGUMENT,
      `descriptor ${index} is outside a table of ${view.byteLength / SplitLayout.DESC_SIZE} entries`,
    );
  }
  if (desc.addr < 0n || desc.addr >= U64_END) {
    throw new VirtqueueError(VirtqueueErrorCode.ARGUMENT, `descriptor addr must be a u64, got ${desc.addr}`);
  }
  if (!Number.isInteger(desc.len) || desc.len < 0 || desc.len > U32_MAX) {
    throw new VirtqueueError(VirtqueueErrorCode.ARGUMENT, `descriptor len must be a u32, got ${desc.len}`);
  }
  checkU16(desc.flags, 'descriptor flags');
  checkU16(desc.next, 'descriptor next');
  view.setBigUint64(at, desc.addr, true);
  view.setUint32(at + 8, desc.len, true);
  view.setUint16(at + 12, desc.flags, true);
  view.setUint16(at + 14, desc.next, true);
}

/** Reads entry `index` of the table in `view`. */
export function readRawDescriptor(view: DataView, index: number): RawDescriptor {
  const at = index * SplitLayout.DESC_SIZE;
  return {
    addr: view.getBigUint64(at, true),
    len: view.getUint32(at + 8, true),
    flags: view.getUint16(at + 12, true),
    next: view.getUint16(at + 14, true),
  };
}

export const U32_MAX = 0xffff_ffff;
export const U64_END = 1n << 64n;

/**
 * Ordering. The back-end is another process that may poll this memory at any time. The spec asks for a
 * barrier before the avail.idx store (descriptors and ring entry first) and a full barrier between that store
 * and reading used.flags / avail_event (needsKick); symmetrically, used.idx is read before the entries.
 * ECMAScript promises ordering only over a SharedArrayBuffer, and koffi cannot give one over an mmap'd memfd
 * (koffi.view returns a plain ArrayBuffer), so Atomics.store on a shared Int16Array is out. But Atomics
 * load/store also accept integer arrays over plain ArrayBuffers (checked with koffi views), and V8 runs
 * them with the same sequentially consistent instructions whether the buffer is shared or not: on x86-64
 * the store is an xchg, a full barrier; on arm64 release/acquire. So every index and event/flag field goes
 * through Atomics on a one-element Uint16Array: one aligned 16-bit access, never two byte writes a polling
 * back-end could see half of, ordered after the plain DataView writes of descriptors and ring entries.
 */
export function u16Cell(bytes: Uint8Array, offset: number, what: string): Uint16Array {
  if ((bytes.byteOffset + offset) % 2 !== 0) {
    throw new VirtqueueError(
      VirtqueueErrorCode.ALIGN,
      `${what} is at an odd host offset in its region's mapping: a 16-bit store there would not be one access`,
    );
  }
  return new Uint16Array(bytes.buffer, bytes.byteOffset + offset, 1);
}

export function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function checkU16(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new VirtqueueError(VirtqueueErrorCode.ARGUMENT, `${what} must be a u16, got ${value}`);
  }
}
