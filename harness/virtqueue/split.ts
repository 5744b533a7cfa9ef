/**
 * The driver side of a split virtqueue (virtio spec, "Split Virtqueues"), over GuestMemory. The harness is
 * the driver: it writes descriptors and the available ring, reads the used ring, and checks what the
 * back-end (the device) wrote there. Ring fields are little-endian; vhu-conform supports little-endian hosts
 * only, which lets the 16-bit indices be native Uint16Array elements.
 *
 * Bookkeeping (free list, chains in flight, tokens) lives in this object, never in guest memory: the
 * back-end can write there, and a conformance driver must not trust what it reads back.
 */
import { UsageError } from '../errors.js';
import type { AllocOptions, GuestMemory } from '../memory/guest-memory.js';
import { UsedRingError, UsedRingErrorCode, VirtqueueError, VirtqueueErrorCode } from './errors.js';
import {
  availEventOffset,
  availRingSize,
  checkU16,
  dataView,
  descTableSize,
  MAX_QUEUE_SIZE,
  type RawDescriptor,
  type RawUsedElement,
  readRawDescriptor,
  SplitLayout,
  U32_MAX,
  U64_END,
  u16Cell,
  usedEventOffset,
  usedRingSize,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtqDescFlag,
  vringNeedEvent,
  writeRawDescriptor,
} from './split-layout.js';

/** One buffer element of a request: guest address, length, and whether the device writes it. */
export interface BufferElement {
  gpa: bigint;
  len: number;
  write: boolean;
}

export interface AddRequestOptions<T> {
  /** Put the chain in an indirect table (needs VIRTIO_F_INDIRECT_DESC). */
  indirect?: boolean;
  /**
   * With `indirect`: how many leading elements stay direct descriptors, chained to the indirect one (a
   * layout the device MUST handle). Default 0: a single indirect descriptor.
   */
  directPrefix?: number;
  /** Returned with the buffer by `collectUsed`. */
  token?: T;
}

/** A buffer the device returned. */
export interface UsedBuffer<T> {
  /** The head descriptor index (virtq_used_elem.id). */
  id: number;
  /** The bytes the device says it wrote (virtq_used_elem.len), unchecked. */
  len: number;
  token: T | undefined;
  /** The total length of the chain's device-writable elements: `len` above it breaks the used ring rules. */
  writableLen: number;
  /**
   * With IN_ORDER: the buffer had no used element of its own, a later one's covered it (an in-order batch),
   * so `len` is its whole writable length, as the spec says the driver assumes.
   */
  batched?: boolean;
}

/** Where to put the three parts instead of allocating them (each must be aligned as the spec requires). */
export interface RingPlacement {
  descTable: bigint;
  availRing: bigint;
  usedRing: bigint;
}

export interface SplitVirtqueueOptions {
  /** VIRTIO_F_EVENT_IDX negotiated: used_event / avail_event instead of the flags. */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated: `addRequest` may use indirect tables. */
  indirect?: boolean;
  /** Explicit guest addresses of the parts; default: allocated from `memory`. */
  placement?: RingPlacement;
  /** Allocate the parts and indirect tables in the region at this guest address. */
  region?: bigint;
  /**
   * VIRTIO_F_IN_ORDER negotiated: descriptors are taken in ring order (the free list is a queue), and a used
   * element may stand for a batch: every buffer in flight up to the one it names (virtio spec "In-order use
   * of descriptors").
   */
  inOrder?: boolean;
}

/** A ring part's addresses: the guest address, and the user address SET_VRING_ADDR sends. */
export interface RingAddress {
  gpa: bigint;
  uva: bigint;
}

interface InFlight<T> {
  descs: number[];
  token: T | undefined;
  writableLen: number;
}

interface IndirectTable {
  gpa: bigint;
  capacity: number;
  view: DataView;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * A split virtqueue driven by the harness. The queue keeps views into its regions' bytes: it must not
 * outlive them (a region removed from GuestMemory, or its mapping unmapped, ends the queue).
 */
export class SplitVirtqueue<T = unknown> {
  readonly memory: GuestMemory;
  readonly size: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  readonly descTable: RingAddress;
  readonly availRing: RingAddress;
  readonly usedRing: RingAddress;

