/**
 * Benchmark: the traffic engine's throughput, 4 KiB reads at queue depth 1 and 64, against the reference
 * back-end and qemu-storage-daemon (null-co): requests per second, and the harness's CPU time per request
 * (process.cpuUsage of this process only), next to the back-end's CPU time per request (its process tree in
 * /proc, at clock-tick resolution): which of the two is the limit, and at depth 1 issue 15's target (the
 * harness's below the back-end's). A stream with nothing else to do waits for a completion in poll(2) on
 * the call eventfd for up to 1 ms before it waits on the event loop (USED_BLOCK_MS). The requests go
 * through BlkDriver.stream: `depth` of them in flight at all times, every completion checked as the data-path checks do (status,
 * used.len, the header left alone, every data byte: both back-ends read zeros, and the data area is filled
 * with guard bytes before each request). Each measure runs for a fixed time after a warm-up, so the JIT's
 * first runs are not in the average. Run with `npm run bench`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BlkRequest, SECTOR_SIZE } from '../../harness/devices/block/blk.js';
import { BlkDriver, type StreamResult } from '../../harness/devices/block/driver.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext, type Target } from '../../harness/runner/check.js';
import { openBlock } from '../../suites/common/block.js';
import { QSD, startQsd } from '../qsd.js';
import { backendCpuUs, benchTarget } from './common.js';

const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const SECTORS = 8; // 4 KiB

/** Requests run before measuring, so that the JIT has settled (the first few thousand run unoptimized). */
const WARM_UP_MS = 500;
/** How long each measure runs: long enough for /proc's 10 ms ticks and for GC to show in the average. */
const MEASURE_MS = 2000;
/** Both back-ends read zeros (a fresh RAM disk, null-co with read-zeroes); guard bytes have no zero byte. */
const ZEROS = new Uint8Array(SECTORS * SECTOR_SIZE);

/** The requests, cycled: 4 KiB reads over the first 512 KiB, made once (the bench measures the engine). */
const READS: BlkRequest[] = Array.from({ length: 128 }, (_, i) => ({
  type: 'IN',
  sector: BigInt(i * SECTORS),
  count: SECTORS,
}));

/**
 * Runs reads at queue depth `depth` (each completion replaced at once) for `ms` milliseconds, every one
 * checked as the data-path checks do (status, used.len, the header, every data byte against zeros).
 * Returns how many completed, and the kicks and waits they took.
 */
async function runFor(blk: BlkDriver, depth: number, ms: number): Promise<StreamResult> {
  const end = performance.now() + ms;
  const sum: StreamResult = { completed: 0, kicks: 0, waits: 0 };
  while (performance.now() < end) {
    const from = sum.completed;
    const result = await blk.stream({
      total: depth === 1 ? 500 : 20_000,
      depth,
      request: (i) => READS[(from + i) % READS.length]!,
      expectedData: () => ZEROS,
      indirect: true,
    });
    sum.completed += result.completed;
    sum.kicks += result.kicks;
    sum.waits += result.waits;
  }
  return sum;
}

async function measure(label: string, t: Target): Promise<void> {
  const scope = new Scope();
  try {
    const ctx = makeContext(t, 10_000, scope);
    // Indirect tables: a request is one descriptor of the ring, so 64 fit in a 64-entry ring.
    const setup = await openBlock(ctx, { indirect: true });
    const blk = new BlkDriver(setup.ring, { timeoutMs: 10_000, slots: 64, maxSectors: SECTORS });
    for (const depth of [1, 64]) {
      await runFor(blk, depth, WARM_UP_MS);
      const cpu = process.cpuUsage();
      const backendBefore = backendCpuUs();
      const started = performance.now();
      const { completed: total, kicks, waits } = await runFor(blk, depth, MEASURE_MS);
      const wallMs = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const backendUs = (backendCpuUs() - backendBefore) / total;
      const perRequestUs = (used.user + used.system) / total;
      const rate = Math.round((total / wallMs) * 1000);
      const share = (us: number): string => `${(((us * total) / 1000 / wallMs) * 100).toFixed(0)}%`;
      console.log(
        `  ${label.padEnd(28)} QD${String(depth).padEnd(3)} ${String(rate).padStart(7)} req/s   ` +
          `CPU per request: harness ${perRequestUs.toFixed(1)} us (${share(perRequestUs)} of wall), ` +
          `back-end ${backendUs.toFixed(1)} us (${share(backendUs)} of wall); ` +
          `${(kicks / total).toFixed(2)} kicks, ${(waits / total).toFixed(2)} waits per request`,
      );
      // Issue 15, item 3: at depth 1 the harness's own CPU per request below the back-end's.
      if (depth === 1)
        console.log(
          `  ${''.padEnd(28)} target at QD1: harness CPU per request below the back-end's: ` +
            `${perRequestUs.toFixed(1)} us against ${backendUs.toFixed(1)} us (${perRequestUs < backendUs ? 'met' : 'not met'})`,
        );
    }
  } finally {
    await scope.close();
  }
}

console.log('virtio-blk 4 KiB reads through the split ring (harness as front-end):');
await measure('reference back-end', benchTarget('block', { binary: REFERENCE }));
if (existsSync(QSD)) {
  const qsd = await startQsd();
  try {
    await measure('qemu-storage-daemon null-co', benchTarget('block', { connect: qsd.socket }));
  } finally {
    await qsd.stop();
  }
} else {
  console.log(`  ${QSD} is not installed (package qemu-system-common): skipped`);
}
