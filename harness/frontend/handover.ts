/**
 * A driver's port to a ring that moves from one front-end device to another, as a guest's queue does when its
 * VM migrates: the source's back-end stops it, the destination's resumes it. The driver (blk, ...) keeps its
 * requests and the queue; the kicks and the waits go to whichever device's ring it is handed over to.
 */

import type { DriverQueue, UsedBatch, VringPort, WaitUsedOptions } from '../virtqueue/port.js';
import type { SplitVirtqueue } from '../virtqueue/split.js';
import type { Vring } from './device.js';

export class HandoverPort<T, Q extends DriverQueue<T> = SplitVirtqueue<T>> implements VringPort<T, Q> {
  #ring: Vring<T, Q>;

  constructor(ring: Vring<T, Q>) {
    this.#ring = ring;
  }

  /** Kicks and waits go to `ring` from now on; it must be over the same queue. */
  handOver(ring: Vring<T, Q>): void {
    if (ring.queue !== this.#ring.queue) throw new Error(`vring ${ring.index} is another queue`);
    this.#ring = ring;
  }

  /** The ring it is handed over to now. */
  get ring(): Vring<T, Q> {
    return this.#ring;
  }

  get index(): number {
    return this.#ring.index;
  }

  get queue(): Q {
    return this.#ring.queue;
  }

  notify(): void {
    this.#ring.notify();
  }

  waitUsed(timeoutMs: number, count?: number, options?: WaitUsedOptions): Promise<UsedBatch<T>> {
    return this.#ring.waitUsed(timeoutMs, count, options);
  }

  takeUsed(): ReturnType<Vring<T, Q>['takeUsed']> {
    return this.#ring.takeUsed();
  }
}
