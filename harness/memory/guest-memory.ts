/**
 * Guest memory as the front-end sees it: regions shared with the back-end, each known by three addresses
 * (docs/interop/vhost-user.rst, "Memory regions description"): the guest (physical) address the rings and
 * buffers use, the user address the front-end has it mapped at (what SET_VRING_ADDR sends), and the
 * mmap offset: where the region starts inside the shared mapping. A region works over any `Uint8Array`, so
 * tests run over plain ArrayBuffers; in a run the bytes are an mmap'd memfd.
 */
import { VhuError } from '../errors.js';

/** What SET_MEM_TABLE / ADD_MEM_REG describe: a region's addresses and size, all u64. */
export interface RegionLayout {
  guestAddress: bigint;
  size: bigint;
  userAddress: bigint;
  mmapOffset: bigint;
}

/** One shared region and its backing bytes. */
export interface MemoryRegion extends RegionLayout {
  /** The whole mapping, mmapOffset included: region byte 0 is `bytes[mmapOffset]`. */
  bytes: Uint8Array;
  /** The memfd the mapping comes from, sent with SET_MEM_TABLE; absent over plain ArrayBuffers. */
  fd?: number;
}

export const MemoryErrorCode = {
  /** The region description itself is invalid (empty, past 2^64, larger than its bytes). */
  BAD_REGION: 'VHU_ERR_MEM_BAD_REGION',
  /** A new region overlaps an existing one in guest or in user address space. */
  OVERLAP: 'VHU_ERR_MEM_OVERLAP',
  /** An address (or part of a range) lies in no region. */
  UNMAPPED: 'VHU_ERR_MEM_UNMAPPED',
  /** A range starts in one region and runs past its end: no single view can cover it. */
  CROSSES_REGION: 'VHU_ERR_MEM_CROSSES_REGION',
  /** The allocator has no room left for a request. */
  NO_SPACE: 'VHU_ERR_MEM_NO_SPACE',
  /** A bad argument: alignment not a power of two, negative or fractional length. */
  ARGUMENT: 'VHU_ERR_MEM_ARGUMENT',
} as const;
export type MemoryErrorCode = (typeof MemoryErrorCode)[keyof typeof MemoryErrorCode];

/** A guest memory operation failed. These are harness errors (ERROR), not back-end failures. */
export class GuestMemoryError extends VhuError {
  override readonly code: MemoryErrorCode;
  /** The address the operation was about, when there is one. */
  readonly address: bigint | undefined;
  constructor(code: MemoryErrorCode, message: string, address?: bigint) {
    super(code, message);
    this.code = code;
    this.address = address;
  }
}

/** The default guard pattern: not uniform, so a back-end writing a constant byte is caught. */
export const GUARD_PATTERN: Uint8Array = Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x5a, 0xa5, 0xc3, 0x3c);

const U64_END = 1n << 64n;

export interface AllocOptions {
  /** Allocate in the region at this guest address only (default: the first region, by address, with room). */
  region?: bigint;
  /** Take the room at the region's end, so the area ends as close to the region end as alignment allows. */
  fromEnd?: boolean;
}

/** An area for `layout`: its length and alignment (default 1). */
export interface AreaSpec {
  len: number;
  align?: number;
}

/** Bytes of guard on each side of an area from `allocGuarded` (at least: alignment may add more before). */
export const GUARD_BYTES = 64;

/** An area handed to the device (a buffer, a ring part, a table), named for messages. */
export interface GuardedArea {
  label: string;
  gpa: bigint;
  len: number;
}

/** A run of guard bytes the device changed: a write outside every area it was given. */
export interface GuardViolation {
  /** The guest address of the first changed byte. */
  gpa: bigint;
  /** The bytes there now, from the first changed one to the last of the run. */
  bytes: Uint8Array;
  /** What the run held: guard bytes. */
  expected: Uint8Array;
  /** Where it is, named by the nearest area: "3 bytes past the end of <label> (guest 0x.., 1 byte)". */
  nextTo: string;
}

