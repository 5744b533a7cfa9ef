/**
 * Benchmark: wall time of the whole conventions suite against vhost-user-gpu (or the reference back-end when
 * it is not installed), and the part of it spent waiting on the back-end. Target: under 2 s against
 * vhost-user-gpu. Run with `npm run bench`; numbers, not a pass/fail test (these machines are noisy).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adoptOrphans } from '../../harness/process/backend.js';
import { runConformance } from '../../harness/runner/run.js';
import { waitClock } from '../../harness/util/deadline.js';
import { allChecks } from '../../suites/index.js';

const GPU = '/usr/lib/qemu/vhost-user-gpu';
const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const ROUNDS = Number(process.env.VHU_BENCH_ROUNDS ?? 5);

async function bench(binary: string, timeoutMs: number): Promise<void> {
  const walls: number[] = [];
  const waits: number[] = [];
  let slowest: Array<{ id: string; ms: number }> = [];
  for (let i = 0; i < ROUNDS; i++) {
    waitClock.totalMs = 0;
    waitClock.waits = 0;
    const started = performance.now();
    const result = await runConformance({ binary, checks: allChecks, timeoutMs, descriptorDirs: [] });
    walls.push(performance.now() - started);
    waits.push(waitClock.totalMs);
    slowest = [...result.checks]
      .sort((a, b) => b.durationMs - a.durationMs)
      .slice(0, 3)
      .map((c) => ({ id: c.id, ms: c.durationMs }));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const wall = median(walls);
  const wait = median(waits);
  console.log(`conventions suite against ${binary}, --timeout ${timeoutMs}, ${ROUNDS} rounds (median):`);
  console.log(`  wall time                  ${wall.toFixed(0)} ms`);
  console.log(`  waiting on the back-end    ${wait.toFixed(0)} ms (${((wait / wall) * 100).toFixed(0)}%)`);
  console.log(`  harness work               ${(wall - wait).toFixed(0)} ms`);
  console.log(`  slowest checks (last round) ${slowest.map((s) => `${s.id} ${s.ms} ms`).join(', ')}`);
}

adoptOrphans();
const binary = existsSync(GPU) ? GPU : REFERENCE;
if (binary !== GPU)
  console.log(`${GPU} is not installed (package qemu-system-gui); using the reference back-end`);
// vhost-user-gpu spins instead of exiting on a bad --fd, so one check always waits the whole deadline:
// measured at the default deadline and at a short one.
await bench(binary, 3000);
await bench(binary, 500);
