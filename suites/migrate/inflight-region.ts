/**
 * The front-end's view of one split queue region of the inflight buffer (vhost-user.rst "Inflight I/O
 * tracking"): a QueueRegionSplit header (features u64, version u16, desc_num u16, last_batch_head u16,
 * used_idx u16), then desc_num DescStateSplit entries (inflight u8, padding[5], next u16, counter u64). The
 * buffer is the front-end's to keep; the harness reads what the back-end wrote there and, to stand for a
 * back-end that died between two of the spec's steps, writes what those steps would have left.
 */

import type { Scope } from '../../harness/process/scope.js';
import { type Mapping, mmapShared } from '../../harness/sys/libc.js';

const HEADER = 16;
const ENTRY = 16;
const VERSION = 8;
const DESC_NUM = 10;
const LAST_BATCH_HEAD = 12;
const USED_IDX = 14;
const INFLIGHT = 0;
const COUNTER = 8;

/** One head's DescStateSplit. */
export interface DescState {
  inflight: number;
  counter: bigint;
}

export class SplitInflightRegion {
  readonly #view: DataView;
  readonly #at: number;
  readonly #entries: number;

  /**
   * Region `queue` of the buffer `fd` holds (`size` bytes from `offset`, as GET_INFLIGHT_FD described it),
   * for rings of `queueSize` entries; the mapping is the scope's.
   */
  constructor(scope: Scope, fd: number, size: number, offset: number, queue: number, queueSize: number) {
    const mapping: Mapping = mmapShared(fd, size, offset);
    scope.defer('inflight buffer mapping (migrate.inflight)', () => mapping.unmap());
    this.#view = new DataView(mapping.buffer);
    this.#at = queue * (HEADER + ENTRY * queueSize);
    this.#entries = queueSize;
    if (this.#at + HEADER + ENTRY * queueSize > size)
      throw new RangeError(`queue ${queue}'s region passes the ${size}-byte buffer`);
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
   * The state "When supplying used buffers" leaves between increasing the used ring's idx and the last two
   * steps: desc[head] (the last batch's head, alone) inflight again, used_idx one behind.
   */
  unpublish(head: number): void {
    this.#view.setUint8(this.#entry(head) + INFLIGHT, 1);
    this.#view.setUint16(this.#at + USED_IDX, (this.usedIdx - 1) & 0xffff, true);
  }

  #entry(head: number): number {
    if (head < 0 || head >= this.#entries)
      throw new RangeError(`head ${head}: the region has ${this.#entries}`);
    return this.#at + HEADER + ENTRY * head;
  }
}
