/**
 * Data plane robustness (issue 5): a running device (block, net, fs, or gpu with its display attached) is fed
 * malformed virtqueue content through the split driver's raw access (descriptors, indirect tables and avail
 * entries written as given). Each input goes to a fresh subject (oracle.ts) and is judged by two oracles: the
 * crash/hang oracle (it must answer, or close the connection cleanly) and the out-of-bounds oracle (guard bytes
 * around every buffer and ring part, and over all free guest memory; what the device only reads, and the
 * request's buffers no device-writable descriptor covers, unchanged; checked after each request: a write outside
 * the buffers it was given is a failure naming the address, the bytes and what it is next to). What the device
 * does with the bad request itself (complete it with an error status, stop the queue, close) is free, and
 * reported.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BLK_HEADER_SIZE,
  encodeBlkHeader,
  SECTOR_SIZE,
  VirtioBlkType,
} from '../../harness/devices/block/blk.js';
import {
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FuseInHeader,
  FuseInitIn,
  FuseInitOut,
  FuseOpcode,
  FuseOutHeader,
} from '../../harness/devices/fs/fuse.js';
import { encodeGetDisplayInfo } from '../../harness/devices/gpu/gpu.js';
import { ctrlTypeName, VirtioGpuSize } from '../../harness/devices/gpu/spec.js';
import { encodeNetHdr, MAX_FRAME, NET_HDR_SIZE, testFrame } from '../../harness/devices/net/net.js';
import { BackendError, hexdump, SkipError } from '../../harness/errors.js';
import { FrontendDevice, type Vring } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import type { GuardViolation, GuestMemory } from '../../harness/memory/guest-memory.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import {
  availRingSize,
  dataView,
  descTableSize,
  type RawDescriptor,
  type RawUsedElement,
  type RingPlacement,
  type SplitVirtqueue,
  usedRingSize,
  VirtqDescFlag,
  writeRawDescriptor,
} from '../../harness/virtqueue/split.js';
import { attachDisplay } from '../devices/gpu.js';
import { quietMs } from '../vring/common.js';
import {
  crashReport,
  exitNote,
  freshSubject,
  HARDENING_RULE,
  outcomeAfter,
  releaseSubject,
  type Subject,
  type Tried,
  tryInputs,
} from './oracle.js';

const DataPlaneSpec = {
  descriptorTable: 'virtio-spec#sec-virtqueues-the-virtqueue-descriptor-table',
  memoryAccess: 'vhost-user.rst#memory-access',
} as const;

/** The queue size of the ring the inputs go to: small, so that "longer than the queue" stays small too. */
const SIZE = 64;
/** Entries of each indirect table area: enough for a chain longer than the queue. */
const TABLE_ENTRIES = SIZE + 2;
/** A guest address in no region of the layout (checked when a lane opens). */
const OUTSIDE = 0x4000_0000n;
/** Bytes left at the very end of a region that a gap follows. */
const TAIL = 8;
/** The frame a net request carries: long enough to be cut into more descriptors than the queue holds. */
const FRAME = 128;
const U64_END = 1n << 64n;

/** One buffer of the well-formed request. */
interface Part {
  addr: bigint;
  len: number;
  write: boolean;
}

/** A device started on a subject, with guest memory laid out in guarded areas, and its well-formed request. */
interface Lane {
  type: DataPlaneType;
  subject: Subject;
  device: FrontendDevice;
  memory: GuestMemory;
  /**
   * The vring the inputs go to (block: requestq; net: transmitq0, or receiveq0 for inputs that `writes`; fs:
   * the first request queue; gpu: the control queue).
   */
  ring: Vring;
  queue: SplitVirtqueue;
  /** VIRTIO_RING_F_INDIRECT_DESC negotiated (inputs with INDIRECT are malformed either way without it). */
  indirect: boolean;
  /**
   * The well-formed request: block header, data, status; net header, frame; fs FUSE_INIT and its reply; gpu
   * GET_DISPLAY_INFO and its response.
   */
  parts: Part[];
  /** Writes the request's contents again (a device may have written over them). */
  refill(): void;
  /**
   * What makes the device use a buffer of `ring`: for a net receive queue, a frame sent (posted with the
   * request, kicked after it).
   */
  trigger?: { post(): void; kick(): void };
  /** Two guarded areas of TABLE_ENTRIES descriptors each, for indirect tables. */
  tables: [bigint, bigint];
  /** TAIL bytes ending a region that no region follows. */
  tail: bigint;
  /** What the device only reads: every ring's descriptor table, and the indirect tables. */
  readOnly: Area[];
  /** Every ring's available ring, which the device only reads too (copied once published). */
  availRings: Area[];
  closed: () => boolean;
}

