/**
 * Packed rings (virtio spec, Packed Virtqueues; VIRTIO_F_RING_PACKED) on every device kind: requests round a
 * small ring many times, through indirect tables, and a used buffer notification asked for one descriptor
 * (RING_EVENT_FLAGS_DESC). A block device moves known data, read back byte for byte (the exercise of
 * vring.blk.read-write, over the packed ring); the other kinds their kind's sample request
 * (harness/devices/kind.ts), each completion judged. A back-end that does not offer VIRTIO_F_RING_PACKED
 * (libvhost-user's) skips them, saying so.
 */
import { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, TimeoutError } from '../../harness/errors.js';
import type { Vring } from '../../harness/frontend/device.js';
import type { GuestMemory } from '../../harness/memory/guest-memory.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { defineChecks } from '../../harness/runner/check.js';
import { PackedDescFlag, PackedLayout, type PackedVirtqueue } from '../../harness/virtqueue/packed.js';
import type { UsedBatch, VringPort } from '../../harness/virtqueue/port.js';
import type { UsedBuffer } from '../../harness/virtqueue/split.js';
import { COMPLETION_RULES, openBlock } from '../common/block.js';
import { openDevice, type PostOptions, SampleDriver } from '../common/device.js';
import { onBlock } from './any-device.js';
import { exerciseReadWrite } from './blk.js';
import { NEEDS_DATA_PATH, namingFindings } from './common.js';

const PackedSpec = {
  wrapCounters: 'virtio-spec#sec-packed-virtqueues-driver-and-device-ring-wrap-counters',
  indirect: 'virtio-spec#sec-packed-virtqueues-indirect-flag-scatter-gather-support',
  eventSuppression: 'virtio-spec#sec-packed-virtqueues-driver-and-device-event-suppression',
} as const;

/**
 * Ring size: small and odd (packed rings need not be a power of two), so that lists of two to four
 * descriptors cross the ring's end, lap after lap.
 */
export const PACKED_SIZE = 19;
/** How many times the checks go round the ring (each lap flips both ring wrap counters). */
const LAPS = 4;
/** Samples in flight at once: three lists of up to three descriptors fit the ring. */
const BATCH = 3;

/** The packed-ring checks: each runs on every device kind (a block body, and one for the others). */
export const PACKED_RING_CHECKS: ReadonlySet<string> = new Set([
  'vring.packed.used',
  'vring.packed.indirect',
  'vring.packed.event-idx',
]);

/**
 * A packed ring's port that counts the descriptors the device used, by the advance of the driver's next used
 * position at every look (an advance is never more than the ring holds): the laps gone round.
 */
class LapCounter implements VringPort<unknown, PackedVirtqueue<unknown>> {
  /** Descriptors used since the counter was made. */
  used = 0;
  #last: number;

  constructor(readonly ring: Vring<unknown, PackedVirtqueue<unknown>>) {
    this.#last = ring.queue.usedPosition;
  }

  get index(): number {
    return this.ring.index;
  }

  get queue(): PackedVirtqueue<unknown> {
    return this.ring.queue;
  }

  get laps(): number {
    return Math.floor(this.used / this.queue.size);
  }

  notify(): void {
    this.ring.notify();
  }

  takeUsed(): Array<UsedBuffer<unknown>> {
    const used = this.ring.takeUsed();
    this.#count();
    return used;
  }

  async waitUsed(timeoutMs: number, count?: number): Promise<UsedBatch<unknown>> {
    try {
      return await this.ring.waitUsed(timeoutMs, count);
    } finally {
      this.#count();
    }
  }

