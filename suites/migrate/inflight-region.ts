/**
 * The front-end's view of one queue region of the inflight buffer (vhost-user.rst "Inflight I/O tracking").
 * Split rings: a QueueRegionSplit header (features u64, version u16, desc_num u16, last_batch_head u16,
 * used_idx u16), then desc_num DescStateSplit entries (inflight u8, padding[5], next u16, counter u64).
 * Packed rings: a QueueRegionPacked header (features u64, version u16, desc_num u16, free_head u16,
 * old_free_head u16, used_idx u16, old_used_idx u16, used_wrap_counter u8, old_used_wrap_counter u8,
 * padding[7]: 32 bytes with the alignment of the entries), then desc_num DescStatePacked entries (inflight u8,
 * padding u8, next u16, last u16, num u16, counter u64, id u16, flags u16, len u32, addr u64: 32 bytes).
 * The buffer is the front-end's to keep; the harness reads what the back-end wrote there and, to stand for a
 * back-end that died between two of the spec's steps, writes what those steps would have left.
 *
 * Where queue N's region starts the spec leaves open ("queue0 region | queue1 region | ..."): libvhost-user
 * (vu_inflight_queue_size) and DPDK (get_pervq_shm_size_split/packed) round each region up to 64 bytes, and
 * make mmap_size num_queues times that. So a region is mmap_size / num_queues bytes, the one measure a
 * front-end has.
 */

import { BackendError } from '../../harness/errors.js';
import type { Scope } from '../../harness/process/scope.js';
import { type Mapping, mmapShared } from '../../harness/sys/libc.js';
import { type PackedDescriptor, packedPosition } from '../../harness/virtqueue/packed.js';

const SPLIT_HEADER = 16;
const SPLIT_ENTRY = 16;
const PACKED_HEADER = 32;
const PACKED_ENTRY = 32;
const VERSION = 8;
const DESC_NUM = 10;
const LAST_BATCH_HEAD = 12;
const USED_IDX = 14;
const INFLIGHT = 0;
/** DescStateSplit's next, after inflight and padding[5]. */
const SPLIT_NEXT = 6;
const COUNTER = 8;

/** QueueRegionPacked's fields after desc_num. */
const P = {
  FREE_HEAD: 12,
  OLD_FREE_HEAD: 14,
  USED_IDX: 16,
  OLD_USED_IDX: 18,
  USED_WRAP: 20,
  OLD_USED_WRAP: 21,
} as const;
/** DescStatePacked's fields. */
const D = {
  INFLIGHT: 0,
  NEXT: 2,
  LAST: 4,
  NUM: 6,
  COUNTER: 8,
  ID: 16,
  FLAGS: 18,
  LEN: 20,
  ADDR: 24,
} as const;

/** Bytes of a queue region of `entries` entries, for a ring of that layout, before any rounding up. */
export function inflightRegionSize(packed: boolean, entries: number): number {
  return packed ? PACKED_HEADER + PACKED_ENTRY * entries : SPLIT_HEADER + SPLIT_ENTRY * entries;
}

/** The inflight buffer the front-end keeps, mapped (until the scope closes). */
export interface InflightBufferView {
  view: DataView;
  /** mmap_size and num_queues, as GET_INFLIGHT_FD described the buffer. */
  size: number;
  numQueues: number;
}

/** Maps the buffer `fd` holds (`size` bytes from `offset`, as GET_INFLIGHT_FD described it). */
export function mapInflightBuffer(
  scope: Scope,
  fd: number,
  size: number,
  offset: number,
  numQueues: number,
): InflightBufferView {
  const mapping: Mapping = mmapShared(fd, size, offset);
  scope.defer('inflight buffer mapping (migrate.inflight)', () => mapping.unmap());
  return { view: new DataView(mapping.buffer), size, numQueues };
}

