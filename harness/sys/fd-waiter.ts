/**
 * Waiting for an fd to become ready on the event loop itself: a uv_poll handle (koffi.node.poll) puts the
 * fd in libuv's epoll set, and a timer per wait ends it at its deadline. No wait holds a thread of libuv's
 * pool (4 threads, shared with fs, dns.lookup, crypto and zlib), so any number of fds can wait at once.
 *
 * libuv's rules for uv_poll, and how this module keeps them:
 * - Only fds epoll accepts (sockets, pipes, eventfds; not regular files or directories). The constructor
 *   checks (checkPollable), because a uv_poll_init that fails aborts the whole process instead of throwing.
 * - Never two uv_poll handles on one fd: one open FdWaiter per fd number, enforced (UsageError). An fd that
 *   Node watches itself (a net.Socket's, a child's stdio pipe) must not get one either; that is not checked.
 * - The handle goes before the fd: `close()` closes the handle, which takes the fd out of epoll at once,
 *   and only then may the owner close the fd. A handle outliving its fd would watch, and on close
 *   unregister, whatever file reuses the number.
 * - uv_poll_init sets O_NONBLOCK on the open file description (every copy of the fd shares it).
 *
 * What koffi.node.poll does (koffi 3.3 on Linux), which shapes the code below: the callback gets
 * (status, { readable, writable, disconnect }) although index.d.ts declares only the second argument; it is
 * level-triggered (called on every loop turn while the fd stays ready); POLLHUP comes as whichever of the
 * three flags were asked for; POLLERR comes as status -9 (UV_EBADF) with no flag set, and libuv stops the
 * handle itself; no callback comes after stop() or close(); any method called after close() crashes the
 * process. So the callback only means "look now": the waiter asks poll(2), with timeout 0, for the revents.
 */
import koffi from 'koffi';
import { UsageError, VhuError } from '../errors.js';
import { checkPollable, PollEvent, pollOne } from './libc.js';

/** The fd was closed by its owner while something waited on it. */
export class ClosedError extends VhuError {
  constructor(what: string) {
    super('VHU_ERR_CLOSED', `${what} is closed`);
  }
}

/** Reported by poll(2) whatever was asked for. */
const ALWAYS_REPORTED = PollEvent.POLLERR | PollEvent.POLLHUP | PollEvent.POLLNVAL;
/** What uv_poll can watch for (as readable, writable, disconnect), so what a wait may ask for. */
const WAITABLE = PollEvent.POLLIN | PollEvent.POLLOUT | PollEvent.POLLRDHUP;
/** Node's longest timer (about 24.8 days); a longer wait gets no deadline at all. */
const MAX_TIMER_MS = 0x7fff_ffff;

interface Waiter {
  events: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (revents: number) => void;
  reject: (err: Error) => void;
}

type PollHandle = ReturnType<typeof koffi.node.poll>;
/** The callback type koffi declares (the events object only); see LoopPoll for what it really passes. */
type PollCallback = (events: { readable: boolean; writable: boolean; disconnect: boolean }) => void;

/** The open FdWaiter of each fd: libuv must never see two uv_poll handles on one fd. */
const waiterOfFd = new Map<number, FdWaiter>();

/**
 * One uv_poll handle, made on the first `watch`, started for the poll(2) bits asked for (and ref'd), stopped
 * and unref'd for none, so that an idle handle never keeps the process alive. Guards the koffi handle, whose
 * methods crash the process once it is closed.
 */
class LoopPoll {
  readonly #fd: number;
  readonly #callback: PollCallback;
  #handle: PollHandle | undefined;
  /** The poll(2) bits the handle is started for; 0 while stopped. */
  #watching = 0;
  #closed = false;

  constructor(fd: number, onEvent: () => void) {
    this.#fd = fd;
    // koffi passes (status, events) despite its typings; status < 0 is POLLERR, after which libuv has
    // stopped the handle, so a later watch() must start it again.
    const callback = (status: number): void => {
      if (status < 0) this.#watching = 0;
      onEvent();
    };
    this.#callback = callback as unknown as PollCallback;
  }

  get watching(): boolean {
    return this.#watching !== 0;
  }

