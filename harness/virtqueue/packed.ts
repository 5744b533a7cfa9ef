/**
 * The driver side of a packed virtqueue (virtio 1.1+ "Packed Virtqueues", VIRTIO_F_RING_PACKED): one ring of
 * descriptors that the driver makes available and the device overwrites as used, told apart by the
 * AVAIL/USED flag bits against each side's ring wrap counter, plus two event suppression structures.
 * The same contract as split.ts: buffers in, used buffers out, and every fault of the device's a FAIL.
 */
import { UsageError } from '../errors.js';
import type { AllocOptions, GuestMemory } from '../memory/guest-memory.js';
import {
  UsedRingError,
  UsedRingErrorCode,
  type UsedRingPosition,
  VirtqueueError,
  VirtqueueErrorCode,
} from './errors.js';
import type { AddRequestOptions, BufferElement, RingAddress, UsedBuffer } from './split.js';
import { checkChain, ordinal } from './split.js';
import { dataView, u16Cell, vringNeedEvent } from './split-layout.js';

/** pvirtq_desc.flags bits. */
export const PackedDescFlag = {
  NEXT: 1,
  WRITE: 2,
  INDIRECT: 4,
  AVAIL: 1 << 7,
  USED: 1 << 15,
} as const;

/** pvirtq_event_suppress.flags values (RING_EVENT_FLAGS_*). */
export const RingEventFlags = {
  ENABLE: 0,
  DISABLE: 1,
  /** Only with VIRTIO_F_RING_EVENT_IDX: an event at the descriptor in `desc` (offset and wrap counter). */
  DESC: 2,
} as const;

/** Sizes and alignments from the spec's table ("Structure Size and Alignment"). */
export const PackedLayout = {
  DESC_SIZE: 16,
  DESC_ALIGN: 16,
  EVENT_SIZE: 4,
  EVENT_ALIGN: 4,
} as const;

/** Packed virtqueues hold up to 2^15 entries; the size need not be a power of two. */
export const MAX_PACKED_QUEUE_SIZE = 32768;

const WRAP_BIT = 0x8000;
const U32_MAX = 0xffff_ffff;

/**
 * A position in the ring as vhost-user and the event structures carry it: the descriptor offset in bits
 * 0-14 and the ring wrap counter in bit 15.
 */
export function packedPosition(offset: number, wrap: boolean): number {
  return (offset & 0x7fff) | (wrap ? WRAP_BIT : 0);
}

/** The u32 of SET_VRING_BASE / GET_VRING_BASE for a packed ring: available position low, used position high. */
export function packedBase(availPosition: number, usedPosition: number): number {
  return ((availPosition & 0xffff) | ((usedPosition & 0xffff) << 16)) >>> 0;
}

/** One descriptor of a packed ring as the ring holds it (pvirtq_desc). */
export interface PackedDescriptor {
  addr: bigint;
  len: number;
  id: number;
  flags: number;
}

/** The position `count` descriptors past `position` (offset and wrap counter), in a ring of `size`. */
export function packedAdvance(position: number, count: number, size: number): number {
  let offset = (position & 0x7fff) + count;
  let wrap = (position & WRAP_BIT) !== 0;
  while (offset >= size) {
    offset -= size;
    wrap = !wrap;
  }
  return packedPosition(offset, wrap);
}

export interface PackedPlacement {
  descRing: bigint;
  driverArea: bigint;
  deviceArea: bigint;
}

export interface PackedVirtqueueOptions {
  /** VIRTIO_F_RING_EVENT_IDX negotiated: the DESC event flag may be used (setUsedEvent) and honoured. */
  eventIdx?: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect?: boolean;
  placement?: PackedPlacement;
  /** Allocate the parts and indirect tables in the region at this guest address. */
  region?: bigint;
  /**
   * VIRTIO_F_IN_ORDER negotiated: buffers are used in the order they were made available, and one used
   * descriptor may stand for a batch: every buffer in flight up to the one whose id it carries, written
   * over the batch's first descriptor (virtio spec, packed "In-order use of descriptors").
   */
  inOrder?: boolean;
}

interface InFlight<T> {
  /** Ring descriptors the buffer occupies: what the driver skips past its used descriptor. */
  count: number;
  token: T | undefined;
  writableLen: number;
}

