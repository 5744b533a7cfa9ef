import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, ProtocolError, TimeoutError } from '../errors.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame, encodeRequest } from '../protocol/encoder.js';
import {
  FrontendRequest,
  type FrontendRequestName,
  HEADER_SIZE,
  HeaderFlag,
  MAX_FDS_PER_MESSAGE,
} from '../protocol/spec.js';
import { ClosedError } from '../sys/fd-waiter.js';
import { SCM_KERNEL_MAX_FDS } from '../sys/layout.js';
import { closeFd, connectUnix } from '../sys/libc.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { pollUntil, withDeadline } from '../util/deadline.js';
import { currentWireLog } from './wire-log.js';

export interface RequestOptions {
  payload?: Buffer;
  needReply?: boolean;
  /** Descriptors sent with the message (SCM_RIGHTS); they stay ours, the kernel duplicates them. */
  fds?: number[];
}

/** How long one receive waits before it loops; the deadlines that matter are per reply. */
const READ_SLICE_MS = 60_000;
/**
 * Messages no request asked for are kept until taken, within these bounds: a back-end flooding the socket
 * is a protocol error, not a harness that runs out of memory or fds.
 */
export const MAX_QUEUED_FRAMES = 256;
export const MAX_QUEUED_FDS = 64;
/** How long a failed send waits for the read loop to see the end of the connection (and say how it came). */
const SEND_FAILURE_WAIT_MS = 250;
/** The wire log keeps this many lines (recent() shows the last few): it must not grow with a long run. */
const LOG_KEPT = 64;

/**
 * One vhost-user connection, front-end side: framing, fds with the bytes they came with, request/reply
 * with a deadline on every reply, and a check that every reply matches its request. The last messages on
 * the wire are kept for failure messages. Fds the back-end sends belong to the caller that takes the frame.
 */
export class Connection {
  private readonly decoder = new FrameDecoder();
  private readonly frames: DecodedFrame[] = [];
  private queuedFds = 0;
  private waiter: ((frame: DecodedFrame | Error) => void) | undefined;
  private failure: Error | undefined;
  private readonly log: string[] = [];
  private explainEnd: (() => Promise<string | undefined>) | undefined;
  readonly closed: Promise<void>;

  private constructor(
    private readonly channel: UnixChannel,
    private readonly replyTimeoutMs: number,
  ) {
    this.closed = this.readLoop();
  }

  /** Takes ownership of a connected socket fd. */
  static fromFd(fd: number, replyTimeoutMs: number): Connection {
    return new Connection(UnixChannel.fromFd(fd), replyTimeoutMs);
  }

  /** Connects to a listening back-end at `path`, retrying until `timeoutMs` (the socket may not exist yet). */
  static async connect(path: string, timeoutMs: number): Promise<{ connection: Connection; fd: number }> {
    const fd = await pollUntil(() => connectUnix(path), timeoutMs, `a listening socket at ${path}`);
    return { connection: Connection.fromFd(fd, timeoutMs), fd };
  }

  /**
   * Who can say how the back-end went when the connection ends on its side (the launcher of the process, which
   * sees its exit): `explain` resolves, within a few ms, to "it died (killed by SIGABRT; ...)", or undefined
   * when the process lives on. The error the connection then gives says it, instead of "closed" alone.
   */
  explainEndWith(explain: () => Promise<string | undefined>): void {
    this.explainEnd = explain;
  }

  /** `base` with what the explainer says of the back-end's end, if anything. */
  private async ended(base: string): Promise<string> {
    const words = await this.explainEnd?.().catch(() => undefined);
    return words ? `${base}: ${words}` : base;
  }

