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
 */
export class FrameDecoder {
  private buffered: Buffer = Buffer.alloc(0);
  private pendingFds: number[] = [];
  constructor(private readonly maxPayload = 64 * 1024) {}

  push(chunk: Buffer, fds: number[] = []): DecodedFrame[] {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    this.pendingFds.push(...fds);
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
        fds: this.pendingFds,
      });
      this.pendingFds = [];
      this.buffered = this.buffered.subarray(HEADER_SIZE + size);
    }
    return frames;
  }

  /** Bytes received that do not yet make a whole message. */
  get pendingBytes(): number {
    return this.buffered.length;
  }
}
