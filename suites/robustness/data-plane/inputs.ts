/**
 * The malformed inputs, each a plan written over the well-formed request's parts: chains that loop or point
 * past their table (CHAIN_INPUTS), and buffers outside guest memory, of zero length or of the wrong direction
 * (BUFFER_INPUTS).
 */

import type { RawDescriptor } from '../../../harness/virtqueue/split-layout.js';
import {
  chain,
  chainTo,
  changed,
  cutInto,
  desc,
  F,
  firstWritable,
  indirectTo,
  movedPart,
  placed,
} from './chains.js';
import { type Lane, OUTSIDE, SIZE, TABLE_ENTRIES, TAIL } from './lane.js';

/** A buffer running past its region's end goes this far past it. */
const PAST_END = 512;
const U64_END = 1n << 64n;

/** What an input writes: descriptors of the ring's table, indirect tables, the avail entries and index. */
export interface Plan {
  descs: Array<[number, RawDescriptor]>;
  tables?: Array<[0 | 1, RawDescriptor[]]>;
  /** Heads put in the available ring (default [0]). */
  heads?: number[];
  /** avail.idx moved by this much instead of by the heads written. */
  ahead?: number;
}

export interface Input {
  input: string;
  /**
   * It malforms the buffers the device writes: on the kind's writable request (DeviceKind.writable; net: a
   * receive buffer, which a frame sent on the transmit queue fills, the transmit queue having nothing the
   * device writes).
   */
  writes?: boolean;
  build(lane: Lane): Plan;
}

export const CHAIN_INPUTS: readonly Input[] = [
  { input: 'a descriptor whose next is itself', build: (l) => ({ descs: [[0, desc(l.parts[0]!, 0)]] }) },
  {
    input: 'a chain whose last next goes back to its head',
    build: (l) => ({ descs: placed(chainTo(l.parts, 0)) }),
  },
  {
    input: 'a chain in an indirect table whose last next goes back to its first',
    build: (l) => ({
      tables: [[0, chainTo(l.parts, 0)]],
      descs: [[0, indirectTo(l.tables[0], l.parts.length)]],
    }),
  },
  { input: 'next past the queue size', build: (l) => ({ descs: [[0, desc(l.parts[0]!, SIZE)]] }) },
  {
    input: 'next past the end of an indirect table',
    build: (l) => ({
      tables: [[0, chainTo(l.parts, l.parts.length)]],
      descs: [[0, indirectTo(l.tables[0], l.parts.length)]],
    }),
  },
  {
    input: 'a chain longer than the queue size (an indirect table of queue size + 2 descriptors)',
    build: (l) => ({
      tables: [[0, chain(cutInto(l.parts, TABLE_ENTRIES))]],
      descs: [[0, indirectTo(l.tables[0], TABLE_ENTRIES)]],
    }),
  },
  {
    input: 'an indirect descriptor inside an indirect table',
    build: (l) => ({
      tables: [
        [0, [indirectTo(l.tables[1], l.parts.length)]],
        [1, chain(l.parts)],
      ],
      descs: [[0, indirectTo(l.tables[0], 1)]],
    }),
  },
  {
    input: 'an indirect descriptor with NEXT set',
    build: (l) => ({
      tables: [[0, chain(l.parts)]],
      descs: [
        [0, indirectTo(l.tables[0], l.parts.length, F.NEXT, 1)],
        [1, desc(l.parts.at(-1)!)],
      ],
    }),
  },
  {
    input: 'an indirect table of 17 bytes',
    build: (l) => ({
      tables: [[0, chain(l.parts)]],
      descs: [[0, { ...indirectTo(l.tables[0], 1), len: 17 }]],
    }),
  },
  {
    input: 'an avail entry past the queue size',
    build: (l) => ({ descs: placed(chain(l.parts)), heads: [SIZE + 5] }),
  },
  {
    input: 'avail.idx moved queue size + 1 entries ahead',
    build: (l) => ({ descs: placed(chain(l.parts)), ahead: SIZE + 1 }),
  },
];

export const BUFFER_INPUTS: readonly Input[] = [
  {
    input: 'a device-readable buffer outside guest memory',
    build: (l) => ({ descs: placed(chain(changed(l.parts, 0, { addr: OUTSIDE }))) }),
  },
  {
    input: 'a device-writable buffer outside guest memory',
    writes: true,
    build: (l) => ({ descs: placed(chain(changed(l.parts, firstWritable(l)!, { addr: OUTSIDE }))) }),
  },
  {
    input: 'a buffer running past the end of its region into unmapped guest memory',
    build: (l) => ({
      descs: placed(chain(changed(l.parts, movedPart(l), { addr: l.tail, len: TAIL + PAST_END }))),
    }),
  },
  {
    input: 'a buffer whose addr + len wraps past 2^64',
    build: (l) => ({
      descs: placed(chain(changed(l.parts, movedPart(l), { addr: U64_END - 0x100n, len: 0x200 }))),
    }),
  },
  {
    input: 'an indirect table outside guest memory',
    build: (l) => ({ descs: [[0, indirectTo(OUTSIDE, l.parts.length)]] }),
  },
  {
    input: 'a zero-length first buffer',
    build: (l) => ({ descs: placed(chain(changed(l.parts, 0, { len: 0 }))) }),
  },
  {
    input: 'a zero-length last buffer',
    build: (l) => ({ descs: placed(chain(changed(l.parts, l.parts.length - 1, { len: 0 }))) }),
  },
  {
    input: 'every buffer zero-length',
    build: (l) => ({ descs: placed(chain(l.parts.map((p) => ({ ...p, len: 0 })))) }),
  },
  {
    input: 'the buffer the device reads marked device-writable',
    build: (l) => ({ descs: placed(chain(l.parts.map((p) => ({ ...p, write: true })))) }),
  },
  {
    input: 'the buffers the device writes marked device-readable',
    writes: true,
    build: (l) => ({ descs: placed(chain(l.parts.map((p) => ({ ...p, write: false })))) }),
  },
  {
    input: 'a head-only request (one descriptor, no data, no status)',
    build: (l) => ({ descs: placed(chain([l.parts[0]!])) }),
  },
];
