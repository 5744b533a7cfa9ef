/**
 * The worker's two loops: virtio-blk reads and virtio-net frames looped back, each keeping `depth` in
 * flight for the run's duration, then draining. Every completion is judged before it counts; the first
 * wrong one throws, naming the request and what was wrong. Nothing here waits: the loops poll.
 */
import { BackendError, TimeoutError } from '../errors.js';
import type { FixedRing } from './fixed-ring.js';
import { LATENCY_BUCKETS, type LoadCounts, type WorkerPlan } from './plan.js';

export interface LoopContext {
  plan: WorkerPlan;
  rings: FixedRing[];
  bytesAt: (gpa: bigint, len: number) => Uint8Array;
  kick: (ring: FixedRing) => void;
  /** Whether the main thread asked the loop to stop (the back-end's connection ended). */
  stopped: () => boolean;
  counts: LoadCounts;
}

/** virtio_net_hdr with VIRTIO_F_VERSION_1 (net.ts's NET_HDR_SIZE). */
const NET_HDR = 12;
/** Where a test frame keeps its sequence number (net.ts testFrame: Ethernet header, run id, sequence). */
export const FRAME_SEQUENCE_AT = 18;
/** The virtio-blk header: type, reserved, sector; and the status byte no device writes. */
const BLK_HEADER = 16;
const STATUS_UNSET = 0xff;
/** Distinct places the reads go: the first read of each is what later reads of it must return. */
const BLOCK_PLACES = 64;
/** Guard bytes the data buffers hold before each read: data a device did not write shows. */
const GUARD = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x5a, 0xa5, 0xc3, 0x3c]);

function record(counts: LoadCounts, sentAt: number, now: number): void {
  const us = Math.floor((now - sentAt) * 1000);
  counts.latency[us < LATENCY_BUCKETS ? us : LATENCY_BUCKETS - 1]!++;
  counts.completed++;
}

function buffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Throws a TimeoutError when nothing completed for `stallMs` while `waiting` (`what` says where things stand). */
function stall(ctx: LoopContext, waiting: boolean, quietMs: number, what: () => string): void {
  if (ctx.stopped()) throw new BackendError(`stopped after ${ctx.counts.completed} completions`);
  if (!waiting || quietMs <= ctx.plan.stallMs) return;
  throw new TimeoutError(
    `a completion (the back-end stopped completing after ${ctx.counts.completed})`,
    ctx.plan.stallMs,
    `${ctx.rings.map((r) => r.describe()).join('; ')}; ${what()}`,
  );
}

/** Empty polls between two looks at the clock: performance.now() costs more than a poll of a ring. */
const SPINS_PER_CLOCK = 64;

/** virtio-blk IN requests of `bytes` each, `depth` in flight, every completion judged. */
export function blockLoop(ctx: LoopContext): void {
  const { plan, counts } = ctx;
  const traffic = plan.traffic;
  if (traffic.kind !== 'block') throw new Error('blockLoop runs block traffic');
  const ring = ctx.rings[0]!;
  const sectorsPerRead = traffic.bytes / 512;
  const places = Math.max(1, Math.min(BLOCK_PLACES, Math.floor(traffic.sectors / sectorsPerRead)));
  const reference: Array<Buffer | undefined> = new Array(places);
  const slots = traffic.slots.map((s, i) => {
    const header = ctx.bytesAt(s.header, BLK_HEADER);
    ring.setDescriptor(3 * i, { gpa: s.header, len: BLK_HEADER, write: false }, false);
    ring.setDescriptor(3 * i + 1, { gpa: s.data, len: traffic.bytes, write: true }, false);
    ring.setDescriptor(3 * i + 2, { gpa: s.status, len: 1, write: true }, true);
    return {
      header: new DataView(header.buffer, header.byteOffset, BLK_HEADER),
      data: buffer(ctx.bytesAt(s.data, traffic.bytes)),
      status: ctx.bytesAt(s.status, 1),
      place: 0,
      sentAt: 0,
    };
  });
  let posted = 0;
  let now = performance.now();
  const start = now;
  let last = now;
  let done = false;
  const post = (i: number): void => {
    const slot = slots[i]!;
    slot.place = posted++ % places;
    slot.header.setUint32(0, 0, true); // VIRTIO_BLK_T_IN
    slot.header.setUint32(4, 0, true);
    slot.header.setBigUint64(8, BigInt(slot.place * sectorsPerRead), true);
    slot.data.fill(GUARD);
    slot.status[0] = STATUS_UNSET;
    slot.sentAt = now;
    ring.push(3 * i);
  };
  const take = (id: number, len: number): void => {
    const i = id / 3;
    const slot = slots[i]!;
    const what = `IN sector ${slot.place * sectorsPerRead} x${sectorsPerRead} (head ${id})`;
    if (slot.status[0] !== 0)
      throw new BackendError(`${what}: status ${slot.status[0]}, expected 0 (OK) (used.len ${len})`);
    // "len is permitted to be an underestimate", never more than the device wrote: data and status.
    if (len > traffic.bytes + 1)
      throw new BackendError(`${what}: used.len ${len} is more than the ${traffic.bytes + 1} writable bytes`);
    if (
      slot.header.getUint32(0, true) !== 0 ||
      slot.header.getUint32(4, true) !== 0 ||
      slot.header.getBigUint64(8, true) !== BigInt(slot.place * sectorsPerRead)
    )
      throw new BackendError(`${what}: the request header was modified by the device`);
    const first = reference[slot.place];
    if (first === undefined) {
      if (slot.data.compare(GUARD, 0, 8, 0, 8) === 0 && slot.data.every((b, k) => b === GUARD[k % 8]))
        throw new BackendError(`${what}: status OK, but the data still holds the guard bytes: never written`);
      reference[slot.place] = Buffer.from(slot.data);
    } else if (slot.data.compare(first) !== 0) {
      throw new BackendError(`${what}: returned other data than the first read of the same sectors`);
    }
    record(counts, slot.sentAt, now);
    last = now;
    if (!done) post(i);
  };
  for (let i = 0; i < plan.depth; i++) post(i);
  if (ring.publish()) ctx.kick(ring);
  let spins = 0;
  for (;;) {
    // The clock is read when something came (for its latency), else now and then (duration, stall).
    const used = ring.hasUsed();
    if (!used && ring.inFlight > 0 && ++spins < SPINS_PER_CLOCK) continue;
    spins = 0;
    now = performance.now();
    done ||= now - start >= plan.durationMs;
    if (used) {
      ring.poll(take);
      if (ring.publish()) ctx.kick(ring);
      counts.busyMs += performance.now() - now;
    } else if (ring.inFlight === 0) break;
    else stall(ctx, true, now - last, () => `${posted} requests posted`);
  }
  counts.elapsedMs = last - start;
}

