/**
 * Benchmark: the fuzzing rate, generated control messages and data-plane requests per second against the
 * reference back-end (fixture), as robust.fuzz runs them: a fresh back-end per sequence, the oracle's
 * GET_FEATURES after every step, the sequences of seed 5. Run with `npm run bench`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { concretizeAll, drawArbitrary, type Step } from '../../harness/fuzz/steps.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext } from '../../harness/runner/check.js';
import { runSequence } from '../../suites/robustness/fuzz.js';
import { benchTarget } from './common.js';

const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const DURATION_MS = 6000;

function tally(steps: Step[], sent: number): { messages: number; requests: number } {
  const done = steps.slice(0, sent);
  const requests = done.filter((s) => s.kind === 'request').length;
  return { messages: done.length - requests, requests };
}

const sequences = fc.sample(
  fc.noBias(fc.array(drawArbitrary, { minLength: 1, maxLength: 32, size: 'max' })),
  {
    seed: 5,
    numRuns: 1000,
  },
);
const scope = new Scope();
try {
  const target = benchTarget('block', { binary: REFERENCE });
  const cpu = process.cpuUsage();
  const started = performance.now();
  let messages = 0;
  let requests = 0;
  let runs = 0;
  for (; performance.now() - started < DURATION_MS && runs < sequences.length; runs++) {
    const steps = concretizeAll(sequences[runs]!);
    const progress = { sent: 0 };
    await runSequence(makeContext(target, 3000, scope), steps, progress);
    const counted = tally(steps, progress.sent);
    messages += counted.messages;
    requests += counted.requests;
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const steps = messages + requests;
  console.log('fuzzing rate against the reference back-end (robust.fuzz, a fresh back-end per sequence):');
  console.log(
    `  ${runs} sequences in ${seconds.toFixed(1)} s: ${(messages / seconds).toFixed(0)} messages/s, ` +
      `${(requests / seconds).toFixed(0)} requests/s, ${(runs / seconds).toFixed(1)} sequences/s; ` +
      `harness CPU ${((used.user + used.system) / steps).toFixed(0)} us a step (launches included)`,
  );
} finally {
  await scope.close();
}
