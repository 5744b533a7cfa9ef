/**
 * The out-of-bounds oracle: what the device must leave as it is while it takes a request (the descriptor and
 * indirect tables, the available rings once published, device-readable buffers, the request's buffers no
 * device-writable descriptor covers), copied before and compared after, and the guard bytes around every
 * guarded area and over all free guest memory.
 */
import { BackendError, hexdump } from '../../../harness/errors.js';
import type { GuardViolation } from '../../../harness/memory/guest-memory.js';
import type { RawDescriptor } from '../../../harness/virtqueue/split-layout.js';
import { F } from './chains.js';
import type { Area, Lane, Part } from './lane.js';

/** What the device must leave as it is, and a copy of it taken when the request was posted. */
export interface Snapshot {
  areas: Area[];
  bytes: Uint8Array[];
}

/**
 * The device-readable buffers among `descs` (INDIRECT ones are tables, already watched) that lie in guest
 * memory: "A device MUST NOT write to a device-readable buffer".
 */
export function readableBuffers(lane: Lane, descs: Iterable<RawDescriptor>): Area[] {
  const out: Area[] = [];
  for (const d of descs) {
    if (d.flags & (F.WRITE | F.INDIRECT) || d.len === 0) continue;
    if (out.some((a) => a.gpa === d.addr && a.len === d.len)) continue;
    try {
      lane.memory.read(d.addr, d.len);
    } catch {
      continue; // not (all) in guest memory: nothing there to write
    }
    out.push({
      label: `the device-readable buffer at guest 0x${d.addr.toString(16)} (${d.len} bytes)`,
      gpa: d.addr,
      len: d.len,
    });
  }
  return out;
}

/**
 * The parts of the well-formed request that no device-writable descriptor among `descs` reaches (a zero-length
 * one reaches nothing): the device was not given them to write, so they must stay as they are. Parts that
 * `watched` areas cover already are left out (one write, one report).
 */
export function partsNotWritable(
  lane: Lane,
  descs: readonly RawDescriptor[],
  watched: readonly Area[],
): Area[] {
  const writable = descs.filter((d) => d.flags & F.WRITE && !(d.flags & F.INDIRECT) && d.len > 0);
  const overlaps = (a: { addr: bigint; len: number }, gpa: bigint, len: number) =>
    gpa < a.addr + BigInt(a.len) && a.addr < gpa + BigInt(len);
  return lane.parts
    .filter((p) => !writable.some((d) => overlaps(p, d.addr, d.len)) && !coveredBy(p, watched))
    .map((p) => ({
      label: `the ${p.len}-byte buffer at guest 0x${p.addr.toString(16)}`,
      why: 'which no device-writable descriptor of the request covers',
      gpa: p.addr,
      len: p.len,
    }));
}

/** Whether every byte of `part` lies in one of `areas`. */
function coveredBy(part: Part, areas: readonly Area[]): boolean {
  let at = part.addr;
  const end = part.addr + BigInt(part.len);
  for (const a of [...areas].sort((x, y) => (x.gpa < y.gpa ? -1 : x.gpa > y.gpa ? 1 : 0))) {
    if (a.gpa > at) break;
    const aEnd = a.gpa + BigInt(a.len);
    if (aEnd > at) at = aEnd;
    if (at >= end) return true;
  }
  return at >= end;
}

/**
 * Copies of what the device only reads: the descriptor and indirect tables and `readable`, taken before the
 * request is published (a device that polls may take it at once); the available rings are added once it is
 * (`publishedTo`).
 */
export function snapshot(lane: Lane, readable: readonly Area[]): Snapshot {
  const areas = [...lane.readOnly, ...readable];
  return { areas, bytes: areas.map((a) => lane.memory.read(a.gpa, a.len)) };
}

/** `before` with the available rings as published. */
export function publishedTo(lane: Lane, before: Snapshot): Snapshot {
  return {
    areas: [...before.areas, ...lane.availRings],
    bytes: [...before.bytes, ...lane.availRings.map((a) => lane.memory.read(a.gpa, a.len))],
  };
}

/**
 * Every write outside the buffers the device may write: guard bytes changed, areas of `before` (read-only ones,
 * buffers it was not given to write) changed.
 */
export function outOfBounds(lane: Lane, before: Snapshot): string[] {
  const out = lane.memory.checkGuards().map(describeViolation);
  before.areas.forEach((area, i) => {
    const now = lane.memory.read(area.gpa, area.len);
    const was = before.bytes[i]!;
    const first = now.findIndex((b, k) => b !== was[k]);
    if (first < 0) return;
    let last = now.length - 1;
    while (now[last] === was[last]) last--;
    out.push(
      `at guest 0x${(area.gpa + BigInt(first)).toString(16)}: ${hexdump(now.subarray(first, last + 1), HEX_SHOWN)} ` +
        `(was ${hexdump(was.subarray(first, last + 1), HEX_SHOWN)}), byte ${first} of ${area.label}, ${area.why ?? 'which the device only reads'}`,
    );
  });
  return out;
}

/** Bytes shown of a write out of bounds, and of what was there. */
const HEX_SHOWN = 16;

function describeViolation(v: GuardViolation): string {
  return `at guest 0x${v.gpa.toString(16)}: ${hexdump(v.bytes, HEX_SHOWN)} (guard bytes ${hexdump(v.expected, HEX_SHOWN)}), ${v.nextTo}`;
}

export function outOfBoundsError(input: string, writes: readonly string[]): BackendError {
  const more = writes.length > 4 ? `; and ${writes.length - 4} more` : '';
  return new BackendError(
    `after ${input}, the device wrote where it may not (outside the buffers it may write): ${writes.slice(0, 4).join('; ')}${more}`,
  );
}