interface IndirectTable {
  gpa: bigint;
  capacity: number;
  view: DataView;
}

/**
 * A packed virtqueue driven by the harness. Buffer ids come from a free list of 0..size-1 and name the
 * buffer in its last descriptor, as the spec says; the first descriptor's flags are stored last, with one
 * aligned 16-bit Atomics store (see split-layout.ts, u16Cell, on ordering), which publishes the whole list.
 */
export class PackedVirtqueue<T = unknown> {
  readonly memory: GuestMemory;
  readonly size: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly inOrder: boolean;
  readonly descRing: RingAddress;
  /** Driver Event Suppression: written by the driver, read by the device (used buffer notifications). */
  readonly driverArea: RingAddress;
  /** Device Event Suppression: written by the device, read by the driver (available buffer notifications). */
  readonly deviceArea: RingAddress;

  readonly #alloc: AllocOptions;
  readonly #descs: DataView;
  /** Every descriptor's flags, for single 16-bit stores and loads. */
  readonly #flags: Uint16Array;
  readonly #driverEventDesc: Uint16Array;
  readonly #driverEventFlags: Uint16Array;
  readonly #deviceEventDesc: Uint16Array;
  readonly #deviceEventFlags: Uint16Array;
  readonly #inFlight: Array<InFlight<T> | undefined>;
  readonly #indirectTables: Array<IndirectTable | undefined>;
  #freeIds: number[] = [];
  #freeDescs = 0;
  #inFlightCount = 0;
  /** With IN_ORDER: the ids in flight, oldest first. */
  #availOrder: number[] = [];
  #nextAvail = 0;
  #availWrap = true;
  #nextUsed = 0;
  #usedWrap = true;

