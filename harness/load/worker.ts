/**
 * The load engine's worker thread: it maps the guest memory's memfds itself (a koffi view is a plain
 * ArrayBuffer, which cannot be shared with a thread), takes over the rings the main thread started, and
 * keeps them full for the run's duration, polling the used rings with kicks and calls suppressed (see
 * fixed-ring.ts). Every completion is judged before it counts; the first one that is wrong ends the run
 * with the reason. The main thread asks it to stop through `control` (the back-end's connection ended).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { eventfdWrite, type Mapping, mmapShared } from '../sys/libc.js';
import { FixedRing } from './fixed-ring.js';
import {
  Control,
  LATENCY_BUCKETS,
  type LoadCounts,
  type WorkerMessage,
  type WorkerPlan,
  type WorkerRegion,
} from './plan.js';
import { blockLoop, netLoop } from './traffic.js';

const plan = workerData as WorkerPlan;
const mappings: Mapping[] = [];

/** The bytes at guest address `gpa`, in this thread's own mapping of the region's memfd. */
function mapRegions(regions: readonly WorkerRegion[]): (gpa: bigint, len: number) => Uint8Array {
  const mapped = regions.map((r) => {
    const mapping = mmapShared(r.fd, r.length, 0);
    mappings.push(mapping);
    return { ...r, bytes: new Uint8Array(mapping.buffer) };
  });
  return (gpa, len) => {
    const r = mapped.find((m) => gpa >= m.guestAddress && gpa + BigInt(len) <= m.guestAddress + m.size);
    if (!r) throw new Error(`guest 0x${gpa.toString(16)} (+${len}) is in no region`);
    const at = Number(gpa - r.guestAddress + r.mmapOffset);
    return r.bytes.subarray(at, at + len);
  };
}

function run(): WorkerMessage {
  const control = new Int32Array(plan.control);
  const counts: LoadCounts = {
    completed: 0,
    elapsedMs: 0,
    kicks: 0,
    busyMs: 0,
    latency: new Uint32Array(LATENCY_BUCKETS),
  };
  try {
    const bytesAt = mapRegions(plan.regions);
    const rings = plan.rings.map((r) => new FixedRing(r, bytesAt));
    const kick = (ring: FixedRing) => eventfdWrite(ring.kickFd, 1);
    const stopped = () => Atomics.load(control, Control.STOP) !== 0;
    const loop = plan.traffic.kind === 'block' ? blockLoop : netLoop;
    // The main thread measures CPU from here: the thread's start and its imports are not the load's.
    parentPort?.postMessage({ ready: true });
    loop({ plan, rings, bytesAt, kick, stopped, counts });
    return { counts, kicks: rings.reduce((sum, r) => sum + r.kicks, 0) };
  } catch (err) {
    return { counts, kicks: 0, error: (err as Error).message };
  } finally {
    for (const m of mappings) m.unmap();
  }
}

parentPort?.postMessage(run());