/** Guard bytes that must keep the pattern; the areas on each side, when there are. */
interface GuardZone {
  gpa: bigint;
  len: number;
  before?: GuardedArea;
  after?: GuardedArea;
}

/** Bump allocator state of one region: free room is [low, high) in offsets from the region start. */
interface BumpState {
  low: bigint;
  high: bigint;
}

/**
 * The regions of one front-end's guest memory, with address translation, copies in and out, a bump
 * allocator per region and guard bytes. Regions are kept sorted by guest address.
 */
export class GuestMemory {
  #generation = 0;

  /** Changes whenever a region is added or removed: views from `gpaToBytes` taken before may be stale. */
  get generation(): number {
    return this.#generation;
  }

  #regions: MemoryRegion[] = [];
  #bump = new Map<MemoryRegion, BumpState>();
  #areas: GuardedArea[] = [];
  #zones: GuardZone[] = [];

  constructor(regions: readonly MemoryRegion[] = []) {
    for (const region of regions) this.add(region);
  }

  /** The regions, sorted by guest address. */
  get regions(): readonly MemoryRegion[] {
    return this.#regions;
  }

  /** Adds a region; throws BAD_REGION when it is invalid, OVERLAP when it meets another region. */
  add(region: MemoryRegion): void {
    const { guestAddress, size, userAddress, mmapOffset, bytes } = region;
    const where = `region at guest 0x${hex(guestAddress)}`;
    if (guestAddress < 0n || userAddress < 0n || mmapOffset < 0n || size <= 0n) {
      throw new GuestMemoryError(
        MemoryErrorCode.BAD_REGION,
        `${where}: addresses and mmap offset must be >= 0 and size > 0 (size ${size}, mmap offset ${mmapOffset})`,
        guestAddress,
      );
    }
    if (guestAddress + size > U64_END || userAddress + size > U64_END) {
      throw new GuestMemoryError(
        MemoryErrorCode.BAD_REGION,
        `${where}: size 0x${hex(size)} runs past 2^64 in guest or user address space`,
        guestAddress,
      );
    }
    if (mmapOffset + size > BigInt(bytes.length)) {
      throw new GuestMemoryError(
        MemoryErrorCode.BAD_REGION,
        `${where}: mmap offset 0x${hex(mmapOffset)} + size 0x${hex(size)} exceeds its ${bytes.length}-byte mapping`,
        guestAddress,
      );
    }
    for (const other of this.#regions) {
      const space = overlaps(guestAddress, size, other.guestAddress, other.size)
        ? 'guest'
        : overlaps(userAddress, size, other.userAddress, other.size)
          ? 'user'
          : undefined;
      if (space) {
        throw new GuestMemoryError(
          MemoryErrorCode.OVERLAP,
          `${where} (user 0x${hex(userAddress)}, size 0x${hex(size)}) overlaps the ${space} range of the ` +
            `region at guest 0x${hex(other.guestAddress)} (user 0x${hex(other.userAddress)}, size 0x${hex(other.size)})`,
          guestAddress,
        );
      }
    }
    this.#regions.push(region);
    this.#generation++;
    this.#regions.sort((a, b) => (a.guestAddress < b.guestAddress ? -1 : 1));
    this.#bump.set(region, { low: 0n, high: size });
  }

  /** Removes the region that starts at `guestAddress` and returns it; throws UNMAPPED when there is none. */
  remove(guestAddress: bigint): MemoryRegion {
    const index = this.#regions.findIndex((r) => r.guestAddress === guestAddress);
    const region = this.#regions[index];
    if (!region) {
      throw new GuestMemoryError(
        MemoryErrorCode.UNMAPPED,
        `no region starts at guest 0x${hex(guestAddress)}`,
        guestAddress,
      );
    }
    this.#regions.splice(index, 1);
    this.#generation++;
    this.#bump.delete(region);
    return region;
  }