  constructor(memory: GuestMemory, size: number, options: PackedVirtqueueOptions = {}) {
    if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
      throw new UsageError('vhu-conform supports little-endian hosts only');
    }
    if (!Number.isInteger(size) || size < 1 || size > MAX_PACKED_QUEUE_SIZE) {
      throw new VirtqueueError(
        VirtqueueErrorCode.SIZE,
        `packed queue size must be in 1..${MAX_PACKED_QUEUE_SIZE}, got ${size}`,
      );
    }
    this.memory = memory;
    this.size = size;
    this.eventIdx = options.eventIdx ?? false;
    this.indirect = options.indirect ?? false;
    this.inOrder = options.inOrder ?? false;
    this.#alloc = options.region === undefined ? {} : { region: options.region };
    const ringLen = size * PackedLayout.DESC_SIZE;
    const placement =
      options.placement ??
      memory.layout(
        {
          descRing: { len: ringLen, align: PackedLayout.DESC_ALIGN },
          driverArea: { len: PackedLayout.EVENT_SIZE, align: PackedLayout.EVENT_ALIGN },
          deviceArea: { len: PackedLayout.EVENT_SIZE, align: PackedLayout.EVENT_ALIGN },
        },
        this.#alloc,
      );
    const parts = [
      ['descriptor ring', placement.descRing, PackedLayout.DESC_ALIGN],
      ['driver event suppression', placement.driverArea, PackedLayout.EVENT_ALIGN],
      ['device event suppression', placement.deviceArea, PackedLayout.EVENT_ALIGN],
    ] as const;
    for (const [what, gpa, align] of parts) {
      if (gpa % BigInt(align) !== 0n) {
        throw new VirtqueueError(
          VirtqueueErrorCode.ALIGN,
          `${what} at guest 0x${gpa.toString(16)} is not ${align}-byte aligned`,
        );
      }
    }
    this.descRing = { gpa: placement.descRing, uva: memory.gpaToUva(placement.descRing) };
    this.driverArea = { gpa: placement.driverArea, uva: memory.gpaToUva(placement.driverArea) };
    this.deviceArea = { gpa: placement.deviceArea, uva: memory.gpaToUva(placement.deviceArea) };
    const ringBytes = memory.gpaToBytes(placement.descRing, ringLen);
    const driverBytes = memory.gpaToBytes(placement.driverArea, PackedLayout.EVENT_SIZE);
    const deviceBytes = memory.gpaToBytes(placement.deviceArea, PackedLayout.EVENT_SIZE);
    if (ringBytes.byteOffset % 2 !== 0) {
      throw new VirtqueueError(VirtqueueErrorCode.ALIGN, 'descriptor ring at an odd host offset');
    }
    this.#descs = dataView(ringBytes);
    this.#flags = new Uint16Array(ringBytes.buffer, ringBytes.byteOffset, ringLen / 2);
    this.#driverEventDesc = u16Cell(driverBytes, 0, 'driver event desc');
    this.#driverEventFlags = u16Cell(driverBytes, 2, 'driver event flags');
    this.#deviceEventDesc = u16Cell(deviceBytes, 0, 'device event desc');
    this.#deviceEventFlags = u16Cell(deviceBytes, 2, 'device event flags');
    this.#inFlight = new Array(size);
    this.#indirectTables = new Array(size);
    // "The descriptor ring is zero-initialized."
    ringBytes.fill(0);
    driverBytes.fill(0);
    deviceBytes.fill(0);
    this.resetTo(packedBase(packedPosition(0, true), packedPosition(0, true)));
  }

  /** SET_VRING_ADDR's three addresses: the ring, the driver area (as "avail"), the device area (as "used"). */
  vringAddr(): { descriptor: bigint; used: bigint; available: bigint } {
    return { descriptor: this.descRing.uva, used: this.deviceArea.uva, available: this.driverArea.uva };
  }

  /** Where the next available descriptor goes, with the driver ring wrap counter (bit 15). */
  get availPosition(): number {
    return packedPosition(this.#nextAvail, this.#availWrap);
  }

  /** `availPosition`, as DriverQueue names it for a queue of either layout. */
  get availMark(): number {
    return this.availPosition;
  }

  /** Where the next used descriptor is expected, with the used wrap counter the driver expects (bit 15). */
  get usedPosition(): number {
    return packedPosition(this.#nextUsed, this.#usedWrap);
  }

  /** Buffers made available and not yet used. */
  get inFlight(): number {
    return this.#inFlightCount;
  }

  /** Where the ring stands, for messages. */
  describePosition(): string {
    const at = (offset: number, wrap: boolean) => `${offset} (wrap ${wrap ? 1 : 0})`;
    return (
      `next available descriptor ${at(this.#nextAvail, this.#availWrap)}, next used ` +
      `${at(this.#nextUsed, this.#usedWrap)}, ${this.#inFlightCount} in flight`
    );
  }

  /** Ring descriptors not held by a buffer in flight. */
  get numFree(): number {
    return this.#freeDescs;
  }

  /**
   * The descriptors of the list made available at `position` (as `availPosition` gave it before the list was
   * added), as the ring holds them: address, length, buffer id and flags (AVAIL and USED as the driver wrote
   * them), the list followed by NEXT. What a device reads when it takes the list; only meaningful while the
   * list is available (the device overwrites its first descriptor when it uses it).
   */
  listAt(position: number): PackedDescriptor[] {
    const list: PackedDescriptor[] = [];
    let offset = position & 0x7fff;
    for (let n = 0; n < this.size; n++) {
      const at = offset * PackedLayout.DESC_SIZE;
      const flags = Atomics.load(this.#flags, offset * 8 + 7);
      list.push({
        addr: this.#descs.getBigUint64(at, true),
        len: this.#descs.getUint32(at + 8, true),
        id: this.#descs.getUint16(at + 12, true),
        flags,
      });
      if (!(flags & PackedDescFlag.NEXT)) break;
      offset = offset + 1 === this.size ? 0 : offset + 1;
    }
    return list;
  }

  /**
   * Whether the device marked the descriptor at `position` used in the lap `position` names (AVAIL and USED
   * both equal to its wrap counter), without taking anything: how a driver can see a list used before it
   * collects it.
   */
  usedAt(position: number): boolean {
    const flags = Atomics.load(this.#flags, (position & 0x7fff) * 8 + 7);
    const wrap = (position & WRAP_BIT) !== 0;
    return ((flags & PackedDescFlag.USED) !== 0) === wrap && ((flags & PackedDescFlag.AVAIL) !== 0) === wrap;
  }

  /** The Device Event Suppression structure as the device last wrote it. */
  get deviceEvent(): { flags: number; position: number } {
    return {
      flags: Atomics.load(this.#deviceEventFlags, 0),
      position: Atomics.load(this.#deviceEventDesc, 0),
    };
  }

  /**
   * Makes one buffer available and returns its buffer id. Descriptors are written in ring order from the
   * next available one; the first one's flags go last. Throws FULL, CHAIN or FEATURE as SplitVirtqueue does.
   */
  addRequest(chain: readonly BufferElement[], options: AddRequestOptions<T> = {}): number {
    const useIndirect = options.indirect ?? false;
    if (options.directPrefix) {
      // The spec forbids an indirect descriptor in a list linked by NEXT for packed rings.
      throw new VirtqueueError(
        VirtqueueErrorCode.CHAIN,
        'a packed ring list cannot mix direct descriptors with an indirect one (directPrefix)',
      );
    }
    const writableLen = checkChain(chain);
    if (useIndirect && !this.indirect) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FEATURE,
        'indirect descriptors need VIRTIO_F_INDIRECT_DESC: create the queue with { indirect: true }',
      );
    }
    if (chain.length > this.size) {
      throw new VirtqueueError(
        VirtqueueErrorCode.CHAIN,
        `a list of ${chain.length} descriptors is longer than the queue size ${this.size}`,
      );
    }
    const count = useIndirect ? 1 : chain.length;
    const id = this.#freeIds.at(-1);
    if (count > this.#freeDescs || id === undefined) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FULL,
        `ring full: the list needs ${count} descriptors, ${this.#freeDescs} of ${this.size} are free ` +
          `(${this.#inFlightCount} buffers in flight; collect used buffers first)`,
      );
    }
    const table = useIndirect ? this.#indirectTable(id, chain.length) : undefined;
    this.#freeIds.pop();

    // AVAIL matches the driver ring wrap counter, USED its inverse; a list crossing the ring's end flips it.
    const availFlags = (): number => (this.#availWrap ? PackedDescFlag.AVAIL : PackedDescFlag.USED);
    const first = this.#nextAvail;
    let firstFlags = 0;
    if (table) {
      chain.forEach((e, j) => {
        const at = j * PackedLayout.DESC_SIZE;
        table.view.setBigUint64(at, e.gpa, true);
        table.view.setUint32(at + 8, e.len, true);
        table.view.setUint16(at + 12, 0, true); // buffer id: reserved in an indirect table
        table.view.setUint16(at + 14, e.write ? PackedDescFlag.WRITE : 0, true);
      });
      firstFlags = this.#writeDesc(
        first,
        { gpa: table.gpa, len: chain.length * PackedLayout.DESC_SIZE, write: false },
        id,
        PackedDescFlag.INDIRECT | availFlags(),
        true,
      );
      this.#advanceAvail();
    } else {
      chain.forEach((e, i) => {
        const last = i === chain.length - 1;
        const flags = availFlags() | (e.write ? PackedDescFlag.WRITE : 0) | (last ? 0 : PackedDescFlag.NEXT);
        // Buffer ID goes in the last descriptor; the others carry it too, harmlessly.
        const written = this.#writeDesc(this.#nextAvail, e, id, flags, i === 0);
        if (i === 0) firstFlags = written;
        this.#advanceAvail();
      });
    }
    this.#inFlight[id] = { count, token: options.token, writableLen };
    this.#inFlightCount++;
    if (this.inOrder) this.#availOrder.push(id);
    this.#freeDescs -= count;
    // The publishing store: the first descriptor's flags, after everything else of the list.
    Atomics.store(this.#flags, first * 8 + 7, firstFlags);
    return id;
  }

  /**
   * Takes every buffer the device has used since the last call, in ring order. Checked whole before
   * anything is consumed: on a UsedRingError the queue is left as it was. With IN_ORDER a used descriptor
   * names the last buffer of a batch: the buffers in flight before it come back too, `batched`, their whole
   * writable length assumed, and the next used descriptor is expected past all of the batch's descriptors.
   */
  collectUsed(): Array<UsedBuffer<T>> {
    const batch: Array<{ id: number; len: number; batched?: boolean }> = [];
    const seen = new Set<number>();
    let position = this.#nextUsed;
    let wrap = this.#usedWrap;
    const where = (): UsedRingPosition => ({
      usedIdx: packedPosition(position, wrap),
      lastUsedIdx: this.usedPosition,
      inFlight: this.#inFlightCount,
    });
    const skip = (id: number): void => {
      position += this.#inFlight[id]!.count;
      if (position >= this.size) {
        position -= this.size;
        wrap = !wrap;
      }
    };
    while (batch.length < this.#inFlightCount) {
      const flags = Atomics.load(this.#flags, position * 8 + 7);
      const used = (flags & PackedDescFlag.USED) !== 0;
      if (used !== wrap) break;
      const avail = (flags & PackedDescFlag.AVAIL) !== 0;
      const at = position * PackedLayout.DESC_SIZE;
      const slot = `descriptor ${position} (wrap counter ${wrap ? 1 : 0})`;
      if (avail !== used) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_IDX,
          `${slot} has USED = ${used ? 1 : 0} but AVAIL = ${avail ? 1 : 0}: a used descriptor has both equal`,
          where(),
        );
      }
      const id = this.#descs.getUint16(at + 12, true);
      const len = this.#descs.getUint32(at + 8, true);
      if (id >= this.size) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_RANGE,
          `${slot} has buffer id ${id}, not an id of a queue of size ${this.size}`,
          where(),
        );
      }
      if (this.inOrder) {
        const k = this.#availOrder.indexOf(id, batch.length);
        if (k < 0) {
          const earlier = this.#availOrder.indexOf(id);
          throw new UsedRingError(
            UsedRingErrorCode.USED_ID_NOT_IN_FLIGHT,
            `${slot} has buffer id ${id}, not a buffer in flight at or after the oldest one not yet used ` +
              (earlier >= 0 && earlier < batch.length
                ? `(with IN_ORDER, a used descriptor before it already covered buffer ${id}, the ` +
                  `${ordinal(earlier + 1)} made available: used out of order, or twice)`
                : `(buffer ${id} is not in flight)`),
            where(),
          );
        }
        for (let j = batch.length; j < k; j++) {
          const skipped = this.#availOrder[j]!;
          batch.push({ id: skipped, len: this.#inFlight[skipped]!.writableLen, batched: true });
          skip(skipped);
        }
      } else if (!this.#inFlight[id] || seen.has(id)) {
        throw new UsedRingError(
          UsedRingErrorCode.USED_ID_NOT_IN_FLIGHT,
          `${slot} has buffer id ${id}, which is not a buffer in flight${seen.has(id) ? ' (already used in this batch)' : ''}`,
          where(),
        );
      }
      seen.add(id);
      // Element Length is meaningful only with WRITE set in the used descriptor.
      batch.push({ id, len: flags & PackedDescFlag.WRITE ? len : 0 });
      skip(id);
    }
    const out: Array<UsedBuffer<T>> = [];
    for (const { id, len, batched } of batch) {
      const chain = this.#inFlight[id]!;
      this.#inFlight[id] = undefined;
      this.#inFlightCount--;
      this.#freeDescs += chain.count;
      this.#freeIds.push(id);
      out.push({
        id,
        len,
        token: chain.token,
        writableLen: chain.writableLen,
        ...(batched ? { batched } : {}),
      });
    }
    if (this.inOrder) this.#availOrder.splice(0, batch.length);
    this.#nextUsed = position;
    this.#usedWrap = wrap;
    return out;
  }

  /**
   * Whether the driver must notify after moving the available position from `oldPosition` to
   * `newPosition` (both as `availPosition` gives them), by the Device Event Suppression structure.
   */
  needsKick(oldPosition: number, newPosition: number): boolean {
    const flags = Atomics.load(this.#deviceEventFlags, 0) & 0x3;
    if (flags === RingEventFlags.DISABLE) return false;
    if (flags !== RingEventFlags.DESC || !this.eventIdx) return true;
    const event = Atomics.load(this.#deviceEventDesc, 0);
    // Unwrap to one index space: positions past a wrap are offset by the ring size.
    const unwrap = (p: number, reference: number): number =>
      (p & WRAP_BIT) === (reference & WRAP_BIT) ? p & 0x7fff : (p & 0x7fff) - this.size;
    const newIdx = newPosition & 0x7fff;
    const oldIdx = unwrap(oldPosition, newPosition);
    const eventIdx = unwrap(event, newPosition);
    return vringNeedEvent(eventIdx & 0xffff, newIdx, oldIdx & 0xffff);
  }

  /** Driver Event Suppression: ask for a used buffer notification at `position` only (EVENT_IDX). */
  setUsedEvent(position: number): void {
    if (!this.eventIdx) {
      throw new VirtqueueError(
        VirtqueueErrorCode.FEATURE,
        'RING_EVENT_FLAGS_DESC needs VIRTIO_F_RING_EVENT_IDX: create the queue with { eventIdx: true }',
      );
    }
    Atomics.store(this.#driverEventDesc, 0, position & 0xffff);
    Atomics.store(this.#driverEventFlags, 0, RingEventFlags.DESC);
  }

  /** Driver Event Suppression: no used buffer notifications (DISABLE), or all of them (ENABLE). */
  setNoInterrupt(on: boolean): void {
    Atomics.store(this.#driverEventFlags, 0, on ? RingEventFlags.DISABLE : RingEventFlags.ENABLE);
  }

  /**
   * Restarts at `base` as vhost-user's SET_VRING_BASE carries it for a packed ring: the available position
   * in bits 0-15, the used position in bits 16-31 (offset and wrap counter each). Forgets every buffer in
   * flight; only while the back-end is not processing the ring.
   */
  resetTo(base: number): void {
    if (!Number.isInteger(base) || base < 0 || base > U32_MAX) {
      throw new VirtqueueError(VirtqueueErrorCode.ARGUMENT, `a packed vring base is a u32, got ${base}`);
    }
    const avail = base & 0xffff;
    const used = base >>> 16;
    for (const [what, p] of [
      ['available', avail],
      ['used', used],
    ] as const) {
      if ((p & 0x7fff) >= this.size) {
        throw new VirtqueueError(
          VirtqueueErrorCode.ARGUMENT,
          `${what} offset ${p & 0x7fff} is outside a ring of ${this.size}`,
        );
      }
    }
    this.#nextAvail = avail & 0x7fff;
    this.#availWrap = (avail & WRAP_BIT) !== 0;
    this.#nextUsed = used & 0x7fff;
    this.#usedWrap = (used & WRAP_BIT) !== 0;
    this.#inFlight.fill(undefined);
    this.#inFlightCount = 0;
    this.#availOrder = [];
    this.#freeDescs = this.size;
    this.#freeIds = Array.from({ length: this.size }, (_, i) => this.size - 1 - i);
    Atomics.store(this.#driverEventFlags, 0, RingEventFlags.ENABLE);
    Atomics.store(this.#driverEventDesc, 0, 0);
  }

  /** Writes a descriptor but, when `deferFlags`, not its flags; returns the flags. */
  #writeDesc(index: number, e: BufferElement, id: number, flags: number, deferFlags: boolean): number {
    const at = index * PackedLayout.DESC_SIZE;
    this.#descs.setBigUint64(at, e.gpa, true);
    this.#descs.setUint32(at + 8, e.len, true);
    this.#descs.setUint16(at + 12, id, true);
    if (!deferFlags) Atomics.store(this.#flags, index * 8 + 7, flags);
    return flags;
  }

  #advanceAvail(): void {
    this.#nextAvail++;
    if (this.#nextAvail >= this.size) {
      this.#nextAvail = 0;
      this.#availWrap = !this.#availWrap;
    }
  }

  #indirectTable(id: number, len: number): IndirectTable {
    const current = this.#indirectTables[id];
    if (current && current.capacity >= len) return current;
    let capacity = 4;
    while (capacity < len) capacity *= 2;
    const bytes = capacity * PackedLayout.DESC_SIZE;
    const gpa = this.memory.alloc(bytes, PackedLayout.DESC_ALIGN, this.#alloc);
    const table = { gpa, capacity, view: dataView(this.memory.gpaToBytes(gpa, bytes)) };
    this.#indirectTables[id] = table;
    return table;
  }
}
