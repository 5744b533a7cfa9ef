/**
 * The front-end side of a running device, driven as QEMU's vhost.c drives one: guest memory shared as
 * memfds, split vrings with kick and call eventfds, and the messages that start and stop them. To start a
 * device QEMU sends SET_FEATURES, SET_MEM_TABLE, then per ring SET_VRING_NUM, SET_VRING_BASE,
 * SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, and SET_VRING_ENABLE 1 once every ring is set up; to stop
 * it, SET_VRING_ENABLE 0 and GET_VRING_BASE per ring. This module sends the same messages, one call each,
 * so a check can also send them in another order or leave one out.
 */
import { BackendError, ProtocolError, TimeoutError } from '../errors.js';
import {
  createGuestMemory,
  GUARD_PATTERN,
  type GuestMemory,
  type MemoryRegion,
  type RegionLayout,
  SKEWED_LAYOUT,
} from '../memory/guest-memory.js';
import type { Scope } from '../process/scope.js';
import {
  decodeSplitVringBase,
  decodeU64,
  encodeMemoryRegions,
  encodeSingleMemoryRegion,
  encodeSplitVringBase,
  encodeVringAddress,
  encodeVringFile,
  encodeVringState,
  type SplitVringBase,
  VRING_STATE_SIZE,
} from '../protocol/messages.js';
import { type FrontendRequestName, VHOST_VRING_F_LOG } from '../protocol/spec.js';
import { EventFd } from '../sys/eventfd.js';
import { SharedMemory } from '../sys/memfd.js';
import type { FrontendSession } from '../transport/session.js';
import { PackedVirtqueue, packedBase } from '../virtqueue/packed.js';
import type { DriverQueue, UsedBatch, VringPort, WaitUsedOptions } from '../virtqueue/port.js';
import { type RingPlacement, SplitVirtqueue, type UsedBuffer } from '../virtqueue/split.js';

/** How often a wait for used buffers looks at the used ring when no call comes. */
const USED_POLL_MS = 10;

/** Bytes reserved on each side of the first guest-adjacent region boundary (see `FrontendDevice.spanning`). */
const SPANNING_HALF = 0x1000;

export interface FrontendDeviceOptions {
  /** The guest memory regions (default SKEWED_LAYOUT: guest, user and mmap offsets all differ). */
  layout?: readonly RegionLayout[];
  /** Where the rings (and their indirect tables) go: the guest address of a region (default: the highest). */
  ringRegion?: bigint;
  /**
   * Guest memory another device already has (its memfds, its allocations): a migration destination's, which
   * shares the source's guest (`layout` is then that memory's).
   */
  memory?: GuestMemory;
}

export interface VringOptions {
  /** VIRTIO_RING_F_EVENT_IDX negotiated. */
  eventIdx?: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC negotiated. */
  indirect?: boolean;
  /** VIRTIO_F_IN_ORDER negotiated: buffers are used in order, a used element may stand for a batch. */
  inOrder?: boolean;
  /** The available index the ring starts at (SET_VRING_BASE; the ring memory is laid out to match). */
  base?: number;
  /** Where the three parts go (default: allocated in the ring region). */
  placement?: RingPlacement;
  /**
   * A ring the guest already has, in this device's memory (a migration destination takes over the source's):
   * used as it stands, neither laid out nor reset; `base` is where the destination resumes it. A split ring's
   * queue for a split ring, a packed one's for a packed ring.
   */
  queue?: SplitVirtqueue<unknown> | PackedVirtqueue<unknown>;
}

/**
 * One split vring of the device with its two eventfds: `kickFd` (ours to signal, the back-end's to read)
 * and `callFd` (the back-end's to signal). Both stay open until the scope closes, across stops and restarts.
 */
export class Vring<T = unknown, Q extends DriverQueue<T> = SplitVirtqueue<T>> implements VringPort<T, Q> {
  /** Calls counted so far over the vring's life. */
  calls = 0;
  /** Buffers collected by a wait that then failed: the next wait or take returns them first. */
  #kept: Array<UsedBuffer<T>> = [];

  constructor(
    readonly index: number,
    readonly queue: Q,
    readonly kickFd: EventFd,
    readonly callFd: EventFd,
    /** Whether the connection is gone: a wait then ends at once instead of running into its deadline. */
    /** Why the connection ended ("the back-end closed the connection: it died (...)"), once it has. */
    private readonly disconnected: () => string | undefined = () => undefined,
  ) {}