/** What an input writes: descriptors of the ring's table, indirect tables, the avail entries and index. */
interface Plan {
  descs: Array<[number, RawDescriptor]>;
  tables?: Array<[0 | 1, RawDescriptor[]]>;
  /** Heads put in the available ring (default [0]). */
  heads?: number[];
  /** avail.idx moved by this much instead of by the heads written. */
  ahead?: number;
}

interface Input {
  input: string;
  /**
   * It malforms the buffers the device writes: on a net device those of the receive queue, which a frame sent
   * on the transmit queue fills (the transmit queue has nothing the device writes).
   */
  writes?: boolean;
  build(lane: Lane): Plan;
}

/** The device types the inputs are driven on. */
type DataPlaneType = 'block' | 'net' | 'fs' | 'gpu';

function requireDataPlaneType(ctx: CheckContext): DataPlaneType {
  const type = ctx.target.type;
  if (type === 'block' || type === 'net' || type === 'fs' || type === 'gpu') return type;
  throw new SkipError(
    type === null
      ? 'the device type is unknown (no --type, and --print-capabilities named none): no request to malform'
      : `device type ${type}: the data-plane checks drive block, net, fs and gpu devices`,
  );
}

const bit = (n: number) => 1n << BigInt(n);

/**
 * A fresh device on `subject`: the run's front-end profile's start-up (for gpu, the display attached), VERSION_1
 * (and INDIRECT_DESC when offered), rings and buffers in guarded areas, every other byte of guest memory guard
 * bytes, rings enabled.
 */