  /**
   * Puts `region` in the place of the region with the same guest address and size (a new backing, user
   * address or mmap offset: guest memory moved to another mapping), keeping what was allocated in it, and
   * returns the old one. Throws UNMAPPED when no region starts there, BAD_REGION or OVERLAP as `add` does;
   * nothing changes then.
   */
  replace(region: MemoryRegion): MemoryRegion {
    const old = this.#regions.find((r) => r.guestAddress === region.guestAddress);
    if (!old) {
      throw new GuestMemoryError(
        MemoryErrorCode.UNMAPPED,
        `no region starts at guest 0x${hex(region.guestAddress)}`,
        region.guestAddress,
      );
    }
    if (old.size !== region.size) {
      throw new GuestMemoryError(
        MemoryErrorCode.BAD_REGION,
        `region at guest 0x${hex(region.guestAddress)}: a replacement of size 0x${hex(region.size)} for one of 0x${hex(old.size)}`,
        region.guestAddress,
      );
    }
    const bump = this.#bump.get(old)!;
    this.remove(old.guestAddress);
    try {
      this.add(region);
    } catch (err) {
      this.add(old);
      this.#bump.set(old, bump);
      throw err;
    }
    this.#bump.set(region, bump);
    return old;
  }

  /** The region holding guest address `gpa`, if any. */
  regionAt(gpa: bigint): MemoryRegion | undefined {
    return this.#regions.find((r) => gpa >= r.guestAddress && gpa - r.guestAddress < r.size);
  }

  /** The region holding user address `uva`, if any. */
  regionAtUser(uva: bigint): MemoryRegion | undefined {
    return this.#regions.find((r) => uva >= r.userAddress && uva - r.userAddress < r.size);
  }

  /** Guest address -> user address; throws UNMAPPED. */
  gpaToUva(gpa: bigint): bigint {
    const region = this.regionAt(gpa);
    if (!region) throw unmapped('guest', gpa);
    return region.userAddress + (gpa - region.guestAddress);
  }

  /** User address -> guest address; throws UNMAPPED. */
  uvaToGpa(uva: bigint): bigint {
    const region = this.regionAtUser(uva);
    if (!region) throw unmapped('user', uva);
    return region.guestAddress + (uva - region.userAddress);
  }

  /**
   * A live view of `len` bytes at `gpa` (writes through it reach the back-end). Throws UNMAPPED when `gpa`
   * is in no region and CROSSES_REGION when the range runs past the end of its region, even into an
   * adjacent one: two regions are two mappings, and one view cannot span them.
   */
  gpaToBytes(gpa: bigint, len: number): Uint8Array {
    checkLength(len);
    const region = this.regionAt(gpa);
    if (!region) throw unmapped('guest', gpa);
    const offset = gpa - region.guestAddress;
    if (offset + BigInt(len) > region.size) {
      const end = region.guestAddress + region.size;
      const next = this.regionAt(end) ? 'an adjacent region' : 'unmapped memory';
      throw new GuestMemoryError(
        MemoryErrorCode.CROSSES_REGION,
        `guest range 0x${hex(gpa)}+0x${len.toString(16)} crosses the end of its region at 0x${hex(end)} ` +
          `into ${next}`,
        gpa,
      );
    }
    const start = Number(region.mmapOffset + offset);
    return region.bytes.subarray(start, start + len);
  }

  /** A copy of `len` bytes at `gpa`; the range may span adjacent regions. Throws UNMAPPED on a gap. */
  read(gpa: bigint, len: number): Uint8Array {
    checkLength(len);
    const out = new Uint8Array(len);
    this.#forEachPiece(gpa, len, (piece, at) => out.set(piece, at));
    return out;
  }

  /** Copies `target.length` bytes at `gpa` into `target` (no allocation); like `read`, it may span regions. */
  readInto(gpa: bigint, target: Uint8Array): void {
    this.#forEachPiece(gpa, target.length, (piece, at) => target.set(piece, at));
  }