  readonly #alloc: AllocOptions;
  readonly #descs: DataView;
  readonly #avail: DataView;
  readonly #used: DataView;
  readonly #availFlags: Uint16Array;
  readonly #availIdx: Uint16Array;
  readonly #usedEvent: Uint16Array;
  readonly #usedFlags: Uint16Array;
  readonly #usedIdx: Uint16Array;
  readonly #availEvent: Uint16Array;
  readonly #freeNext: Uint16Array;
  readonly #inFlight: Array<InFlight<T> | undefined>;
  readonly #indirectTables: Array<IndirectTable | undefined>;
  /** Each head's InFlight record, made on its first use and reused: `#inFlight` says which are in flight. */
  readonly #records: Array<InFlight<T> | undefined>;
  /** collectUsed's ids and lens of one batch, and the batch each id was last seen in (duplicates). */
  readonly #batchIds: Uint32Array;
  readonly #batchLens: Uint32Array;
  readonly #seenIn: Uint32Array;
  #batch = 0;
  #freeHead = 0;
  #freeTail = 0;
  #numFree = 0;
  /** With IN_ORDER: the heads in flight, oldest first. */
  #availOrder: number[] = [];
  #inFlightCount = 0;
  #nextAvail = 0;
  #lastUsed = 0;

  constructor(memory: GuestMemory, size: number, options: SplitVirtqueueOptions = {}) {
    if (!LITTLE_ENDIAN_HOST) throw new UsageError('vhu-conform supports little-endian hosts only');
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new VirtqueueError(
        VirtqueueErrorCode.SIZE,
        `queue size must be a power of two in 1..${MAX_QUEUE_SIZE}, got ${size}`,
      );
    }
    this.memory = memory;
    this.size = size;
    this.eventIdx = options.eventIdx ?? false;
    this.indirect = options.indirect ?? false;
    this.inOrder = options.inOrder ?? false;
    this.#alloc = options.region === undefined ? {} : { region: options.region };

    const placement =
      options.placement ??
      memory.layout(
        {
          descTable: { len: descTableSize(size), align: SplitLayout.DESC_ALIGN },
          availRing: { len: availRingSize(size), align: SplitLayout.AVAIL_ALIGN },
          usedRing: { len: usedRingSize(size), align: SplitLayout.USED_ALIGN },
        },
        this.#alloc,
      );
    const parts = [
      ['descriptor table', placement.descTable, SplitLayout.DESC_ALIGN],
      ['available ring', placement.availRing, SplitLayout.AVAIL_ALIGN],
      ['used ring', placement.usedRing, SplitLayout.USED_ALIGN],
    ] as const;
    for (const [what, gpa, align] of parts) {
      if (gpa % BigInt(align) !== 0n) {
        throw new VirtqueueError(
          VirtqueueErrorCode.ALIGN,
          `${what} at guest 0x${gpa.toString(16)} is not ${align}-byte aligned`,
        );
      }
    }
    this.descTable = { gpa: placement.descTable, uva: memory.gpaToUva(placement.descTable) };
    this.availRing = { gpa: placement.availRing, uva: memory.gpaToUva(placement.availRing) };
    this.usedRing = { gpa: placement.usedRing, uva: memory.gpaToUva(placement.usedRing) };

    const descBytes = memory.gpaToBytes(placement.descTable, descTableSize(size));
    const availBytes = memory.gpaToBytes(placement.availRing, availRingSize(size));
    const usedBytes = memory.gpaToBytes(placement.usedRing, usedRingSize(size));
    this.#descs = dataView(descBytes);
    this.#avail = dataView(availBytes);
    this.#used = dataView(usedBytes);
    this.#availFlags = u16Cell(availBytes, SplitLayout.AVAIL_FLAGS, 'avail.flags');
    this.#availIdx = u16Cell(availBytes, SplitLayout.AVAIL_IDX, 'avail.idx');
    this.#usedEvent = u16Cell(availBytes, usedEventOffset(size), 'used_event');
    this.#usedFlags = u16Cell(usedBytes, SplitLayout.USED_FLAGS, 'used.flags');
    this.#usedIdx = u16Cell(usedBytes, SplitLayout.USED_IDX, 'used.idx');
    this.#availEvent = u16Cell(usedBytes, availEventOffset(size), 'avail_event');
    this.#freeNext = new Uint16Array(size);
    this.#inFlight = new Array(size);
    this.#indirectTables = new Array(size);
    this.#records = new Array(size);
    this.#batchIds = new Uint32Array(size);
    this.#batchLens = new Uint32Array(size);
    this.#seenIn = new Uint32Array(size);

