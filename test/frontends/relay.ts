/**
 * A recording relay between a real front-end and a real back-end: it listens on a Unix socket for the
 * front-end, connects to the back-end's socket for each front-end connection, and forwards every vhost-user
 * message both ways with its fds (SCM_RIGHTS), recording each one: direction, request name, flags, size and
 * the payload fields that say where it stands in the order (vring index, ENABLE num, status and feature
 * values), never addresses or fd numbers. SET_BACKEND_REQ_FD is relayed too: the back-end gets a socket of
 * the relay's, and the back-end request channel is forwarded and recorded the same way.
 */
import { unlinkSync } from 'node:fs';
import { type DecodedFrame, FrameDecoder } from '../../harness/protocol/decoder.js';
import { encodeFrame } from '../../harness/protocol/encoder.js';
import {
  backendRequestName,
  frontendRequestName,
  HeaderFlag,
  VringFileBits,
} from '../../harness/protocol/spec.js';
import { ClosedError, FdWaiter } from '../../harness/sys/fd-waiter.js';
import {
  acceptConnection,
  closeFd,
  connectUnix,
  listenUnix,
  PollEvent,
  socketpair,
} from '../../harness/sys/libc.js';
import { UnixChannel } from '../../harness/sys/unix-channel.js';

/** One message seen by the relay. */
export interface RecordedMessage {
  /** `front`: front-end to back-end; `back`: back-end to front-end (replies, and the back-end's requests). */
  from: 'front' | 'back';
  /** `main`: the vhost-user socket; `backend`: the back-end request channel of SET_BACKEND_REQ_FD. */
  channel: 'main' | 'backend';
  /** The request's name (a reply carries its request's), from the table of the channel's requests. */
  request: string;
  needReply: boolean;
  reply: boolean;
  /** The header's size field. */
  size: number;
  /** How many fds came with it. */
  fds: number;
  /**
   * The payload fields that place it in the order: `index` (vring), `num` (SET_VRING_NUM, SET_VRING_BASE,
   * SET_VRING_ENABLE), `noFd` (KICK/CALL with the invalid-fd bit), `value` (a u64 as hex: features, status,
   * queue count), `regions` (SET_MEM_TABLE), `numQueues`/`queueSize` (inflight), `offset` (GET_CONFIG).
   */
  fields?: Record<string, number | string | boolean>;
}

/** The requests whose payload is a vring state (index, num). */
const VRING_STATE = new Set(['SET_VRING_NUM', 'SET_VRING_BASE', 'GET_VRING_BASE', 'SET_VRING_ENABLE']);
/** The requests whose payload is a vring index and the invalid-fd bit. */
const VRING_FILE = new Set(['SET_VRING_KICK', 'SET_VRING_CALL', 'SET_VRING_ERR']);
/** The requests and replies whose payload is one u64 worth keeping (features, status, counts). */
const U64_VALUE = new Set([
  'GET_FEATURES',
  'SET_FEATURES',
  'GET_PROTOCOL_FEATURES',
  'SET_PROTOCOL_FEATURES',
  'GET_QUEUE_NUM',
  'GET_MAX_MEM_SLOTS',
  'SET_STATUS',
  'GET_STATUS',
]);

/** The fields of `frame` that place it in the order (see RecordedMessage.fields). */
function fieldsOf(name: string, frame: DecodedFrame, reply: boolean): RecordedMessage['fields'] {
  const p = frame.payload;
  if (U64_VALUE.has(name) && p.length === 8) {
    // A GET's value is its reply's; a SET's its request's (a REPLY_ACK reply is an ack, kept as such).
    if (name.startsWith('GET_') === reply) return { value: `0x${p.readBigUInt64LE(0).toString(16)}` };
    if (reply) return { ack: Number(p.readBigUInt64LE(0)) };
    return undefined;
  }
  if (reply && name === 'GET_VRING_BASE' && p.length === 8)
    return { index: p.readUInt32LE(0), num: p.readUInt32LE(4) };
  if (reply) return p.length === 8 ? { ack: Number(p.readBigUInt64LE(0)) } : undefined;
  if (VRING_STATE.has(name) && p.length >= 8) {
    const index = p.readUInt32LE(0);
    return name === 'GET_VRING_BASE' ? { index } : { index, num: p.readUInt32LE(4) };
  }
  if (VRING_FILE.has(name) && p.length === 8) {
    const v = p.readBigUInt64LE(0);
    return { index: Number(v & VringFileBits.INDEX_MASK), noFd: (v & VringFileBits.INVALID_FD) !== 0n };
  }
  if (name === 'SET_VRING_ADDR' && p.length >= 4) return { index: p.readUInt32LE(0) };
  if (name === 'SET_MEM_TABLE' && p.length >= 4) return { regions: p.readUInt32LE(0) };
  if ((name === 'GET_INFLIGHT_FD' || name === 'SET_INFLIGHT_FD') && p.length >= 20)
    return { numQueues: p.readUInt16LE(16), queueSize: p.readUInt16LE(18) };
  if ((name === 'GET_CONFIG' || name === 'SET_CONFIG') && p.length >= 8)
    return { offset: p.readUInt32LE(0), configSize: p.readUInt32LE(4) };
  return undefined;
}