  private async readLoop(): Promise<void> {
    for (;;) {
      let message: Awaited<ReturnType<UnixChannel['receive']>>;
      try {
        message = await this.channel.receive(READ_SLICE_MS);
      } catch (err) {
        if (err instanceof TimeoutError) continue;
        if (!(err instanceof ClosedError)) {
          // A process that dies with bytes unread resets the connection (ECONNRESET).
          const said = await this.ended(`connection error: ${(err as Error).message}`);
          currentWireLog()?.event(this, '<-', said);
          this.fail(new BackendError(said, { cause: err }));
        }
        break;
      }
      if (!message) {
        const said = await this.ended('the back-end closed the connection');
        currentWireLog()?.event(this, '<-', `end of stream: ${said}`);
        this.fail(new BackendError(said));
        break;
      }
      if (message.truncated) {
        for (const fd of message.fds) closeFd(fd);
        this.fail(
          new ProtocolError(`the back-end sent more than ${MAX_FDS_PER_MESSAGE} fds with one message`),
        );
        this.close();
        break;
      }
      let frames: DecodedFrame[];
      try {
        frames = this.decoder.push(message.data, message.fds);
      } catch (err) {
        // The fds of a push that throws are still ours; the decoder keeps those of earlier messages.
        for (const fd of message.fds) closeFd(fd);
        this.fail(err as Error);
        this.close();
        break;
      }
      if (!this.deliverAll(frames)) break;
    }
    this.fail(new BackendError('the back-end closed the connection'));
  }

  /** Hands each frame to the waiter or the queue; false (the connection failed and closed) on a flood. */
  private deliverAll(frames: DecodedFrame[]): boolean {
    for (const [i, frame] of frames.entries()) {
      this.log.push(`<- ${describe(frame)}`);
      currentWireLog()?.message(this, '<-', frame.request, frame.flags, frame.payload, frame.fds.length);
      if (this.log.length > 2 * LOG_KEPT) this.log.splice(0, this.log.length - LOG_KEPT);
      if (this.waiter) {
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter(frame);
        continue;
      }
      if (this.frames.length >= MAX_QUEUED_FRAMES || this.queuedFds + frame.fds.length > MAX_QUEUED_FDS) {
        for (const rest of frames.slice(i)) for (const fd of rest.fds) closeFd(fd);
        this.fail(
          new ProtocolError(
            `the back-end sent more messages than were asked for: ${this.frames.length} unread, holding ${this.queuedFds} fds (at most ${MAX_QUEUED_FRAMES} messages and ${MAX_QUEUED_FDS} fds are kept); wire: ${this.recent().join(' | ')}`,
          ),
        );
        this.close();
        return false;
      }
      this.frames.push(frame);
      this.queuedFds += frame.fds.length;
    }
    return true;
  }

