/**
 * Ring sizes by use, for a back-end without REPLY_ACK (it cannot refuse a SET_VRING_NUM in words): for each
 * queue, from 32768 down by powers of two, the device is started afresh (a fresh launch in launch mode, a
 * fresh connection in attach mode) as the qemu front-end profile starts it, with that queue at that size and
 * its base at the ring's last entry, and one well-formed request is moved through it. The first size whose
 * request is used within the deadline is the largest the queue takes: a size the back-end closes the
 * connection at, dies of, or takes without a word and never serves is not. Descending is exact whatever
 * sizes a back-end takes (no bisection's guess that a smaller size works when a larger one does), and costs
 * one start when the largest works, as it does on every back-end seen. The queues before the one measured
 * are started too, at a size they took (a front-end starts every ring up to the last it uses, and DPDK's
 * vhost library starts a device only once all the rings it has heard of are set up).
 */
import { VirtioBlkFeature, VirtioBlkStatus } from '../devices/block/blk.js';
import { BlkDriver } from '../devices/block/driver.js';
import { encodeNetHdr, MAX_FRAME, NET_HDR_SIZE, testFrame, VirtioNetFeature } from '../devices/net/net.js';
import { BackendError, ProtocolError, SkipError, TimeoutError } from '../errors.js';
import { FrontendDevice } from '../frontend/device.js';
import {
  ackFeatures,
  DEFAULT_PROFILE,
  initSession,
  profileNamed,
  type RingPlan,
  type Started,
  startDevice,
} from '../frontend/profiles.js';
import { type RegionLayout, SKEWED_LAYOUT } from '../memory/guest-memory.js';
import { frontendConnection } from '../process/probes.js';
import { Scope } from '../process/scope.js';
import { VirtioFeature } from '../protocol/spec.js';
import { makeContext, type Target } from '../runner/check.js';
import { FrontendSession } from '../transport/session.js';
import { availRingSize, descTableSize, usedRingSize } from '../virtqueue/split-layout.js';
import { MAX_RING_SIZE, type RingSizes } from './format.js';

/** The sizes tried, largest first: the powers of two up to the virtio spec's maximum queue size. */
const SIZES = Array.from({ length: Math.log2(MAX_RING_SIZE) + 1 }, (_, k) => MAX_RING_SIZE / 2 ** k);

/** Queues measured at most, from the first: a bound on the probe's length (up to 16 starts each). */
export const MAX_REQUEST_QUEUES = 4;

/**
 * The size of a ring started beside the one measured when nothing is known of it (a receive queue, a queue no
 * size served): QEMU's default queue size for block and net devices.
 */
const COMPANION_SIZE = 256;
/** Receive buffers posted beside the frame sent, for a back-end that loops frames back. */
const RX_BUFFERS = 4;
/** The frame moved through a transmit queue: a test frame of the smallest Ethernet size. */
const FRAME = testFrame(0x76687521, 0, 60);

/** How to move one request through a queue of a device type, and which queues it measures. */
interface RingRequest {
  /** What is measured, as the fingerprint says it. */
  measured: string;
  /** Whether the request measures queue `index` (null in the fingerprint otherwise). */
  measures(index: number): boolean;
  /** The virtio features to acknowledge, for a request on queue `index`. */
  features(started: Started, index: number): bigint;
  /** Moves the request through ring `index`; resolves once it is used, throws otherwise. */
  move(device: FrontendDevice, index: number, timeoutMs: number): Promise<void>;
}

const bit = (n: number) => 1n << BigInt(n);

/** What every `measured` ends with: the queues left null. */
const NULLS = `past the first ${MAX_REQUEST_QUEUES}, or one no size served`;

