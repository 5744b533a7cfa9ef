/**
 * The virtio-blk driver over one vring of a FrontendDevice, or any VringPort, of either layout (split or
 * packed); the wire formats it speaks are blk.ts.
 *
 * Buffers come from fixed slots, one per request in flight, spread over the guest memory regions: the header
 * in one region, the data split in two segments in two others, the status byte in a fourth place, so a
 * back-end that translates one region wrongly corrupts every request. The driver checks what the device did
 * with each request: the status byte, used.len, the readable parts left alone (the rules are completion.ts's);
 * the data itself is for the caller to judge (`describeSectorDiff`).
 */
import { fillGuardBytes, GUARD_PATTERN, type GuestMemory } from '../../memory/guest-memory.js';
import { type DriverQueue, USED_BLOCK_MS, type VringPort } from '../../virtqueue/port.js';
import type { BufferElement, UsedBuffer } from '../../virtqueue/split.js';

import {
  BLK_HEADER_SIZE,
  BlkError,
  BlkErrorCode,
  type BlkRequest,
  type BlkRequestLayout,
  blkChain,
  blkChainOf,
  blkDataLength,
  blkDeviceWritesData,
  blkExpectedUsedLen,
  blkTypeOf,
  describeBlkRequest,
  describeSectorDiff,
  SECTOR_SIZE,
  sameBytes,
  VIRTIO_BLK_ID_BYTES,
  VirtioBlkStatus,
} from './blk.js';
import { type BlkCompletion, expectBlkStatus, STATUS_UNSET } from './completion.js';

/** Where a slot's parts go: guest addresses of the regions for the header, the two data segments, the status. */
export interface BlkPlacement {
  header: bigint;
  data: readonly [bigint, bigint];
  status: bigint;
}

export interface BlkDriverOptions {
  /** The deadline for each wait on the device. */
  timeoutMs: number;
  /** Requests in flight at most (default 8). */
  slots?: number;
  /** The largest IN / OUT request in sectors (default 16). */
  maxSectors?: number;
  /** Default: header in the second region by guest address, data in the first and the last, status in the first. */
  placement?: BlkPlacement;
  /**
   * Completion rules another check judges, for a check of something else (a ring state, a move): a finding
   * of one of these codes (USED_LEN, READONLY_WRITTEN) is kept in `findings`, not thrown; the status, the
   * data and all else still are. Default: none, every rule is judged.
   */
  keep?: readonly BlkErrorCode[];
}

export interface PostOptions {
  /** Through an indirect table (the queue must have been set up with `indirect`). */
  indirect?: boolean;
  /** With `indirect`: how many leading descriptors stay direct, chained to the indirect one. */
  directPrefix?: number;
  /** Data segments to use instead of the slot's: the caller's guest memory, lengths adding up to the data. */
  data?: ReadonlyArray<{ gpa: bigint; len: number }>;
}

export interface StreamOptions {
  /** Requests to complete in all. */
  total: number;
  /** Requests kept in flight: each completion is replaced at once (1 to the driver's slots). */
  depth: number;
  /** The `i`-th request (from 0); IN, OUT, FLUSH and GET_ID alike. */
  request: (i: number) => BlkRequest;
  /** The bytes an IN must return, compared where the device wrote them; undefined: not compared. */
  expectedData?: (request: BlkRequest) => Uint8Array | undefined;
  /** Through indirect tables (the queue must have been set up with `indirect`). */
  indirect?: boolean;
  /** With `indirect`: how many leading descriptors stay direct, chained to the indirect one. */
  directPrefix?: number;
}

/** What a stream cost in notifications: where the time of a request goes besides the work on it. */
export interface StreamResult {
  completed: number;
  /** Available buffer notifications sent (the device may suppress them). */
  kicks: number;
  /** Times the used ring had nothing new and the driver waited for a call. */
  waits: number;
}

interface Slot {
  header: bigint;
  data: readonly [{ gpa: bigint; cap: number }, { gpa: bigint; cap: number }];
  status: bigint;
  /** The 16 header bytes of the request in flight: what the device must leave in place. */
  expectedHeader: Buffer;
  expectedHeaderWords: DataView;
  /** The last data length and direction posted through the slot's own segments, reused while they repeat. */
  shape: SlotShape | undefined;
  /** The token of the slot's request in flight. */
  pending: Pending;
}

