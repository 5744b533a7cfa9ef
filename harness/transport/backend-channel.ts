/**
 * The back-end request channel, front-end side (vhost-user.rst "Back-end communication"): a socketpair whose
 * other end goes to the back-end with SET_BACKEND_REQ_FD. Every back-end request is decoded, logged, checked
 * for well-formedness and answered when it asks for a reply; requests the front-end did not expect are
 * tolerated (answered, recorded), never fatal. Nothing here waits without a deadline.
 */
import { ProtocolError, TimeoutError } from '../errors.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { type BackendMessage, decodeBackendRequest, encodeU64 } from '../protocol/messages.js';
import {
  BACKEND_REQUEST_INFO,
  BackendRequest,
  type BackendRequestName,
  backendRequestName,
  type FdRule,
  HeaderFlag,
  hasBit,
  MAX_FDS_PER_MESSAGE,
  ProtocolFeature,
  type ProtocolFeatureName,
  VirtioFeature,
} from '../protocol/spec.js';
import { ClosedError } from '../sys/fd-waiter.js';
import { closeFd } from '../sys/libc.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { currentWireLog } from './wire-log.js';

/** How long one receive waits before it loops: the channel may stay silent for a whole session. */
const READ_SLICE_MS = 60_000;
/** Header flag bits the spec defines: version (0-1), reply (2), need_reply (3); the rest are reserved. */
const DEFINED_FLAGS = HeaderFlag.VERSION_MASK | HeaderFlag.REPLY | HeaderFlag.NEED_REPLY;
/** Our answer when we did not do what was asked: the spec wants "non-zero otherwise". */
const ACK_FAILED = 1n;

/** One back-end request as it came, what was wrong with it, and what we answered. */
export interface BackendRequestRecord {
  request: number;
  /** The spec's name without the VHOST_USER_BACKEND_ prefix, or UNKNOWN(n). */
  name: string;
  flags: number;
  size: number;
  fds: number;
  /** The decoded payload, when the id is known and the size right. */
  message?: BackendMessage;
  /** Every rule the message broke (empty when it is well-formed and expected). */
  problems: string[];
  /** The u64 we replied with, when the back-end asked for a reply. */
  reply?: bigint;
}

export interface BackendChannelOptions {
  /** The protocol features negotiated on the main connection: what the back-end may send depends on them. */
  protocolFeatures?: bigint;
  /** The virtio features negotiated (IOTLB_MSG needs VIRTIO_F_ACCESS_PLATFORM). */
  features?: bigint;
  /** How long sending a reply may wait for the back-end to read (default 5 s). */
  sendTimeoutMs?: number;
  /** Called with one line per message, in and out. */
  log?: (line: string) => void;
}

/**
 * Our end of the channel. It owns its socket and closes it in `close()`; fds the back-end sends with its
 * requests are closed at once (this front-end maps nothing the back-end offers).
 */
export class BackendChannel {
  readonly requests: BackendRequestRecord[] = [];
  /** Resolves once the read loop ends: the back-end closed its end, the framing broke, or `close()`. */
  readonly ended: Promise<void>;
  /** Negotiated protocol features; may be updated after the channel is set up. */
  protocolFeatures: bigint;
  features: bigint;
  readonly #channel: UnixChannel;
  readonly #decoder = new FrameDecoder();
  readonly #sendTimeoutMs: number;
  readonly #log: (line: string) => void;
  readonly #wire: string[] = [];
  readonly #failures: string[] = [];
  #endedByBackend = false;
  #closed = false;

  private constructor(channel: UnixChannel, options: BackendChannelOptions) {
    this.#channel = channel;
    this.protocolFeatures = options.protocolFeatures ?? 0n;
    this.features = options.features ?? 0n;
    this.#sendTimeoutMs = options.sendTimeoutMs ?? 5000;
    this.#log = options.log ?? (() => {});
    this.ended = this.#readLoop();
  }

