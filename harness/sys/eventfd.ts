/** eventfd(2) as vring kick and call notifiers use it, waitable without blocking the event loop. */
import { ClosedError, FdWaiter } from './fd-waiter.js';
import {
  closeFd,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EFD_SEMAPHORE,
  eventfd,
  eventfdReadCount,
  eventfdWrite,
  PollEvent,
  pollOne,
} from './libc.js';

export interface EventFdOptions {
  /** Start value of the counter. */
  initval?: number;
  /** EFD_SEMAPHORE: each read takes 1 instead of the whole count. */
  semaphore?: boolean;
}

/**
 * One non-blocking, close-on-exec eventfd. The object owns the fd; pass `fd` to a back-end with sendmsg
 * (the back-end gets its own copy) and call `close()` when done.
 */
export class EventFd {
  readonly fd: number;
  readonly #waiter: FdWaiter;
  #closed = false;

  constructor(options: EventFdOptions = {}) {
    const flags = EFD_CLOEXEC | EFD_NONBLOCK | (options.semaphore ? EFD_SEMAPHORE : 0);
    this.fd = eventfd(options.initval ?? 0, flags);
    try {
      this.#waiter = new FdWaiter(this.fd, `eventfd ${this.fd}`);
    } catch (err) {
      closeFd(this.fd);
      throw err;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds `n` to the counter (a kick, or a call as a back-end would send it). */
  signal(n: number | bigint = 1): void {
    this.#assertOpen();
    eventfdWrite(this.fd, n);
  }

  /** Takes the counter: how many signals arrived since the last drain (exact up to 2^53), or 0. */
  drain(): number {
    this.#assertOpen();
    return eventfdReadCount(this.fd);
  }

  /**
   * Resolves true as soon as the counter is non-zero, false once `timeoutMs` has passed without that. It
   * does not take the count: call `drain()` to consume the signal. Rejects with ClosedError on `close()`.
   * `drained`: the caller has just drained it and found nothing, so the wait need not look first.
   */
  async waitSignalled(timeoutMs: number, options: { drained?: boolean } = {}): Promise<boolean> {
    this.#assertOpen();
    // Already signalled: answer without starting the poll handle. A caller that has just drained the
    // counter (`drained`) saves the syscall: a signal since then makes the wait answer on the next loop turn.
    if (!options.drained && (pollOne(this.fd, PollEvent.POLLIN, 0) & PollEvent.POLLIN) !== 0) return true;
    const revents = await this.#waiter.wait(PollEvent.POLLIN, timeoutMs);
    return (revents & PollEvent.POLLIN) !== 0;
  }

  /**
   * Blocks this thread in poll(2) until the counter is non-zero (true) or `timeoutMs` (whole ms, at most
   * 1000) has passed (false); does not take the count. No event loop turn, no timer, no promise: three
   * syscalls fewer than `waitSignalled` per wake, for a caller with nothing else to do meanwhile (a
   * stream at queue depth 1, or a worker thread polling rings). It stalls the event loop while it waits.
   */
  blockUntilSignalled(timeoutMs: number): boolean {
    this.#assertOpen();
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 1000)
      throw new RangeError(`a blocking wait on eventfd ${this.fd} is 0 to 1000 ms, got ${timeoutMs}`);
    return (pollOne(this.fd, PollEvent.POLLIN, timeoutMs) & PollEvent.POLLIN) !== 0;
  }

  /** Closes the fd; idempotent. A pending `waitSignalled` rejects with ClosedError. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiter.close();
    closeFd(this.fd);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(`eventfd ${this.fd}`);
  }
}
