/**
 * Benchmark: the fuzzing rate, generated control messages and data-plane requests per second, as robust.fuzz
 * runs them (fuzz() itself, the oracle's GET_FEATURES after every step), against the reference back-end
 * (fixture), /usr/lib/qemu/virtiofsd and /usr/lib/qemu/vhost-user-gpu, in the same run: a fresh back-end per
 * sequence, one at a time (as before issue 15), a back-end kept across sequences with spares launched ahead, one
 * sequence at a time, and robust.fuzz today (several sequences at once on back-ends that take no second
 * connection), after what a launch (wall and CPU, ours and the back-end's) and a step's round trip cost. The
 * search stops at a back-end's first confirmed failure (vhost-user-gpu's SIGSEGV comes early), so the bench
 * searches again from the next seed until its time is spent, without shrinking. Target (issue 15): 2,000
 * messages/s against virtiofsd and vhost-user-gpu; where a back-end ends most sequences, the bound launches
 * set (the cores' time over a launch's CPU, times the messages a launch serves) is printed beside it. Run alone:
 * `node dist/test/bench/fuzz.bench.js`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type FuzzCounts, fuzz, type SequenceRunner } from '../../harness/fuzz/fuzz.js';
import { CLOCK_TICKS_PER_SECOND } from '../../harness/process/procfs.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext } from '../../harness/runner/check.js';
import {
  DEFAULT_LANES,
  DEFAULT_SPARES,
  FuzzBackends,
  type Keep,
} from '../../suites/robustness/fuzz-backend.js';
import { answersGetFeatures, freshSubject, releaseSubject } from '../../suites/robustness/oracle.js';
import { benchTarget } from './common.js';

const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const DURATION_MS = Number(process.env.FUZZ_BENCH_MS ?? 5000);
const TARGET_PER_S = 2000;

interface Subject {
  name: string;
  type: string;
  binary: string;
  args: string[];
  target?: boolean;
}

/** CPU time of this process's children that ended and were reaped, in microseconds. */
function reapedChildrenCpuUs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime, fields 16 and 17 of stat(5).
  return ((Number(fields[13]) + Number(fields[14])) * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Where a sequence's time goes against `subject`: a launch (and its end), wall and CPU (ours and the
 * back-end's), and one step's round trip.
 */
async function costs(subject: Subject): Promise<{ line: string; launchCpuMs: number }> {
  const scope = new Scope();
  try {
    const ctx = makeContext(
      benchTarget(subject.type, { binary: subject.binary, extraArgs: subject.args }),
      3000,
      scope,
    );
    const LAUNCHES = 5;
    const TRIPS = 200;
    let launchMs = 0;
    let tripMs = 0;
    let oursUs = 0;
    let theirsUs = 0;
    for (let i = 0; i < LAUNCHES; i++) {
      let t = performance.now();
      let cpu = process.cpuUsage();
      const reaped = reapedChildrenCpuUs();
      const s = await freshSubject(ctx);
      launchMs += performance.now() - t;
      let used = process.cpuUsage(cpu);
      oursUs += used.user + used.system;
      t = performance.now();
      for (let j = 0; j < TRIPS; j++) await answersGetFeatures(s.session.connection, 3000);
      tripMs += performance.now() - t;
      t = performance.now();
      cpu = process.cpuUsage();
      await releaseSubject(s);
      launchMs += performance.now() - t;
      used = process.cpuUsage(cpu);
      oursUs += used.user + used.system;
      // The back-end's whole life: its start, the round trips (a few ms) and its end.
      theirsUs += reapedChildrenCpuUs() - reaped;
    }
    const launchCpuMs = (oursUs + theirsUs) / 1000 / LAUNCHES;
    return {
      launchCpuMs,
      line:
        `a launch and its end ${(launchMs / LAUNCHES).toFixed(1)} ms, its CPU ${(oursUs / 1000 / LAUNCHES).toFixed(1)} ms ours ` +
        `and ${(theirsUs / 1000 / LAUNCHES).toFixed(1)} ms the back-end's; the oracle's round trip ${((tripMs * 1000) / (LAUNCHES * TRIPS)).toFixed(0)} us`,
    };
  } finally {
    await scope.close();
  }
}

/** `runner`, counting the sequences that ended before their last step (a close or a failure), and those run on a kept back-end. */
function counting(runner: FuzzBackends, ended: { early: number; kept: number }): SequenceRunner {
  return {
    lanes: () => runner.lanes(),
    kept: async (steps, progress, lane) => {
      try {
        await runner.kept(steps, progress, lane);
      } finally {
        if (progress.sent < steps.length) ended.early++;
        if (progress.before?.length) ended.kept++;
      }
    },
    fresh: (steps, progress, before) => runner.fresh(steps, progress, before),
  };
}

async function measure(subject: Subject, how: { keep: Keep; spares?: number; lanes?: number }) {
  const scope = new Scope();
  const counts: FuzzCounts & { found: number } = {
    sequences: 0,
    messages: 0,
    requests: 0,
    unconfirmed: 0,
    found: 0,
  };
  const ended = { early: 0, kept: 0 };
  const cpu = process.cpuUsage();
  const started = performance.now();
  try {
    const ctx = makeContext(
      benchTarget(subject.type, { binary: subject.binary, extraArgs: subject.args }),
      3000,
      scope,
    );
    for (let seed = 5; performance.now() - started < DURATION_MS; seed++) {
      const backends = new FuzzBackends(ctx, how);
      try {
        const result = await fuzz(counting(backends, ended), {
          seed,
          budgetMs: Math.max(1, DURATION_MS - (performance.now() - started)),
          sequences: 100_000,
          shrinkBudgetMs: 0,
        });
        for (const key of ['sequences', 'messages', 'requests', 'unconfirmed'] as const)
          counts[key] += result[key];
        if (result.failed) counts.found++;
      } finally {
        await backends.close();
      }
    }
  } finally {
    await scope.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const steps = counts.messages + counts.requests;
  return {
    ...counts,
    seconds,
    perS: counts.messages / seconds,
    perSequence: counts.messages / Math.max(1, counts.sequences),
    kept: ended.kept,
    line:
      `${counts.sequences} sequences in ${seconds.toFixed(1)} s: ${(counts.messages / seconds).toFixed(0)} messages/s, ` +
      `${(counts.messages / Math.max(1, counts.sequences)).toFixed(1)} messages a sequence, ` +
      `${(counts.requests / seconds).toFixed(0)} requests/s, ${(counts.sequences / seconds).toFixed(1)} sequences/s, ` +
      `${counts.found} failure(s) found${counts.unconfirmed ? `, ${counts.unconfirmed} not confirmed on a fresh back-end` : ''}, ` +
      `${((100 * ended.early) / Math.max(1, counts.sequences)).toFixed(0)}% of sequences ended early (a close or a failure), ` +
      `${ended.kept} on a kept back-end; ` +
      `the harness's CPU a step ${((used.user + used.system) / steps).toFixed(0)} us (launches included)`,
  };
}

const source = mkdtempSync(path.join(os.tmpdir(), 'vhu-bench-fuzz-'));
try {
  const subjects: Subject[] = [
    { name: 'reference back-end (fixture)', type: 'block', binary: REFERENCE, args: [] },
    {
      name: '/usr/lib/qemu/virtiofsd',
      type: 'fs',
      binary: '/usr/lib/qemu/virtiofsd',
      args: ['-o', `source=${source}`],
      target: true,
    },
    {
      name: '/usr/lib/qemu/vhost-user-gpu',
      type: 'gpu',
      binary: '/usr/lib/qemu/vhost-user-gpu',
      args: [],
      target: true,
    },
  ];
  // Other work on the machine slows launches most: said with the numbers.
  const load = os.loadavg()[0]!.toFixed(1);
  console.log(
    `fuzzing rate (robust.fuzz's search, ${DURATION_MS / 1000} s each, from seed 5 on; ${os.availableParallelism()} cores, load average ${load} at the start):`,
  );
  for (const subject of subjects) {
    if (!existsSync(subject.binary)) {
      console.log(`  ${subject.name}: not installed`);
      continue;
    }
    console.log(`  ${subject.name}:`);
    const cost = await costs(subject);
    console.log(`    where the time goes: ${cost.line}`);
    const before = await measure(subject, { keep: 'never', spares: 0, lanes: 1 });
    console.log(
      `    a fresh back-end per sequence, launched when needed, one at a time (before): ${before.line}`,
    );
    const oneLane = await measure(subject, { keep: 'reconnecting', spares: 2, lanes: 1 });
    console.log(
      `    kept while it takes a new connection, 2 spares, one sequence at a time: ${oneLane.line}`,
    );
    const after = await measure(subject, { keep: 'reconnecting' });
    console.log(
      `    robust.fuzz now (kept while it takes a new connection, else ${DEFAULT_LANES} sequences at once, ${DEFAULT_SPARES} spares launched ahead): ${after.line}`,
    );
    // Each sequence a launch (the before line): the most the cores give with every launch's CPU spent.
    const cores = os.availableParallelism();
    const bound = ((cores * 1000) / cost.launchCpuMs) * before.perSequence;
    const target = subject.target
      ? `; target ${TARGET_PER_S} messages/s: ${after.perS >= TARGET_PER_S ? 'met' : 'NOT met'}; ` +
        `launches bound it: ${before.perSequence.toFixed(1)} messages a launch x ${cores} cores / ${cost.launchCpuMs.toFixed(1)} ms of CPU a launch = ${bound.toFixed(0)} messages/s on idle cores`
      : '';
    console.log(`    ${(after.perS / Math.max(before.perS, 1e-9)).toFixed(1)}x the messages/s${target}`);
    if (after.kept === 0) {
      const always = await measure(subject, { keep: 'always' });
      console.log(
        `    (not used: kept, reset by its rings stopped, which can hide findings: ${always.line})`,
      );
    }
  }
} finally {
  rmSync(source, { recursive: true, force: true });
}