  /** Why the connection ended, once it has: "the back-end closed the connection: it died (...)". */
  get endedWith(): string | undefined {
    return this.failure?.message;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(err);
    }
  }

  async send(name: FrontendRequestName, options: RequestOptions = {}): Promise<void> {
    const request = FrontendRequest[name];
    const bytes = encodeRequest(request, options.payload, options.needReply);
    const fds = options.fds ?? [];
    const flags = (bytes.readUInt32LE(4) >>> 0).toString(16);
    if (this.log.length > 2 * LOG_KEPT) this.log.splice(0, this.log.length - LOG_KEPT);
    this.log.push(
      `-> ${name} flags=0x${flags} size=${bytes.length - HEADER_SIZE}${fds.length ? ` fds=${fds.length}` : ''}`,
    );
    if (this.failure) throw this.failure;
    currentWireLog()?.message(
      this,
      '->',
      request,
      bytes.readUInt32LE(4),
      bytes.subarray(HEADER_SIZE),
      fds.length,
    );
    try {
      await this.channel.send(bytes, fds, this.replyTimeoutMs);
    } catch (err) {
      if (err instanceof TimeoutError)
        throw new TimeoutError(`the back-end to read ${name}`, this.replyTimeoutMs);
      throw await this.sendFailure(name, err);
    }
  }

  /**
   * Sends `bytes` with `fds` exactly as given: no framing, no encoder and no check of either (the robustness
   * checks' malformed messages). `what` names them in the wire log. Errors as `send`.
   */
  async sendRaw(bytes: Buffer, fds: readonly number[] = [], what = 'raw bytes'): Promise<void> {
    this.log.push(`-> ${what}: ${bytes.length} bytes${fds.length ? ` fds=${fds.length}` : ''}`);
    if (this.failure) throw this.failure;
    currentWireLog()?.raw(this, bytes, fds.length, what);
    try {
      await this.channel.send(bytes, fds, this.replyTimeoutMs, SCM_KERNEL_MAX_FDS);
    } catch (err) {
      if (err instanceof RangeError) throw err;
      if (err instanceof TimeoutError)
        throw new TimeoutError(`the back-end to read ${what}`, this.replyTimeoutMs);
      throw await this.sendFailure(what, err);
    }
  }

  /**
   * The error of a send that failed (EPIPE, ECONNRESET: the back-end is gone): what the read loop makes of the
   * end, which says how the back-end went, once it has seen it (briefly awaited), else the errno.
   */
  private async sendFailure(what: string, err: unknown): Promise<Error> {
    if (!this.failure) await Promise.race([this.closed, sleep(SEND_FAILURE_WAIT_MS)]);
    return this.failure ?? new BackendError(`sending ${what}: ${(err as Error).message}`, { cause: err });
  }

  /** Ends what we send (the back-end reads end of stream, maybe mid-message) and keeps reading. */
  shutdownWrite(): void {
    this.log.push('-> end of stream');
    currentWireLog()?.event(this, '->', 'end of stream (shutdown of our side)');
    this.channel.shutdownWrite();
  }

  /** The next message from the back-end, within the reply deadline. */
  async nextFrame(what: string): Promise<DecodedFrame> {
    const queued = this.frames.shift();
    if (queued) {
      this.queuedFds -= queued.fds.length;
      return queued;
    }
    if (this.failure) throw this.failure;
    const next = new Promise<DecodedFrame>((resolve, reject) => {
      this.waiter = (frame) => (frame instanceof Error ? reject(frame) : resolve(frame));
    });
    try {
      return await withDeadline(next, this.replyTimeoutMs, what);
    } finally {
      this.waiter = undefined;
    }
  }

  /**
   * Sends `name` and waits for its reply, which must carry the same request id, version 1, the reply flag,
   * exactly `replySize` payload bytes and `replyFds` fds (returned with the payload; the caller owns them).
   */
  async requestWithFds(
    name: FrontendRequestName,
    replySize: number,
    replyFds: number,
    options: RequestOptions = {},
  ): Promise<{ payload: Buffer; fds: number[] }> {
    await this.send(name, options);
    const reply = await this.nextFrame(`the reply to ${name}`);
    try {
      checkReply(name, reply, replySize, replyFds, this.recent());
    } catch (err) {
      for (const fd of reply.fds) closeFd(fd);
      throw err;
    }
    return { payload: reply.payload, fds: reply.fds };
  }

  /** `requestWithFds` for a reply without fds. */
  async request(name: FrontendRequestName, replySize: number, options: RequestOptions = {}): Promise<Buffer> {
    return (await this.requestWithFds(name, replySize, 0, options)).payload;
  }

  async requestU64(name: FrontendRequestName, options: RequestOptions = {}): Promise<bigint> {
    return (await this.request(name, 8, options)).readBigUInt64LE();
  }

  /** The last messages on the wire, oldest first. */
  recent(count = 8): string[] {
    return this.log.slice(-count);
  }

  /** Closes the socket and every fd received and not taken. */
  close(): void {
    this.channel.close();
    for (const frame of this.frames.splice(0)) for (const fd of frame.fds) closeFd(fd);
    this.queuedFds = 0;
    for (const fd of this.decoder.takePendingFds()) closeFd(fd);
  }
}

function describe(frame: DecodedFrame): string {
  const fds = frame.fds.length ? ` fds=${frame.fds.length}` : '';
  return `request=${frame.request} flags=0x${frame.flags.toString(16)} size=${frame.payload.length}${fds}`;
}

/** Throws a ProtocolError, with the reply's bytes, when `reply` is not a well-formed reply to `name`. */
export function checkReply(
  name: FrontendRequestName,
  reply: DecodedFrame,
  replySize: number,
  replyFds: number,
  wire: string[],
): void {
  const problems: string[] = [];
  if (reply.request !== FrontendRequest[name])
    problems.push(`request id ${reply.request}, expected ${FrontendRequest[name]}`);
  if ((reply.flags & HeaderFlag.VERSION_MASK) !== HeaderFlag.VERSION)
    problems.push(`version ${reply.flags & 3}, expected 1`);
  if (!(reply.flags & HeaderFlag.REPLY)) problems.push('reply flag (bit 2) not set');
  if (reply.payload.length !== replySize)
    problems.push(`size ${reply.payload.length}, expected ${replySize}`);
  if (reply.fds.length !== replyFds) problems.push(`${reply.fds.length} fds, expected ${replyFds}`);
  if (problems.length) {
    throw new ProtocolError(
      `malformed reply to ${name}: ${problems.join('; ')}; wire: ${wire.join(' | ')}`,
      encodeFrame(reply),
    );
  }
}
