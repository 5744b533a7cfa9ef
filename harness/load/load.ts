/**
 * The load engine behind `vhu-conform load`: a front-end that keeps a block or net back-end's queues full
 * for a given time, as a busy-polling front-end does, and measures it. The main thread starts the device
 * as the run's front-end profile does (EVENT_IDX where offered), hands the rings and the guest memory's
 * memfds to a worker thread that polls them (worker.ts), watches the connection meanwhile, and reports
 * the rate, the latency percentiles, the notifications that still went, and the CPU of both sides.
 */
import { Worker } from 'node:worker_threads';
import { BLK_DRIVER_FEATURES, readBlkConfig, SECTOR_SIZE } from '../devices/block/blk.js';
import { MAX_FRAME, MIN_FRAME, testFrame, testFrameTag } from '../devices/net/net.js';
import { BackendError, UsageError } from '../errors.js';
import { FrontendDevice } from '../frontend/device.js';
import { bit, bits } from '../frontend/profile.js';
import { ackFeatures, initTargetSession, startDevice } from '../frontend/profiles.js';
import { frontendConnection } from '../process/probes.js';
import { CLOCK_TICKS_PER_SECOND, readStat, socketOwner } from '../process/procfs.js';
import { Scope } from '../process/scope.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { makeContext, type Target } from '../runner/check.js';
import { eventfdReadCount } from '../sys/libc.js';
import { FrontendSession } from '../transport/session.js';
import type { FixedRingPlan } from './fixed-ring.js';
import { Control, percentile, type WorkerMessage, type WorkerPlan, type WorkerReady } from './plan.js';
import { FRAME_SEQUENCE_AT } from './traffic.js';

export type LoadDevice = 'block' | 'net';

export interface LoadOptions {
  type: LoadDevice;
  /** The back-end to launch (with --socket-path), or `connect`: the socket of one someone else started. */
  binary?: string;
  connect?: string;
  extraArgs?: string[];
  /** How long the queues are kept full. */
  durationMs: number;
  /** Requests (block) or frames (net) in flight (default: 64 block, 256 net). */
  depth?: number;
  /** Bytes a block read takes (default 4096), or of a net frame (default 60). */
  bytes?: number;
  /** Deadline of each message, and how long a back-end may go without completing anything. */
  timeoutMs?: number;
  /** The front-end profile the device is started with (default qemu). */
  frontend?: string;
  /** Stops the load (the CLI's SIGINT); the run then ends with an error. */
  signal?: AbortSignal;
  /** Called once the device is started and the worker has taken the rings over: the load begins. */
  onStart?: () => void;
}

export interface LoadReport {
  type: LoadDevice;
  /** The binary launched, or the socket attached to. */
  backend: string;
  unit: 'requests' | 'frames';
  depth: number;
  bytes: number;
  /** VIRTIO_RING_F_EVENT_IDX negotiated (else the flags suppress notifications). */
  eventIdx: boolean;
  /** Completions, each judged right. */
  completed: number;
  elapsedMs: number;
  perSecond: number;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number };
  /** Available buffer notifications sent, and used buffer notifications received, despite suppression. */
  kicks: number;
  calls: number;
  /**
   * The worker's own wall time per completion, polling aside (judging it, posting the next, kicking), in us:
   * what the harness could go to with a back-end that never made it wait (1 / this, in millions a second).
   */
  harnessUsPer: number;
  /** CPU time over the run as a share of one core (100: one core busy): this process, and the back-end's. */
  harnessCpuPercent: number;
  backendCpuPercent: number | null;
  backendPid: number | null;
}

const RING_SIZE = 256;
/** Block requests take three descriptors each (header, data, status). */
const MAX_BLOCK_DEPTH = Math.floor(RING_SIZE / 3);
const DEFAULTS = { block: { depth: 64, bytes: 4096 }, net: { depth: RING_SIZE, bytes: MIN_FRAME } } as const;

