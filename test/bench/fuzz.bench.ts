/**
 * Benchmark: the fuzzing rate, generated control messages and data-plane requests per second against the
 * reference back-end (fixture), as robust.fuzz runs them: fuzz() itself, a fresh back-end per sequence, the
 * oracle's GET_FEATURES after every step, the sequences of seed 5. Run with `npm run bench`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuzz } from '../../harness/fuzz/fuzz.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext } from '../../harness/runner/check.js';
import { runSequence } from '../../suites/robustness/fuzz.js';
import { benchTarget } from './common.js';

const REFERENCE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference',
);
const DURATION_MS = 6000;

const scope = new Scope();
try {
  const ctx = makeContext(benchTarget('block', { binary: REFERENCE }), 3000, scope);
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = await fuzz((steps, progress) => runSequence(ctx, steps, progress), {
    seed: 5,
    budgetMs: DURATION_MS,
    sequences: 1000,
    shrinkBudgetMs: 0,
  });
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const { sequences, messages, requests } = result;
  if (result.failed) throw new Error(`the reference failed a generated sequence: ${result.error.message}`);
  console.log('fuzzing rate against the reference back-end (robust.fuzz, a fresh back-end per sequence):');
  console.log(
    `  ${sequences} sequences in ${seconds.toFixed(1)} s: ${(messages / seconds).toFixed(0)} messages/s, ` +
      `${(requests / seconds).toFixed(0)} requests/s, ${(sequences / seconds).toFixed(1)} sequences/s; ` +
      `harness CPU ${((used.user + used.system) / (messages + requests)).toFixed(0)} us a step (launches included)`,
  );
} finally {
  await scope.close();
}