  /** Copies `data` to `gpa`; the range may span adjacent regions. Throws UNMAPPED (writing nothing) on a gap. */
  write(gpa: bigint, data: Uint8Array): void {
    this.#forEachPiece(gpa, data.length, (piece, at) => piece.set(data.subarray(at, at + piece.length)));
  }

  /** Fills `len` bytes at `gpa` with `pattern` repeated (byte i is pattern[i % pattern.length]). */
  fillGuard(gpa: bigint, len: number, pattern: Uint8Array = GUARD_PATTERN): void {
    checkPattern(pattern);
    checkLength(len);
    this.#forEachPiece(gpa, len, (piece, at) => fillPattern(piece, at, pattern));
  }

  /** The offsets (from `gpa`) of the bytes that no longer hold the pattern `fillGuard` wrote there. */
  checkGuard(gpa: bigint, len: number, pattern: Uint8Array = GUARD_PATTERN): number[] {
    checkPattern(pattern);
    checkLength(len);
    const modified: number[] = [];
    this.#forEachPiece(gpa, len, (piece, at) => {
      for (const i of patternMismatches(piece, at, pattern)) modified.push(at + i);
    });
    return modified;
  }

  /**
   * Fills the bytes of every mapping that precede its region (`bytes[0, mmapOffset)`). No guest address
   * reaches them: only a back-end that maps the region but forgets to add mmap_offset writes there.
   */
  guardMmapPrefixes(pattern: Uint8Array = GUARD_PATTERN): void {
    checkPattern(pattern);
    for (const region of this.#regions) {
      fillPattern(region.bytes.subarray(0, Number(region.mmapOffset)), 0, pattern);
    }
  }

  /** The regions whose mmap prefix no longer holds the pattern, with the modified offsets in the mapping. */
  checkMmapPrefixes(pattern: Uint8Array = GUARD_PATTERN): Array<{ guestAddress: bigint; offsets: number[] }> {
    checkPattern(pattern);
    const damaged: Array<{ guestAddress: bigint; offsets: number[] }> = [];
    for (const region of this.#regions) {
      const offsets = patternMismatches(region.bytes.subarray(0, Number(region.mmapOffset)), 0, pattern);
      if (offsets.length) damaged.push({ guestAddress: region.guestAddress, offsets });
    }
    return damaged;
  }

  /**
   * Allocates `len` bytes aligned (in guest-physical terms) to `align`, a power of two, and returns the
   * guest address. Bump allocation: nothing is freed except by `resetAllocator`. Throws NO_SPACE.
   */
  alloc(len: number, align = 1, options: AllocOptions = {}): bigint {
    checkLength(len);
    if (!Number.isInteger(align) || align < 1 || (align & (align - 1)) !== 0) {
      throw new GuestMemoryError(MemoryErrorCode.ARGUMENT, `alignment must be a power of two, got ${align}`);
    }
    const size = BigInt(len);
    const a = BigInt(align);
    const candidates =
      options.region === undefined
        ? this.#regions
        : this.#regions.filter((r) => r.guestAddress === options.region);
    if (options.region !== undefined && !candidates.length) {
      throw new GuestMemoryError(
        MemoryErrorCode.UNMAPPED,
        `alloc: no region starts at guest 0x${hex(options.region)}`,
        options.region,
      );
    }
    for (const region of candidates) {
      const state = this.#bump.get(region)!;
      const base = region.guestAddress;
      if (options.fromEnd) {
        const start = ((base + state.high - size) / a) * a;
        if (start >= base + state.low && start + size <= base + state.high) {
          state.high = start - base;
          return start;
        }
      } else {
        const start = ((base + state.low + a - 1n) / a) * a;
        if (start + size <= base + state.high) {
          state.low = start + size - base;
          return start;
        }
      }
    }
    throw new GuestMemoryError(
      MemoryErrorCode.NO_SPACE,
      `alloc: no room for ${len} bytes aligned to ${align} in ${
        options.region === undefined ? 'any region' : `the region at guest 0x${hex(options.region)}`
      }`,
      options.region,
    );
  }

  /** Allocates several named areas in order (same options for all) and returns their guest addresses. */
  layout<K extends string>(areas: Record<K, AreaSpec>, options: AllocOptions = {}): Record<K, bigint> {
    const out = {} as Record<K, bigint>;
    for (const name of Object.keys(areas) as K[]) {
      const { len, align = 1 } = areas[name];
      out[name] = this.alloc(len, align, options);
    }
    return out;
  }

  /**
   * Allocates `len` bytes for the device (aligned to `align`) between two zones of at least GUARD_BYTES guard
   * bytes, which it fills; `checkGuards` then finds any write the device makes next to the area. Returns the
   * area's guest address. Throws as `alloc` does.
   */
  allocGuarded(label: string, len: number, align = 1, options: AllocOptions = {}): bigint {
    checkLength(len);
    const pad = Math.max(align, GUARD_BYTES);
    const padded = Math.ceil(GUARD_BYTES / pad) * pad;
    const start = this.alloc(padded + len + GUARD_BYTES, pad, options);
    const area: GuardedArea = { label, gpa: start + BigInt(padded), len };
    const before: GuardZone = { gpa: start, len: padded, before: area };
    const after: GuardZone = { gpa: area.gpa + BigInt(len), len: GUARD_BYTES, after: area };
    for (const zone of [before, after]) this.fillGuard(zone.gpa, zone.len);
    this.#areas.push(area);
    this.#zones.push(before, after);
    return area.gpa;
  }

  /** The areas `allocGuarded` made, in allocation order. */
  get guardedAreas(): readonly GuardedArea[] {
    return this.#areas;
  }

  /**
   * Fills the room no allocation has taken yet, in every region, with guard bytes, and watches it with the
   * guard zones: a device writing anywhere in free guest memory is caught too. Call it once the areas are laid
   * out; a later allocation from that room is not watched.
   */
  guardFree(): void {
    for (const region of this.#regions) {
      const { low, high } = this.#bump.get(region)!;
      if (high <= low) continue;
      const zone: GuardZone = { gpa: region.guestAddress + low, len: Number(high - low) };
      this.fillGuard(zone.gpa, zone.len);
      this.#zones.push(zone);
    }
  }

  /**
   * Every run of guard bytes (around `allocGuarded` areas, in `guardFree` room) that no longer holds the
   * pattern, with the bytes found and the area it is next to.
   */
  checkGuards(): GuardViolation[] {
    const out: GuardViolation[] = [];
    for (const zone of this.#zones) {
      const offsets = this.checkGuard(zone.gpa, zone.len);
      for (let i = 0; i < offsets.length; ) {
        let j = i;
        while (j + 1 < offsets.length && offsets[j + 1] === offsets[j]! + 1) j++;
        const gpa = zone.gpa + BigInt(offsets[i]!);
        const len = offsets[j]! - offsets[i]! + 1;
        const expected = new Uint8Array(len);
        const phase = offsets[i]! % GUARD_PATTERN.length;
        for (let k = 0; k < len; k++) expected[k] = GUARD_PATTERN[(phase + k) % GUARD_PATTERN.length]!;
        out.push({ gpa, bytes: this.read(gpa, len), expected, nextTo: this.#nearest(gpa, zone) });
        i = j + 1;
      }
    }
    return out.sort((a, b) => (a.gpa < b.gpa ? -1 : a.gpa > b.gpa ? 1 : 0));
  }

  /** Says where guard byte `gpa` of `zone` is, by the area it follows or precedes (or the nearest one). */
  #nearest(gpa: bigint, zone: GuardZone): string {
    const describe = (a: GuardedArea) =>
      `${a.label} (guest 0x${hex(a.gpa)}, ${a.len} byte${a.len === 1 ? '' : 's'})`;
    const past = (a: GuardedArea) =>
      `${gpa - (a.gpa + BigInt(a.len)) + 1n} byte(s) past the end of ${describe(a)}`;
    const ahead = (a: GuardedArea) => `${a.gpa - gpa} byte(s) before the start of ${describe(a)}`;
    if (zone.after) return past(zone.after);
    if (zone.before) return ahead(zone.before);
    let best: { distance: bigint; text: string } | undefined;
    for (const a of this.#areas) {
      const end = a.gpa + BigInt(a.len);
      const distance = gpa >= end ? gpa - end : a.gpa - gpa;
      if (!best || distance < best.distance) best = { distance, text: gpa >= end ? past(a) : ahead(a) };
    }
    return `free guest memory${best ? `, ${best.text}` : ''}`;
  }

  /** Forgets every allocation. Whatever still uses the old areas (a queue) must be dropped first. */
  resetAllocator(): void {
    for (const region of this.#regions) this.#bump.set(region, { low: 0n, high: region.size });
    this.#areas = [];
    this.#zones = [];
  }

  /** Calls `fn` with views covering [gpa, gpa+len) in address order, after checking the whole range maps. */
  #forEachPiece(gpa: bigint, len: number, fn: (piece: Uint8Array, at: number) => void): void {
    checkLength(len);
    // The common case, a range inside one region, without building the piece list.
    const first = this.regionAt(gpa);
    if (first && gpa - first.guestAddress + BigInt(len) <= first.size) {
      const start = Number(first.mmapOffset + (gpa - first.guestAddress));
      fn(first.bytes.subarray(start, start + len), 0);
      return;
    }
    const pieces: Uint8Array[] = [];
    let cursor = gpa;
    let left = BigInt(len);
    while (left > 0n) {
      const region = this.regionAt(cursor);
      if (!region) {
        throw new GuestMemoryError(
          MemoryErrorCode.UNMAPPED,
          `guest range 0x${hex(gpa)}+0x${len.toString(16)}: guest address 0x${hex(cursor)} is in no region`,
          cursor,
        );
      }
      const offset = cursor - region.guestAddress;
      const take = left < region.size - offset ? left : region.size - offset;
      const start = Number(region.mmapOffset + offset);
      pieces.push(region.bytes.subarray(start, start + Number(take)));
      cursor += take;
      left -= take;
    }
    let at = 0;
    for (const piece of pieces) {
      fn(piece, at);
      at += piece.length;
    }
  }
}