/** Where queue `queue`'s region of `entries` entries starts: mmap_size / num_queues bytes each. */
function regionAt(buffer: InflightBufferView, queue: number, packed: boolean, entries: number): number {
  const needed = inflightRegionSize(packed, entries);
  const stride = Math.floor(buffer.size / Math.max(buffer.numQueues, 1));
  if (stride < needed || queue >= buffer.numQueues)
    throw new BackendError(
      `the inflight buffer of ${buffer.size} bytes for ${buffer.numQueues} queues has no room for queue ` +
        `${queue}'s ${packed ? 'packed' : 'split'} region of ${needed} bytes (a region is mmap_size / num_queues bytes)`,
    );
  return queue * stride;
}

/** One head's DescStateSplit. */
export interface DescState {
  inflight: number;
  counter: bigint;
}

export class SplitInflightRegion {
  readonly #view: DataView;
  readonly #at: number;
  readonly #entries: number;

  /** Region `queue` of `buffer`, for rings of `queueSize` entries. */
  constructor(buffer: InflightBufferView, queue: number, queueSize: number) {
    this.#view = buffer.view;
    this.#at = regionAt(buffer, queue, false, queueSize);
    this.#entries = queueSize;
  }

  get version(): number {
    return this.#view.getUint16(this.#at + VERSION, true);
  }

  get descNum(): number {
    return this.#view.getUint16(this.#at + DESC_NUM, true);
  }

  get lastBatchHead(): number {
    return this.#view.getUint16(this.#at + LAST_BATCH_HEAD, true);
  }

  get usedIdx(): number {
    return this.#view.getUint16(this.#at + USED_IDX, true);
  }

  desc(head: number): DescState {
    const at = this.#entry(head);
    return {
      inflight: this.#view.getUint8(at + INFLIGHT),
      counter: this.#view.getBigUint64(at + COUNTER, true),
    };
  }

  /** The heads whose entry says inflight (1), in head order. */
  inflightHeads(): number[] {
    const heads: number[] = [];
    for (let head = 0; head < this.#entries; head++) if (this.desc(head).inflight === 1) heads.push(head);
    return heads;
  }

  /** The largest counter of any entry: the global counter a back-end goes on from is past it. */
  maxCounter(): bigint {
    let max = 0n;
    for (let head = 0; head < this.#entries; head++) {
      const { counter } = this.desc(head);
      if (counter > max) max = counter;
    }
    return max;
  }

  /** "When receiving available buffers": desc[head].counter = counter, then desc[head].inflight = 1. */
  markTaken(head: number, counter: bigint): void {
    const at = this.#entry(head);
    this.#view.setBigUint64(at + COUNTER, counter, true);
    this.#view.setUint8(at + INFLIGHT, 1);
  }

  /**
   * "When supplying used buffers", the first steps for a batch of `head` alone: desc[head].next set to
   * last_batch_head, last_batch_head set to `head`. Once the used ring's idx is increased, a back-end that dies
   * before the last two steps leaves `head` inflight and used_idx one behind.
   */
  batchAlone(head: number): void {
    this.#view.setUint16(this.#entry(head) + SPLIT_NEXT, this.lastBatchHead, true);
    this.#view.setUint16(this.#at + LAST_BATCH_HEAD, head, true);
  }

  #entry(head: number): number {
    if (head < 0 || head >= this.#entries)
      throw new RangeError(`head ${head}: the region has ${this.#entries}`);
    return this.#at + SPLIT_HEADER + SPLIT_ENTRY * head;
  }
}

/** One DescStatePacked. */
export interface PackedDescState {
  inflight: number;
  next: number;
  last: number;
  num: number;
  counter: bigint;
  id: number;
  flags: number;
  len: number;
  addr: bigint;
}

/**
 * A packed queue region. Entries are not indexed by descriptor or buffer id: a list taken goes into the
 * entries of the free list from old_free_head on, its head entry first (the list's counter, num, last), each
 * descriptor copied into the next entry (addr, len, flags, id); supplying it links its entries back in
 * front of free_head. A position (used_idx with used_wrap_counter) is returned as `packedPosition` makes one.
 */
export class PackedInflightRegion {
  readonly #view: DataView;
  readonly #at: number;
  readonly #entries: number;

