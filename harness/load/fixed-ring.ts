/**
 * A split ring as a busy-polling front-end runs it (DPDK's virtio-user, a guest's poll-mode driver): every
 * buffer has descriptors of its own, written once, so making it available again is one avail ring entry;
 * the used ring is polled, not waited on. Used buffer notifications are suppressed (used_event kept behind
 * with EVENT_IDX, else VIRTQ_AVAIL_F_NO_INTERRUPT) and a kick goes only where the device asks for one
 * (avail_event, or no VIRTQ_USED_F_NO_NOTIFY). Every used element is still judged: its id is the head of a
 * buffer in flight, used once; what it carries is the caller's to judge.
 *
 * It works on the ring memory another SplitVirtqueue laid out (and zeroed) and started: the load engine's
 * worker thread takes the ring over from there, in its own mapping of the same memfds.
 */
import { UsedRingError, UsedRingErrorCode } from '../virtqueue/errors.js';
import {
  availEventOffset,
  availRingSize,
  dataView,
  descTableSize,
  SplitLayout,
  u16Cell,
  usedEventOffset,
  usedRingSize,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  vringNeedEvent,
} from '../virtqueue/split-layout.js';

/** Where a ring is, and how it was negotiated: what the worker is handed. */
export interface FixedRingPlan {
  index: number;
  size: number;
  desc: bigint;
  avail: bigint;
  used: bigint;
  eventIdx: boolean;
  kickFd: number;
  callFd: number;
}

/** One descriptor of a buffer: guest address, length, device-writable. */
export interface FixedDescriptor {
  gpa: bigint;
  len: number;
  write: boolean;
}

export class FixedRing {
  readonly index: number;
  readonly size: number;
  readonly eventIdx: boolean;
  readonly kickFd: number;
  /** Heads in flight: 1 while the device has the buffer. */
  readonly #inFlight: Uint8Array;
  readonly #descs: DataView;
  readonly #avail: DataView;
  readonly #used: DataView;
  readonly #availIdx: Uint16Array;
  readonly #usedIdx: Uint16Array;
  readonly #usedEvent: Uint16Array;
  readonly #availEvent: Uint16Array;
  readonly #usedFlags: Uint16Array;
  #inFlightCount = 0;
  #nextAvail = 0;
  /** avail.idx when the device was last notified, or last told us it needs no notification. */
  #published = 0;
  #lastUsed = 0;
  kicks = 0;