/** Checks the options against what the engine can do; a UsageError names what is wrong. */
export function loadSettings(options: LoadOptions): { depth: number; bytes: number } {
  const depth = options.depth ?? DEFAULTS[options.type].depth;
  const bytes = options.bytes ?? DEFAULTS[options.type].bytes;
  const maxDepth = options.type === 'block' ? MAX_BLOCK_DEPTH : RING_SIZE;
  if (!Number.isInteger(depth) || depth < 1 || depth > maxDepth)
    throw new UsageError(`--depth ${depth}: 1 to ${maxDepth} for a ${options.type} device`);
  if (options.type === 'block' && (!Number.isInteger(bytes) || bytes < SECTOR_SIZE || bytes % SECTOR_SIZE))
    throw new UsageError(`--size ${bytes}: whole 512-byte sectors for a block device`);
  if (options.type === 'block' && bytes > 1024 * 1024)
    throw new UsageError(`--size ${bytes}: at most 1 MiB a read`);
  if (options.type === 'net' && (!Number.isInteger(bytes) || bytes < MIN_FRAME || bytes > MAX_FRAME))
    throw new UsageError(`--size ${bytes}: a frame of ${MIN_FRAME} to ${MAX_FRAME} bytes`);
  if (!(options.durationMs > 0)) throw new UsageError('the duration must be positive');
  if ((options.binary === undefined) === (options.connect === undefined))
    throw new UsageError('name a back-end binary, or --connect to one');
  return { depth, bytes };
}