/** virtio-net frames sent on transmitq1 and looped back to receiveq1, in order and byte for byte. */
export function netLoop(ctx: LoopContext): void {
  const { plan, counts } = ctx;
  const traffic = plan.traffic;
  if (traffic.kind !== 'net') throw new Error('netLoop runs net traffic');
  const [rx, tx] = ctx.rings as [FixedRing, FixedRing];
  const frameBytes = traffic.frameBytes;
  const len = NET_HDR + frameBytes;
  const template = Buffer.from(traffic.template);
  const expectedView = new DataView(new Uint8Array(template).buffer);
  const wholeWords = frameBytes & ~3;
  const rxBuffers = traffic.rx.map((gpa, i) => {
    rx.setDescriptor(i, { gpa, len, write: true }, true);
    return buffer(ctx.bytesAt(gpa, len));
  });
  const rxViews = rxBuffers.map((b) => new DataView(b.buffer, b.byteOffset, b.byteLength));
  const txViews = traffic.tx.map((gpa, i) => {
    tx.setDescriptor(i, { gpa, len, write: false }, true);
    const bytes = buffer(ctx.bytesAt(gpa, len));
    bytes.fill(0, 0, NET_HDR);
    template.copy(bytes, NET_HDR);
    return new DataView(bytes.buffer, bytes.byteOffset, len);
  });
  const txFree = traffic.tx.map((_, i) => traffic.tx.length - 1 - i);
  // At most as many frames out as receive buffers posted: a device with no buffer drops the frame.
  const window = Math.min(plan.depth, traffic.rx.length, traffic.tx.length);
  const sentAt = new Float64Array(65536);
  let sent = 0;
  let received = 0;
  let now = performance.now();
  const start = now;
  let last = now;
  let done = false;
  const takeRx = (id: number, usedLen: number): void => {
    const frame = rxBuffers[id]!;
    const what = `receiveq buffer ${id} (frame ${received} expected)`;
    if (usedLen !== len)
      throw new BackendError(
        `${what}: used.len ${usedLen}, expected ${len} (header and a ${frameBytes}-byte frame)`,
      );
    // The frame expected, word by word: the template with this frame's sequence number in it.
    expectedView.setUint32(FRAME_SEQUENCE_AT, received >>> 0, true);
    const view = rxViews[id]!;
    let same = true;
    for (let at = 0; at < wholeWords && same; at += 4)
      same = view.getUint32(NET_HDR + at, true) === expectedView.getUint32(at, true);
    for (let at = wholeWords; at < frameBytes && same; at++)
      same = view.getUint8(NET_HDR + at) === expectedView.getUint8(at);
    if (!same) {
      const sequence = frame.readUInt32LE(NET_HDR + FRAME_SEQUENCE_AT);
      if (sequence !== received >>> 0)
        throw new BackendError(
          `${what}: it holds frame ${sequence}: frames were lost, duplicated or reordered on the way back`,
        );
      throw new BackendError(`${what}: frame ${sequence} came back with other bytes than were sent`);
    }
    record(counts, sentAt[received & 0xffff]!, now);
    received++;
    last = now;
    rx.push(id);
  };
  const takeTx = (id: number, usedLen: number): void => {
    if (usedLen !== 0)
      throw new BackendError(
        `transmitq buffer ${id} came back with used.len ${usedLen}: it has no device-writable part, so 0`,
      );
    txFree.push(id);
    last = now;
  };
  for (let i = 0; i < rxBuffers.length; i++) rx.push(i);
  if (rx.publish()) ctx.kick(rx);
  let spins = 0;
  for (;;) {
    // The clock is read when something came (for its latency), else now and then (duration, stall).
    const used = rx.hasUsed() || tx.hasUsed();
    if (!used && ++spins < SPINS_PER_CLOCK) continue;
    spins = 0;
    now = performance.now();
    done ||= now - start >= plan.durationMs;
    rx.poll(takeRx);
    tx.poll(takeTx);
    if (rx.publish()) ctx.kick(rx);
    if (!done) {
      while (txFree.length > 0 && sent - received < window) {
        const id = txFree.pop()!;
        txViews[id]!.setUint32(NET_HDR + FRAME_SEQUENCE_AT, sent >>> 0, true);
        sentAt[sent & 0xffff] = now;
        sent++;
        tx.push(id);
      }
      if (tx.publish()) ctx.kick(tx);
    } else if (received === sent && tx.inFlight === 0) break;
    if (used) counts.busyMs += performance.now() - now;
    stall(
      ctx,
      sent !== received || tx.inFlight > 0,
      now - last,
      () => `${sent} frames sent, ${received} back`,
    );
  }
  counts.elapsedMs = last - start;
}
