/**
 * Benchmark: the wall time of a full default run (every check, the default timeout) against the bundled
 * reference and against vhost-user-gpu, one check at a time and at --jobs <cores>, side by side in one run,
 * next to issue 15's targets (reference under 12 s, vhost-user-gpu under 8 s on 2 cores), and where the time
 * goes: each area's share, and the slowest checks. Run with `npm run bench`; numbers, not a pass/fail test.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adoptOrphans } from '../../harness/process/backend.js';
import { runConformance } from '../../harness/runner/run.js';
import type { RunResult } from '../../harness/runner/types.js';
import { allChecks } from '../../suites/index.js';

const GPU = '/usr/lib/qemu/vhost-user-gpu';
const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const TARGETS: Array<{ name: string; binary: string; targetS: number }> = [
  { name: 'reference', binary: REFERENCE, targetS: 12 },
  { name: 'vhost-user-gpu', binary: GPU, targetS: 8 },
];

/** Each area's total check time, largest first, and the five slowest checks. */
function whereItGoes(result: RunResult): string {
  const areas = new Map<string, number>();
  for (const c of result.checks) areas.set(c.area, (areas.get(c.area) ?? 0) + c.durationMs);
  const byArea = [...areas]
    .sort((a, b) => b[1] - a[1])
    .map(([area, ms]) => `${area} ${(ms / 1000).toFixed(1)} s`);
  const slowest = [...result.checks]
    .sort((a, b) => b.durationMs - a.durationMs)
    .slice(0, 5)
    .map((c) => `${c.id} ${(c.durationMs / 1000).toFixed(1)} s`);
  return `check time by area: ${byArea.join(', ')}; slowest: ${slowest.join(', ')}`;
}

adoptOrphans();
const cores = availableParallelism();
console.log(`full default run, one check at a time and at --jobs ${cores} (the cores):`);
for (const { name, binary, targetS } of TARGETS) {
  if (!existsSync(binary)) {
    console.log(`  ${name}: ${binary} is not installed`);
    continue;
  }
  const walls: string[] = [];
  let last: RunResult | undefined;
  for (const jobs of [1, cores]) {
    const started = performance.now();
    last = await runConformance({ binary, checks: allChecks, descriptorDirs: [], jobs });
    const { passed, failed, timedOut, skipped, errors } = last.summary;
    walls.push(
      `--jobs ${jobs}: ${((performance.now() - started) / 1000).toFixed(1)} s (${passed} passed, ${failed} failed, ${timedOut} timed out, ${skipped} skipped, ${errors} errors)`,
    );
  }
  console.log(`  ${name}: ${walls.join(', ')} (target: under ${targetS} s)`);
  console.log(`    ${whereItGoes(last!)}`);
}
