/**
 * One connected AF_UNIX stream socket with fd passing, on the event loop: sends and receives never block
 * the main thread, and waits for readiness go through FdWaiter (on the event loop, with no pool thread).
 */
import { TimeoutError, UsageError } from '../errors.js';
import { ClosedError, FdWaiter } from './fd-waiter.js';
import { SCM_MAX_FDS } from './layout.js';
import {
  closeFd,
  PollEvent,
  type ReceivedMessage,
  recvmsgFds,
  Shutdown,
  sendmsgFds,
  setNonBlocking,
  shutdown,
  socketpair,
} from './libc.js';

/** How long `send` waits, by default, for the peer to make room by reading. */
export const DEFAULT_SEND_TIMEOUT_MS = 5000;
/** How many bytes one `receive` reads at most, by default. */
export const DEFAULT_RECEIVE_BYTES = 64 * 1024;

/** What one `receive` got: see ReceivedMessage. The fds are the caller's to close. */
export type ChannelMessage = ReceivedMessage;

/**
 * One end of a connected Unix stream socket, non-blocking. The channel owns its fd and closes it in
 * `close()`. Fds it receives belong to the caller from then on; fds it sends stay the caller's too (the
 * peer gets copies). Bytes carry no framing here: `receive` returns what one recvmsg read, and the caller
 * frames. Sends are queued, so concurrent sends go out whole and in call order.
 */
export class UnixChannel {
  readonly fd: number;
  readonly #what: string;
  readonly #waiter: FdWaiter;
  #closed = false;
  #receiving = false;
  #sends: Promise<void> = Promise.resolve();

  private constructor(fd: number) {
    this.fd = fd;
    this.#what = `unix channel fd ${fd}`;
    this.#waiter = new FdWaiter(fd, this.#what);
  }

  /**
   * A connected pair: our end as a channel, and the other end as a raw blocking fd to hand to a child
   * process through its stdio (dup2 there clears the close-on-exec flag it has here). The caller owns that
   * raw fd and closes it once the child has it.
   */
  static pair(): [UnixChannel, number] {
    const [ours, theirs] = socketpair({ nonblocking: false });
    try {
      return [UnixChannel.fromFd(ours), theirs];
    } catch (err) {
      closeFd(ours);
      closeFd(theirs);
      throw err;
    }
  }

  /**
   * Takes ownership of a connected Unix stream socket and makes it non-blocking. If this throws, the fd is
   * still the caller's: UsageError if the fd is already a channel's (or has another FdWaiter).
   */
  static fromFd(fd: number): UnixChannel {
    setNonBlocking(fd);
    return new UnixChannel(fd);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends all of `data`, with `fds` (at most 8) attached to its first byte, after any earlier sends. When the
   * socket buffer is full, waits for the peer to read, up to `timeoutMs` for the whole message (TimeoutError).
   * A send that fails part way has written part of the message: the stream is then out of step. `maxFds`
   * raises the cap of 8 for a malformed message that carries more, up to the kernel's SCM_KERNEL_MAX_FDS.
   */
  send(
    data: Uint8Array,
    fds: readonly number[] = [],
    timeoutMs = DEFAULT_SEND_TIMEOUT_MS,
    maxFds = SCM_MAX_FDS,
  ): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError(this.#what));
    if (fds.length > maxFds) {
      return Promise.reject(new RangeError(`at most ${maxFds} fds per message, got ${fds.length}`));
    }
    if (fds.length > 0 && data.length === 0) {
      return Promise.reject(new RangeError('sending fds needs at least one data byte'));
    }
    const sent = this.#sends.then(() => this.#sendNow(data, fds, timeoutMs, maxFds));
    this.#sends = sent.catch(() => undefined);
    return sent;
  }

  async #sendNow(data: Uint8Array, fds: readonly number[], timeoutMs: number, maxFds: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let rest = data;
    let unsentFds = fds;
    while (rest.length > 0) {
      if (this.#closed) throw new ClosedError(this.#what);
      const n = sendmsgFds(this.fd, rest, unsentFds, maxFds);
      if (n !== null) {
        rest = rest.subarray(n);
        unsentFds = [];
        continue;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new TimeoutError(
          `the peer to read from ${this.#what}`,
          timeoutMs,
          `${data.length - rest.length} of ${data.length} bytes sent`,
        );
      }
      // POLLHUP/POLLERR end the wait too; the next sendmsg then throws the reason (EPIPE, ECONNRESET).
      await this.#waiter.wait(PollEvent.POLLOUT, left);
    }
  }

  /**
   * What one recvmsg reads (at most `maxBytes` bytes and 8 fds), as soon as anything is there; null at end
   * of stream (the peer closed). Throws TimeoutError when nothing came within `timeoutMs`, and ClosedError
   * when `close()` is called meanwhile. One receive at a time.
   */
  async receive(timeoutMs: number, maxBytes = DEFAULT_RECEIVE_BYTES): Promise<ChannelMessage | null> {
    if (this.#closed) throw new ClosedError(this.#what);
    if (this.#receiving)
      throw new UsageError(`receive() on ${this.#what} while another receive() is pending`);
    this.#receiving = true;
    try {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        if (this.#closed) throw new ClosedError(this.#what);
        const message = recvmsgFds(this.fd, maxBytes);
        if (message) {
          if (message.data.length > 0) return message;
          for (const fd of message.fds) closeFd(fd);
          return null;
        }
        const left = deadline - performance.now();
        if (left <= 0) throw new TimeoutError(`data on ${this.#what}`, timeoutMs);
        await this.#waiter.wait(PollEvent.POLLIN, left);
      }
    } finally {
      this.#receiving = false;
    }
  }

  /** Shuts down the sending side only: the peer reads end of stream, and this end can still receive. */
  shutdownWrite(): void {
    if (!this.#closed) shutdown(this.fd, Shutdown.SHUT_WR);
  }

  /**
   * Shuts the socket down (the peer sees end of stream) and closes it; idempotent. A pending receive or send
   * rejects with ClosedError.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // The poll handle goes first: on a shut-down socket it would fire on every loop turn, on a closed fd
    // it would watch whatever reuses the number.
    this.#waiter.close();
    try {
      shutdown(this.fd, Shutdown.SHUT_RDWR);
    } catch {
      // ENOTCONN after the peer reset the connection: nothing left to shut down, and close() still must run.
    }
    closeFd(this.fd);
  }
}
