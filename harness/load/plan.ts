/** What the load engine's main thread hands its worker thread, and what the worker hands back. */
import type { FixedRingPlan } from './fixed-ring.js';

/** One guest memory region: its memfd (an fd of this process, so of the worker too) and where it lies. */
export interface WorkerRegion {
  fd: number;
  /** Bytes of the whole mapping (mmap offset included). */
  length: number;
  guestAddress: bigint;
  size: bigint;
  mmapOffset: bigint;
}

/** virtio-blk reads: `depth` slots, each a header, a data buffer and a status byte (guest addresses). */
export interface BlockTraffic {
  kind: 'block';
  /** Bytes a request reads (whole sectors). */
  bytes: number;
  /** Sectors the reads are spread over (the device's capacity, at most 1 GiB's). */
  sectors: number;
  slots: ReadonlyArray<{ header: bigint; data: bigint; status: bigint }>;
}

/** virtio-net frames looped back: a receive and a transmit buffer per frame in flight. */
export interface NetTraffic {
  kind: 'net';
  /** Bytes of each frame (virtio_net_hdr not counted). */
  frameBytes: number;
  /** The frame every one is a copy of, its sequence number (at FRAME_SEQUENCE_AT) aside. */
  template: Uint8Array;
  rx: readonly bigint[];
  tx: readonly bigint[];
}

export interface WorkerPlan {
  regions: WorkerRegion[];
  /** Block: the request queue. Net: receiveq1 then transmitq1. */
  rings: FixedRingPlan[];
  traffic: BlockTraffic | NetTraffic;
  /** Requests or frames kept in flight. */
  depth: number;
  durationMs: number;
  /** No completion for this long with requests in flight: the back-end stopped completing. */
  stallMs: number;
  /** Int32Array cells, indexed by Control. */
  control: SharedArrayBuffer;
}

export const Control = {
  /** Set by the main thread: stop now (the back-end's connection ended). */
  STOP: 0,
} as const;

/** Latency histogram: one bucket a microsecond, the last one for everything longer. */
export const LATENCY_BUCKETS = 100_000;

export interface LoadCounts {
  /** Requests or frames completed and judged right. */
  completed: number;
  /** From the first request posted to the last completion. */
  elapsedMs: number;
  kicks: number;
  /** Time the worker spent on completions and new requests (judging, posting, kicking), its polling aside. */
  busyMs: number;
  /** Completions by latency (post to completion), in microsecond buckets. */
  latency: Uint32Array;
}

/** The worker's first message: the rings are taken over, the load starts. */
export interface WorkerReady {
  ready: true;
}

export interface WorkerMessage {
  counts: LoadCounts;
  kicks: number;
  /** Why the run ended early: a completion judged wrong, a stall, a stop asked for. */
  error?: string;
}

/** The latency below which `fraction` of the completions came, in microseconds (of `histogram`). */
export function percentile(histogram: Uint32Array, fraction: number): number {
  let total = 0;
  for (const n of histogram) total += n;
  if (total === 0) return 0;
  const wanted = Math.ceil(total * fraction);
  let seen = 0;
  for (let us = 0; us < histogram.length; us++) {
    seen += histogram[us]!;
    if (seen >= wanted) return us + 1;
  }
  return histogram.length;
}
