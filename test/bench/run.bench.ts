/**
 * Benchmark: the wall time of a full default run (every check, the default timeout) against the bundled
 * reference and against vhost-user-gpu, one check at a time, at the default --jobs (the cores: the run the
 * targets are about), at twice the cores, and at the default with --fresh-backends (every robustness input
 * and sequence on a launch of its own, as before issue 15's kept back-ends), side by side in one run, next to
 * issue 15's targets (reference under 12 s, vhost-user-gpu under 8 s on 2 cores), and where the time goes:
 * each area's share and its launches, the slowest checks, and the CPU the run took (the harness's, the
 * back-ends' it launched) against what two cores give in its wall time. Run with `npm run bench`; numbers,
 * not a pass/fail test.
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { adoptOrphans } from '../../harness/process/backend.js';
import { DEFAULT_JOBS, runConformance } from '../../harness/runner/run.js';
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

/** Each area's total check time and launches, largest first, and the five slowest checks. */
function whereItGoes(result: RunResult): string {
  const areas = new Map<string, { ms: number; launches: number }>();
  for (const c of result.checks) {
    const area = areas.get(c.area) ?? { ms: 0, launches: 0 };
    areas.set(c.area, { ms: area.ms + c.durationMs, launches: area.launches + (c.launches ?? 0) });
  }
  const byArea = [...areas]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([area, { ms, launches }]) => `${area} ${(ms / 1000).toFixed(1)} s (${launches} launches)`);
  const slowest = [...result.checks]
    .sort((a, b) => b.durationMs - a.durationMs)
    .slice(0, 5)
    .map((c) => `${c.id} ${(c.durationMs / 1000).toFixed(1)} s`);
  return `check time by area: ${byArea.join(', ')}; slowest: ${slowest.join(', ')}`;
}

const TICKS_PER_S = 100;

/**
 * CPU seconds so far: this process's (the harness), and its ended children's (the back-ends it launched and
 * reaped: /proc/self/stat's cutime and cstime, in clock ticks of 1/100 s).
 */
function cpuSeconds(): { harness: number; children: number } {
  const own = process.cpuUsage();
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  const children = (Number(fields[13]) + Number(fields[14])) / TICKS_PER_S;
  return { harness: (own.user + own.system) / 1e6, children };
}

adoptOrphans();
const cores = availableParallelism();
const twice = Math.min(64, 2 * cores);
console.log(
  `full default run, one check at a time, at --jobs ${DEFAULT_JOBS} (the default: the cores) and at --jobs ${twice}:`,
);
for (const { name, binary, targetS } of TARGETS) {
  if (!existsSync(binary)) {
    console.log(`  ${name}: ${binary} is not installed`);
    continue;
  }
  const walls: string[] = [];
  const cpu: string[] = [];
  const where: string[] = [];
  const runs = [
    { jobs: 1, freshBackends: false },
    { jobs: DEFAULT_JOBS, freshBackends: false },
    ...(twice === DEFAULT_JOBS ? [] : [{ jobs: twice, freshBackends: false }]),
    { jobs: DEFAULT_JOBS, freshBackends: true },
  ];
  for (const { jobs, freshBackends } of runs) {
    const how = `--jobs ${jobs}${freshBackends ? ' --fresh-backends' : ''}`;
    const started = performance.now();
    const before = cpuSeconds();
    const last: RunResult = await runConformance({
      binary,
      checks: allChecks,
      descriptorDirs: [],
      jobs,
      freshBackends,
    });
    const wallS = (performance.now() - started) / 1000;
    const after = cpuSeconds();
    const { passed, failed, timedOut, skipped, errors } = last.summary;
    // A timeout on the reference is the machine's load, not the back-end: named, to be seen.
    const late = last.checks.filter((c) => c.verdict === 'timeout' || c.verdict === 'error').map((c) => c.id);
    walls.push(
      `${how}: ${wallS.toFixed(1)} s (${passed} passed, ${failed} failed, ${timedOut} timed out, ${skipped} skipped, ${errors} errors${late.length ? `: ${late.join(', ')}` : ''})`,
    );
    const harness = after.harness - before.harness;
    const children = after.children - before.children;
    const launches = last.checks.reduce((n, c) => n + (c.launches ?? 0), 0);
    cpu.push(
      `${how}: harness ${harness.toFixed(1)} s, back-ends ${children.toFixed(1)} s ` +
        `(${launches} launches, ${((children / Math.max(1, launches)) * 1000).toFixed(0)} ms of CPU a back-end), ` +
        `${(((harness + children) / (wallS * cores)) * 100).toFixed(0)}% of ${cores} cores`,
    );
    if (jobs === DEFAULT_JOBS && !freshBackends) where.push(`${how}: ${whereItGoes(last)}`);
  }
  console.log(`  ${name}: ${walls.join(', ')} (target: under ${targetS} s at the default --jobs)`);
  console.log(`    CPU: ${cpu.join('; ')}`);
  for (const line of where) console.log(`    ${line}`);
}