    descBytes.fill(0);
    availBytes.fill(0);
    usedBytes.fill(0);
    this.resetTo(0);
  }

  /** The three ring addresses SET_VRING_ADDR carries: user addresses (vhost-user sends IOVAs only with an IOMMU). */
  vringAddr(): { descriptor: bigint; used: bigint; available: bigint } {
    return { descriptor: this.descTable.uva, used: this.usedRing.uva, available: this.availRing.uva };
  }

  /** The driver's avail.idx: where the next head goes; what the back-end's last_avail_idx reaches when idle. */
  get lastAvailIdx(): number {
    return this.#nextAvail;
  }

  /** `lastAvailIdx`, as DriverQueue names it for a queue of either layout. */
  get availMark(): number {
    return this.#nextAvail;
  }

  /** The used index up to which the driver has collected. */
  get lastUsedIdx(): number {
    return this.#lastUsed;
  }

  /** Buffers made available and not yet used. */
  get inFlight(): number {
    return this.#inFlightCount;
  }

  /** Where the ring stands, for messages. */
  describePosition(): string {
    return `avail.idx ${this.#nextAvail}, used index ${this.#lastUsed}, ${this.#inFlightCount} in flight`;
  }

  /** Free descriptors in the table. */
  get numFree(): number {
    return this.#numFree;
  }

  /** used.flags as the device last wrote it. */
  get usedFlags(): number {
    return Atomics.load(this.#usedFlags, 0);
  }

  /** avail_event as the device last wrote it (meaningful with EVENT_IDX only). */
  get availEvent(): number {
    return Atomics.load(this.#availEvent, 0);
  }

  /**
   * Makes one buffer available: descriptors first, then the ring entry, then avail.idx (the store that
   * exposes it all to the device). Returns the head descriptor index. Throws FULL when the free list cannot
   * hold the chain, CHAIN when it breaks a driver requirement, FEATURE for indirect without the feature.
   * Buffer addresses are not checked against the memory map: an unmapped buffer is a legitimate probe.
   */
  addRequest(chain: readonly BufferElement[], options: AddRequestOptions<T> = {}): number {
    const useIndirect = options.indirect ?? false;
    const prefix = options.directPrefix ?? 0;
    const writableLen = checkChain(chain);
    if (useIndirect && !this.indirect) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FEATURE,
        'indirect descriptors need VIRTIO_F_INDIRECT_DESC: create the queue with { indirect: true }',
      );
    }
    if (prefix !== 0 && (!useIndirect || !Number.isInteger(prefix) || prefix < 0 || prefix >= chain.length)) {
      throw new VirtqueueError(
        VirtqueueErrorCode.CHAIN,
        `directPrefix ${prefix} needs { indirect: true } and must leave at least one of the ${chain.length} ` +
          'elements for the indirect table',
      );
    }
    const tableLen = useIndirect ? chain.length - prefix : 0;
    if (tableLen > this.size) {
      throw new VirtqueueError(
        VirtqueueErrorCode.CHAIN,
        `indirect table of ${tableLen} descriptors is longer than the queue size ${this.size}`,
      );
    }
    const needed = useIndirect ? prefix + 1 : chain.length;
    if (needed > this.#numFree) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FULL,
        `free list exhausted: the chain needs ${needed} descriptors, ${this.#numFree} of ${this.size} are free ` +
          `(${this.#inFlightCount} requests in flight; collect used buffers first)`,
      );
    }
    const head = this.#freeHead;
    // Allocated before any state changes: NO_SPACE from the allocator leaves the queue as it was.
    const table = useIndirect ? this.#indirectTable(head, tableLen) : undefined;

    // The chain's record is the head's own, reused: no object or array per request.
    let record = this.#records[head];
    if (!record) {
      record = { descs: [], token: undefined, writableLen: 0 };
      this.#records[head] = record;
    }
    const descs = record.descs;
    descs.length = needed;
    for (let i = 0; i < needed; i++) {
      descs[i] = this.#freeHead;
      this.#freeHead = this.#freeNext[this.#freeHead]!;
    }
    this.#numFree -= needed;

