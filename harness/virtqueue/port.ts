/**
 * What a device driver (blk, net, fs, gpu) needs of a queue and of one vring, whatever sets them up: the
 * contract between the drivers (harness/devices) and the front-end that runs the rings (harness/frontend),
 * held here with the queues, as rust-vmm's virtio-queue holds its queue contract.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import type { AddRequestOptions, BufferElement, SplitVirtqueue, UsedBuffer } from './split.js';

/** What a driver needs of a queue of either layout, split or packed. */
export interface DriverQueue<T> {
  readonly memory: GuestMemory;
  readonly size: number;
  readonly inFlight: number;
  addRequest(chain: readonly BufferElement[], options?: AddRequestOptions<T>): number;
  collectUsed(): Array<UsedBuffer<T>>;
  /** Where the ring stands, for messages. */
  describePosition(): string;
  /**
   * Where the driver's next available buffer goes, as `needsKick` takes it: the split ring's avail.idx, the
   * packed ring's position with its wrap counter in bit 15.
   */
  readonly availMark: number;
  /** Whether the device wants a notification for what was made available from mark `before` to `now`. */
  needsKick(before: number, now: number): boolean;
}

/** What a device driver (blk, ...) needs of one vring: the queue, a notification, and waits for used buffers. */
export interface VringPort<T, Q extends DriverQueue<T> = SplitVirtqueue<T>> {
  readonly index: number;
  readonly queue: Q;
  /** Sends an available buffer notification (a kick), whatever the suppression fields say. */
  notify(): void;
  /** Resolves once at least `count` buffers are used (see `Vring.waitUsed`). */
  waitUsed(timeoutMs: number, count?: number, options?: WaitUsedOptions): Promise<UsedBatch<T>>;
  /** The buffers used so far and not yet taken, without waiting. */
  takeUsed(): Array<UsedBuffer<T>>;
}

/**
 * The window a driver with nothing else to do passes as `WaitUsedOptions.blockMs`: a completion that comes
 * within it costs no event loop turn, timer or promise (at queue depth 1 those cost more than the request).
 */
export const USED_BLOCK_MS = 1;

export interface WaitUsedOptions {
  /**
   * Block the thread in poll(2) on the call eventfd for up to this many whole ms (once per wait) before
   * waiting on the event loop: for a driver that has nothing else to do until a completion comes, at the
   * price of stalling the event loop (other checks, timers) for that long when the back-end is slow.
   */
  blockMs?: number;
}

/** Buffers collected from the used ring, and the used buffer notifications (calls) seen meanwhile. */
export interface UsedBatch<T> {
  used: Array<UsedBuffer<T>>;
  /** Calls counted while waiting (eventfd counts; a back-end may coalesce several into one). */
  calls: number;
}