/** A slot's segments, layout and chain for one data length and direction: what `#split` and `blkChain` give. */
interface SlotShape {
  length: number;
  write: boolean;
  layout: BlkRequestLayout;
  chain: BufferElement[];
  /** The views a request of this shape is posted and completed through, for one memory generation. */
  views: PostedViews | undefined;
}

/** Live views of a slot's parts, each inside one region; taken once per memory generation. */
interface SlotViews {
  generation: number;
  header: Uint8Array;
  headerWords: DataView;
  data: readonly [Uint8Array, Uint8Array];
  status: Uint8Array;
}

interface Pending {
  request: BlkRequest;
  slot: number;
  layout: BlkRequestLayout;
  /** The slot's views when the request uses the slot's own data segments (the fast path). */
  views: PostedViews | undefined;
}

interface PostedViews {
  generation: number;
  header: Uint8Array;
  headerWords: DataView;
  data: Uint8Array[];
  /** `data` as Buffers, for compares in place (Buffer#compare takes ranges: no view per request). */
  dataBuffers: Buffer[];
  status: Uint8Array;
}

/**
 * The virtio-blk driver. `post` puts requests in the ring, `kick` notifies as the suppression fields allow,
 * `collect` waits for completions; `run`, `read`, `write`, `flush` and `getId` do all three for one request.
 */
export class BlkDriver {
  readonly maxSectors: number;
  readonly #port: VringPort<Pending, DriverQueue<Pending>>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #slots: Slot[] = [];
  readonly #free: number[] = [];
  readonly #views: Array<SlotViews | undefined> = [];
  #copyBlock: Uint8Array = EMPTY;
  #copyAt = 0;
  #notifiedAt: number;
  readonly #keep: ReadonlySet<BlkErrorCode>;
  /** The findings of the `keep` rules let through, in order, each the error a failure would have thrown. */
  readonly findings: BlkError[] = [];