    const direct = useIndirect ? prefix : chain.length;
    for (let i = 0; i < direct; i++) {
      const last = !useIndirect && i === direct - 1;
      this.#writeDesc(this.#descs, descs[i]!, chain[i]!, last ? 0 : descs[i + 1]!, !last);
    }
    if (table) {
      const entry = descs[prefix]!;
      const at = entry * SplitLayout.DESC_SIZE;
      // The descriptor that refers to the table: INDIRECT alone (never with NEXT or WRITE).
      this.#descs.setBigUint64(at, table.gpa, true);
      this.#descs.setUint32(at + 8, tableLen * SplitLayout.DESC_SIZE, true);
      this.#descs.setUint16(at + 12, VirtqDescFlag.INDIRECT, true);
      this.#descs.setUint16(at + 14, 0, true);
      for (let j = 0; j < tableLen; j++) {
        const last = j === tableLen - 1;
        this.#writeDesc(table.view, j, chain[prefix + j]!, last ? 0 : j + 1, !last);
      }
    }
    record.token = options.token;
    record.writableLen = writableLen;
    this.#inFlight[head] = record;
    this.#inFlightCount++;
    if (this.inOrder) this.#availOrder.push(head);

    const slot = this.#nextAvail & (this.size - 1);
    this.#avail.setUint16(SplitLayout.AVAIL_RING + 2 * slot, head, true);
    this.#nextAvail = (this.#nextAvail + 1) & 0xffff;
    // The publishing store: one aligned 16-bit access, after the writes above (see u16Cell).
    Atomics.store(this.#availIdx, 0, this.#nextAvail);
    return head;
  }