async function openLane(
  ctx: CheckContext,
  type: DataPlaneType,
  subject: Subject,
  writes: boolean,
): Promise<Lane> {
  const { session } = subject;
  let closed = false;
  session.connection.closed.then(
    () => {
      closed = true;
    },
    () => {
      closed = true;
    },
  );
  const started = await initTargetSession(ctx, session, { protocol: true });
  const offered = started.offered;
  if (type !== 'block' && !hasBit(offered, VirtioFeature.VIRTIO_F_VERSION_1)) {
    throw new SkipError(`VIRTIO_F_VERSION_1 is not offered: a legacy ${type} device is not driven`);
  }
  // Indirect tables where offered and the front-end profile passes them on.
  const features = ackFeatures(
    started,
    bit(VirtioFeature.VIRTIO_F_VERSION_1) | bit(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC),
  );
  const indirect = hasBit(features, VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC);

  const device = new FrontendDevice(session, ctx.scope);
  const memory = device.memory;
  if (memory.regionAt(OUTSIDE)) throw new Error(`guest 0x${OUTSIDE.toString(16)} is mapped: pick another`);
  const regions = memory.regions;
  const ringRegion = regions.at(-1)!.guestAddress;
  const low = regions[0]!.guestAddress;
  const middle = (regions[1] ?? regions[0]!).guestAddress;
  // net: receiveq0 and transmitq0; fs: the hiprio queue and the first request queue; gpu: control and cursor.
  const indices = type === 'block' ? [0] : [0, 1];
  const placements: RingPlacement[] = indices.map((i) => ({
    descTable: memory.allocGuarded(`the descriptor table of vring ${i}`, descTableSize(SIZE), 16, {
      region: ringRegion,
    }),
    availRing: memory.allocGuarded(`the available ring of vring ${i}`, availRingSize(SIZE), 2, {
      region: ringRegion,
    }),
    usedRing: memory.allocGuarded(`the used ring of vring ${i}`, usedRingSize(SIZE), 4, {
      region: ringRegion,
    }),
  }));
  const tables: [bigint, bigint] = [
    memory.allocGuarded('indirect table 1', descTableSize(TABLE_ENTRIES), 16, { region: ringRegion }),
    memory.allocGuarded('indirect table 2', descTableSize(TABLE_ENTRIES), 16, { region: ringRegion }),
  ];
  let parts: Part[];
  let refill: () => void;
  let trigger: ((device: FrontendDevice) => { post(): void; kick(): void }) | undefined;
  if (type === 'block') {
    // The data first in the lowest region, 4 KiB aligned: an address wrapping past 2^64 lands in its guard.
    const data = memory.allocGuarded('the data buffer of the request', SECTOR_SIZE, 4096, { region: low });
    const status = memory.allocGuarded('the status byte of the request', 1, 1, { region: low });
    const header = memory.allocGuarded('the request header', BLK_HEADER_SIZE, 16, { region: middle });
    parts = [
      { addr: header, len: BLK_HEADER_SIZE, write: false },
      { addr: data, len: SECTOR_SIZE, write: true },
      { addr: status, len: 1, write: true },
    ];
    // A read of sector 0: nothing a malformed request does to it writes the disk.
    refill = () => {
      memory.write(header, encodeBlkHeader(VirtioBlkType.IN, 0n));
      memory.fillGuard(data, SECTOR_SIZE);
      memory.write(status, Uint8Array.of(0xff));
    };
  } else if (type === 'gpu') {
    // GET_DISPLAY_INFO: a command every gpu answers (from the display's modes), with a response to write.
    const responseLen = VirtioGpuSize.RESP_DISPLAY_INFO;
    // In the lowest region, 4 KiB aligned, as the block data: an address wrapping past 2^64 lands in its guard.
    const response = memory.allocGuarded('the response buffer of the command', responseLen, 4096, {
      region: low,
    });
    const command = encodeGetDisplayInfo();
    const request = memory.allocGuarded('the command (GET_DISPLAY_INFO)', command.length, 16, {
      region: middle,
    });
    parts = [
      { addr: request, len: command.length, write: false },
      { addr: response, len: responseLen, write: true },
    ];
    refill = () => {
      memory.write(request, command);
      memory.fillGuard(response, responseLen);
    };
  } else if (type === 'fs') {
    // FUSE_INIT: what a driver sends first, and what every file system device answers.
    const out = memory.allocGuarded(
      'the reply buffer of the request',
      FuseOutHeader.size + FuseInitOut.size,
      4096,
      {
        region: low,
      },
    );
    const inLen = FuseInHeader.size + FuseInitIn.size;
    const request = memory.allocGuarded('the request (fuse_in_header, fuse_init_in)', inLen, 16, {
      region: middle,
    });
    parts = [
      { addr: request, len: inLen, write: false },
      { addr: out, len: FuseOutHeader.size + FuseInitOut.size, write: true },
    ];
    refill = () => {
      memory.write(
        request,
        Buffer.concat([
          FuseInHeader.encode({ len: inLen, opcode: FuseOpcode.INIT, unique: 1n }),
          FuseInitIn.encode({
            major: FUSE_KERNEL_VERSION,
            minor: FUSE_KERNEL_MINOR_VERSION,
            max_readahead: 0x2_0000,
          }),
        ]),
      );
      memory.fillGuard(out, FuseOutHeader.size + FuseInitOut.size);
    };
  } else {
    const buffer = memory.allocGuarded('the transmit buffer (header and frame)', NET_HDR_SIZE + FRAME, 16, {
      region: middle,
    });
    const frame = () => {
      memory.write(buffer, encodeNetHdr({ numBuffers: 0 }));
      memory.write(buffer + BigInt(NET_HDR_SIZE), testFrame(0x5ad0, 0, FRAME));
    };
    if (writes) {
      // In the lowest region, 4 KiB aligned, as the block data: an address wrapping past 2^64 lands in its guard.
      const rx = memory.allocGuarded('the receive buffer', NET_HDR_SIZE + MAX_FRAME, 4096, { region: low });
      parts = [{ addr: rx, len: NET_HDR_SIZE + MAX_FRAME, write: true }];
      refill = () => {
        memory.fillGuard(rx, NET_HDR_SIZE + MAX_FRAME);
        frame();
      };
      // One well-formed frame on transmitq0 (descriptor 0, again and again) for the receive buffer posted.
      trigger = (started) => {
        const tx = started.ring(1);
        tx.queue.setRawDescriptor(0, { addr: buffer, len: NET_HDR_SIZE + FRAME, flags: 0, next: 0 });
        return {
          post: () => {
            tx.queue.publishRaw([0]);
          },
          kick: () => tx.notify(),
        };
      };
    } else {
      parts = [
        { addr: buffer, len: NET_HDR_SIZE, write: false },
        { addr: buffer + BigInt(NET_HDR_SIZE), len: FRAME, write: false },
      ];
      refill = frame;
    }
  }
  const gapAfter = regions.find((r) => !memory.regionAt(r.guestAddress + r.size))!;
  const tail = memory.alloc(TAIL, 1, { region: gapAfter.guestAddress, fromEnd: true });
  memory.guardFree();
  refill();

  // A gpu serves its control queue once its display is there (VHOST_USER_GPU_SET_SOCKET).
  if (type === 'gpu') await attachDisplay(ctx, session);
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: indices.map((index, i) => ({ index, size: SIZE, indirect, placement: placements[i]! })),
    enable: true,
  });
  const ring = device.ring(type === 'fs' || (type === 'net' && !writes) ? 1 : 0);
  const readOnly = [
    ...placements.map((p, i) => ({
      label: `the descriptor table of vring ${indices[i]}`,
      gpa: p.descTable,
      len: descTableSize(SIZE),
    })),
    ...tables.map((gpa, i) => ({ label: `indirect table ${i + 1}`, gpa, len: descTableSize(TABLE_ENTRIES) })),
  ];
  const availRings = placements.map((p, i) => ({
    label: `the available ring of vring ${indices[i]}`,
    gpa: p.availRing,
    len: availRingSize(SIZE),
  }));
  return {
    type,
    subject,
    device,
    memory,
    ring,
    queue: ring.queue,
    indirect,
    parts,
    refill,
    ...(trigger ? { trigger: trigger(device) } : {}),
    tables,
    tail,
    readOnly,
    availRings,
    closed: () => closed,
  };
}