const BLOCK: RingRequest = {
  measured: `block: a one-sector read (VIRTIO_BLK_T_IN) through each queue, used with any status; null: a queue ${NULLS}`,
  measures: () => true,
  features: (started, index) =>
    ackFeatures(started, bit(VirtioFeature.VIRTIO_F_VERSION_1) | (index > 0 ? bit(VirtioBlkFeature.MQ) : 0n)),
  async move(device, index, timeoutMs) {
    const blk = new BlkDriver(device.ring(index), {
      timeoutMs,
      slots: 1,
      maxSectors: 1,
    });
    blk.post({ type: 'IN', sector: 0n, count: 1 });
    device.kick(index);
    const [done] = (await blk.collect(1)).completions;
    const statuses: number[] = Object.values(VirtioBlkStatus);
    if (!done || !statuses.includes(done.status))
      throw new BackendError(`the read came back with status ${done?.status ?? 'none'}: never written`);
  },
};

const NET: RingRequest = {
  measured:
    'net: one frame transmitted through each transmitq (odd queues); null: a receiveq (even queues: frames ' +
    `come to it only from outside), a queue ${NULLS}`,
  measures: (index) => index % 2 === 1,
  features: (started, index) =>
    ackFeatures(started, bit(VirtioFeature.VIRTIO_F_VERSION_1) | (index > 1 ? bit(VirtioNetFeature.MQ) : 0n)),
  async move(device, index, timeoutMs) {
    const { memory } = device;
    const rx = device.ring(index - 1);
    for (let i = 0; i < Math.min(RX_BUFFERS, rx.queue.size); i++) {
      const len = NET_HDR_SIZE + MAX_FRAME;
      rx.queue.addRequest([{ gpa: memory.alloc(len, 16), len, write: true }]);
    }
    rx.notify();
    const packet = memory.alloc(NET_HDR_SIZE + FRAME.length, 16);
    memory.write(packet, encodeNetHdr());
    memory.write(packet + BigInt(NET_HDR_SIZE), FRAME);
    const tx = device.ring(index);
    tx.queue.addRequest([{ gpa: packet, len: NET_HDR_SIZE + FRAME.length, write: false }]);
    tx.notify();
    await tx.waitUsed(timeoutMs, 1);
  },
};

/** The device types whose rings are measured by a request, by type. */
const REQUESTS: Readonly<Record<string, RingRequest>> = { block: BLOCK, net: NET };

/**
 * The rings started for a request on queue `index` at `size`: every queue up to it, the one measured at `size`
 * with its base at its last entry (a back-end that serves fewer entries misses the request), each other at
 * the size it took (`found`), or COMPANION_SIZE, never more than `size`.
 */
export function ringsFor(index: number, size: number, found: ReadonlyArray<number | null>): RingPlan[] {
  return Array.from({ length: index + 1 }, (_, k) =>
    k === index
      ? { index, size, base: size - 1 }
      : { index: k, size: Math.min(found[k] ?? COMPANION_SIZE, size) },
  );
}

/** SKEWED_LAYOUT with room for every ring of `rings` in the ring region (the highest), grown where need be. */
export function layoutFor(rings: readonly RingPlan[]): RegionLayout[] {
  const ringBytes = rings.reduce(
    (sum, r) => sum + descTableSize(r.size) + availRingSize(r.size) + usedRingSize(r.size) + 64,
    0,
  );
  const MiB = 0x10_0000;
  // 256 KiB besides for what the drivers allocate there (a read's buffers, frames).
  const size = BigInt(Math.ceil((ringBytes + 0x4_0000) / MiB) * MiB);
  const last = SKEWED_LAYOUT.reduce((a, b) => (b.guestAddress > a.guestAddress ? b : a));
  return SKEWED_LAYOUT.map((r) => (r === last && r.size < size ? { ...r, size } : r));
}

/** Why a type is not probed this way: the types that are, named. */
function notProbedFor(type: string, why: string): RingSizes {
  return {
    status: 'not-probed',
    reason:
      `${why}, and no request is moved through a ${type} device's rings to ` +
      `find their sizes by use (done for ${Object.keys(REQUESTS).join(' and ')} devices)`,
  };
}

/** What a back-end that does not take a ring causes: a hang-up or death, no answer in time, a garbled one. */
function isBreak(err: unknown): boolean {
  return err instanceof BackendError || err instanceof TimeoutError || err instanceof ProtocolError;
}

/** No trial can be made (its message is the fingerprint's reason): nothing is known of any size. */
class NotProbed extends Error {}