  notify(): void {
    this.kickFd.signal(1);
  }

  /** Takes the calls that arrived since the last look. */
  drainCalls(): number {
    const calls = this.callFd.drain();
    this.calls += calls;
    return calls;
  }

  /** Whether a call arrives within `timeoutMs` (it is taken). */
  async waitCall(timeoutMs: number): Promise<boolean> {
    if (!(await this.callFd.waitSignalled(timeoutMs))) return false;
    this.drainCalls();
    return true;
  }

  takeUsed(): Array<UsedBuffer<T>> {
    if (this.#kept.length === 0) return this.queue.collectUsed();
    return [...this.#kept.splice(0), ...this.queue.collectUsed()];
  }

  /**
   * Collects used buffers until there are at least `count`. It wakes on a call but also looks at the used
   * ring every few ms: a back-end need not call when the driver suppressed notifications, and a call with
   * nothing new (spurious, or coalesced) is fine. A TimeoutError says where the ring stood; what came
   * before it is kept for the next wait.
   */
  async waitUsed(timeoutMs: number, count = 1, options: WaitUsedOptions = {}): Promise<UsedBatch<T>> {
    const end = performance.now() + timeoutMs;
    const used = this.#kept.splice(0);
    let calls = 0;
    const blockMs = options.blockMs ?? 0;
    // Two blocking polls at most: the first may wake on a call left from a completion that was taken
    // without waiting (a stale count); a back-end slower than that costs the event loop two windows.
    let blocks = blockMs > 0 ? 2 : 0;
    // A blocking wait looks at the used ring first and drains the call after poll(2) says it came: one
    // read(2) a wait, not one that finds nothing and another.
    let drain = blockMs === 0;
    for (;;) {
      if (drain) calls += this.drainCalls();
      drain = true;
      for (const u of this.queue.collectUsed()) used.push(u);
      if (used.length >= count) return { used, calls };
      const where = (): string =>
        `${used.length} came; ${this.queue.describePosition()}, ${calls} call${calls === 1 ? '' : 's'}`;
      const ended = this.disconnected();
      if (ended !== undefined) {
        this.#kept = used;
        throw new BackendError(
          `${ended} while ${count} used buffer${count === 1 ? ' was' : 's were'} awaited on vring ${this.index}: ${where()}`,
        );
      }
      const left = end - performance.now();
      if (left <= 0) {
        this.#kept = used;
        throw new TimeoutError(
          `${count} used buffer${count === 1 ? '' : 's'} on vring ${this.index}`,
          timeoutMs,
          where(),
        );
      }
      if (blocks > 0) {
        blocks--;
        if (this.callFd.blockUntilSignalled(Math.min(blockMs, Math.ceil(left)))) continue;
      }
      // Just drained and found nothing: no need to ask whether the counter is non-zero before waiting.
      await this.callFd.waitSignalled(Math.min(left, USED_POLL_MS), { drained: true });
    }
  }
}

/**
 * A device as the front-end sees it over one FrontendSession. It owns, through the check's Scope, the guest
 * memory (one memfd per region, mapped here, sent with SET_MEM_TABLE) and every vring's eventfds: all are
 * closed and unmapped when the scope closes, whatever happened. Requests that have no reply of their own go
 * with need_reply when REPLY_ACK was negotiated (a non-zero ack is a BackendError), else are followed by a
 * GET_FEATURES round trip so that a back-end that drops the connection over one is caught at that message.
 */
export class FrontendDevice {
  readonly memory: GuestMemory;
  /**
   * A guest-contiguous area across the first boundary where two regions meet in guest space (A's end and
   * C's start in SKEWED_LAYOUT), reserved before anything else is allocated: one descriptor over it needs
   * two translations. Undefined when no two regions are adjacent.
   */
  readonly spanning: { gpa: bigint; len: number } | undefined;
  readonly #session: FrontendSession;
  readonly #scope: Scope;
  readonly #ringRegion: bigint;
  readonly #rings = new Map<number, Vring<unknown, DriverQueue<unknown>>>();
  /** Where each ring starts: the SET_VRING_BASE value of its first start. */
  readonly #bases = new Map<number, number>();
  /** Why the connection ended, once it has (see Connection.endedWith). */
  #disconnected: string | undefined;
  /** The error eventfds of SET_VRING_ERR, by ring. */
  readonly #errFds = new Map<number, EventFd>();

  constructor(session: FrontendSession, scope: Scope, options: FrontendDeviceOptions = {}) {
    this.#session = session;
    this.#scope = scope;
    const ended = () => {
      this.#disconnected = session.connection.endedWith ?? 'the back-end closed the connection';
    };
    session.connection.closed.then(ended, ended);
    if (options.memory) {
      this.memory = options.memory;
      this.spanning = undefined;
      this.#ringRegion = options.ringRegion ?? this.memory.regions.at(-1)!.guestAddress;
      return;
    }
    const layout = options.layout ?? SKEWED_LAYOUT;
    this.memory = createGuestMemory({
      layout,
      backing: (length, region) => {
        const shared = new SharedMemory(length, `vhu-conform guest 0x${region.guestAddress.toString(16)}`);
        scope.defer(`guest memory at 0x${region.guestAddress.toString(16)}`, () => shared.close());
        return { bytes: shared.bytes, fd: shared.fd };
      },
    });
    this.spanning = this.#reserveSpanning();
    // The highest region by default: in SKEWED_LAYOUT that is B, above 4 GiB, so ring addresses need 64 bits.
    this.#ringRegion = options.ringRegion ?? this.memory.regions.at(-1)!.guestAddress;
  }

  get session(): FrontendSession {
    return this.#session;
  }

  /** SET_MEM_TABLE: every region, in guest address order, with its memfd in the same place of the fds. */
  async setMemTable(): Promise<void> {
    const regions = this.memory.regions;
    const payload = encodeMemoryRegions({ regions: regions.map(describeRegion) });
    await this.#request(
      'SET_MEM_TABLE',
      payload,
      regions.map((r) => r.fd!),
    );
  }

  /** ADD_MEM_REG: the region of `memory` at `guestAddress`, with its memfd (CONFIGURE_MEM_SLOTS). */
  async addMemoryRegion(guestAddress: bigint): Promise<void> {
    const region = this.#region(guestAddress);
    await this.#request('ADD_MEM_REG', encodeSingleMemoryRegion(describeRegion(region)), [region.fd!]);
  }

  /**
   * REM_MEM_REG for `region` as described (a region `replaceRegion` returned, or one of `memory`), with no
   * fd: "No file descriptors SHOULD be passed".
   */
  async removeMemoryRegion(region: RegionLayout): Promise<void> {
    await this.#request('REM_MEM_REG', encodeSingleMemoryRegion(describeRegion(region)));
  }

  /**
   * Moves the region at `guestAddress` to a new memfd, mapped at `userAddress` with the region at
   * `mmapOffset` in it, holding what the old one held: guest memory the front-end maps elsewhere, as after a
   * memory hot-plug. Only this side changes: the back-end learns of it by SET_MEM_TABLE, or REM_MEM_REG and
   * ADD_MEM_REG. Returns the old region, still mapped until the scope closes, for the caller to watch.
   */
  replaceRegion(guestAddress: bigint, moved: { userAddress: bigint; mmapOffset: bigint }): MemoryRegion {
    const old = this.#region(guestAddress);
    const shared = new SharedMemory(
      Number(moved.mmapOffset + old.size),
      `vhu-conform guest 0x${guestAddress.toString(16)} moved`,
    );
    this.#scope.defer(`moved guest memory at 0x${guestAddress.toString(16)}`, () => shared.close());
    const bytes = shared.bytes;
    for (let i = 0; i < Number(moved.mmapOffset); i++) bytes[i] = GUARD_PATTERN[i % GUARD_PATTERN.length]!;
    bytes.set(
      old.bytes.subarray(Number(old.mmapOffset), Number(old.mmapOffset + old.size)),
      Number(moved.mmapOffset),
    );
    return this.memory.replace({ ...old, ...moved, bytes, fd: shared.fd });
  }

  /**
   * Lays out a split ring of `size` entries in the ring region and starts it: SET_VRING_NUM, SET_VRING_BASE,
   * SET_VRING_ADDR (user addresses), SET_VRING_KICK and SET_VRING_CALL with fresh eventfds. Enabling is a
   * separate step (`enable`).
   */
  async setUpRing<T = unknown>(index: number, size: number, options: VringOptions = {}): Promise<Vring<T>> {
    const ring = this.prepareRing<T>(index, size, options);
    await this.#startRing(ring as Vring<unknown, DriverQueue<unknown>>, options.base ?? 0);
    return ring;
  }

  /**
   * Lays out a split ring as `setUpRing` does, with its eventfds, but sends nothing: a front-end profile
   * (frontend/profiles.ts) then sends the ring's messages in its own order (`setVringNum`, ...).
   */
  prepareRing<T = unknown>(index: number, size: number, options: VringOptions = {}): Vring<T> {
    if (this.#rings.has(index))
      throw new Error(`vring ${index} is already set up; restart it with restartDevice`);
    if (options.queue instanceof PackedVirtqueue)
      throw new Error(`vring ${index}: a packed queue for a split ring`);
    if (options.queue)
      return this.#adoptRing<T>(index, size, options.queue as SplitVirtqueue<T>, options.base);
    const queue = new SplitVirtqueue<T>(this.memory, size, {
      eventIdx: options.eventIdx ?? false,
      indirect: options.indirect ?? false,
      inOrder: options.inOrder ?? false,
      region: this.#ringRegion,
      ...(options.placement ? { placement: options.placement } : {}),
    });
    const base = options.base ?? 0;
    if (base !== 0) queue.resetTo(base);
    const ring = new Vring<T>(index, queue, ...this.#eventFds(index), () => this.#disconnected);
    this.#rings.set(index, ring as Vring<unknown, DriverQueue<unknown>>);
    this.#bases.set(index, base);
    return ring;
  }

  /** `prepareRing` with `options.queue`: the ring over a queue the guest already has, with eventfds of its own. */
  #adoptRing<T>(index: number, size: number, queue: SplitVirtqueue<T>, base = queue.lastAvailIdx): Vring<T> {
    if (queue.memory !== this.memory)
      throw new Error(`vring ${index}: the queue is in another guest's memory`);
    if (queue.size !== size)
      throw new Error(`vring ${index}: the queue has ${queue.size} entries, not ${size}`);
    const ring = new Vring<T>(index, queue, ...this.#eventFds(index), () => this.#disconnected);
    this.#rings.set(index, ring as Vring<unknown, DriverQueue<unknown>>);
    this.#bases.set(index, base);
    return ring;
  }

  /**
   * Lays out a packed ring (VIRTIO_F_RING_PACKED negotiated) of `size` descriptors and starts it as
   * `setUpRing` does; SET_VRING_BASE carries the available and used positions with their wrap counters.
   */
  async setUpPackedRing<T = unknown>(
    index: number,
    size: number,
    options: { eventIdx?: boolean; indirect?: boolean } = {},
  ): Promise<Vring<T, PackedVirtqueue<T>>> {
    const ring = this.preparePackedRing<T>(index, size, options);
    const port = ring as unknown as Vring<unknown, DriverQueue<unknown>>;
    await this.#startRing(port, this.#bases.get(index)!);
    return ring;
  }

  /**
   * `preparePackedRing` is to `setUpPackedRing` what `prepareRing` is to `setUpRing`; with `queue`, over a
   * packed ring the guest already has, resumed at `base` (SET_VRING_BASE's available and used positions).
   */
  preparePackedRing<T = unknown>(
    index: number,
    size: number,
    options: {
      eventIdx?: boolean;
      indirect?: boolean;
      inOrder?: boolean;
      queue?: SplitVirtqueue<unknown> | PackedVirtqueue<unknown>;
      base?: number;
    } = {},
  ): Vring<T, PackedVirtqueue<T>> {
    if (this.#rings.has(index)) throw new Error(`vring ${index} is already set up`);
    if (options.queue) {
      const adopted = options.queue;
      if (!(adopted instanceof PackedVirtqueue))
        throw new Error(`vring ${index}: a split queue for a packed ring`);
      if (adopted.memory !== this.memory || adopted.size !== size)
        throw new Error(`vring ${index}: the queue is another guest's, or of another size`);
      const ring = new Vring<T, PackedVirtqueue<T>>(
        index,
        adopted as PackedVirtqueue<T>,
        ...this.#eventFds(index),
        () => this.#disconnected,
      );
      this.#rings.set(index, ring as unknown as Vring<unknown, DriverQueue<unknown>>);
      this.#bases.set(index, options.base ?? packedBase(adopted.availPosition, adopted.usedPosition));
      return ring;
    }
    const queue = new PackedVirtqueue<T>(this.memory, size, {
      eventIdx: options.eventIdx ?? false,
      indirect: options.indirect ?? false,
      inOrder: options.inOrder ?? false,
      region: this.#ringRegion,
    });
    const ring = new Vring<T, PackedVirtqueue<T>>(
      index,
      queue,
      ...this.#eventFds(index),
      () => this.#disconnected,
    );
    this.#rings.set(index, ring as unknown as Vring<unknown, DriverQueue<unknown>>);
    this.#bases.set(index, packedBase(queue.availPosition, queue.usedPosition));
    return ring;
  }

  /** SET_VRING_NUM for a prepared ring: its size. */
  async setVringNum(index: number): Promise<void> {
    await this.#request('SET_VRING_NUM', encodeVringState({ index, num: this.#anyRing(index).queue.size }));
  }

  /** SET_VRING_BASE for a prepared ring: where it starts (`base` for a restart). */
  async setVringBase(index: number, base = this.#bases.get(index) ?? 0): Promise<void> {
    const queue = this.#anyRing(index).queue;
    await this.#request(
      'SET_VRING_BASE',
      queue instanceof PackedVirtqueue
        ? encodeVringState({ index, num: base })
        : encodeSplitVringBase({ index, availIndex: base }),
    );
  }

  /** SET_VRING_ADDR for a prepared ring: its user addresses, no logging. */
  async setVringAddr(index: number): Promise<void> {
    const queue = this.#anyRing(index).queue as SplitVirtqueue<unknown> | PackedVirtqueue<unknown>;
    await this.#request(
      'SET_VRING_ADDR',
      encodeVringAddress({ index, flags: 0, ...queue.vringAddr(), log: 0n }),
    );
  }

  /** SET_VRING_KICK for a prepared ring, with its kick eventfd. */
  async setVringKick(index: number): Promise<void> {
    const ring = this.#anyRing(index);
    await this.#request('SET_VRING_KICK', encodeVringFile({ index, invalidFd: false }), [ring.kickFd.fd]);
  }

  /** SET_VRING_CALL for a prepared ring, with its call eventfd. */
  async setVringCall(index: number): Promise<void> {
    const ring = this.#anyRing(index);
    await this.#request('SET_VRING_CALL', encodeVringFile({ index, invalidFd: false }), [ring.callFd.fd]);
  }

  /**
   * SET_VRING_ERR for a prepared ring, with an eventfd of its own (made at the first call, owned by the
   * scope): where the back-end signals an error on the ring, as QEMU sets it up for every ring.
   */
  async setVringErr(index: number): Promise<void> {
    this.#anyRing(index);
    let err = this.#errFds.get(index);
    if (!err) {
      const fd = new EventFd();
      this.#scope.defer(`err eventfd of vring ${index}`, () => fd.close());
      this.#errFds.set(index, fd);
      err = fd;
    }
    await this.#request('SET_VRING_ERR', encodeVringFile({ index, invalidFd: false }), [err.fd]);
  }

  /**
   * SET_VRING_ADDR again for a set-up ring, with VHOST_VRING_F_LOG and the used ring's guest address as
   * log_guest_addr when `log` (without both when not): how QEMU starts and stops logging a running ring's
   * used ring writes for migration. Returns log_guest_addr.
   */
  async setRingLogging(index: number, log: boolean): Promise<bigint> {
    const { queue } = this.ring(index);
    const logAddress = log ? queue.usedRing.gpa : 0n;
    await this.#request(
      'SET_VRING_ADDR',
      encodeVringAddress({
        index,
        flags: log ? 1 << VHOST_VRING_F_LOG : 0,
        ...queue.vringAddr(),
        log: logAddress,
      }),
    );
    return logAddress;
  }

  /** SET_VRING_ENABLE: `on` 1 or 0. */
  async enable(index: number, on: boolean): Promise<void> {
    await this.#request('SET_VRING_ENABLE', encodeVringState({ index, num: on ? 1 : 0 }));
  }

  /** Kicks vring `index` (an available buffer notification), whatever the suppression fields say. */
  kick(index: number): void {
    this.ring(index).notify();
  }

  /** `Vring.waitUsed` of vring `index`. */
  waitUsed<T = unknown>(index: number, timeoutMs: number, count = 1): Promise<UsedBatch<T>> {
    return this.ring<T>(index).waitUsed(timeoutMs, count);
  }

  /**
   * GET_VRING_BASE: stops the ring and returns its base, the next available index the back-end would
   * process. A reply for another vring is a ProtocolError; the reserved bits are returned for the caller
   * to judge.
   */
  async stopRing(index: number): Promise<SplitVringBase> {
    const reply = await this.#session.connection.request('GET_VRING_BASE', VRING_STATE_SIZE, {
      payload: encodeVringState({ index, num: 0 }),
    });
    const base = decodeSplitVringBase(reply, 'GET_VRING_BASE');
    if (base.index !== index) {
      throw new ProtocolError(
        `GET_VRING_BASE for vring ${index} was answered for vring ${base.index}; wire: ${this.#session.connection
          .recent()
          .join(' | ')}`,
        reply,
      );
    }
    return base;
  }

  /** The vring set up at `index`. */
  ring<T = unknown>(index: number): Vring<T> {
    const ring = this.#rings.get(index);
    if (!ring) throw new Error(`vring ${index} is not set up`);
    return ring as Vring<T>;
  }

  /** The packed vring set up at `index` (`preparePackedRing`, or a profile's start of a packed ring). */
  packedRing<T = unknown>(index: number): Vring<T, PackedVirtqueue<T>> {
    const ring = this.#anyRing(index);
    if (!(ring.queue instanceof PackedVirtqueue)) throw new Error(`vring ${index} is a split ring`);
    return ring as unknown as Vring<T, PackedVirtqueue<T>>;
  }

  async #startRing(ring: Vring<unknown, DriverQueue<unknown>>, base: number): Promise<void> {
    const { index } = ring;
    await this.setVringNum(index);
    await this.setVringBase(index, base);
    await this.setVringAddr(index);
    await this.setVringKick(index);
    await this.setVringCall(index);
  }

  #anyRing(index: number): Vring<unknown, DriverQueue<unknown>> {
    const ring = this.#rings.get(index);
    if (!ring) throw new Error(`vring ${index} is not set up`);
    return ring;
  }

  /** A ring's kick and call eventfds, owned by the scope. */
  #eventFds(index: number): [EventFd, EventFd] {
    const kick = new EventFd();
    this.#scope.defer(`kick eventfd of vring ${index}`, () => kick.close());
    const call = new EventFd();
    this.#scope.defer(`call eventfd of vring ${index}`, () => call.close());
    return [kick, call];
  }

  #region(guestAddress: bigint): MemoryRegion {
    const region = this.memory.regions.find((r) => r.guestAddress === guestAddress);
    if (!region) throw new Error(`no guest memory region starts at 0x${guestAddress.toString(16)}`);
    return region;
  }

  /** A request without a reply of its own (see the class comment), with fds. */
  async #request(name: FrontendRequestName, payload: Buffer, fds: number[] = []): Promise<void> {
    const { connection } = this.#session;
    const wire = () => connection.recent().join(' | ');
    let ack: bigint | undefined;
    try {
      if (this.#session.replyAckFor(name)) {
        ack = decodeU64(await connection.request(name, 8, { payload, fds, needReply: true }), name);
      } else {
        await connection.send(name, { payload, fds });
        await connection.requestU64('GET_FEATURES');
      }
    } catch (err) {
      // "the back-end closed the connection" says nothing of when: name the message, show the wire.
      if (err instanceof BackendError) {
        throw new BackendError(`${err.message} (at ${name}; wire: ${wire()})`, { cause: err });
      }
      throw err;
    }
    if (ack !== undefined && ack !== 0n)
      throw new BackendError(`${name} was refused: REPLY_ACK ${ack}; wire: ${wire()}`);
  }

  #reserveSpanning(): { gpa: bigint; len: number } | undefined {
    const regions = this.memory.regions;
    for (let i = 0; i + 1 < regions.length; i++) {
      const low = regions[i]!;
      const high = regions[i + 1]!;
      const boundary = low.guestAddress + low.size;
      if (boundary !== high.guestAddress) continue;
      if (low.size < BigInt(SPANNING_HALF) || high.size < BigInt(SPANNING_HALF)) continue;
      const start = this.memory.alloc(SPANNING_HALF, SPANNING_HALF, {
        region: low.guestAddress,
        fromEnd: true,
      });
      const upper = this.memory.alloc(SPANNING_HALF, 1, { region: high.guestAddress });
      if (start + BigInt(SPANNING_HALF) !== boundary || upper !== boundary) {
        throw new Error(`could not reserve the area across guest 0x${boundary.toString(16)}`);
      }
      return { gpa: start, len: 2 * SPANNING_HALF };
    }
    return undefined;
  }
}

/** A region's description on the wire: its addresses and size, without the backing. */
function describeRegion({ guestAddress, size, userAddress, mmapOffset }: RegionLayout): RegionLayout {
  return { guestAddress, size, userAddress, mmapOffset };
}