  constructor(port: VringPort<unknown, DriverQueue<unknown>>, options: BlkDriverOptions) {
    this.#port = port as VringPort<Pending, DriverQueue<Pending>>;
    this.#memory = port.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    this.maxSectors = options.maxSectors ?? 16;
    this.#notifiedAt = port.queue.availMark;
    this.#keep = new Set(options.keep);
    const placement = options.placement ?? defaultPlacement(this.#memory);
    const firstHalf = Math.ceil(this.maxSectors / 2) * SECTOR_SIZE;
    const secondHalf = Math.max(this.maxSectors * SECTOR_SIZE - firstHalf, 0);
    const count = options.slots ?? 8;
    for (let i = 0; i < count; i++) {
      this.#slots.push({
        header: this.#memory.alloc(BLK_HEADER_SIZE, 16, { region: placement.header }),
        data: [
          {
            gpa: this.#memory.alloc(Math.max(firstHalf, VIRTIO_BLK_ID_BYTES), SECTOR_SIZE, {
              region: placement.data[0],
            }),
            cap: Math.max(firstHalf, VIRTIO_BLK_ID_BYTES),
          },
          {
            gpa: this.#memory.alloc(Math.max(secondHalf, 1), SECTOR_SIZE, { region: placement.data[1] }),
            cap: secondHalf,
          },
        ],
        status: this.#memory.alloc(1, 1, { region: placement.status }),
        expectedHeader: Buffer.alloc(BLK_HEADER_SIZE),
        expectedHeaderWords: new DataView(new ArrayBuffer(0)),
        shape: undefined,
        pending: { request: { type: 'FLUSH' }, slot: i, layout: NO_LAYOUT, views: undefined },
      });
      const slot = this.#slots[i]!;
      slot.expectedHeaderWords = new DataView(slot.expectedHeader.buffer, slot.expectedHeader.byteOffset, 16);
      this.#free.push(i);
    }
  }

  get port(): VringPort<unknown, DriverQueue<unknown>> {
    return this.#port;
  }

  /** Requests posted and not yet collected. */
  get inFlight(): number {
    return this.#slots.length - this.#free.length;
  }

  /**
   * Makes the request available (without notifying) and returns its head descriptor. The data of an OUT is
   * copied in; the data area of an IN or GET_ID is filled with guard bytes and the status byte set to 0xff,
   * so what the device did not write shows.
   */
  post(request: BlkRequest, options: PostOptions = {}): number {
    const length = blkDataLength(request);
    const slotIndex = this.#free.pop();
    if (slotIndex === undefined) throw new Error(`all ${this.#slots.length} blk request slots are in flight`);
    const slot = this.#slots[slotIndex]!;
    try {
      const type = blkTypeOf(request);
      const sector = request.type === 'IN' || request.type === 'OUT' ? request.sector : 0n;
      // The header is written into the slot's own copy, then copied into guest memory: no Buffer per request.
      const expected = slot.expectedHeaderWords;
      expected.setUint32(0, type, true);
      expected.setUint32(4, 0, true);
      expected.setBigUint64(8, sector, true);
      let layout: BlkRequestLayout;
      let chain: BufferElement[];
      let views: PostedViews | undefined;
      if (options.data) {
        const total = options.data.reduce((sum, s) => sum + s.len, 0);
        if (total !== length) throw new Error(`data segments of ${total} bytes for ${length} bytes of data`);
        layout = { header: slot.header, data: options.data, status: slot.status };
        chain = blkChain(request, layout);
      } else {
        // The slot's own segments: layout, chain and views made once per length (and memory generation).
        const shape = this.#shapeOf(slot, length, blkDeviceWritesData(request));
        layout = shape.layout;
        chain = shape.chain;
        views = this.#viewsOf(slotIndex, shape);
      }
      if (views) {
        views.header.set(slot.expectedHeader);
        let at = 0;
        for (const view of views.data) {
          if (request.type === 'OUT') view.set(request.data.subarray(at, at + view.length));
          else fillGuardBytes(view);
          at += view.length;
        }
        views.status[0] = STATUS_UNSET;
      } else {
        this.#memory.write(layout.header, slot.expectedHeader);
        let at = 0;
        for (const segment of layout.data) {
          if (request.type === 'OUT') {
            this.#memory.write(segment.gpa, request.data.subarray(at, at + segment.len));
          } else {
            this.#memory.fillGuard(segment.gpa, segment.len);
          }
          at += segment.len;
        }
        this.#memory.write(layout.status, Uint8Array.of(STATUS_UNSET));
      }
      // The slot's own record, reused: the slot is this request's until it completes.
      const pending = slot.pending;
      pending.request = request;
      pending.layout = layout;
      pending.views = views;
      return this.#port.queue.addRequest(chain, {
        indirect: options.indirect ?? false,
        directPrefix: options.directPrefix ?? 0,
        token: pending,
      });
    } catch (err) {
      this.#free.push(slotIndex);
      throw err;
    }
  }

  /**
   * Notifies the device of what was posted since the last call, unless it suppressed notifications
   * (VIRTQ_USED_F_NO_NOTIFY, or avail_event with EVENT_IDX; on a packed ring, its event suppression
   * structure), as a driver must and may. Returns whether it did.
   */
  kick(): boolean {
    const now = this.#port.queue.availMark;
    const before = this.#notifiedAt;
    this.#notifiedAt = now;
    if (before === now || !this.#port.queue.needsKick(before, now)) return false;
    this.#port.notify();
    return true;
  }

  /** Waits for at least `count` completions and returns every one that came, with the calls seen. */
  async collect(
    count = 1,
    timeoutMs = this.#timeoutMs,
  ): Promise<{ completions: BlkCompletion[]; calls: number }> {
    const { used, calls } = await this.#port.waitUsed(timeoutMs, count);
    return { completions: this.#completeAll(used), calls };
  }

  /** Completions of buffers the device used so far, without waiting. */
  collectNow(): BlkCompletion[] {
    return this.#completeAll(this.#port.takeUsed());
  }

  /** Posts, kicks and waits for each request, several in flight at once; completions in request order. */
  async runAll(requests: readonly BlkRequest[], options: PostOptions = {}): Promise<BlkCompletion[]> {
    const heads = requests.map((r) => this.post(r, options));
    this.kick();
    const byHead: Array<BlkCompletion | undefined> = [];
    let got = 0;
    while (got < heads.length) {
      const { completions } = await this.collect(heads.length - got);
      for (const c of completions) byHead[c.head] = c;
      got += completions.length;
    }
    return heads.map((h) => byHead[h]!);
  }

  /**
   * Keeps `depth` requests in flight until `total` have completed, each checked as `expectBlkStatus(c, OK)`
   * checks a completion, plus its data against `expectedData`: the checks run in place, on the guest memory
   * the device wrote, so a request costs no completion object and no copy of its data. Used buffers are
   * taken as soon as they are there, and the driver waits for a call only when the used ring has nothing
   * new. The first request that fails throws its BlkError (DATA for data that differs), built from a full
   * completion as `collect` makes it. Needs no request in flight when it starts.
   */
  async stream(options: StreamOptions): Promise<StreamResult> {
    const { total, depth, request, expectedData } = options;
    if (!Number.isInteger(depth) || depth < 1 || depth > this.#slots.length) {
      throw new RangeError(`stream depth ${depth}: 1 to the ${this.#slots.length} slots`);
    }
    if (this.inFlight !== 0) throw new Error(`stream needs no request in flight, ${this.inFlight} are`);
    const post: PostOptions = {
      indirect: options.indirect ?? false,
      directPrefix: options.directPrefix ?? 0,
    };
    let posted = 0;
    let completed = 0;
    let kicks = 0;
    let waits = 0;
    while (completed < total) {
      while (posted < total && this.inFlight < depth) this.post(request(posted++), post);
      if (this.kick()) kicks++;
      let used = this.#port.takeUsed();
      if (used.length === 0) {
        waits++;
        // Nothing else to do until a completion comes: block on the call first (see USED_BLOCK_MS).
        used = (await this.#port.waitUsed(this.#timeoutMs, 1, { blockMs: USED_BLOCK_MS })).used;
      }
      for (const u of used) this.#verify(u, expectedData);
      completed += used.length;
    }
    return { completed, kicks, waits };
  }

  /** `stream`'s check of one used buffer, in place; on any doubt, the full completion and its error. */
  #verify(u: UsedBuffer<Pending>, expectedData: StreamOptions['expectedData']): void {
    const pending = u.token!;
    const { request } = pending;
    const views = pending.views?.generation === this.#memory.generation ? pending.views : undefined;
    const expected = request.type === 'IN' ? expectedData?.(request) : undefined;
    if (
      views &&
      views.status[0] === VirtioBlkStatus.OK &&
      u.len === blkExpectedUsedLen(request) &&
      sameHeader(views.headerWords, this.#slots[pending.slot]!.expectedHeaderWords) &&
      (request.type !== 'OUT' || sameInPlace(views.dataBuffers, request.data, blkDataLength(request))) &&
      (expected === undefined || sameInPlace(views.dataBuffers, expected, blkDataLength(request)))
    ) {
      this.#free.push(pending.slot);
      return;
    }
    const completion = this.#complete(u.id, u.len, u.writableLen, pending);
    this.expectOk(completion);
    const diff =
      expected && describeSectorDiff(expected, completion.data, 'sector' in request ? request.sector : 0n);
    if (diff) {
      throw new BlkError(
        BlkErrorCode.DATA,
        `${describeBlkRequest(request)} (head ${completion.head}) returned other data: ${diff}`,
      );
    }
  }

  /** One request: post, kick, wait. */
  async run(request: BlkRequest, options: PostOptions = {}): Promise<BlkCompletion> {
    return (await this.runAll([request], options))[0]!;
  }

  /** Reads `count` sectors; a status other than OK, or a wrong used.len, is a BlkError (but for the rules it keeps). */
  async read(sector: bigint, count: number, options: PostOptions = {}): Promise<Uint8Array> {
    const completion = await this.run({ type: 'IN', sector, count }, options);
    this.expectOk(completion);
    return completion.data;
  }

  /** `expectBlkStatus(completion, OK)`, a finding of a rule the driver leaves to others (`keep`) kept, not thrown. */
  expectOk(completion: BlkCompletion): void {
    expectBlkStatus(completion, VirtioBlkStatus.OK, (finding) => {
      if (!this.#keep.has(finding.code)) return false;
      this.findings.push(finding);
      return true;
    });
  }

  /** Writes whole sectors; a status other than OK, or a wrong used.len, is a BlkError (but for the rules it keeps). */
  async write(sector: bigint, data: Uint8Array, options: PostOptions = {}): Promise<void> {
    if (data.length % SECTOR_SIZE !== 0) throw new Error(`write of ${data.length} bytes: not whole sectors`);
    this.expectOk(await this.run({ type: 'OUT', sector, data }, options));
  }

  async flush(options: PostOptions = {}): Promise<BlkCompletion> {
    return this.run({ type: 'FLUSH' }, options);
  }

  async getId(options: PostOptions = {}): Promise<BlkCompletion> {
    return this.run({ type: 'GET_ID' }, options);
  }

  /** The slot's segments, layout and chain for `length` bytes of data the device writes or reads. */
  #shapeOf(slot: Slot, length: number, write: boolean): SlotShape {
    const shape = slot.shape;
    if (shape?.length === length && shape.write === write) return shape;
    const layout: BlkRequestLayout = {
      header: slot.header,
      data: this.#split(slot, length),
      status: slot.status,
    };
    const chain = blkChainOf(layout, write);
    slot.shape = { length, write, layout, chain, views: undefined };
    return slot.shape;
  }

  /** Views of the slot's header, status and the first bytes of each data segment of `shape`. */
  #viewsOf(slotIndex: number, shape: SlotShape): PostedViews {
    const generation = this.#memory.generation;
    if (shape.views?.generation === generation) return shape.views;
    let views = this.#views[slotIndex];
    if (views?.generation !== generation) {
      const slot = this.#slots[slotIndex]!;
      const header = this.#memory.gpaToBytes(slot.header, BLK_HEADER_SIZE);
      views = {
        generation,
        header,
        headerWords: new DataView(header.buffer, header.byteOffset, BLK_HEADER_SIZE),
        data: [
          this.#memory.gpaToBytes(slot.data[0].gpa, slot.data[0].cap),
          this.#memory.gpaToBytes(slot.data[1].gpa, slot.data[1].cap),
        ],
        status: this.#memory.gpaToBytes(slot.status, 1),
      };
      this.#views[slotIndex] = views;
    }
    const data = shape.layout.data.map((segment, i) => views.data[i]!.subarray(0, segment.len));
    shape.views = {
      generation,
      header: views.header,
      headerWords: views.headerWords,
      data,
      dataBuffers: data.map((view) => Buffer.from(view.buffer, view.byteOffset, view.length)),
      status: views.status,
    };
    return shape.views;
  }

  #split(slot: Slot, length: number): Array<{ gpa: bigint; len: number }> {
    const [first, second] = slot.data;
    if (length > first.cap + second.cap) {
      throw new Error(`${length} bytes of data do not fit a slot of ${this.maxSectors} sectors`);
    }
    if (length <= SECTOR_SIZE) return [{ gpa: first.gpa, len: length }];
    const head = Math.ceil(length / SECTOR_SIZE / 2) * SECTOR_SIZE;
    return [
      { gpa: first.gpa, len: head },
      { gpa: second.gpa, len: length - head },
    ];
  }

  /** The completions of a batch of used buffers, in the order the device used them. */
  #completeAll(used: ReadonlyArray<UsedBuffer<Pending>>): BlkCompletion[] {
    const out: BlkCompletion[] = [];
    for (const u of used) out.push(this.#complete(u.id, u.len, u.writableLen, u.token!));
    return out;
  }

  /**
   * Room for `length` bytes of completion data that the caller keeps. The copies are carved out of 64 KiB
   * blocks, never reused (a block lives as long as any completion's data in it): a 4 KiB ArrayBuffer per
   * read cost more than all the rest of the request, and one buffer per batch past glibc's mmap threshold
   * a page fault per page.
   */
  #copyRoom(length: number): Uint8Array {
    if (length > COPY_BLOCK_BYTES / 4) return new Uint8Array(length);
    if (this.#copyAt + length > this.#copyBlock.length) {
      // Every byte handed out is overwritten by the copy, so the block need not be zeroed.
      this.#copyBlock = new Uint8Array(Buffer.allocUnsafeSlow(COPY_BLOCK_BYTES).buffer, 0, COPY_BLOCK_BYTES);
      this.#copyAt = 0;
    }
    const room = this.#copyBlock.subarray(this.#copyAt, this.#copyAt + length);
    // Kept 8-byte aligned, as a fresh allocation would be.
    this.#copyAt += (length + 7) & ~7;
    return room;
  }

  #complete(head: number, usedLen: number, writableLen: number, pending: Pending): BlkCompletion {
    const { request, layout } = pending;
    const slot = this.#slots[pending.slot]!;
    // Views taken before the memory table changed may point into a mapping the device no longer uses.
    const views = pending.views?.generation === this.#memory.generation ? pending.views : undefined;
    const status = views ? views.status[0]! : this.#memory.read(layout.status, 1)[0]!;
    const writes = blkDeviceWritesData(request);
    let data: Uint8Array = EMPTY;
    const problems: string[] = [];
    if (writes) {
      data = this.#copyRoom(blkDataLength(request));
      let offset = 0;
      for (let i = 0; i < layout.data.length; i++) {
        const segment = layout.data[i]!;
        const target = data.subarray(offset, offset + segment.len);
        if (views) target.set(views.data[i]!);
        else this.#memory.readInto(segment.gpa, target);
        offset += segment.len;
      }
    } else if (request.type === 'OUT') {
      // Compared where it lies: the data the device was to read must still be there.
      let offset = 0;
      let same = true;
      for (let i = 0; i < layout.data.length && same; i++) {
        const segment = layout.data[i]!;
        const now = views ? views.data[i]! : this.#memory.read(segment.gpa, segment.len);
        same = sameBytes(now, request.data.subarray(offset, offset + segment.len));
        offset += segment.len;
      }
      if (!same) problems.push('the data to write was modified');
    }
    const headerIntact = views
      ? sameHeader(views.headerWords, slot.expectedHeaderWords)
      : sameBytes(this.#memory.read(layout.header, BLK_HEADER_SIZE), slot.expectedHeader);
    if (!headerIntact) problems.unshift('the request header was modified');
    this.#free.push(pending.slot);
    return {
      request,
      head,
      status,
      usedLen,
      expectedLen: blkExpectedUsedLen(request),
      writableLen,
      unwrittenCounted: writes ? unwrittenCounted(data, layout.data, usedLen) : 0,
      data,
      readonlyWritten: problems.length ? problems.join(' and ') : undefined,
    };
  }
}

