import net from 'node:net';
import { BackendError, ProtocolError } from '../errors.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame, encodeRequest } from '../protocol/encoder.js';
import { FrontendRequest, type FrontendRequestName, HEADER_SIZE, HeaderFlag } from '../protocol/spec.js';
import { connectUnix } from '../sys/libc.js';
import { pollUntil, withDeadline } from '../util/deadline.js';

export interface RequestOptions {
  payload?: Buffer;
  needReply?: boolean;
}

/**
 * One vhost-user connection, front-end side: framing, request/reply with a deadline on every reply, and
 * a check that every reply matches its request. The last messages on the wire are kept for failure messages.
 */
export class Connection {
  private readonly decoder = new FrameDecoder();
  private readonly frames: DecodedFrame[] = [];
  private waiter: ((frame: DecodedFrame | Error) => void) | undefined;
  private failure: Error | undefined;
  private readonly log: string[] = [];
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: net.Socket,
    private readonly replyTimeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.decoder.push(chunk)) this.deliver(frame);
      } catch (err) {
        this.fail(err as Error);
        socket.destroy();
      }
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const reset = err.code === 'ECONNRESET' || err.code === 'EPIPE';
      const what = reset
        ? `the back-end closed the connection (${err.code})`
        : `socket error: ${err.message}`;
      this.fail(new BackendError(what, { cause: err }));
    });
    socket.on('close', () => this.fail(new BackendError('the back-end closed the connection')));
  }

  /** Takes ownership of a connected socket fd. */
  static fromFd(fd: number, replyTimeoutMs: number): Connection {
    return new Connection(new net.Socket({ fd, readable: true, writable: true }), replyTimeoutMs);
  }

  /** Connects to a listening back-end at `path`, retrying until `timeoutMs` (the socket may not exist yet). */
  static async connect(path: string, timeoutMs: number): Promise<{ connection: Connection; fd: number }> {
    const fd = await pollUntil(() => connectUnix(path), timeoutMs, `a listening socket at ${path}`);
    return { connection: Connection.fromFd(fd, timeoutMs), fd };
  }

  private deliver(frame: DecodedFrame): void {
    this.log.push(`<- ${describe(frame)}`);
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(frame);
    } else {
      this.frames.push(frame);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter(err);
    }
  }

  send(name: FrontendRequestName, options: RequestOptions = {}): void {
    const request = FrontendRequest[name];
    const bytes = encodeRequest(request, options.payload, options.needReply);
    this.log.push(
      `-> ${name} flags=0x${(bytes.readUInt32LE(4) >>> 0).toString(16)} size=${bytes.length - HEADER_SIZE}`,
    );
    this.socket.write(bytes);
  }

  /** The next message from the back-end, within the reply deadline. */
  async nextFrame(what: string): Promise<DecodedFrame> {
    const queued = this.frames.shift();
    if (queued) return queued;
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
   * exactly `replySize` payload bytes and no fds.
   */
  async request(name: FrontendRequestName, replySize: number, options: RequestOptions = {}): Promise<Buffer> {
    this.send(name, options);
    const reply = await this.nextFrame(`the reply to ${name}`);
    checkReply(name, reply, replySize, this.recent());
    return reply.payload;
  }

  async requestU64(name: FrontendRequestName, options: RequestOptions = {}): Promise<bigint> {
    return (await this.request(name, 8, options)).readBigUInt64LE();
  }

  /** The last messages on the wire, oldest first. */
  recent(count = 8): string[] {
    return this.log.slice(-count);
  }

  close(): void {
    this.socket.destroy();
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
  if (reply.fds.length) problems.push(`${reply.fds.length} unexpected fds`);
  if (problems.length) {
    const bytes = Buffer.concat([encodeFrame(reply), Buffer.alloc(0)]);
    throw new ProtocolError(
      `malformed reply to ${name}: ${problems.join('; ')}; wire: ${wire.join(' | ')}`,
      bytes,
    );
  }
}