/**
 * The ring sizes of `queues` queues of the back-end `target` names, by use (see the file comment); `why`
 * REPLY_ACK is not asked begins every reason for not probing. The caller's own connection must be closed
 * first: a back-end may serve one front-end at a time.
 */
export async function probeRingSizesByRequest(
  target: Target,
  queues: number,
  options: { timeoutMs: number; why: string; signal?: AbortSignal | undefined },
): Promise<RingSizes> {
  const { why, signal } = options;
  const type = target.type ?? '';
  const request = REQUESTS[type];
  if (!request) return notProbedFor(type, why);
  const maxPerQueue: Array<number | null> = [];
  for (let index = 0; index < queues; index++) {
    if (index >= MAX_REQUEST_QUEUES || !request.measures(index)) {
      maxPerQueue.push(null);
      continue;
    }
    let largest: number | null = null;
    for (const size of SIZES) {
      // Stopped (SIGINT): a trial cut short says nothing of the size, and no launch follows.
      signal?.throwIfAborted();
      let moved: boolean;
      try {
        moved = await trial(target, request, index, ringsFor(index, size, maxPerQueue), options);
      } catch (err) {
        if (!(err instanceof NotProbed)) throw err;
        return { status: 'not-probed', reason: err.message };
      }
      signal?.throwIfAborted();
      if (moved) {
        largest = size;
        break;
      }
    }
    maxPerQueue.push(largest);
  }
  if (maxPerQueue.every((n) => n === null))
    return {
      status: 'not-probed',
      reason:
        `${why}, and no request was used on any queue at any size from ` +
        `${SIZES[0]} down to 1: the ring sizes are unknown`,
    };
  return { status: 'probed', method: 'request', measured: request.measured, maxPerQueue };
}

/**
 * One start of the device with `rings` (the last one measured) and one request through it, in a scope of its
 * own (its launch ended, its memory and fds closed, before the next). True when the request was used; false
 * when the back-end broke off, refused or never served it. A connection or start-up that fails before the
 * ring is set up says nothing of the size: it is thrown (NotProbed in attach mode, where nothing listens any
 * more, and when the profile cannot start the device at all).
 */
async function trial(
  target: Target,
  request: RingRequest,
  index: number,
  rings: RingPlan[],
  { timeoutMs, why }: { timeoutMs: number; why: string },
): Promise<boolean> {
  const size = rings.at(-1)!.size;
  const scope = new Scope();
  try {
    const ctx = makeContext(target, timeoutMs, scope);
    const open = async () => {
      const session = new FrontendSession(await frontendConnection(ctx));
      const started = await initSession(profileNamed(DEFAULT_PROFILE), session, scope, {
        protocol: true,
        device: target.type,
      });
      return { session, started };
    };
    let opened: Awaited<ReturnType<typeof open>>;
    try {
      // Attach mode: a back-end dying of the last size may still take this connection, then drop it: once more.
      opened = await open().catch((err: unknown) => {
        if (target.connect === null || !isBreak(err)) throw err;
        return open();
      });
    } catch (err) {
      // Attach mode: refused, or dropped twice: the back-end is gone (it listened when the run began).
      if (target.connect !== null && (err instanceof SkipError || isBreak(err)))
        throw new NotProbed(
          `${why}, and the attached back-end stopped listening while its ` +
            `rings were probed by use (queue ${index}, before a ring of ${size} entries): attach mode ` +
            'relaunches nothing, so the ring sizes are unknown',
        );
      throw err;
    }
    const { session, started } = opened;
    try {
      const device = new FrontendDevice(session, scope, { layout: layoutFor(rings) });
      await startDevice(started, session, device, scope, {
        features: request.features(started, index),
        rings,
        enable: started.protocol,
      });
      await request.move(device, index, timeoutMs);
      return true;
    } catch (err) {
      if (isBreak(err)) return false;
      // The profile cannot start this device at all (too few memory slots, say): no size would do.
      if (err instanceof SkipError)
        throw new NotProbed(
          `${why}, and the ${DEFAULT_PROFILE} profile cannot start the device ` +
            `to probe its rings by use: ${err.message}`,
        );
      throw err;
    }
  } finally {
    await scope.close();
  }
}