  #count(): void {
    const now = this.queue.usedPosition;
    const flipped = (now ^ this.#last) & 0x8000;
    this.used += (now & 0x7fff) - (this.#last & 0x7fff) + (flipped ? this.queue.size : 0);
    this.#last = now;
  }
}

/**
 * What a wait that ran out says of the descriptor where the next used one is due: marked used with the other
 * wrap counter (the device's did not flip as it went round: a FAIL), or still as the driver made it available
 * (a TIMEOUT, with where the ring stood).
 */
function stalled(err: TimeoutError, counter: LapCounter, memory: GuestMemory): Error {
  const queue = counter.queue;
  const position = queue.usedPosition;
  const offset = position & 0x7fff;
  const wrap = position >> 15;
  const at = queue.descRing.gpa + BigInt(offset * PackedLayout.DESC_SIZE + 14);
  const bytes = memory.read(at, 2);
  const flags = bytes[0]! | (bytes[1]! << 8);
  const avail = flags & PackedDescFlag.AVAIL ? 1 : 0;
  const used = flags & PackedDescFlag.USED ? 1 : 0;
  const where =
    `descriptor ${offset}, where the next used descriptor is due (the driver's used wrap counter ${wrap}), ` +
    `after ${counter.used} descriptors used (${counter.laps} laps of ${queue.size})`;
  if (avail === used) {
    return new BackendError(
      `${where} has AVAIL and USED both ${used}: marked used with wrap counter ${used}, not ${wrap}; the ` +
        `device's ring wrap counter did not flip as it went round (${err.message})`,
    );
  }
  return new TimeoutError(err.waitingFor, err.afterMs, `${where} is still as the driver made it available`);
}

/** Runs `body` until the ring went round LAPS times; a stall is explained (`stalled`). */
async function lapping(counter: LapCounter, memory: GuestMemory, body: () => Promise<void>): Promise<number> {
  let rounds = 0;
  try {
    while (counter.laps < LAPS) {
      await body();
      rounds++;
    }
  } catch (err) {
    if (err instanceof TimeoutError) throw stalled(err, counter, memory);
    throw err;
  }
  return rounds;
}

/**
 * vring.packed.used and vring.packed.indirect on a block device: known data written and read back over a
 * packed ring (the exercise of vring.blk.read-write) until it went round LAPS times. used.len findings are
 * vring.blk.read-write's where it made them too (namingFindings), this check's where only this path shows them.
 */
async function blockLaps(ctx: CheckContext, indirect: boolean): Promise<string> {
  const setup = await openBlock(ctx, { packed: true, size: PACKED_SIZE, writes: true, indirect });
  const counter = new LapCounter(setup.ring);
  const blk = new BlkDriver(counter, {
    timeoutMs: ctx.timeoutMs,
    maxSectors: setup.blk.maxSectors,
    keep: COMPLETION_RULES,
  });
  let done = '';
  const rounds = await lapping(counter, setup.device.memory, async () => {
    done = await exerciseReadWrite(blk, setup.scratch, { indirect });
  });
  return await namingFindings(
    ctx,
    `${rounds} rounds through a packed ring of ${PACKED_SIZE} descriptors${indirect ? ', each request an indirect table' : ''} ` +
      `(${counter.used} descriptors used, ${counter.laps} laps, both wrap counters flipped each lap): ${done}`,
    blk,
  );
}

/** The same on a device of any other kind: its sample requests, BATCH at a time, each completion judged. */
async function sampleLaps(ctx: CheckContext, options: PostOptions): Promise<string> {
  const setup = await openDevice(ctx, { packed: true, size: PACKED_SIZE, ...options });
  const counter = new LapCounter(setup.ring);
  const driver = new SampleDriver(
    setup.kind,
    counter,
    setup.kind.samples(setup.device.memory),
    ctx.timeoutMs,
  );
  let what = '';
  await lapping(counter, setup.device.memory, async () => {
    what = (await driver.run(BATCH, options))[0]!.sample.what;
  });
  return (
    `${driver.posted} ${setup.kind.type} sample requests (${what}) on ${setup.kind.sampleRingName} ` +
    `(vring ${setup.kind.sampleRing}), ${BATCH} at a time${options.indirect ? ', each an indirect table' : ''}, ` +
    `through a packed ring of ${PACKED_SIZE} descriptors: ${counter.used} descriptors used, ${counter.laps} laps, ` +
    'each used descriptor naming a request in flight, its length that of the reply'
  );
}

/**
 * vring.packed.event-idx on any device kind: used buffer notifications asked for one descriptor at a time
 * (RING_EVENT_FLAGS_DESC at the next used one) round the ring twice, each must come; then none asked
 * (DISABLE: the calls that came anyway are counted); then requests notified only as the device's event
 * suppression says, none left unused.
 */
async function eventIdx(ctx: CheckContext): Promise<string> {
  const setup = await openDevice(ctx, { packed: true, size: PACKED_SIZE, eventIdx: true });
  const { driver, ring } = setup;
  const queue = ring.queue;
  await driver.open();
  const rounds = 2 * PACKED_SIZE;
  for (let i = 0; i < rounds; i++) {
    const event = queue.usedPosition;
    queue.setUsedEvent(event);
    ring.drainCalls();
    const sample = driver.post();
    driver.kick();
    const called = await ring.waitCall(ctx.timeoutMs);
    const done = called ? await driver.collect(1) : driver.collectNow();
    const at = `descriptor ${event & 0x7fff} (wrap counter ${event >> 15})`;
    if (!called) {
      throw new BackendError(
        done.length
          ? `request ${i + 1} (${sample.what}) was used at ${at}, where the driver event suppression asked for a ` +
              'notification (RING_EVENT_FLAGS_DESC), but no used buffer notification came'
          : `request ${i + 1} (${sample.what}) was not used within ${ctx.timeoutMs} ms (${queue.describePosition()})`,
      );
    }
    for (const c of done) driver.judge(c);
  }
  // None wanted: whatever calls still come are reported.
  queue.setNoInterrupt(true);
  ring.drainCalls();
  await driver.run(BATCH);
  const unwanted = ring.drainCalls();
  queue.setNoInterrupt(false);
  // Notified only as the device event suppression asks: none may be left unused.
  let kicks = 0;
  for (let i = 0; i < rounds; i++) {
    const before = queue.availMark;
    const sample = driver.post();
    const event = queue.deviceEvent;
    if ((event.flags & 0x3) === 0x3)
      throw new BackendError(`the device event suppression flags are 3, a reserved value (${sample.what})`);
    const kicked = queue.needsKick(before, queue.availMark);
    if (kicked) {
      driver.kick();
      kicks++;
    }
    try {
      for (const c of await driver.collect(1)) driver.judge(c);
    } catch (err) {
      if (!(err instanceof TimeoutError) || kicked) throw err;
      throw new BackendError(
        `request ${i + 1} (${sample.what}) was never used: the driver did not notify, as the device event ` +
          `suppression said (flags ${event.flags}, descriptor ${event.position & 0x7fff}, wrap counter ${event.position >> 15})`,
      );
    }
  }
  return (
    `${rounds} ${setup.kind.type} sample requests round a packed ring of ${PACKED_SIZE} descriptors, a used buffer ` +
    `notification asked at each one's descriptor: each came; ${unwanted === 0 ? 'no call' : `${unwanted} call(s)`} ` +
    `with notifications disabled; ${rounds} more notified as the device asked (${kicks} kicks), none lost`
  );
}

const PACKED_RULE =
  'virtio spec, Packed Virtqueues, Driver and Device Ring Wrap Counters, with no normative word: "To mark a ' +
  'descriptor as used, the device sets the VIRTQ_DESC_F_USED bit in Flags to match the internal Device Ring Wrap ' +
  'Counter. It also sets the VIRTQ_DESC_F_AVAIL bit to match the same value." and "The device changes the value of ' +
  'this counter each time it uses the last descriptor in the ring (after marking the last descriptor used)."; ' +
  'Next Flag: Descriptor Chaining: "The device only writes out a single used descriptor for the whole list. It ' +
  'then skips forward according to the number of descriptors in the list."; Element Address and Length: "In a ' +
  'used descriptor, Element Address is unused. Element Length specifies the length of the buffer that has been ' +
  'initialized (written to) by the device."';

export const packedChecks = defineChecks('vring', [
  {
    id: 'vring.packed.used',
    detail:
      "with `VIRTIO_F_RING_PACKED`, requests round a packed ring of 19 descriptors (odd: lists cross its end) four times or more: each used descriptor where the next one is due, marked with the wrap counter of its lap, naming a buffer in flight, its length no more than the device wrote; a block device writes known data and reads it back byte for byte (a used.len also over-reported on split rings is `vring.blk.read-write`'s, named), the other kinds their sample request, each reply judged",
    title:
      "with VIRTIO_F_RING_PACKED, requests go round a packed ring many times, each used descriptor in its place with its lap's wrap counter, id and length",
    severity: 'SHOULD',
    interop: true,
    spec: PackedSpec.wrapCounters,
    rule:
      `${PACKED_RULE}; interoperability: a driver (Linux drivers/virtio/virtio_ring.c more_used_packed and ` +
      'virtqueue_get_buf_ctx_packed; DPDK virtio_ring) takes a descriptor as used by these flags at the position ' +
      'it expects, and the length as the bytes written',
    needs: [NEEDS_DATA_PATH],
    run: (ctx) => (onBlock(ctx) ? blockLaps(ctx, false) : sampleLaps(ctx, {})),
  },
  {
    id: 'vring.packed.indirect',
    detail:
      'with `VIRTIO_F_RING_PACKED` and `VIRTIO_RING_F_INDIRECT_DESC`, every request one descriptor with `VIRTQ_DESC_F_INDIRECT` naming a table of its buffers, four laps or more round a packed ring of 19 descriptors: each completes as a direct one does (block: known data read back byte for byte)',
    title:
      'with VIRTIO_F_RING_PACKED and VIRTIO_RING_F_INDIRECT_DESC, requests through indirect tables on a packed ring complete as direct ones',
    severity: 'SHOULD',
    interop: true,
    spec: PackedSpec.indirect,
    rule:
      'virtio spec, Packed Virtqueues, Indirect Flag: Scatter-Gather Support, with no normative word: "To increase ' +
      'ring capacity the driver can store a (read-only by the device) table of indirect descriptors anywhere in ' +
      'memory, and insert a descriptor in the main virtqueue (with Flags bit VIRTQ_DESC_F_INDIRECT on) that ' +
      'refers to a buffer element containing this indirect descriptor table"; interoperability: Linux ' +
      '(virtqueue_add_indirect_packed) sends every request of several elements so when the feature is negotiated',
    // A device that refuses indirect tables on split rings as well fails vring.blk.indirect: one defect.
    needs: ['vring.packed.used', 'vring.blk.indirect'],
    run: (ctx) => (onBlock(ctx) ? blockLaps(ctx, true) : sampleLaps(ctx, { indirect: true })),
  },
  {
    id: 'vring.packed.event-idx',
    detail:
      'with `VIRTIO_F_RING_PACKED` and `VIRTIO_RING_F_EVENT_IDX`, the driver event suppression set to `RING_EVENT_FLAGS_DESC` at the next used descriptor before each request, twice round a packed ring of 19 descriptors: a used buffer notification comes for each; with `RING_EVENT_FLAGS_DISABLE` the calls that come are counted; requests notified only as the device event suppression asks are all used, its flags never the reserved 3',
    title:
      'with VIRTIO_F_RING_PACKED and VIRTIO_RING_F_EVENT_IDX, a used buffer notification comes at the descriptor the driver event suppression names',
    severity: 'SHOULD',
    interop: true,
    spec: PackedSpec.eventSuppression,
    rule:
      'virtio spec, Packed Virtqueues, Driver and Device Event Suppression, with no normative word: "Descriptor ' +
      'Ring Change Event Offset: If Event Flags set to descriptor specific event: offset within the ring (in units ' +
      'of descriptor size). Event will only trigger when this descriptor is made available/used respectively." and ' +
      '"After writing out some descriptors, both the device and the driver are expected to consult the relevant ' +
      'structure to find out whether a used respectively an available buffer notification should be sent."; ' +
      'interoperability: Linux (virtqueue_enable_cb_delayed_packed) asks for the notification at one descriptor ' +
      'and waits for it',
    // A device that ignores EVENT_IDX on split rings as well fails vring.blk.event-idx: one defect.
    needs: ['vring.packed.used', 'vring.blk.event-idx'],
    run: eventIdx,
  },
]);