// ---- descriptors ----

const F = VirtqDescFlag;

/** The descriptor of `part`, chained to `next` when given. */
function desc(part: Part, next?: number): RawDescriptor {
  return {
    addr: part.addr,
    len: part.len,
    flags: (part.write ? F.WRITE : 0) | (next === undefined ? 0 : F.NEXT),
    next: next ?? 0,
  };
}

/** `parts` as a chain of descriptors first..first+n-1, each chained to the next. */
function chain(parts: readonly Part[], first = 0): RawDescriptor[] {
  return parts.map((p, i) => desc(p, i < parts.length - 1 ? first + i + 1 : undefined));
}

/** The same chain, with the last descriptor's next set (NEXT included) to `next`. */
function chainTo(parts: readonly Part[], next: number): RawDescriptor[] {
  const out = chain(parts);
  out[out.length - 1] = desc(parts.at(-1)!, next);
  return out;
}

/** Descriptors placed from index `first` of the ring's table. */
function placed(descs: readonly RawDescriptor[], first = 0): Array<[number, RawDescriptor]> {
  return descs.map((d, i) => [first + i, d]);
}

function indirectTo(table: bigint, entries: number, extra = 0, next = 0): RawDescriptor {
  return { addr: table, len: 16 * entries, flags: F.INDIRECT | extra, next };
}

/** `parts` with part `i` changed. */
function changed(parts: readonly Part[], i: number, change: Partial<Part>): Part[] {
  return parts.map((p, k) => (k === i ? { ...p, ...change } : p));
}