  /** `bytesAt(gpa, len)`: the mapping of guest memory the ring is in. */
  constructor(plan: FixedRingPlan, bytesAt: (gpa: bigint, len: number) => Uint8Array) {
    this.index = plan.index;
    this.size = plan.size;
    this.eventIdx = plan.eventIdx;
    this.kickFd = plan.kickFd;
    this.#inFlight = new Uint8Array(plan.size);
    const descBytes = bytesAt(plan.desc, descTableSize(plan.size));
    const availBytes = bytesAt(plan.avail, availRingSize(plan.size));
    const usedBytes = bytesAt(plan.used, usedRingSize(plan.size));
    this.#descs = dataView(descBytes);
    this.#avail = dataView(availBytes);
    this.#used = dataView(usedBytes);
    this.#availIdx = u16Cell(availBytes, SplitLayout.AVAIL_IDX, 'avail.idx');
    this.#usedIdx = u16Cell(usedBytes, SplitLayout.USED_IDX, 'used.idx');
    this.#usedEvent = u16Cell(availBytes, usedEventOffset(plan.size), 'used_event');
    this.#availEvent = u16Cell(usedBytes, availEventOffset(plan.size), 'avail_event');
    this.#usedFlags = u16Cell(usedBytes, SplitLayout.USED_FLAGS, 'used.flags');
    const availFlags = u16Cell(availBytes, SplitLayout.AVAIL_FLAGS, 'avail.flags');
    this.#nextAvail = Atomics.load(this.#availIdx, 0);
    this.#published = this.#nextAvail;
    this.#lastUsed = Atomics.load(this.#usedIdx, 0);
    // No calls: the used ring is polled. With EVENT_IDX, used_event one behind what was collected is
    // crossed only after 65536 more used buffers, and moved along with every poll.
    if (this.eventIdx) Atomics.store(this.#usedEvent, 0, (this.#lastUsed - 1) & 0xffff);
    else Atomics.store(availFlags, 0, VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  get inFlight(): number {
    return this.#inFlightCount;
  }

  /** Writes descriptor `index` (the chain continues to index + 1 unless `last`). */
  setDescriptor(index: number, d: FixedDescriptor, last: boolean): void {
    const at = index * SplitLayout.DESC_SIZE;
    this.#descs.setBigUint64(at, d.gpa, true);
    this.#descs.setUint32(at + 8, d.len, true);
    this.#descs.setUint16(at + 12, (last ? 0 : 1) | (d.write ? 2 : 0), true);
    this.#descs.setUint16(at + 14, last ? 0 : index + 1, true);
  }

  /** Puts the chain headed by `head` in the available ring (published by `publish`). */
  push(head: number): void {
    this.#avail.setUint16(SplitLayout.AVAIL_RING + 2 * (this.#nextAvail & (this.size - 1)), head, true);
    this.#nextAvail = (this.#nextAvail + 1) & 0xffff;
    this.#inFlight[head] = 1;
    this.#inFlightCount++;
  }

  /** Stores avail.idx, and says whether the device asked to be notified of what it covers (a kick is due). */
  publish(): boolean {
    const now = this.#nextAvail;
    const before = this.#published;
    if (now === before) return false;
    Atomics.store(this.#availIdx, 0, now);
    this.#published = now;
    const due = this.eventIdx
      ? vringNeedEvent(Atomics.load(this.#availEvent, 0), now, before)
      : (Atomics.load(this.#usedFlags, 0) & VIRTQ_USED_F_NO_NOTIFY) === 0;
    if (due) this.kicks++;
    return due;
  }

  /** Whether the device has used buffers the last poll did not take. */
  hasUsed(): boolean {
    return Atomics.load(this.#usedIdx, 0) !== this.#lastUsed;
  }

  /**
   * Takes the used elements since the last poll, each judged (an id that is not a head in flight, or
   * used.idx past what is in flight, is a UsedRingError), and hands each to `take(id, len)`. Returns how
   * many it took.
   */
  poll(take: (id: number, len: number) => void): number {
    const usedIdx = Atomics.load(this.#usedIdx, 0);
    const pending = (usedIdx - this.#lastUsed) & 0xffff;
    if (pending === 0) return 0;
    if (pending > this.#inFlightCount) {
      throw new UsedRingError(
        UsedRingErrorCode.USED_IDX,
        `vring ${this.index}: used.idx advanced by ${pending}, but only ${this.#inFlightCount} buffers are in flight`,
        { usedIdx, lastUsedIdx: this.#lastUsed, inFlight: this.#inFlightCount },
      );
    }
    for (let i = 0; i < pending; i++) {
      const slot = (this.#lastUsed + i) & (this.size - 1);
      const at = SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      const id = this.#used.getUint32(at, true);
      if (id >= this.size || this.#inFlight[id] !== 1) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_NOT_IN_FLIGHT,
          `vring ${this.index}: used.ring[${slot}] has id ${id}, which is not the head of a buffer in flight`,
          { usedIdx, lastUsedIdx: this.#lastUsed, inFlight: this.#inFlightCount },
        );
      }
      this.#inFlight[id] = 0;
      this.#inFlightCount--;
      take(id, this.#used.getUint32(at + 4, true));
    }
    this.#lastUsed = usedIdx;
    if (this.eventIdx) Atomics.store(this.#usedEvent, 0, (usedIdx - 1) & 0xffff);
    return pending;
  }

  /** Where the ring stands, for messages. */
  describe(): string {
    return (
      `vring ${this.index}: avail.idx ${this.#nextAvail}, used.idx ${Atomics.load(this.#usedIdx, 0)}, ` +
      `${this.#inFlightCount} in flight`
    );
  }
}
