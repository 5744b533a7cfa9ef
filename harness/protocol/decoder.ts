import { ProtocolError } from '../errors.js';
import type { Frame } from './encoder.js';
import { HEADER_SIZE } from './spec.js';

export interface DecodedFrame extends Frame {
  /** The fds that arrived with this message's bytes. */
  fds: number[];
}

/**
 * Incremental decoder: feed it bytes as they arrive (with any fds received alongside), and it yields whole
 * messages once header plus `size` bytes are there. A payload larger than `maxPayload` is a protocol error
 * raised as soon as the header is seen, so a peer announcing gigabytes never makes us buffer them.
 *
 * Which message fds belong to: each message is sent with one sendmsg, its fds attached to its bytes, and a
 * Unix stream recvmsg returns the fds of a sendmsg together with bytes from it and stops there. So the fds of
 * one read belong to the last message that starts within the bytes read, or, when none starts there, to
 * the message those bytes continue. This holds however the reads cut the stream.
 */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  /** Stream offset of buffered[0]. */
  private base = 0;
  /** fds by the stream offset of the message they belong to. */
  private readonly fdsAt = new Map<number, number[]>();
  constructor(private readonly maxPayload = 64 * 1024) {}

  push(chunk: Buffer, fds: number[] = []): DecodedFrame[] {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (fds.length) {
      const owner = this.ownerOf();
      this.fdsAt.set(owner, [...(this.fdsAt.get(owner) ?? []), ...fds]);
    }
    const frames: DecodedFrame[] = [];
    while (this.buffered.length >= HEADER_SIZE) {
      const size = this.buffered.readUInt32LE(8);
      if (size > this.maxPayload) {
        throw new ProtocolError(
          `message announces a ${size}-byte payload, more than the ${this.maxPayload} any message can have`,
          this.buffered.subarray(0, HEADER_SIZE),
        );
      }
      if (this.buffered.length < HEADER_SIZE + size) break;
      frames.push({
        request: this.buffered.readUInt32LE(0),
        flags: this.buffered.readUInt32LE(4),
        payload: Buffer.from(this.buffered.subarray(HEADER_SIZE, HEADER_SIZE + size)),
        fds: this.fdsAt.get(this.base) ?? [],
      });
      this.fdsAt.delete(this.base);
      this.buffered = this.buffered.subarray(HEADER_SIZE + size);
      this.base += HEADER_SIZE + size;
    }
    return frames;
  }

  /**
   * The stream offset of the message that owns fds read with the bytes just appended: the last message
   * starting before the end of the buffer (which, when none starts in the new bytes, is the one they continue).
   */
  private ownerOf(): number {
    const end = this.base + this.buffered.length;
    let owner = this.base;
    // Walk the message starts we can see; the last one before the end of what was read owns the fds.
    for (let at = this.base; at < end; ) {
      owner = at;
      const rel = at - this.base;
      if (rel + HEADER_SIZE > this.buffered.length) break;
      at += HEADER_SIZE + this.buffered.readUInt32LE(rel + 8);
    }
    return owner;
  }

  /** Bytes received that do not yet make a whole message. */
  get pendingBytes(): number {
    return this.buffered.length;
  }

  /** fds received with bytes of messages not yet complete (the caller closes them when it gives up). */
  takePendingFds(): number[] {
    const fds = [...this.fdsAt.values()].flat();
    this.fdsAt.clear();
    return fds;
  }
}