/** `parts` cut into `count` descriptors: the longest one is split into equal pieces (the last takes the rest). */
function cutInto(parts: readonly Part[], count: number): Part[] {
  const longest = parts.reduce((best, p, i) => (p.len > parts[best]!.len ? i : best), 0);
  const whole = parts[longest]!;
  const pieces = count - (parts.length - 1);
  const step = Math.floor(whole.len / pieces);
  if (step < 1) throw new Error(`a ${whole.len}-byte buffer cannot be cut into ${pieces} pieces`);
  const cut = Array.from({ length: pieces }, (_, k) => ({
    addr: whole.addr + BigInt(k * step),
    len: k === pieces - 1 ? whole.len - k * step : step,
    write: whole.write,
  }));
  return [...parts.slice(0, longest), ...cut, ...parts.slice(longest + 1)];
}

/** The first part the device must write (block data), or undefined (net transmit). */
function firstWritable(lane: Lane): number | undefined {
  const i = lane.parts.findIndex((p) => p.write);
  return i < 0 ? undefined : i;
}

/** The part a buffer-address input moves: the first writable one when there is one, else the last. */
function movedPart(lane: Lane): number {
  return firstWritable(lane) ?? lane.parts.length - 1;
}

// ---- the inputs ----

const CHAIN_INPUTS: readonly Input[] = [
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

const BUFFER_INPUTS: readonly Input[] = [
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
      descs: placed(chain(changed(l.parts, movedPart(l), { addr: l.tail, len: TAIL + SECTOR_SIZE }))),
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

// ---- one input ----

/** Writes `plan`'s descriptors into the ring's table and the indirect tables. */
function write(lane: Lane, plan: Plan): void {
  for (const [n, descs] of plan.tables ?? []) {
    const view = dataView(lane.memory.gpaToBytes(lane.tables[n], descTableSize(TABLE_ENTRIES)));
    descs.forEach((d, i) => {
      writeRawDescriptor(view, i, d);
    });
  }
  for (const [i, d] of plan.descs) lane.queue.setRawDescriptor(i, d);
}

/** Makes `plan`'s heads available (the kick is the caller's). */
function publish(lane: Lane, plan: Plan): void {
  const heads = plan.heads ?? [0];
  lane.queue.publishRaw(
    heads,
    plan.ahead === undefined ? {} : { availIdx: (lane.queue.lastAvailIdx + plan.ahead) & 0xffff },
  );
}

/** A range of guest memory the device must not write, named for messages. */
interface Area {
  label: string;
  gpa: bigint;
  len: number;
  /** Why the device may not write it (default: the device only reads it). */
  why?: string;
}

/** What the device must leave as it is, and a copy of it taken when the request was posted. */
interface Snapshot {
  areas: Area[];
  bytes: Uint8Array[];
}

/**
 * The device-readable buffers among `descs` (INDIRECT ones are tables, already watched) that lie in guest
 * memory: "A device MUST NOT write to a device-readable buffer".
 */
function readableBuffers(lane: Lane, descs: Iterable<RawDescriptor>): Area[] {
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
function partsNotWritable(lane: Lane, descs: readonly RawDescriptor[], watched: readonly Area[]): Area[] {
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

/** Every descriptor `plan` writes, tables included. */
function descriptorsOf(plan: Plan): RawDescriptor[] {
  return [...plan.descs.map(([, d]) => d), ...(plan.tables ?? []).flatMap(([, t]) => t)];
}

/**
 * Copies of what the device only reads: the descriptor and indirect tables and `readable`, taken before the
 * request is published (a device that polls may take it at once); the available rings are added once it is
 * (`publishedTo`).
 */
function snapshot(lane: Lane, readable: readonly Area[]): Snapshot {
  const areas = [...lane.readOnly, ...readable];
  return { areas, bytes: areas.map((a) => lane.memory.read(a.gpa, a.len)) };
}

/** `before` with the available rings as published. */
function publishedTo(lane: Lane, before: Snapshot): Snapshot {
  return {
    areas: [...before.areas, ...lane.availRings],
    bytes: [...before.bytes, ...lane.availRings.map((a) => lane.memory.read(a.gpa, a.len))],
  };
}

/**
 * Every write outside the buffers the device may write: guard bytes changed, areas of `before` (read-only ones,
 * buffers it was not given to write) changed.
 */
function outOfBounds(lane: Lane, before: Snapshot): string[] {
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

/**
 * Waits up to `ms` for what the device makes of the request: used elements (with the status byte for
 * block), the connection closed, or nothing. `until` ends the wait early on the elements it wants.
 */
async function awaitUsed(
  lane: Lane,
  ms: number,
  until: (elements: RawUsedElement[]) => boolean = (e) => e.length > 0,
): Promise<{ elements: RawUsedElement[]; moved: number; closed: boolean }> {
  const end = performance.now() + ms;
  const elements: RawUsedElement[] = [];
  let moved = 0;
  for (;;) {
    lane.ring.drainCalls();
    const before = lane.queue.lastUsedIdx;
    const taken = lane.queue.takeRawUsed();
    moved += (taken.usedIdx - before) & 0xffff;
    elements.push(...taken.elements);
    if (until(elements)) return { elements, moved, closed: false };
    if (lane.closed()) return { elements, moved, closed: true };
    const left = end - performance.now();
    if (left <= 0) return { elements, moved, closed: false };
    await sleep(Math.min(5, left));
  }
}

function describeAnswer(
  lane: Lane,
  got: { elements: RawUsedElement[]; moved: number; closed: boolean },
  ms: number,
): string {
  if (!got.elements.length) return got.closed ? 'closed the connection' : `used nothing within ${ms} ms`;
  const shown = got.elements
    .slice(0, 3)
    .map((e) => `id ${e.id} len ${e.len}`)
    .join(', ');
  const more = got.moved > 3 ? ` (used.idx moved by ${got.moved})` : '';
  return `used ${shown}${more}${written(lane)}`;
}

/** What the device wrote into the well-formed request's status part: block's status byte, gpu's response type. */
function written(lane: Lane): string {
  const last = lane.parts.at(-1)!.addr;
  if (lane.type === 'block') return `, status byte ${lane.memory.read(last, 1)[0]}`;
  if (lane.type !== 'gpu') return '';
  // The response buffer was filled with guard bytes: still there, nothing was written.
  if (!lane.memory.checkGuard(last, VirtioGpuSize.CTRL_HDR).length) return ', no response written';
  return `, response type ${ctrlTypeName(Buffer.from(lane.memory.read(last, 4)).readUInt32LE(0))}`;
}

/**
 * A well-formed request after the bad one, on descriptors at the top of the table: whether the device used it
 * within `ms`. The connection closed is a BackendError, which the oracle takes as `closed`.
 */
async function queueStillWorks(lane: Lane, ms: number, posted: (before: Snapshot) => void): Promise<boolean> {
  lane.refill();
  const first = SIZE - lane.parts.length;
  const descs = chain(lane.parts, first);
  for (const [i, d] of placed(descs, first)) lane.queue.setRawDescriptor(i, d);
  const before = snapshot(lane, readableBuffers(lane, descs));
  lane.queue.publishRaw([first]);
  lane.trigger?.post();
  posted(publishedTo(lane, before));
  lane.ring.notify();
  lane.trigger?.kick();
  const got = await awaitUsed(lane, ms, (elements) => elements.some((e) => e.id === first));
  if (got.closed) throw new BackendError('the back-end closed the connection');
  return got.elements.some((e) => e.id === first);
}

/**
 * A fresh subject with its device started. Nothing malformed has been sent yet, so a set-up that fails (a launch
 * slower than the deadline on a loaded machine) is tried once more before it fails the check.
 */
async function setUp(
  ctx: CheckContext,
  type: DataPlaneType,
  writes: boolean,
): Promise<{ subject: Subject; lane: Lane }> {
  for (let attempt = 1; ; attempt++) {
    const subject = await freshSubject(ctx).catch((err: unknown) => {
      if (attempt > 1 || err instanceof SkipError) throw err;
      return undefined;
    });
    if (!subject) continue;
    try {
      return { subject, lane: await openLane(ctx, type, subject, writes) };
    } catch (err) {
      await releaseSubject(subject);
      if (attempt > 1 || err instanceof SkipError) throw err;
    }
  }
}

/** Inputs tried at once, each on a back-end of its own (tryInputs: one at a time in attach mode). */
const PARALLEL = 3;

/**
 * One input on a fresh subject: posted and kicked, its answer awaited (used, or nothing within half the quiet
 * window), the guard bytes checked, then the oracle with a well-formed request as the probe (and GET_VRING_BASE
 * when the queue does not take it), the guard bytes checked again. Throws on a crash, a hang or a write out
 * of bounds; returns the outcome and a line saying what the device did.
 */
async function tryInput(
  ctx: CheckContext,
  type: DataPlaneType,
  { input: named, build, writes }: Input,
): Promise<Tried> {
  // Half the quiet window for each wait: a device that takes a request at all takes it within milliseconds.
  const window = Math.round(quietMs(ctx) / 2);
  const { subject, lane } = await setUp(ctx, type, writes ?? false);
  try {
    const plan = build(lane);
    write(lane, plan);
    const descs = descriptorsOf(plan);
    // Without VIRTIO_RING_F_INDIRECT_DESC an indirect descriptor is malformed by itself: said wherever the
    // input is named, so that what the back-end did with it is read as such.
    const input =
      !lane.indirect && descs.some((d) => (d.flags & F.INDIRECT) !== 0)
        ? `${named} (VIRTIO_RING_F_INDIRECT_DESC not negotiated)`
        : named;
    const readable = readableBuffers(lane, descs);
    let before = snapshot(lane, [...readable, ...partsNotWritable(lane, descs, readable)]);
    publish(lane, plan);
    lane.trigger?.post();
    before = publishedTo(lane, before);
    lane.ring.notify();
    lane.trigger?.kick();
    const answer = describeAnswer(lane, await awaitUsed(lane, window), window);
    const bad = outOfBounds(lane, before);
    if (bad.length) throw outOfBoundsError(input, bad);
    let after = '';
    const outcome = await outcomeAfter(ctx, subject, input, async () => {
      if (lane.closed()) throw new BackendError('the back-end closed the connection');
      const works = await queueStillWorks(lane, window, (posted) => {
        before = posted;
      });
      after = works ? 'the queue still works' : 'the queue stopped (GET_VRING_BASE answered)';
      // A device that stopped the queue must still answer for it: a data plane stuck in a loop does not.
      if (!works) await lane.device.stopRing(lane.ring.index);
    });
    // A second look at stderr: a child that died (virtiofsd's sandbox) may have said so after its parent closed.
    const report = crashReport(subject.backend?.stderrTail ?? '');
    if (report) throw new BackendError(`it crashed after ${input}: ${report}`);
    const later = outOfBounds(lane, before);
    if (later.length) throw outOfBoundsError(`a well-formed request after ${input}`, later);
    const note = exitNote(subject);
    return {
      outcome,
      line: `${input}: ${answer}${outcome === 'answered' ? `; ${after}` : answer.includes('closed') ? '' : '; then closed the connection'}${note ? `; ${note}` : ''}`,
    };
  } finally {
    await releaseSubject(subject);
  }
}

/**
 * Runs every input for the target's device type, a few at once, each to its end (tryInputs), so that one report
 * names every input the device fails on.
 */
function runInputs(ctx: CheckContext, inputs: readonly Input[]): Promise<string> {
  const type = requireDataPlaneType(ctx);
  return tryInputs(ctx, inputs, { parallel: PARALLEL, attempt: (input) => tryInput(ctx, type, input) });
}

function outOfBoundsError(input: string, writes: readonly string[]): BackendError {
  const more = writes.length > 4 ? `; and ${writes.length - 4} more` : '';
  return new BackendError(
    `after ${input}, the device wrote where it may not (outside the buffers it may write): ${writes.slice(0, 4).join('; ')}${more}`,
  );
}

/**
 * The time a check may take: every input tried one after the other (attach mode), each at worst a set-up tried
 * twice, a hang the oracle waits out, and a back-end killed after its grace.
 */
function budget(inputs: readonly Input[], timeoutMs: number): number {
  return inputs.length * (3 * timeoutMs + 2000);
}

/**
 * The out-of-bounds oracle enforces two MUST NOTs (a write into a device-readable buffer or a descriptor table),
 * hence the severity. The crash and hang oracle, and writes into free guest memory or past a writable buffer's
 * end, have no sentence behind them (HARDENING_RULE) and fail at MUST too: stronger than the sentences, said
 * in the rule, until they are checks of their own.
 */
const DATA_PLANE_RULE =
  'virtio spec, Device Requirements: The Virtqueue Descriptor Table: "A device MUST NOT write to a ' +
  'device-readable buffer" and "A device MUST NOT write to any descriptor table entry." Stronger than these, ' +
  "the check also fails writes into free guest memory or past a writable buffer's end, and a crash or a hang, " +
  `for which there is no sentence (${HARDENING_RULE}; the nearest is virtio spec, Device Requirements: Device ` +
  'Status Field: "The device SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a reset is needed.")';

export const dataPlaneChecks = defineChecks(
  'robustness',
  [
    {
      id: 'robust.data.chain',
      detail:
        "(block, net, fs, gpu) malformed chains, each posted raw on a fresh back-end (block requestq, net transmitq0, fs the first request queue with a FUSE_INIT, gpu the control queue with a GET_DISPLAY_INFO, its display attached first): next pointing to itself, a chain looping back to its head, a loop inside an indirect table, next past the queue size and past an indirect table, an indirect table of queue size + 2 descriptors, an indirect descriptor inside an indirect table or with NEXT, a table of 17 bytes, an avail entry past the queue size, avail.idx queue size + 1 ahead: the back-end answers a well-formed request (or `GET_VRING_BASE` once the queue stopped) or closes the connection, never crashes or hangs (a failed assertion on stderr is a crash too), and writes no guest byte outside the buffers it may write (guard bytes around every buffer and ring part and over all free guest memory; tables, available rings, device-readable buffers and the request's buffers no device-writable descriptor covers unchanged); what it did with each is reported",
      title:
        'descriptor chains that loop (on one descriptor, back to the head, inside an indirect table), next past the queue or the table, longer than the queue, an indirect table inside one or with NEXT, a bad avail entry or avail.idx: no crash, no hang, no write outside the buffers',
      severity: 'MUST',
      rule: DATA_PLANE_RULE,
      spec: DataPlaneSpec.descriptorTable,
      needs: ['vring.blk.read-write', 'net.loopback', 'gpu.display-info'],
      budgetMs: (timeoutMs) => budget(CHAIN_INPUTS, timeoutMs),
      run: (ctx) => runInputs(ctx, CHAIN_INPUTS),
    },
    {
      id: 'robust.data.buffers',
      detail:
        "(block, net, fs, gpu) malformed buffers, the same way (writable ones on net receiveq0, filled by a frame sent): a readable and a writable buffer outside guest memory, one running past its region's end into unmapped memory, addr + len wrapping past 2^64, an indirect table outside guest memory, a zero-length first, last and every buffer, the buffer the device reads marked device-writable and the ones it writes device-readable, a head-only request: the same oracles",
      title:
        'buffers outside guest memory, past a region end, wrapping past 2^64, of zero length, writable where the device reads and the reverse, a head-only request: no crash, no hang, no write outside the buffers',
      severity: 'MUST',
      rule: DATA_PLANE_RULE,
      spec: DataPlaneSpec.memoryAccess,
      needs: ['vring.blk.read-write', 'net.loopback', 'gpu.display-info'],
      budgetMs: (timeoutMs) => budget(BUFFER_INPUTS, timeoutMs),
      run: (ctx) => runInputs(ctx, BUFFER_INPUTS),
    },
  ],
  { destructive: true },
);