const EMPTY = new Uint8Array(0);
/** A slot's layout before its first request. */
const NO_LAYOUT: BlkRequestLayout = { header: 0n, data: [], status: 0n };
/** The blocks completion data is copied into (see `#copyRoom`). */
const COPY_BLOCK_BYTES = 64 * 1024;

/**
 * How many of the data bytes `usedLen` counts (from the first writable byte on) still hold the guard pattern
 * the driver filled each segment with (from the segment's start), judged a sector's share of a segment at a
 * time: a piece shorter than the pattern is not judged, a device may well write those bytes.
 */
function unwrittenCounted(
  data: Uint8Array,
  segments: ReadonlyArray<{ len: number }>,
  usedLen: number,
): number {
  let start = 0;
  let unwritten = 0;
  for (const segment of segments) {
    const end = start + Math.min(segment.len, Math.max(0, usedLen - start));
    for (let at = start; at < end; ) {
      const next = Math.min(end, (Math.floor(at / SECTOR_SIZE) + 1) * SECTOR_SIZE);
      if (next - at >= GUARD_PATTERN.length) {
        let held = true;
        for (let i = at; i < next && held; i++)
          held = data[i] === GUARD_PATTERN[(i - start) % GUARD_PATTERN.length];
        if (held) unwritten += next - at;
      }
      at = next;
    }
    start += segment.len;
  }
  return unwritten;
}

/** Whether `segments`, one after the other and `length` bytes in all, hold `bytes`. */
function sameInPlace(segments: readonly Buffer[], bytes: Uint8Array, length: number): boolean {
  if (bytes.length !== length) return false;
  let at = 0;
  for (const segment of segments) {
    if (segment.compare(bytes, at, at + segment.length) !== 0) return false;
    at += segment.length;
  }
  return true;
}

/** Whether two 16-byte headers are equal, a 32-bit word at a time (no view or native call per request). */
function sameHeader(a: DataView, b: DataView): boolean {
  return (
    a.getUint32(0, true) === b.getUint32(0, true) &&
    a.getUint32(4, true) === b.getUint32(4, true) &&
    a.getUint32(8, true) === b.getUint32(8, true) &&
    a.getUint32(12, true) === b.getUint32(12, true)
  );
}

function defaultPlacement(memory: GuestMemory): BlkPlacement {
  const regions = memory.regions.map((r) => r.guestAddress);
  const first = regions[0]!;
  const last = regions[regions.length - 1]!;
  const second = regions[1] ?? first;
  return { header: second, data: [first, last], status: first };
}