/**
 * Regions where guest addresses, user addresses and mmap offsets all differ, so that a back-end which
 * confuses them, truncates them or ignores one shows:
 * - A and C are adjacent in guest space (0x0..0x10_0000..0x14_0000) but far apart in user space, so a buffer
 *   crossing 0x10_0000 is contiguous to the guest and must be split by the back-end;
 * - B sits above 4 GiB: truncating its guest address to 32 bits lands in A;
 * - user addresses do not follow guest order (B's is the lowest), and uva - gpa differs per region;
 * - A and B have distinct non-zero mmap offsets, C has none.
 */
export const SKEWED_LAYOUT: readonly RegionLayout[] = [
  { guestAddress: 0x0n, size: 0x10_0000n, userAddress: 0x7f00_0000_0000n, mmapOffset: 0x1000n },
  { guestAddress: 0x1_0000_0000n, size: 0x10_0000n, userAddress: 0x7e00_0000_0000n, mmapOffset: 0x3000n },
  { guestAddress: 0x10_0000n, size: 0x4_0000n, userAddress: 0x7f80_0020_0000n, mmapOffset: 0x0n },
];

export interface GuestMemoryOptions {
  /** The regions (default SKEWED_LAYOUT). */
  layout?: readonly RegionLayout[];
  /**
   * Makes the mapping of one region, `length` bytes: bare bytes, or bytes with the fd they are mapped from
   * (a memfd). Default: a zeroed `Uint8Array` over a fresh ArrayBuffer.
   */
  backing?: (length: number, layout: RegionLayout) => Uint8Array | { bytes: Uint8Array; fd?: number };
}