  /**
   * Raw access (robustness checks): writes descriptor `index` of the table as given, whatever the chains in
   * flight; only the field widths are checked. Raw writes void the queue's bookkeeping: go back to
   * `addRequest` only after `resetTo`.
   */
  setRawDescriptor(index: number, desc: RawDescriptor): void {
    writeRawDescriptor(this.#descs, index, desc);
  }

  /** Descriptor `index` of the table as it is now. */
  rawDescriptor(index: number): RawDescriptor {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new VirtqueueError(
        VirtqueueErrorCode.ARGUMENT,
        `descriptor ${index} of a queue of size ${this.size}`,
      );
    }
    return readRawDescriptor(this.#descs, index);
  }

  /**
   * Raw access: writes `heads` (any u16, in range or not) into the available ring from the current avail.idx
   * on, then publishes avail.idx = `availIdx` (default: moved by `heads.length`), which may run ahead of the
   * entries written or by more than the queue size. Returns the avail.idx published.
   */
  publishRaw(heads: readonly number[], options: { availIdx?: number } = {}): number {
    for (const head of heads) checkU16(head, 'head');
    const idx = options.availIdx ?? (this.#nextAvail + heads.length) & 0xffff;
    checkU16(idx, 'avail.idx');
    heads.forEach((head, i) => {
      const slot = (this.#nextAvail + i) & (this.size - 1);
      this.#avail.setUint16(SplitLayout.AVAIL_RING + 2 * slot, head, true);
    });
    this.#nextAvail = idx;
    Atomics.store(this.#availIdx, 0, idx);
    return idx;
  }

  /**
   * Raw access, the device's part: returns the chain of `head`, in flight, to the used ring as a device does
   * (its element at used.idx, len the chain's writable bytes, then used.idx moved by one). For a harness that
   * writes the state a device left behind (migrate.inflight's crash); the driver collects it as any used buffer.
   */
  supplyUsedRaw(head: number): void {
    const chain = this.#inFlight[head];
    if (chain === undefined)
      throw new VirtqueueError(
        VirtqueueErrorCode.ARGUMENT,
        `head ${head} is not the head of a chain in flight`,
      );
    const idx = Atomics.load(this.#usedIdx, 0);
    const at = SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * (idx & (this.size - 1));
    this.#used.setUint32(at, head, true);
    this.#used.setUint32(at + 4, chain.writableLen, true);
    Atomics.store(this.#usedIdx, 0, (idx + 1) & 0xffff);
  }

  /** used.idx as the device last wrote it. */
  get rawUsedIdx(): number {
    return Atomics.load(this.#usedIdx, 0);
  }

  /**
   * Raw access: the used elements from the last collected index up to used.idx as the device wrote them,
   * unchecked (at most the queue size of them: more is garbage the caller judges from `usedIdx`), and moves
   * the collected index to used.idx.
   */
  takeRawUsed(): { usedIdx: number; elements: RawUsedElement[] } {
    const usedIdx = Atomics.load(this.#usedIdx, 0);
    const count = Math.min((usedIdx - this.#lastUsed) & 0xffff, this.size);
    const elements: RawUsedElement[] = [];
    for (let i = 0; i < count; i++) {
      const slot = (this.#lastUsed + i) & (this.size - 1);
      const at = SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      elements.push({ id: this.#used.getUint32(at, true), len: this.#used.getUint32(at + 4, true) });
    }
    this.#lastUsed = usedIdx;
    return { usedIdx, elements };
  }

  /**
   * Takes every buffer the device has used since the last call. used.idx is read once; the batch is checked
   * whole before anything is consumed, so on a UsedRingError (a FAIL) the queue is left as it was.
   */
  collectUsed(): Array<UsedBuffer<T>> {
    const usedIdx = Atomics.load(this.#usedIdx, 0);
    const pending = (usedIdx - this.#lastUsed) & 0xffff;
    if (pending === 0) return [];
    const position = () => ({ usedIdx, lastUsedIdx: this.#lastUsed, inFlight: this.#inFlightCount });
    if (pending > this.#inFlightCount) {
      const why =
        pending > this.size
          ? `more than the queue size ${this.size}: garbage${
              pending >= 0x8000 ? `, or moved back by ${0x10000 - pending}` : ''
            }`
          : `but only ${this.#inFlightCount} buffers are in flight`;
      throw new UsedRingError(
        UsedRingErrorCode.USED_IDX,
        `used.idx advanced by ${pending}, ${why}`,
        position(),
      );
    }
    if (this.inOrder) return this.#collectInOrder(usedIdx, pending, position());
    // A batch number per call marks the ids seen in it: no Set per call. It wraps after 2^32 calls; 0 is
    // never a batch, so a fresh queue's zeros match none.
    this.#batch = this.#batch === 0xffff_ffff ? 1 : this.#batch + 1;
    if (this.#batch === 1) this.#seenIn.fill(0);
    const batch = this.#batch;
    for (let i = 0; i < pending; i++) {
      const index = (this.#lastUsed + i) & 0xffff;
      const slot = index & (this.size - 1);
      const at = SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      const id = this.#used.getUint32(at, true);
      const len = this.#used.getUint32(at + 4, true);
      if (id >= this.size) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_RANGE,
          `used.ring[${slot}] (used index ${index}) has id ${id}, not a descriptor index of a queue of size ${this.size}`,
          position(),
        );
      }
      if (!this.#inFlight[id] || this.#seenIn[id] === batch) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_NOT_IN_FLIGHT,
          `used.ring[${slot}] (used index ${index}) has id ${id}, which is not the head of a chain in flight${this.#explainNotInFlight(id, this.#seenIn[id] === batch)}`,
          position(),
        );
      }
      this.#seenIn[id] = batch;
      this.#batchIds[i] = id;
      this.#batchLens[i] = len;
    }
    const out: Array<UsedBuffer<T>> = [];
    for (let i = 0; i < pending; i++) out.push(this.#take(this.#batchIds[i]!, this.#batchLens[i]!, false));
    this.#lastUsed = usedIdx;
    return out;
  }

  /** Takes buffer `id` out of flight, its descriptors back on the free list: the used buffer to return. */
  #take(id: number, len: number, batched: boolean): UsedBuffer<T> {
    const chain = this.#inFlight[id]!;
    this.#inFlight[id] = undefined;
    this.#inFlightCount--;
    this.#release(chain.descs);
    const used: UsedBuffer<T> = { id, len, token: chain.token, writableLen: chain.writableLen };
    if (batched) used.batched = true;
    chain.token = undefined;
    return used;
  }

  /** collectUsed under IN_ORDER: batches read by #readInOrder, each buffer in it taken. */
  #collectInOrder(
    usedIdx: number,
    pending: number,
    position: { usedIdx: number; lastUsedIdx: number; inFlight: number },
  ): Array<UsedBuffer<T>> {
    const batch = this.#readInOrder(pending, position);
    const out = batch.map(({ id, len, batched }) => this.#take(id, len, batched ?? false));
    this.#availOrder.splice(0, batch.length);
    this.#lastUsed = usedIdx;
    return out;
  }

  /**
   * The used elements of `pending` used ring entries under IN_ORDER: each names the last buffer of a batch,
   * every buffer in flight before it in available order is in the batch (its whole writable length assumed),
   * and the next element is where the batch's first buffer's would have been plus the batch's size. An id
   * not in flight, or a batch reaching past used.idx, is a UsedRingError.
   */
  #readInOrder(
    pending: number,
    position: { usedIdx: number; lastUsedIdx: number; inFlight: number },
  ): Array<{ id: number; len: number; batched?: boolean }> {
    const batch: Array<{ id: number; len: number; batched?: boolean }> = [];
    while (batch.length < pending) {
      const index = (this.#lastUsed + batch.length) & 0xffff;
      const slot = index & (this.size - 1);
      const at = SplitLayout.USED_RING + SplitLayout.USED_ELEM_SIZE * slot;
      const id = this.#used.getUint32(at, true);
      const len = this.#used.getUint32(at + 4, true);
      const where = `used.ring[${slot}] (used index ${index})`;
      const k = this.#availOrder.indexOf(id, batch.length);
      if (k < 0) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_NOT_IN_FLIGHT,
          `${where} has id ${id}, not the head of a buffer in flight after the ${batch.length} already used` +
            (id < this.size
              ? this.#explainNotInFlight(id, this.#availOrder.slice(0, batch.length).includes(id))
              : ''),
          position,
        );
      }
      const size = k + 1 - batch.length;
      if (batch.length + size > pending) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_IDX,
          `${where} has id ${id}, the ${ordinal(size)} buffer in flight in available order: with IN_ORDER that ` +
            `uses ${size} buffers, but used.idx advanced by only ${pending - batch.length} more (used out of order)`,
          position,
        );
      }
      for (let j = batch.length; j < k; j++) {
        const skipped = this.#availOrder[j]!;
        batch.push({ id: skipped, len: this.#inFlight[skipped]!.writableLen, batched: true });
      }
      batch.push({ id, len });
    }
    return batch;
  }

  /**
   * Whether the driver must notify the device after moving avail.idx from `oldIdx` to `newIdx`. With
   * EVENT_IDX: vring_need_event(avail_event, new, old), the low bit of used.flags ignored. Without: unless
   * the device set VIRTQ_USED_F_NO_NOTIFY.
   */
  needsKick(oldIdx: number, newIdx: number): boolean {
    checkU16(oldIdx, 'oldIdx');
    checkU16(newIdx, 'newIdx');
    if (this.eventIdx) return vringNeedEvent(Atomics.load(this.#availEvent, 0), newIdx, oldIdx);
    return (Atomics.load(this.#usedFlags, 0) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** Writes used_event: the device should notify once used.idx passes `idx` (EVENT_IDX only). */
  setUsedEvent(idx: number): void {
    checkU16(idx, 'used_event');
    if (!this.eventIdx) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FEATURE,
        'used_event exists only with VIRTIO_F_EVENT_IDX: create the queue with { eventIdx: true }',
      );
    }
    Atomics.store(this.#usedEvent, 0, idx);
  }

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT; with EVENT_IDX the driver MUST keep avail.flags 0. */
  setNoInterrupt(on: boolean): void {
    if (this.eventIdx) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FEATURE,
        'with VIRTIO_F_EVENT_IDX the driver must keep avail.flags at 0: use setUsedEvent',
      );
    }
    Atomics.store(this.#availFlags, 0, on ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
  }

  /**
   * Restarts the ring at index `base` (SET_VRING_BASE): forgets every buffer in flight, frees all
   * descriptors, and writes flags 0, avail.idx = used.idx = used_event = avail_event = `base`, as if the
   * rings had just been allocated there. Only while the back-end is not processing the ring.
   */
  resetTo(base: number): void {
    checkU16(base, 'base');
    for (let i = 0; i < this.size; i++) this.#freeNext[i] = (i + 1) & (this.size - 1);
    this.#freeHead = 0;
    this.#freeTail = this.size - 1;
    this.#numFree = this.size;
    this.#availOrder = [];
    this.#inFlight.fill(undefined);
    this.#inFlightCount = 0;
    this.#nextAvail = base;
    this.#lastUsed = base;
    Atomics.store(this.#availFlags, 0, 0);
    Atomics.store(this.#usedFlags, 0, 0);
    Atomics.store(this.#usedEvent, 0, base);
    Atomics.store(this.#availEvent, 0, base);
    Atomics.store(this.#usedIdx, 0, base);
    Atomics.store(this.#availIdx, 0, base);
  }

  #writeDesc(view: DataView, index: number, e: BufferElement, next: number, hasNext: boolean): void {
    const at = index * SplitLayout.DESC_SIZE;
    view.setBigUint64(at, e.gpa, true);
    view.setUint32(at + 8, e.len, true);
    view.setUint16(at + 12, (hasNext ? VirtqDescFlag.NEXT : 0) | (e.write ? VirtqDescFlag.WRITE : 0), true);
    view.setUint16(at + 14, next, true);
  }

  /** The indirect table of head `head`, grown (to a power of two) when `len` entries do not fit. */
  #indirectTable(head: number, len: number): IndirectTable {
    const current = this.#indirectTables[head];
    if (current && current.capacity >= len) return current;
    let capacity = 4;
    while (capacity < len) capacity *= 2;
    // Bump allocation cannot free the old table; growth by doubling bounds the waste.
    const gpa = this.memory.alloc(capacity * SplitLayout.DESC_SIZE, SplitLayout.DESC_ALIGN, this.#alloc);
    const view = dataView(this.memory.gpaToBytes(gpa, capacity * SplitLayout.DESC_SIZE));
    const table = { gpa, capacity, view };
    this.#indirectTables[head] = table;
    return table;
  }

  #release(descs: readonly number[]): void {
    if (this.inOrder) {
      // At the tail: buffers come back in the order they went out, so the table is used in ring order.
      for (const d of descs) {
        if (this.#numFree === 0) this.#freeHead = d;
        else this.#freeNext[this.#freeTail] = d;
        this.#freeTail = d;
        this.#numFree++;
      }
      return;
    }
    for (let i = descs.length - 1; i >= 0; i--) {
      this.#freeNext[descs[i]!] = this.#freeHead;
      this.#freeHead = descs[i]!;
    }
    this.#numFree += descs.length;
  }

  #explainNotInFlight(id: number, seenInBatch: boolean): string {
    if (seenInBatch) return ' (already used earlier in this batch)';
    for (let head = 0; head < this.size; head++) {
      if (this.#inFlight[head]?.descs.includes(id))
        return ` (descriptor ${id} is inside the chain headed by ${head})`;
    }
    return '';
  }
}

/**
 * Checks the driver requirements on a buffer's elements (split or packed layout alike) and returns its
 * device-writable length. Throws VirtqueueError CHAIN.
 */
export function checkChain(chain: readonly BufferElement[]): number {
  const fail = (why: string) => new VirtqueueError(VirtqueueErrorCode.CHAIN, why);
  if (!chain.length) throw fail('a chain needs at least one element');
  let total = 0;
  let writable = 0;
  let sawWrite = false;
  for (let i = 0; i < chain.length; i++) {
    const e = chain[i]!;
    if (!Number.isInteger(e.len) || e.len < 0 || e.len > U32_MAX) {
      throw fail(`element ${i}: len must be a u32, got ${e.len}`);
    }
    if (e.gpa < 0n || e.gpa >= U64_END) throw fail(`element ${i}: gpa must be a u64, got ${e.gpa}`);
    if (sawWrite && !e.write) {
      throw fail(`element ${i} is device-readable after a device-writable one: writable elements go last`);
    }
    sawWrite ||= e.write;
    total += e.len;
    if (e.write) writable += e.len;
  }
  if (total > 2 ** 32) throw fail(`the chain is ${total} bytes long, more than 2^32`);
  return writable;
}

/** 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st: for messages. */
export function ordinal(n: number): string {
  const suffix =
    n % 10 === 1 && n % 100 !== 11
      ? 'st'
      : n % 10 === 2 && n % 100 !== 12
        ? 'nd'
        : n % 10 === 3 && n % 100 !== 13
          ? 'rd'
          : 'th';
  return `${n}${suffix}`;
}
