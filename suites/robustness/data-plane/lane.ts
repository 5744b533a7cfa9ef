/**
 * A lane: a device of the run's kind started on a robustness subject as openDevice starts one, with guest memory
 * laid out in guarded areas (every ring part, two indirect tables, the well-formed request's buffers, and guard
 * bytes over all free memory), and its well-formed request: the kind's sample, or its writable request for the
 * inputs that malform what the device writes.
 */
import type { DeviceKind, Sample } from '../../../harness/devices/kind.js';
import { SkipError } from '../../../harness/errors.js';
import type { FrontendDevice, Vring } from '../../../harness/frontend/device.js';
import type { GuestMemory } from '../../../harness/memory/guest-memory.js';
import { hasBit, VirtioFeature } from '../../../harness/protocol/spec.js';
import type { CheckContext } from '../../../harness/runner/check.js';
import type { RingPlacement, SplitVirtqueue } from '../../../harness/virtqueue/split.js';
import {
  availRingSize,
  descTableSize,
  usedRingSize,
  VirtqDescFlag,
} from '../../../harness/virtqueue/split-layout.js';
import { openDevice } from '../../common/device.js';
import { freshSubject, releaseSubject, type Subject } from '../oracle.js';

/** The queue size of the ring the inputs go to: small, so that "longer than the queue" stays small too. */
export const SIZE = 64;
/** Entries of each indirect table area: enough for a chain longer than the queue. */
export const TABLE_ENTRIES = SIZE + 2;
/** A guest address in no region of the layout (checked when a lane opens). */
export const OUTSIDE = 0x4000_0000n;
/** Bytes left at the very end of a region that a gap follows. */
export const TAIL = 8;

/** One buffer of the well-formed request. */
export interface Part {
  addr: bigint;
  len: number;
  write: boolean;
}

/** A range of guest memory the device must not write, named for messages. */
export interface Area {
  label: string;
  gpa: bigint;
  len: number;
  /** Why the device may not write it (default: the device only reads it). */
  why?: string;
}

