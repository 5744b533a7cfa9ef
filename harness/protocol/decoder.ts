import { ProtocolError } from '../errors.js';
import type { Frame } from './encoder.js';
import { HEADER_SIZE, MAX_FDS_PER_MESSAGE } from './spec.js';

export interface DecodedFrame extends Frame {
  /** The fds that arrived with this message's bytes. */
  fds: number[];
}

/**
 * Incremental decoder: feed it bytes as they arrive (with any fds received alongside), and it yields whole
 * messages once header plus `size` bytes are there. A payload larger than `maxPayload` is a protocol error
 * raised as soon as the header is seen, so a peer announcing gigabytes never makes us buffer them; so are
 * more than `maxFds` fds for one message. What it holds is bounded: the bytes of one message (plus the last
 * read) and the fds of messages not yet whole.
 *
 * Which message fds belong to: each message is sent with one sendmsg, its fds attached to its bytes, and a
 * Unix stream recvmsg returns the fds of a sendmsg together with bytes from it and stops there. So the fds of
 * one read belong to the last message that starts within the bytes read, or, when none starts there, to
 * the message those bytes continue. This holds however the reads cut the stream.
 *
 * After a ProtocolError the decoder is spent: every later push throws the same error. The fds passed to the
 * push that threw stay the caller's; the fds of every message it had not returned stay pending
 * (`takePendingFds`), so that each fd has exactly one owner who closes it.
 */
export class FrameDecoder {
  /** Bytes received and not yet returned are store[start, end); the store grows by doubling. */
  private store: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  /** Stream offset of store[start]. */
  private base = 0;
  /** fds by the stream offset of the message they belong to. */
  private readonly fdsAt = new Map<number, number[]>();
  private failure: ProtocolError | undefined;
  constructor(
    private readonly maxPayload = 64 * 1024,
    private readonly maxFds = MAX_FDS_PER_MESSAGE,
  ) {}

  push(chunk: Uint8Array, fds: number[] = []): DecodedFrame[] {
    if (this.failure) throw this.failure;
    this.append(chunk);
    const owner = this.ownerOf();
    if (fds.length) {
      const held = this.fdsAt.get(owner) ?? [];
      if (held.length + fds.length > this.maxFds) {
        throw this.spent(
          new ProtocolError(
            `${held.length + fds.length} fds came with the bytes of one message, more than the ${this.maxFds} a message can carry`,
          ),
        );
      }
      this.fdsAt.set(owner, [...held, ...fds]);
    }
    const frames: DecodedFrame[] = [];
    for (;;) {
      const buffered = this.store.subarray(this.start, this.end);
      if (buffered.length < HEADER_SIZE) break;
      const size = buffered.readUInt32LE(8);
      if (size > this.maxPayload) {
        // This push's fds are the caller's again; those of the frames it will not get back stay pending.
        if (fds.length) this.fdsAt.set(owner, (this.fdsAt.get(owner) ?? []).slice(0, -fds.length));
        if (!this.fdsAt.get(owner)?.length) this.fdsAt.delete(owner);
        // Frames this push completed but will not return: their fds go back to pending, under keys no
        // stream offset takes.
        for (const frame of frames) if (frame.fds.length) this.fdsAt.set(-1 - this.fdsAt.size, frame.fds);
        throw this.spent(
          new ProtocolError(
            `message announces a ${size}-byte payload, more than the ${this.maxPayload} any message can have`,
            Buffer.from(buffered.subarray(0, HEADER_SIZE)),
          ),
        );
      }
      if (buffered.length < HEADER_SIZE + size) break;
      frames.push({
        request: buffered.readUInt32LE(0),
        flags: buffered.readUInt32LE(4),
        payload: Buffer.from(buffered.subarray(HEADER_SIZE, HEADER_SIZE + size)),
        fds: this.fdsAt.get(this.base) ?? [],
      });
      this.fdsAt.delete(this.base);
      this.start += HEADER_SIZE + size;
      this.base += HEADER_SIZE + size;
    }
    if (this.start === this.end) this.start = this.end = 0;
    return frames;
  }

  private spent(err: ProtocolError): ProtocolError {
    this.failure = err;
    return err;
  }

  /** Copies `chunk` behind what is buffered: amortized linear however finely the reads cut the stream. */
  private append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    if (this.end + chunk.length > this.store.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * (held + chunk.length), 256));
      this.store.copy(grown, 0, this.start, this.end);
      this.store = grown;
      this.start = 0;
      this.end = held;
    }
    this.store.set(chunk, this.end);
    this.end += chunk.length;
  }

  /**
   * The stream offset of the message that owns fds read with the bytes just appended: the last message
   * starting before the end of the buffer (which, when none starts in the new bytes, is the one they continue).
   */
  private ownerOf(): number {
    const buffered = this.store.subarray(this.start, this.end);
    const end = this.base + buffered.length;
    let owner = this.base;
    // Walk the message starts we can see; the last one before the end of what was read owns the fds.
    for (let at = this.base; at < end; ) {
      owner = at;
      const rel = at - this.base;
      if (rel + HEADER_SIZE > buffered.length) break;
      at += HEADER_SIZE + buffered.readUInt32LE(rel + 8);
    }
    return owner;
  }

  /** Bytes received that do not yet make a whole message. */
  get pendingBytes(): number {
    return this.end - this.start;
  }

  /** fds received with bytes of messages not yet returned (the caller closes them when it gives up). */
  takePendingFds(): number[] {
    const fds = [...this.fdsAt.values()].flat();
    this.fdsAt.clear();
    return fds;
  }
}