/**
 * One direction of one channel: frames read from `source`, handed to `onFrame` (which records them and says
 * which fds go on), written to `sink`. When either side ends, both are closed, as the other end would see
 * without the relay.
 */
async function pump(
  source: UnixChannel,
  sink: UnixChannel,
  onFrame: (frame: DecodedFrame) => number[],
): Promise<void> {
  const decoder = new FrameDecoder(1 << 20);
  try {
    for (;;) {
      const got = await source.receive(Number.POSITIVE_INFINITY);
      if (!got) return;
      for (const frame of decoder.push(got.data, got.fds)) {
        const fds = onFrame(frame);
        try {
          await sink.send(encodeFrame(frame), fds);
        } finally {
          // The peer got copies: ours are closed.
          for (const fd of fds) closeFd(fd);
        }
      }
    }
  } catch (err) {
    if (!(err instanceof ClosedError)) throw err;
  } finally {
    for (const fd of decoder.takePendingFds()) closeFd(fd);
    source.close();
    sink.close();
  }
}

export class RecordingRelay {
  readonly messages: RecordedMessage[] = [];
  /** Errors of the pumps (a send that failed): a recording with any is not to be trusted. */
  readonly errors: Error[] = [];
  readonly #listener: number;
  readonly #waiter: FdWaiter;
  readonly #channels: UnixChannel[] = [];
  readonly #pumps: Promise<void>[] = [];
  #closed = false;

  /** Listens at `path` for front-ends; each one is relayed to a new connection to `backendPath`. */
  constructor(
    readonly path: string,
    readonly backendPath: string,
  ) {
    this.#listener = listenUnix(path, { nonblocking: true });
    this.#waiter = new FdWaiter(this.#listener, `relay listener ${path}`);
    void this.#accept();
  }

  /** How many front-end connections it accepted. */
  connections = 0;

  async #accept(): Promise<void> {
    for (;;) {
      let fd: number | null;
      try {
        fd = acceptConnection(this.#listener);
        if (fd === null) {
          await this.#waiter.wait(PollEvent.POLLIN, Number.POSITIVE_INFINITY);
          continue;
        }
      } catch (err) {
        if (!(err instanceof ClosedError)) this.errors.push(err as Error);
        return;
      }
      this.connections++;
      const front = this.#own(UnixChannel.fromFd(fd));
      let back: UnixChannel;
      try {
        back = this.#own(UnixChannel.fromFd(connectUnix(this.backendPath)));
      } catch (err) {
        this.errors.push(err as Error);
        front.close();
        continue;
      }
      this.#relay(front, back, 'main');
    }
  }

  #own(channel: UnixChannel): UnixChannel {
    this.#channels.push(channel);
    return channel;
  }

  /**
   * Relays `a` and `b` both ways. On the main channel `a` is the front-end and `b` the back-end; on the
   * back-end channel `a` is the back-end (it asks there) and `b` the front-end.
   */
  #relay(a: UnixChannel, b: UnixChannel, channel: RecordedMessage['channel']): void {
    const names = channel === 'main' ? frontendRequestName : backendRequestName;
    const record = (from: RecordedMessage['from'], frame: DecodedFrame): string => {
      const reply = (frame.flags & HeaderFlag.REPLY) !== 0;
      const request = names(frame.request);
      const fields = fieldsOf(request, frame, reply);
      this.messages.push({
        from,
        channel,
        request,
        needReply: (frame.flags & HeaderFlag.NEED_REPLY) !== 0,
        reply,
        size: frame.payload.length,
        fds: frame.fds.length,
        ...(fields ? { fields } : {}),
      });
      return request;
    };
    const fromA = channel === 'main' ? 'front' : 'back';
    const fromB = channel === 'main' ? 'back' : 'front';
    this.#watch(
      pump(a, b, (frame) => {
        const request = record(fromA, frame);
        if (channel !== 'main' || request !== 'SET_BACKEND_REQ_FD' || frame.fds.length !== 1)
          return frame.fds;
        // The front-end's end of its channel stays with the relay; the back-end gets one of the relay's.
        const [ours, theirs] = socketpair({ nonblocking: false });
        const front = this.#own(UnixChannel.fromFd(frame.fds[0]!));
        this.#relay(this.#own(UnixChannel.fromFd(ours)), front, 'backend');
        return [theirs];
      }),
    );
    this.#watch(
      pump(b, a, (frame) => {
        record(fromB, frame);
        return frame.fds;
      }),
    );
  }

  #watch(p: Promise<void>): void {
    this.#pumps.push(p.catch((err: Error) => void this.errors.push(err)));
  }

  /** Stops listening, closes every relayed connection, removes the socket file; waits for the pumps. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiter.close();
    closeFd(this.#listener);
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone.
    }
    for (const channel of this.#channels) channel.close();
    await Promise.all(this.#pumps);
  }
}