  /** Region `queue` of `buffer`, for rings of `queueSize` descriptors. */
  constructor(buffer: InflightBufferView, queue: number, queueSize: number) {
    this.#view = buffer.view;
    this.#at = regionAt(buffer, queue, true, queueSize);
    this.#entries = queueSize;
  }

  get version(): number {
    return this.#u16(VERSION);
  }

  get descNum(): number {
    return this.#u16(DESC_NUM);
  }

  get freeHead(): number {
    return this.#u16(P.FREE_HEAD);
  }

  get oldFreeHead(): number {
    return this.#u16(P.OLD_FREE_HEAD);
  }

  /** used_idx with used_wrap_counter, as a ring position. */
  get used(): number {
    return packedPosition(this.#u16(P.USED_IDX), this.#view.getUint8(this.#at + P.USED_WRAP) !== 0);
  }

  /** old_used_idx with old_used_wrap_counter, as a ring position. */
  get oldUsed(): number {
    return packedPosition(this.#u16(P.OLD_USED_IDX), this.#view.getUint8(this.#at + P.OLD_USED_WRAP) !== 0);
  }

  desc(entry: number): PackedDescState {
    const at = this.#entry(entry);
    const v = this.#view;
    return {
      inflight: v.getUint8(at + D.INFLIGHT),
      next: v.getUint16(at + D.NEXT, true),
      last: v.getUint16(at + D.LAST, true),
      num: v.getUint16(at + D.NUM, true),
      counter: v.getBigUint64(at + D.COUNTER, true),
      id: v.getUint16(at + D.ID, true),
      flags: v.getUint16(at + D.FLAGS, true),
      len: v.getUint32(at + D.LEN, true),
      addr: v.getBigUint64(at + D.ADDR, true),
    };
  }

  /** The entries that say inflight (1), in entry order. */
  inflightEntries(): number[] {
    const entries: number[] = [];
    for (let e = 0; e < this.#entries; e++) if (this.desc(e).inflight === 1) entries.push(e);
    return entries;
  }

  maxCounter(): bigint {
    let max = 0n;
    for (let e = 0; e < this.#entries; e++) {
      const { counter } = this.desc(e);
      if (counter > max) max = counter;
    }
    return max;
  }

  /**
   * The free list from free_head, followed by `next` while an entry is one of the region's and not seen
   * before: the entries a back-end takes the next lists into.
   */
  freeList(): number[] {
    const seen = new Set<number>();
    for (let e = this.freeHead; e < this.#entries && !seen.has(e); e = this.desc(e).next) seen.add(e);
    return [...seen];
  }

  /**
   * The head entry of the list whose first descriptor was `first`, of `num` descriptors: an entry holding that
   * descriptor's address and buffer id with that num (the latest, by counter, if an earlier list left one).
   */
  headOf(first: PackedDescriptor, num: number): number | undefined {
    let found: number | undefined;
    let counter = -1n;
    for (let e = 0; e < this.#entries; e++) {
      const d = this.desc(e);
      if (d.addr === first.addr && d.id === first.id && d.num === num && d.counter > counter) {
        found = e;
        counter = d.counter;
      }
    }
    return found;
  }

  /**
   * "When receiving available buffers from the driver", for each descriptor `d` of `list` in order: at the
   * head, desc[old_free_head].num = 0, .counter = `counter`, .inflight = 1; at the last, desc[old_free_head]
   * .last = free_head; desc[old_free_head].num++; desc[free_head] takes d's addr, len, flags and id;
   * free_head = desc[free_head].next; at the last, old_free_head = free_head. Returns the head entry.
   */
  markTaken(list: readonly PackedDescriptor[], counter: bigint): number {
    const head = this.oldFreeHead;
    const h = this.#entry(head);
    list.forEach((d, k) => {
      if (k === 0) {
        this.#view.setUint16(h + D.NUM, 0, true);
        this.#view.setBigUint64(h + D.COUNTER, counter, true);
        this.#view.setUint8(h + D.INFLIGHT, 1);
      }
      const free = this.freeHead;
      if (k === list.length - 1) this.#view.setUint16(h + D.LAST, free, true);
      this.#view.setUint16(h + D.NUM, this.#view.getUint16(h + D.NUM, true) + 1, true);
      const at = this.#entry(free);
      this.#view.setBigUint64(at + D.ADDR, d.addr, true);
      this.#view.setUint32(at + D.LEN, d.len, true);
      this.#view.setUint16(at + D.FLAGS, d.flags, true);
      this.#view.setUint16(at + D.ID, d.id, true);
      this.#set16(P.FREE_HEAD, this.desc(free).next);
      if (k === list.length - 1) this.#set16(P.OLD_FREE_HEAD, this.freeHead);
    });
    return head;
  }

  /**
   * Undoes the supply of the list at head entry `entry`, the last one supplied and committed, back to the
   * state right after it was taken: free_head and old_free_head where they were before its entries were linked
   * back (desc[last].next), used_idx and old_used_idx `num` descriptors back (`ringSize` descriptors a lap),
   * the entry inflight.
   */
  unsupply(entry: number, ringSize: number): void {
    const e = this.desc(entry);
    const before = this.desc(e.last).next;
    this.#set16(P.FREE_HEAD, before);
    this.#set16(P.OLD_FREE_HEAD, before);
    const used = this.used;
    let offset = (used & 0x7fff) - e.num;
    let wrap = (used & 0x8000) !== 0;
    if (offset < 0) {
      offset += ringSize;
      wrap = !wrap;
    }
    this.#setUsed(offset, wrap, true);
    this.#view.setUint8(this.#entry(entry) + D.INFLIGHT, 1);
  }

  /**
   * "When supplying used buffers", for the list at head entry `entry`, as far as a back-end that died after
   * writing the used descriptor (its flags) gets: desc[e.last].next = free_head, free_head = e, used_idx
   * increased by the list's descriptors (used_wrap_counter flipped past the ring's end); not the last two
   * steps: the entry stays inflight, the old_* fields as they were.
   */
  supplyUncommitted(entry: number, ringSize: number): void {
    const e = this.desc(entry);
    this.#view.setUint16(this.#entry(e.last) + D.NEXT, this.freeHead, true);
    this.#set16(P.FREE_HEAD, entry);
    const used = this.used;
    let offset = (used & 0x7fff) + e.num;
    let wrap = (used & 0x8000) !== 0;
    if (offset >= ringSize) {
      offset -= ringSize;
      wrap = !wrap;
    }
    this.#setUsed(offset, wrap, false);
  }

  #setUsed(offset: number, wrap: boolean, old: boolean): void {
    this.#set16(P.USED_IDX, offset);
    this.#view.setUint8(this.#at + P.USED_WRAP, wrap ? 1 : 0);
    if (!old) return;
    this.#set16(P.OLD_USED_IDX, offset);
    this.#view.setUint8(this.#at + P.OLD_USED_WRAP, wrap ? 1 : 0);
  }

  #u16(field: number): number {
    return this.#view.getUint16(this.#at + field, true);
  }

  #set16(field: number, value: number): void {
    this.#view.setUint16(this.#at + field, value, true);
  }

  #entry(entry: number): number {
    if (entry < 0 || entry >= this.#entries)
      throw new RangeError(`entry ${entry}: the region has ${this.#entries}`);
    return this.#at + PACKED_HEADER + PACKED_ENTRY * entry;
  }
}
