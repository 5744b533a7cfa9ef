/**
 * Waiting for an fd to become ready without blocking the event loop: poll(2) runs in libuv's thread pool
 * (koffi .async) in short slices, one slice in flight per fd, until the events come or the deadline passes.
 *
 * Why slices: the pool is small (UV_THREADPOOL_SIZE, 4 unless set before Node starts) and shared with fs,
 * dns.lookup, crypto and zlib. A poll that slept for a whole deadline would hold a thread for seconds, and
 * four waiting fds would stall every fs call. With slices of at most MAX_POLL_SLICE_MS, another pool user
 * waits at most that long for a thread. The cost: while an fd waits, one pool thread is busy with it most
 * of the time, so many fds waiting at once (more than the pool size) still slow fs down; raise
 * UV_THREADPOOL_SIZE (in the environment, before Node starts) for a harness that waits on many fds.
 */
import { VhuError } from '../errors.js';
import {
  closeFd,
  eventfd,
  eventfdRead,
  eventfdWrite,
  MAX_POLL_SLICE_MS,
  PollEvent,
  pollAsync,
} from './libc.js';

/** The fd was closed by its owner while something waited on it. */
export class ClosedError extends VhuError {
  constructor(what: string) {
    super('VHU_ERR_CLOSED', `${what} is closed`);
  }
}

/** Reported by poll(2) whatever was asked for. */
const ALWAYS_REPORTED = PollEvent.POLLERR | PollEvent.POLLHUP | PollEvent.POLLNVAL;

interface Waiter {
  events: number;
  deadline: number;
  resolve: (revents: number) => void;
  reject: (err: Error) => void;
}

export interface FdWaiterOptions {
  /**
   * Adds a wake-up eventfd (owned by the waiter, closed by `close()`) to every slice, so that a wait for
   * other events or with an earlier deadline, and `close()`, cut the slice in flight short instead of
   * waiting up to MAX_POLL_SLICE_MS for it to end. Worth its fd where waits of different kinds overlap,
   * as a send waiting for POLLOUT while a receive waits for POLLIN.
   */
  wakeable?: boolean;
}

/**
 * The waits on one fd. Concurrent waits share one poll of the union of their events, so at most one poll
 * per fd is ever in flight. Without `wakeable`, a wait that starts while a slice is in flight joins at the
 * next slice: its events are polled, and its deadline noticed, up to one slice late.
 */
export class FdWaiter {
  readonly #fd: number;
  readonly #what: string;
  readonly #wakeFd: number | undefined;
  readonly #waiters = new Set<Waiter>();
  #inFlight: { events: number; end: number } | undefined;
  #closed = false;

  /** `what` names the fd in errors (`unix channel fd 12`). The waiter does not own the fd. */
  constructor(fd: number, what: string, options: FdWaiterOptions = {}) {
    this.#fd = fd;
    this.#what = what;
    this.#wakeFd = options.wakeable ? eventfd() : undefined;
  }

  /** Whether a poll slice is running in the pool now (never more than one). */
  get pollInFlight(): boolean {
    return this.#inFlight !== undefined;
  }

  /**
   * Resolves with the revents that answer `events` (POLLERR, POLLHUP and POLLNVAL always do), or with 0
   * once `timeoutMs` has passed. Rejects with ClosedError if `close()` comes first.
   */
  wait(events: number, timeoutMs: number): Promise<number> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#what));
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + Math.max(0, timeoutMs);
      this.#waiters.add({ events, deadline, resolve, reject });
      const slice = this.#inFlight;
      if (slice && ((events & ~slice.events) !== 0 || deadline < slice.end)) this.#wake();
      this.#pump();
    });
  }

  /**
   * Rejects every pending wait with ClosedError and starts no more slices; call it before closing the fd.
   * A slice already in the pool is woken if the waiter is wakeable, else runs out (at most
   * MAX_POLL_SLICE_MS; at once for a socket that was shut down); its result is dropped.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.reject(new ClosedError(this.#what));
    if (this.#wakeFd !== undefined) {
      this.#wake();
      closeFd(this.#wakeFd);
    }
  }

  #wake(): void {
    if (this.#wakeFd !== undefined) eventfdWrite(this.#wakeFd, 1);
  }

  #pump(): void {
    if (this.#inFlight || this.#closed || this.#waiters.size === 0) return;
    let events = 0;
    let firstDeadline = Number.POSITIVE_INFINITY;
    for (const waiter of this.#waiters) {
      events |= waiter.events;
      firstDeadline = Math.min(firstDeadline, waiter.deadline);
    }
    const now = performance.now();
    const slice = Math.min(MAX_POLL_SLICE_MS, Math.max(0, Math.ceil(firstDeadline - now)));
    this.#inFlight = { events, end: now + slice };
    const [fds, masks] =
      this.#wakeFd === undefined
        ? [[this.#fd], [events]]
        : [
            [this.#fd, this.#wakeFd],
            [events, PollEvent.POLLIN],
          ];
    pollAsync(fds, masks, slice).then(
      ([revents = 0, wakeRevents = 0]) => {
        this.#inFlight = undefined;
        if (this.#closed) return;
        if (wakeRevents !== 0 && this.#wakeFd !== undefined) eventfdRead(this.#wakeFd);
        const now = performance.now();
        for (const waiter of [...this.#waiters]) {
          const answered = revents & (waiter.events | ALWAYS_REPORTED);
          if (answered !== 0 || now >= waiter.deadline) {
            this.#waiters.delete(waiter);
            waiter.resolve(answered);
          }
        }
        this.#pump();
      },
      (err: Error) => {
        this.#inFlight = undefined;
        const waiters = [...this.#waiters];
        this.#waiters.clear();
        for (const waiter of waiters) waiter.reject(err);
      },
    );
  }
}
