/**
 * One end of a byte stream that ends when its writer closes it: a pipe, as vhost-user's device state transfer
 * channel "must generally behave like a pipe". The end is made non-blocking and waited on with an FdWaiter, so
 * a state larger than the pipe's buffer moves while the peer reads or writes the other end, and every wait on
 * the peer has a deadline. The caller owns the fd (and closes it: for a writer, that is the end of the data).
 */
import fs from 'node:fs';
import { FdWaiter } from './fd-waiter.js';
import { PollEvent, setNonBlocking } from './libc.js';

/** How much one read takes at most. */
const CHUNK = 64 * 1024;

export interface StreamOptions {
  /** Names the fd in errors (`the device state channel`). */
  what: string;
  /** The longest wait for the peer to make progress (a byte to read, room to write). */
  timeoutMs: number;
}

export interface ReadToEnd {
  data: Buffer;
  /** `eof`: the writer closed its end; `timeout`: no byte and no end within a wait; `limit`: `maxBytes` passed. */
  end: 'eof' | 'timeout' | 'limit';
}

export interface WriteAll {
  written: number;
  /** `done`: every byte written; `timeout`: no room within a wait; `closed`: the reader closed its end (EPIPE). */
  end: 'done' | 'timeout' | 'closed';
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Reads `fd` until end of file, a wait with nothing to read, or more than `maxBytes`. */
export async function readToEnd(
  fd: number,
  options: StreamOptions & { maxBytes: number },
): Promise<ReadToEnd> {
  setNonBlocking(fd);
  const waiter = new FdWaiter(fd, options.what);
  const chunks: Buffer[] = [];
  let total = 0;
  const result = (end: ReadToEnd['end']): ReadToEnd => ({ data: Buffer.concat(chunks), end });
  try {
    for (;;) {
      const chunk = Buffer.alloc(CHUNK);
      let n: number;
      try {
        n = fs.readSync(fd, chunk, 0, CHUNK, null);
      } catch (err) {
        if (errorCode(err) !== 'EAGAIN') throw err;
        if ((await waiter.wait(PollEvent.POLLIN, options.timeoutMs)) === 0) return result('timeout');
        continue;
      }
      if (n === 0) return result('eof');
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > options.maxBytes) return result('limit');
    }
  } finally {
    waiter.close();
  }
}

/** Writes all of `data` to `fd`, waiting for room as the reader takes it. */
export async function writeAll(fd: number, data: Uint8Array, options: StreamOptions): Promise<WriteAll> {
  setNonBlocking(fd);
  const waiter = new FdWaiter(fd, options.what);
  let written = 0;
  try {
    while (written < data.length) {
      try {
        written += fs.writeSync(fd, data, written, data.length - written);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'EPIPE') return { written, end: 'closed' };
        if (code !== 'EAGAIN') throw err;
        const revents = await waiter.wait(PollEvent.POLLOUT, options.timeoutMs);
        if (revents === 0) return { written, end: 'timeout' };
      }
    }
    return { written, end: 'done' };
  } finally {
    waiter.close();
  }
}