/**
 * Guest memory laid out as `layout` says (the skewed layout the checks use, or a test's), each region backed
 * by its own `mmapOffset + size` bytes, with the mmap prefixes filled with GUARD_PATTERN (see
 * `checkMmapPrefixes`).
 */
export function createGuestMemory(options: GuestMemoryOptions = {}): GuestMemory {
  const { layout = SKEWED_LAYOUT, backing = (length: number) => new Uint8Array(length) } = options;
  const memory = new GuestMemory(
    layout.map((l) => {
      const mapping = backing(Number(l.mmapOffset + l.size), l);
      return mapping instanceof Uint8Array ? { ...l, bytes: mapping } : { ...l, ...mapping };
    }),
  );
  memory.guardMmapPrefixes();
  return memory;
}

function overlaps(a: bigint, aSize: bigint, b: bigint, bSize: bigint): boolean {
  return a < b + bSize && b < a + aSize;
}

function unmapped(space: 'guest' | 'user', address: bigint): GuestMemoryError {
  return new GuestMemoryError(
    MemoryErrorCode.UNMAPPED,
    `${space} address 0x${hex(address)} is in no region`,
    address,
  );
}

function checkLength(len: number): void {
  if (!Number.isSafeInteger(len) || len < 0) {
    throw new GuestMemoryError(MemoryErrorCode.ARGUMENT, `length must be an integer >= 0, got ${len}`);
  }
}