/** Runs the load; a back-end that completes wrongly, stops completing or goes away is a BackendError. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const { depth, bytes } = loadSettings(options);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const scope = new Scope();
  try {
    const target: Target = {
      binary: options.binary ?? '',
      connect: options.connect ?? null,
      extraArgs: options.extraArgs ?? [],
      type: options.type,
      capabilities: { type: options.type },
      descriptorDirs: [],
      memo: new Map(),
      backendMemo: new Map(),
      ...(options.frontend ? { frontend: options.frontend } : {}),
    };
    const ctx = makeContext(target, timeoutMs, scope);
    const session = new FrontendSession(await frontendConnection(ctx));
    const started = await initTargetSession(ctx, session, { protocol: true });
    const version1 = bit(VirtioFeature.VIRTIO_F_VERSION_1);
    if (options.type === 'net' && !hasBit(started.offered, VirtioFeature.VIRTIO_F_VERSION_1))
      throw new BackendError('VIRTIO_F_VERSION_1 is not offered: the legacy 10-byte header is not driven');
    const wanted =
      version1 |
      bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX) |
      (options.type === 'block' ? bits(...BLK_DRIVER_FEATURES) : 0n);
    const features = ackFeatures(started, wanted, options.type === 'net' ? version1 : 0n);
    const eventIdx = hasBit(features, VirtioFeature.VIRTIO_RING_F_EVENT_IDX);
    const device = new FrontendDevice(session, scope);
    const ringCount = options.type === 'net' ? 2 : 1;
    await startDevice(started, session, device, scope, {
      features,
      rings: Array.from({ length: ringCount }, (_, index) => ({ index, size: RING_SIZE, eventIdx })),
      enable: true,
    });
    const memory = device.memory;
    let traffic: WorkerPlan['traffic'];
    if (options.type === 'block') {
      const config = hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG)
        ? await readBlkConfig(session)
        : undefined;
      const sectors = Number(config?.capacity ?? BigInt((64 * bytes) / SECTOR_SIZE));
      if (sectors * SECTOR_SIZE < bytes)
        throw new UsageError(`--size ${bytes}: the disk has ${sectors} sectors only`);
      traffic = {
        kind: 'block',
        bytes,
        sectors: Math.min(sectors, (1 << 30) / SECTOR_SIZE),
        slots: Array.from({ length: depth }, () => ({
          header: memory.alloc(16, 16),
          data: memory.alloc(bytes, SECTOR_SIZE),
          status: memory.alloc(1, 1),
        })),
      };
    } else {
      const template = testFrame(0x10ad, 0, bytes);
      if (testFrameTag(template)?.sequence !== 0 || template[FRAME_SEQUENCE_AT] !== 0)
        throw new Error('the test frame keeps its sequence number elsewhere than FRAME_SEQUENCE_AT');
      const buffer = () => memory.alloc(12 + bytes, 16);
      traffic = {
        kind: 'net',
        frameBytes: bytes,
        template,
        rx: Array.from({ length: RING_SIZE }, buffer),
        tx: Array.from({ length: depth }, buffer),
      };
    }
    const rings: FixedRingPlan[] = Array.from({ length: ringCount }, (_, index) => {
      const ring = device.ring(index);
      return {
        index,
        size: RING_SIZE,
        desc: ring.queue.descTable.gpa,
        avail: ring.queue.availRing.gpa,
        used: ring.queue.usedRing.gpa,
        eventIdx,
        kickFd: ring.kickFd.fd,
        callFd: ring.callFd.fd,
      };
    });
    const plan: WorkerPlan = {
      regions: memory.regions.map((r) => ({
        fd: r.fd!,
        length: r.bytes.length,
        guestAddress: r.guestAddress,
        size: r.size,
        mmapOffset: r.mmapOffset,
      })),
      rings,
      traffic,
      depth,
      durationMs: options.durationMs,
      stallMs: timeoutMs,
      control: new SharedArrayBuffer(4 * Object.keys(Control).length),
    };
    for (const r of rings) eventfdReadCount(r.callFd);
    const backendPid =
      options.connect !== undefined
        ? (socketOwner(options.connect) ?? null)
        : (ctx.launched.at(-1)?.pid ?? null);
    const backendTicks = () => (backendPid === null ? undefined : readStat(backendPid)?.cpuTicks);
    let ticksBefore: number | undefined;
    let cpuBefore = process.cpuUsage();
    let wallBefore = performance.now();
    const message = await runWorker(plan, session, timeoutMs, options.signal, () => {
      ticksBefore = backendTicks();
      cpuBefore = process.cpuUsage();
      wallBefore = performance.now();
      options.onStart?.();
    });
    const wallMs = performance.now() - wallBefore;
    const cpu = process.cpuUsage(cpuBefore);
    const ticksAfter = backendTicks();
    const calls = rings.reduce((sum, r) => sum + eventfdReadCount(r.callFd), 0);
    if (message.error !== undefined) {
      const ended = session.connection.endedWith;
      const why =
        ended !== undefined
          ? `${ended}, during the load`
          : options.signal?.aborted
            ? 'interrupted'
            : message.error;
      throw new BackendError(
        `${options.type} load on ${options.connect ?? options.binary}: ${why} (after ${message.counts.completed} ${options.type === 'net' ? 'frames' : 'requests'} completed)`,
      );
    }
    const { counts } = message;
    const latency = counts.latency;
    let max = 0;
    for (let us = latency.length - 1; us >= 0; us--)
      if (latency[us]! > 0) {
        max = us + 1;
        break;
      }
    return {
      type: options.type,
      backend: options.connect ?? options.binary!,
      unit: options.type === 'net' ? 'frames' : 'requests',
      depth,
      bytes,
      eventIdx,
      completed: counts.completed,
      elapsedMs: counts.elapsedMs,
      perSecond: Math.round((counts.completed / counts.elapsedMs) * 1000),
      latencyUs: {
        p50: percentile(latency, 0.5),
        p90: percentile(latency, 0.9),
        p99: percentile(latency, 0.99),
        p999: percentile(latency, 0.999),
        max,
      },
      kicks: message.kicks,
      harnessUsPer: Math.round(((counts.busyMs * 1000) / Math.max(1, counts.completed)) * 1000) / 1000,
      calls,
      harnessCpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / wallMs) * 100),
      backendCpuPercent:
        ticksBefore === undefined || ticksAfter === undefined
          ? null
          : Math.round((((ticksAfter - ticksBefore) / CLOCK_TICKS_PER_SECOND) * 1000 * 100) / wallMs),
      backendPid,
    };
  } finally {
    await scope.close();
  }
}

/**
 * Runs the worker to its end. The connection ending stops it (the reason is the connection's); a worker
 * that does not end by the run's length and two stall deadlines is terminated, an error either way.
 */
async function runWorker(
  plan: WorkerPlan,
  session: FrontendSession,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  onReady: () => void,
): Promise<WorkerMessage> {
  const control = new Int32Array(plan.control);
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: plan });
  const stop = () => Atomics.store(control, Control.STOP, 1);
  session.connection.closed.then(stop, stop);
  signal?.addEventListener('abort', stop, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<WorkerMessage>((resolve, reject) => {
      let answer: WorkerMessage | undefined;
      worker.on('message', (m: WorkerMessage | WorkerReady) => {
        if ('ready' in m) onReady();
        else answer = m;
      });
      worker.once('error', reject);
      worker.once('exit', (code) =>
        answer ? resolve(answer) : reject(new Error(`the load worker exited with ${code} and no result`)),
      );
      timer = setTimeout(
        () => {
          stop();
          void worker.terminate();
        },
        plan.durationMs + 2 * timeoutMs + 5000,
      );
    });
  } finally {
    clearTimeout(timer);
    stop();
    await worker.terminate();
  }
}
