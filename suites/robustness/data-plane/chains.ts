/** Descriptors of the well-formed request's parts, chained, placed, cut and changed as the inputs need them. */

import { type RawDescriptor, VirtqDescFlag } from '../../../harness/virtqueue/split-layout.js';
import type { Lane, Part } from './lane.js';

export const F = VirtqDescFlag;

/** The descriptor of `part`, chained to `next` when given. */
export function desc(part: Part, next?: number): RawDescriptor {
  return {
    addr: part.addr,
    len: part.len,
    flags: (part.write ? F.WRITE : 0) | (next === undefined ? 0 : F.NEXT),
    next: next ?? 0,
  };
}

/** `parts` as a chain of descriptors first..first+n-1, each chained to the next. */
export function chain(parts: readonly Part[], first = 0): RawDescriptor[] {
  return parts.map((p, i) => desc(p, i < parts.length - 1 ? first + i + 1 : undefined));
}

/** The same chain, with the last descriptor's next set (NEXT included) to `next`. */
export function chainTo(parts: readonly Part[], next: number): RawDescriptor[] {
  const out = chain(parts);
  out[out.length - 1] = desc(parts.at(-1)!, next);
  return out;
}

/** Descriptors placed from index `first` of the ring's table. */
export function placed(descs: readonly RawDescriptor[], first = 0): Array<[number, RawDescriptor]> {
  return descs.map((d, i) => [first + i, d]);
}

export function indirectTo(table: bigint, entries: number, extra = 0, next = 0): RawDescriptor {
  return { addr: table, len: 16 * entries, flags: F.INDIRECT | extra, next };
}

/** `parts` with part `i` changed. */
export function changed(parts: readonly Part[], i: number, change: Partial<Part>): Part[] {
  return parts.map((p, k) => (k === i ? { ...p, ...change } : p));
}

/**
 * `parts` cut into `count` descriptors: the longest one is split into equal pieces (the last takes the rest).
 * A buffer of fewer bytes than pieces (input's 8-byte status event) is cut into 1-byte pieces that go round
 * it again: every piece still inside the buffer.
 */
export function cutInto(parts: readonly Part[], count: number): Part[] {
  const longest = parts.reduce((best, p, i) => (p.len > parts[best]!.len ? i : best), 0);
  const whole = parts[longest]!;
  const pieces = count - (parts.length - 1);
  const step = Math.floor(whole.len / pieces);
  if (step < 1) {
    const round = Array.from({ length: pieces }, (_, k) => ({
      addr: whole.addr + BigInt(k % whole.len),
      len: 1,
      write: whole.write,
    }));
    return [...parts.slice(0, longest), ...round, ...parts.slice(longest + 1)];
  }
  const cut = Array.from({ length: pieces }, (_, k) => ({
    addr: whole.addr + BigInt(k * step),
    len: k === pieces - 1 ? whole.len - k * step : step,
    write: whole.write,
  }));
  return [...parts.slice(0, longest), ...cut, ...parts.slice(longest + 1)];
}

/** The first part the device must write (block data), or undefined (net transmit). */
export function firstWritable(lane: Lane): number | undefined {
  const i = lane.parts.findIndex((p) => p.write);
  return i < 0 ? undefined : i;
}

/** The part a buffer-address input moves: the first writable one when there is one, else the last. */
export function movedPart(lane: Lane): number {
  return firstWritable(lane) ?? lane.parts.length - 1;
}