/** How many bytes one copy or comparison of a tiled pattern covers. */
const TILE_BYTES = 64 * 1024;
const tiles = new WeakMap<Uint8Array, Uint8Array>();

/** `pattern` repeated over TILE_BYTES plus one more copy, so any phase can start a full tile. */
function tileOf(pattern: Uint8Array): Uint8Array {
  let tile = tiles.get(pattern);
  if (!tile) {
    const copies = Math.ceil(TILE_BYTES / pattern.length) + 1;
    tile = new Uint8Array(copies * pattern.length);
    for (let i = 0; i < copies; i++) tile.set(pattern, i * pattern.length);
    tiles.set(pattern, tile);
  }
  return tile;
}

/** Fills a view (from `gpaToBytes`) with guard bytes, as `fillGuard` fills a guest range. */
export function fillGuardBytes(view: Uint8Array, pattern: Uint8Array = GUARD_PATTERN): void {
  checkPattern(pattern);
  fillPattern(view, 0, pattern);
}

/** Byte i of `piece` becomes pattern[(phase + i) % pattern.length], a tile at a time (guards are on every buffer). */
function fillPattern(piece: Uint8Array, phase: number, pattern: Uint8Array): void {
  const tile = tileOf(pattern);
  for (let done = 0; done < piece.length; ) {
    const start = (phase + done) % pattern.length;
    const n = Math.min(piece.length - done, TILE_BYTES);
    piece.set(tile.subarray(start, start + n), done);
    done += n;
  }
}

/** The offsets in `piece` of the bytes that differ from what fillPattern(piece, phase, pattern) wrote. */
function patternMismatches(piece: Uint8Array, phase: number, pattern: Uint8Array): number[] {
  const tile = tileOf(pattern);
  const out: number[] = [];
  for (let done = 0; done < piece.length; ) {
    const start = (phase + done) % pattern.length;
    const n = Math.min(piece.length - done, TILE_BYTES);
    const got = Buffer.from(piece.buffer, piece.byteOffset + done, n);
    const want = Buffer.from(tile.buffer, tile.byteOffset + start, n);
    if (!got.equals(want)) for (let i = 0; i < n; i++) if (got[i] !== want[i]) out.push(done + i);
    done += n;
  }
  return out;
}

function checkPattern(pattern: Uint8Array): void {
  if (!pattern.length) throw new GuestMemoryError(MemoryErrorCode.ARGUMENT, 'guard pattern is empty');
}

function hex(n: bigint): string {
  return n.toString(16);
}