  /** Watches for `events` (POLLIN, POLLOUT, POLLRDHUP), replacing what was watched; 0 stops. */
  watch(events: number): void {
    if (this.#closed) return;
    const wanted = events & WAITABLE;
    if (wanted === this.#watching) return;
    if (wanted === 0) {
      this.#handle?.stop();
      this.#handle?.unref();
      this.#watching = 0;
      return;
    }
    const options = {
      readable: (wanted & PollEvent.POLLIN) !== 0,
      writable: (wanted & PollEvent.POLLOUT) !== 0,
      disconnect: (wanted & PollEvent.POLLRDHUP) !== 0,
    };
    if (this.#handle) {
      this.#handle.start(options, this.#callback);
      this.#handle.ref();
    } else {
      const handle: PollHandle | null = koffi.node.poll(this.#fd, options, this.#callback);
      if (!handle) throw new VhuError('VHU_ERR_SYS', `koffi.node.poll refused fd ${this.#fd}`);
      this.#handle = handle;
    }
    this.#watching = wanted;
  }

  /** Stops and closes the handle (libuv drops the fd from epoll before this returns); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handle?.close();
    this.#handle = undefined;
    this.#watching = 0;
  }
}

/**
 * The waits on one fd, served on the event loop. Concurrent waits share one uv_poll handle watching the
 * union of their events; the handle is made on the first wait, stopped whenever no wait is pending, and
 * closed by `close()`. One FdWaiter per fd at a time (see the module comment).
 */
export class FdWaiter {
  readonly #fd: number;
  readonly #what: string;
  readonly #waiters = new Set<Waiter>();
  readonly #loopPoll: LoopPoll;
  #closed = false;

  /**
   * `what` names the fd in errors (`unix channel fd 12`). The waiter does not own the fd, but the fd must
   * stay open until `close()` has been called. Throws UsageError if the fd has an open FdWaiter already, and
   * SysError if epoll cannot watch it (EBADF, or EPERM for a regular file). `options` is kept for callers
   * that still pass it; it has no effect.
   */
  constructor(fd: number, what: string) {
    const other = waiterOfFd.get(fd);
    if (other) throw new UsageError(`fd ${fd} (${what}) already has a waiter, for ${other.#what}`);
    checkPollable(fd);
    this.#fd = fd;
    this.#what = what;
    this.#loopPoll = new LoopPoll(fd, () => this.#onPollEvent());
    waiterOfFd.set(fd, this);
  }

  /** Whether the fd is being watched on the event loop now: true while any wait is pending. */
  get pollInFlight(): boolean {
    return this.#loopPoll.watching;
  }

  /**
   * Resolves with the revents that answer `events` (POLLIN, POLLOUT and/or POLLRDHUP; POLLERR, POLLHUP and
   * POLLNVAL always answer), or with 0 once `timeoutMs` has passed. A `timeoutMs` of 0 or less answers
   * from the fd's state now. Rejects with ClosedError if `close()` comes first.
   */
  wait(events: number, timeoutMs: number): Promise<number> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#what));
    if (
      !Number.isInteger(events) ||
      (events & WAITABLE) === 0 ||
      (events & ~(WAITABLE | ALWAYS_REPORTED)) !== 0
    ) {
      return Promise.reject(
        new RangeError(`a wait on ${this.#what} is for POLLIN, POLLOUT or POLLRDHUP, got events ${events}`),
      );
    }
    if (Number.isNaN(timeoutMs)) return Promise.reject(new RangeError(`timeout is NaN on ${this.#what}`));
    if (timeoutMs <= 0) {
      try {
        return Promise.resolve(this.#answer(events));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { events, timer: undefined, resolve, reject };
      // Rounded up: a wait never ends before its deadline.
      if (timeoutMs <= MAX_TIMER_MS)
        waiter.timer = setTimeout(() => this.#expire(waiter), Math.ceil(timeoutMs));
      this.#waiters.add(waiter);
      this.#watch();
    });
  }

  /**
   * Closes the poll handle (the fd leaves epoll at once), rejects every pending wait with ClosedError and
   * frees the fd for another FdWaiter. Call it before closing the fd.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#loopPoll.close();
    if (waiterOfFd.get(this.#fd) === this) waiterOfFd.delete(this.#fd);
    this.#settleAll((waiter) => waiter.reject(new ClosedError(this.#what)));
  }

  /** The revents now that answer `events`; poll(2) with timeout 0 never blocks. */
  #answer(events: number): number {
    return pollOne(this.#fd, events, 0) & (events | ALWAYS_REPORTED);
  }

  #onPollEvent(): void {
    if (this.#closed) return;
    let events = 0;
    for (const waiter of this.#waiters) events |= waiter.events;
    let revents: number;
    try {
      revents = pollOne(this.#fd, events, 0);
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    for (const waiter of [...this.#waiters]) {
      const answered = revents & (waiter.events | ALWAYS_REPORTED);
      if (answered !== 0) this.#settle(waiter, () => waiter.resolve(answered));
    }
    this.#watch();
  }

  #expire(waiter: Waiter): void {
    if (!this.#waiters.has(waiter)) return;
    waiter.timer = undefined;
    try {
      const answered = this.#answer(waiter.events);
      this.#settle(waiter, () => waiter.resolve(answered));
    } catch (err) {
      this.#settle(waiter, () => waiter.reject(err as Error));
    }
    this.#watch();
  }

  /** Starts, changes or stops watching to match the pending waits. */
  #watch(): void {
    if (this.#closed) return;
    let events = 0;
    for (const waiter of this.#waiters) events |= waiter.events;
    try {
      this.#loopPoll.watch(events);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  #settle(waiter: Waiter, settle: () => void): void {
    this.#waiters.delete(waiter);
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    settle();
  }

  #settleAll(settle: (waiter: Waiter) => void): void {
    for (const waiter of [...this.#waiters]) this.#settle(waiter, () => settle(waiter));
  }

  /** A poll(2) or libuv error: every pending wait rejects with it, and watching stops until the next wait. */
  #fail(err: Error): void {
    this.#settleAll((waiter) => waiter.reject(err));
    this.#loopPoll.watch(0);
  }
}