  /**
   * A connected pair: the channel, and the back-end's end as a raw fd for SET_BACKEND_REQ_FD. The caller
   * closes that fd once it is sent (the back-end has its copy): while we hold it, the back-end closing its
   * copy would not show as end of stream here.
   */
  static pair(options: BackendChannelOptions = {}): { channel: BackendChannel; backendFd: number } {
    const [ours, theirs] = UnixChannel.pair();
    return { channel: new BackendChannel(ours, options), backendFd: theirs };
  }

  /** Whether the back-end closed its end (end of stream), as opposed to our `close()`. */
  get closedByBackend(): boolean {
    return this.#endedByBackend;
  }

  /** Every problem seen: per request (named), and on the channel itself (framing). */
  get problems(): string[] {
    return [...this.requests.flatMap((r) => r.problems.map((p) => `${r.name}: ${p}`)), ...this.#failures];
  }

  /** The last messages on the channel, oldest first. */
  recent(count = 8): string[] {
    return this.#wire.slice(-count);
  }

  /** Closes our end and any fds of a message not yet whole; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.close();
    for (const fd of this.#decoder.takePendingFds()) closeFd(fd);
  }

  async #readLoop(): Promise<void> {
    for (;;) {
      let message: Awaited<ReturnType<UnixChannel['receive']>>;
      try {
        message = await this.#channel.receive(READ_SLICE_MS);
      } catch (err) {
        if (err instanceof TimeoutError) continue;
        if (!(err instanceof ClosedError)) this.#fail(`receive failed: ${(err as Error).message}`);
        return;
      }
      if (message === null) {
        this.#endedByBackend = true;
        this.#note('<- end of stream: the back-end closed its end');
        currentWireLog()?.event(this, '<-', 'end of stream on the back-end request channel');
        if (this.#decoder.pendingBytes > 0)
          this.#fail(`the stream ended inside a message (${this.#decoder.pendingBytes} bytes pending)`);
        this.close();
        return;
      }
      if (message.truncated) {
        for (const fd of message.fds) closeFd(fd);
        this.#fail(`more than ${MAX_FDS_PER_MESSAGE} fds came with one message`);
        this.close();
        return;
      }
      let frames: DecodedFrame[];
      try {
        frames = this.#decoder.push(message.data, message.fds);
      } catch (err) {
        for (const fd of message.fds) closeFd(fd);
        this.#fail((err as Error).message);
        this.close();
        return;
      }
      for (const frame of frames) {
        for (const fd of frame.fds) closeFd(fd);
        this.#serve(frame);
      }
    }
  }

  #serve(frame: DecodedFrame): void {
    currentWireLog()?.backendChannelMessage(
      this,
      '<-',
      frame.request,
      frame.flags,
      frame.payload,
      frame.fds.length,
    );
    const record = inspectBackendRequest(frame, this.protocolFeatures, this.features);
    this.requests.push(record);
    const fds = record.fds ? ` fds=${record.fds}` : '';
    this.#note(
      `<- ${record.name} flags=0x${record.flags.toString(16)} size=${record.size}${fds}` +
        (record.problems.length ? ` (${record.problems.join('; ')})` : ''),
    );
    const reply = replyFor(record);
    if (reply === undefined) return;
    record.reply = reply;
    const bytes = encodeFrame({
      request: frame.request,
      flags: HeaderFlag.VERSION | HeaderFlag.REPLY,
      payload: encodeU64(reply),
    });
    this.#note(`-> reply to ${record.name}: u64 ${reply}`);
    currentWireLog()?.backendChannelMessage(
      this,
      '->',
      frame.request,
      bytes.readUInt32LE(4),
      encodeU64(reply),
      0,
    );
    this.#channel.send(bytes, [], this.#sendTimeoutMs).catch((err: Error) => {
      if (!this.#closed) this.#fail(`replying to ${record.name}: ${err.message}`);
    });
  }

  #note(line: string): void {
    this.#wire.push(line);
    this.#log(line);
  }

  #fail(problem: string): void {
    this.#failures.push(problem);
    this.#note(`!! ${problem}`);
  }
}

/**
 * What we answer, or undefined for no reply. need_reply is answered whether or not REPLY_ACK was negotiated
 * (as QEMU does: a back-end that waits would hang otherwise): 0 for a request of the spec, which this
 * front-end takes as done even when it has nothing to do for it, non-zero for an unknown one.
 * SHARED_OBJECT_LOOKUP is always answered, with a failure and no fd: this front-end holds no shared object.
 */
function replyFor(record: BackendRequestRecord): bigint | undefined {
  if (record.request === BackendRequest.SHARED_OBJECT_LOOKUP) return ACK_FAILED;
  if (!(record.flags & HeaderFlag.NEED_REPLY)) return undefined;
  return BACKEND_NAMES.has(record.request) ? 0n : ACK_FAILED;
}

const BACKEND_NAMES = new Set<number>(Object.values(BackendRequest));

/**
 * Checks one back-end request against the spec: a known id, version 1, no reply flag, no reserved flag bit,
 * the payload size of its type, the fds its type allows, and the features it needs negotiated.
 */
export function inspectBackendRequest(
  frame: DecodedFrame,
  protocolFeatures: bigint,
  features: bigint,
): BackendRequestRecord {
  const name = backendRequestName(frame.request);
  const record: BackendRequestRecord = {
    request: frame.request,
    name,
    flags: frame.flags,
    size: frame.payload.length,
    fds: frame.fds.length,
    problems: [],
  };
  const problems = record.problems;
  if ((frame.flags & HeaderFlag.VERSION_MASK) !== HeaderFlag.VERSION)
    problems.push(`version ${frame.flags & HeaderFlag.VERSION_MASK}, expected 1`);
  if (frame.flags & HeaderFlag.REPLY) problems.push('the reply flag (bit 2) is set on a request');
  const reserved = frame.flags & ~DEFINED_FLAGS;
  if (reserved) problems.push(`reserved flag bits 0x${(reserved >>> 0).toString(16)} set`);
  if (!BACKEND_NAMES.has(frame.request)) {
    problems.push(`request id ${frame.request} is not a back-end message type`);
    return record;
  }
  try {
    record.message = decodeBackendRequest(frame.request, frame.payload);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    problems.push(err.message);
  }
  const info = BACKEND_REQUEST_INFO[name as BackendRequestName];
  const fdProblem = checkFds(info.fds, frame.fds.length, protocolFeatures);
  if (fdProblem) problems.push(fdProblem);
  if (info.protocolFeature && !negotiated(protocolFeatures, info.protocolFeature))
    problems.push(`sent without VHOST_USER_PROTOCOL_F_${info.protocolFeature} negotiated`);
  if (info.virtioFeature && !hasBit(features, VirtioFeature[info.virtioFeature]))
    problems.push(`sent without ${info.virtioFeature} negotiated`);
  if (
    frame.flags & HeaderFlag.NEED_REPLY &&
    info.reply.when === 'never' &&
    !negotiated(protocolFeatures, 'REPLY_ACK')
  )
    problems.push('need_reply set without VHOST_USER_PROTOCOL_F_REPLY_ACK negotiated');
  return record;
}

function negotiated(bits: bigint, feature: ProtocolFeatureName): boolean {
  return hasBit(bits, ProtocolFeature[feature]);
}

function checkFds(rule: FdRule, count: number, protocolFeatures: bigint): string | undefined {
  const allowed =
    rule.kind === 'none'
      ? [0]
      : rule.kind === 'atMostOne'
        ? [0, 1]
        : rule.kind === 'exactly'
          ? [rule.count]
          : [];
  if (!allowed.includes(count)) return `${count} fds, expected ${allowed.join(' or ')}`;
  if (count > 0 && !negotiated(protocolFeatures, 'BACKEND_SEND_FD'))
    return `${count} fds sent without VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD negotiated`;
  return undefined;
}