/** A device started on a subject, with guest memory laid out in guarded areas, and its well-formed request. */
export interface Lane {
  kind: DeviceKind;
  subject: Subject;
  device: FrontendDevice;
  memory: GuestMemory;
  /** The vring the inputs go to: the kind's sample ring, or its writable request's (net: receiveq0). */
  ring: Vring;
  queue: SplitVirtqueue;
  /** VIRTIO_RING_F_INDIRECT_DESC negotiated (inputs with INDIRECT are malformed either way without it). */
  indirect: boolean;
  /** The well-formed request, whose `judge` reads what the device made of a request on its buffers. */
  request: Sample;
  /** Its buffers, a header in a descriptor of its own (Sample.headerLen). */
  parts: Part[];
  /** Writes the request's contents again (a device may have written over them), its writable parts guarded. */
  refill(): void;
  /** What makes the device use a buffer of `ring` (net: a frame sent on transmitq0, kicked after the request). */
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

/** `sample`'s chain as parts, a header sharing its buffer with the payload cut off into a part of its own. */
function partsOf(sample: Sample): Part[] {
  const parts = sample.chain.map((e) => ({ addr: e.gpa, len: e.len, write: e.write }));
  const first = parts[0]!;
  const header = sample.headerLen;
  if (header === undefined || header <= 0 || header >= first.len) return parts;
  return [
    { ...first, len: header },
    { ...first, addr: first.addr + BigInt(header), len: first.len - header },
    ...parts.slice(1),
  ];
}

/** What a lane lays out in guest memory before its rings are set up. */
interface Layout {
  placements: Map<number, RingPlacement>;
  tables: [bigint, bigint];
  tail: bigint;
  ring: number;
  request: Sample;
  trigger?: { ring: number; request: Sample };
}

/**
 * Rings and buffers in guarded areas: the rings and tables in the highest region; the request's writable
 * buffers in the lowest, 4 KiB aligned (an address wrapping past 2^64 lands in a guard), the ones it reads in
 * the next; TAIL bytes at the end of a region no region follows; every other byte guard bytes.
 */
function layOut(kind: DeviceKind, memory: GuestMemory, writes: boolean): Layout {
  if (memory.regionAt(OUTSIDE)) throw new Error(`guest 0x${OUTSIDE.toString(16)} is mapped: pick another`);
  const regions = memory.regions;
  const ringRegion = { region: regions.at(-1)!.guestAddress };
  const low = regions[0]!.guestAddress;
  const middle = (regions[1] ?? regions[0]!).guestAddress;
  const placements = new Map<number, RingPlacement>(
    kind.rings.map((i) => [
      i,
      {
        descTable: memory.allocGuarded(
          `the descriptor table of vring ${i}`,
          descTableSize(SIZE),
          16,
          ringRegion,
        ),
        availRing: memory.allocGuarded(
          `the available ring of vring ${i}`,
          availRingSize(SIZE),
          2,
          ringRegion,
        ),
        usedRing: memory.allocGuarded(`the used ring of vring ${i}`, usedRingSize(SIZE), 4, ringRegion),
      },
    ]),
  );
  const tables: [bigint, bigint] = [
    memory.allocGuarded('indirect table 1', descTableSize(TABLE_ENTRIES), 16, ringRegion),
    memory.allocGuarded('indirect table 2', descTableSize(TABLE_ENTRIES), 16, ringRegion),
  ];
  const place = (what: string, len: number, write: boolean) =>
    write
      ? memory.allocGuarded(what, len, 4096, { region: low })
      : memory.allocGuarded(what, len, 16, { region: middle });
  if (writes && !kind.writable)
    throw new SkipError(
      `a ${kind.type} device writes its buffers only on events of its own: no request the harness can make has buffers it writes`,
    );
  const wanted =
    writes && kind.writable
      ? kind.writable(memory, { place })
      : { ring: kind.sampleRing, request: kind.samples(memory, { place }).next() };
  const gapAfter = regions.find((r) => !memory.regionAt(r.guestAddress + r.size))!;
  const tail = memory.alloc(TAIL, 1, { region: gapAfter.guestAddress, fromEnd: true });
  memory.guardFree();
  return { placements, tables, tail, ...wanted };
}

/**
 * The request's contents as the kind wrote them, written again by `refill`: what the device reads restored,
 * what it writes filled with guard bytes.
 */
function refiller(memory: GuestMemory, samples: readonly Sample[]): () => void {
  const parts = samples.flatMap((s) => s.chain);
  const readable = parts.filter((p) => !p.write).map((p) => ({ p, bytes: memory.read(p.gpa, p.len) }));
  return () => {
    for (const { p, bytes } of readable) memory.write(p.gpa, bytes);
    for (const p of parts) if (p.write) memory.fillGuard(p.gpa, p.len);
  };
}

/**
 * A fresh device of the run's kind on `subject`, as openDevice starts one (the run's front-end profile's
 * start-up, the kind's set-up, e.g. gpu's display), INDIRECT_DESC acked where offered, laid out as `layOut`
 * says, rings enabled.
 */
async function openLane(ctx: CheckContext, subject: Subject, writes: boolean): Promise<Lane> {
  let closed = false;
  subject.session.connection.closed.then(
    () => {
      closed = true;
    },
    () => {
      closed = true;
    },
  );
  let layout: Layout | undefined;
  const setup = await openDevice(ctx, {
    session: subject.session,
    indirectWhereOffered: true,
    size: SIZE,
    enable: true,
    layout(device, kind) {
      layout = layOut(kind, device.memory, writes);
      return layout.placements;
    },
  });
  const { kind, device } = setup;
  const { placements, tables, tail, request, trigger } = layout!;
  const memory = device.memory;
  const refill = refiller(memory, trigger ? [request, trigger.request] : [request]);
  refill();
  const ring = device.ring(layout!.ring);
  const indices = [...placements.keys()];
  return {
    kind,
    subject,
    device,
    memory,
    ring,
    queue: ring.queue,
    indirect: hasBit(setup.features, VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC),
    request,
    parts: partsOf(request),
    refill,
    ...(trigger ? { trigger: triggerOn(device.ring(trigger.ring), trigger.request) } : {}),
    tables,
    tail,
    readOnly: [
      ...indices.map((i) => ({
        label: `the descriptor table of vring ${i}`,
        gpa: placements.get(i)!.descTable,
        len: descTableSize(SIZE),
      })),
      ...tables.map((gpa, i) => ({
        label: `indirect table ${i + 1}`,
        gpa,
        len: descTableSize(TABLE_ENTRIES),
      })),
    ],
    availRings: indices.map((i) => ({
      label: `the available ring of vring ${i}`,
      gpa: placements.get(i)!.availRing,
      len: availRingSize(SIZE),
    })),
    closed: () => closed,
  };
}

/** `request` on `ring` as a trigger: its chain from descriptor 0, made available again at each post. */
function triggerOn(ring: Vring, request: Sample): { post(): void; kick(): void } {
  request.chain.forEach((e, i, all) => {
    const last = i === all.length - 1;
    ring.queue.setRawDescriptor(i, {
      addr: e.gpa,
      len: e.len,
      flags: (e.write ? VirtqDescFlag.WRITE : 0) | (last ? 0 : VirtqDescFlag.NEXT),
      next: last ? 0 : i + 1,
    });
  });
  return {
    post: () => {
      ring.queue.publishRaw([0]);
    },
    kick: () => ring.notify(),
  };
}

/**
 * A fresh subject with its device started. Nothing malformed has been sent yet, so a set-up that fails (a launch
 * slower than the deadline on a loaded machine) is tried once more before it fails the check.
 */
export async function setUp(ctx: CheckContext, writes: boolean): Promise<{ subject: Subject; lane: Lane }> {
  for (let attempt = 1; ; attempt++) {
    const subject = await freshSubject(ctx).catch((err: unknown) => {
      if (attempt > 1 || err instanceof SkipError) throw err;
      return undefined;
    });
    if (!subject) continue;
    try {
      return { subject, lane: await openLane(ctx, subject, writes) };
    } catch (err) {
      await releaseSubject(subject);
      if (attempt > 1 || err instanceof SkipError) throw err;
    }
  }
}
