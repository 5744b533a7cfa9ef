/**
 * Generated sequences (issue 5): fast-check draws sequences of valid and invalid control messages and
 * data-plane requests from a model of what is set up (harness/fuzz/steps.ts), each sent with the crash/hang
 * oracle after every step, to a back-end kept from one sequence to the next while it lives (fuzz-backend.ts).
 * A failure is confirmed and shrunk on fresh back-ends and saved as a case file in the reports folder, which
 * `vhu-conform replay <case.json> <binary>` sends again to a fresh one.
 */
import { mkdir } from 'node:fs/promises';
import { BackendError, ProtocolError, SkipError, TimeoutError } from '../../harness/errors.js';
import { type FuzzCase, saveCase } from '../../harness/fuzz/case.js';
import type { FuzzResult, Progress, VerdictError } from '../../harness/fuzz/fuzz.js';
import type { Step } from '../../harness/fuzz/steps.js';
import {
  type CheckContext,
  defineChecks,
  type FuzzSettings,
  fuzzSeed,
  type Target,
} from '../../harness/runner/check.js';
import { HARDENING_RULE } from './oracle.js';

/** A bound on the steps of a reset between two sequences, for a replay's budget (stopRingSteps sends fewer). */
const RESET_STEPS = 4;

/**
 * fast-check and the sequence runtime are loaded when robust.fuzz runs, not with the suites: every CLI run
 * loads the suites, and the sooner it is up, the sooner its Ctrl-C handler is.
 */
const fuzzing = () => import('../../harness/fuzz/fuzz.js');
const backendsFor = async (ctx: CheckContext, options?: { spares?: number }) =>
  new (await import('./fuzz-backend.js')).FuzzBackends(ctx, options);

/**
 * Within the normal suite: this many sequences from the seed (a few seconds), so that a run's verdict does
 * not depend on how busy the machine is; at most DEFAULT_FUZZ_CAP_SECONDS all the same. `--fuzz` sets a
 * time budget instead.
 */
export const DEFAULT_SEQUENCES = 12;
export const DEFAULT_FUZZ_CAP_SECONDS = 20;

const ID = 'robust.fuzz';

/** The seed, search and shrink budgets of a run. */
export function fuzzPlan(settings: FuzzSettings | undefined): {
  seed: number;
  searchMs: number;
  shrinkMs: number;
  sequences?: number;
} {
  const seconds = settings?.seconds ?? DEFAULT_FUZZ_CAP_SECONDS;
  // A long --fuzz without --seed explores afresh; the seed is in the report either way.
  return {
    seed: fuzzSeed(settings),
    searchMs: seconds * 1000,
    shrinkMs: Math.max(15_000, (seconds * 1000) / 2),
    ...(settings?.seconds === undefined ? { sequences: DEFAULT_SEQUENCES } : {}),
  };
}

/**
 * Sends `steps` to a fresh back-end, the oracle after each, counting in `progress` the steps sent; `before`
 * first (the sequences a case needs before its own, reset between as the search reset them).
 */
export async function runSequence(
  ctx: CheckContext,
  steps: Step[],
  progress: Progress = { sent: 0 },
  before: readonly Step[][] = [],
): Promise<void> {
  const backends = await backendsFor(ctx, { spares: 0 });
  try {
    await backends.fresh(steps, progress, before);
  } finally {
    await backends.close();
  }
}

/** The error a check throws for `err`, with the case file named: same class, so the same verdict. */
function withCase(err: VerdictError, note: string): Error {
  if (err instanceof TimeoutError) {
    const detail = err.message.slice(err.message.indexOf(err.waitingFor) + err.waitingFor.length + 2);
    return new TimeoutError(err.waitingFor, err.afterMs, detail ? `${detail}; ${note}` : note);
  }
  if (err instanceof ProtocolError) return new ProtocolError(`${err.message}; ${note}`);
  return new BackendError(`${err.message}; ${note}`);
}

/** "after the 3 sequences before it, " for a case that needs them, else nothing. */
function afterBefore(before: readonly Step[][]): string {
  return before.length ? `after the ${before.length} sequences it needs before it, ` : '';
}

async function replay(ctx: CheckContext, file: string, fuzzCase: FuzzCase): Promise<string> {
  try {
    const progress = { sent: 0 };
    const before = fuzzCase.before ?? [];
    await runSequence(ctx, fuzzCase.steps, progress, before);
    return `replayed ${file}: ${afterBefore(before)}${progress.sent} of ${fuzzCase.steps.length} steps, each answered or closed cleanly (the case recorded: ${fuzzCase.verdict})`;
  } catch (err) {
    if (!(await fuzzing()).isVerdictError(err)) throw err;
    throw withCase(
      err,
      `replayed ${afterBefore(fuzzCase.before ?? [])}${fuzzCase.steps.length} steps of ${file}`,
    );
  }
}

function budgetMs(timeoutMs: number, target: Target): number {
  if (target.fuzz?.replay) {
    const { steps, before = [] } = target.fuzz.replay.fuzzCase;
    const count = steps.length + before.reduce((sum, s) => sum + s.length + RESET_STEPS, 0);
    return count * 2 * timeoutMs + 10_000;
  }
  const plan = fuzzPlan(target.fuzz);
  return plan.searchMs + plan.shrinkMs + 10 * timeoutMs + 5000;
}

export const fuzzChecks = defineChecks(
  'robustness',
  [
    {
      id: ID,
      detail:
        'generated sequences of valid and invalid control messages and data-plane requests (see _Generated sequences_) neither crash nor hang it: after every step it answers GET_FEATURES or closes the connection; a failure is shrunk and saved as a case file',
      title:
        'generated sequences of valid and invalid control messages and data-plane requests neither crash nor hang it',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: 'vhost-user.rst#front-end-message-types',
      needs: ['conv.socket-path.reply'],
      budgetMs,
      async run(ctx) {
        const settings = ctx.target.fuzz;
        if (settings?.replay) return replay(ctx, settings.replay.file, settings.replay.fuzzCase);
        const plan = fuzzPlan(settings);
        const started = performance.now();
        const { fuzz } = await fuzzing();
        const backends = await backendsFor(ctx);
        let result: FuzzResult;
        try {
          result = await fuzz(backends, {
            seed: plan.seed,
            budgetMs: plan.searchMs,
            shrinkBudgetMs: plan.shrinkMs,
            ...(plan.sequences ? { sequences: plan.sequences } : {}),
            ...(ctx.signal ? { signal: ctx.signal } : {}),
          });
        } finally {
          await backends.close();
        }
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const tally = `${result.sequences} sequences, ${result.messages} messages and ${result.requests} requests in ${seconds} s (seed ${plan.seed})`;
        // A failure a kept back-end gave and a fresh one did not: the reuse's, not a verdict; said all the same.
        const unconfirmed = result.unconfirmed
          ? `; ${result.unconfirmed} failure(s) seen on a back-end kept from earlier sequences did not come back on a fresh one (not verdicts)`
          : '';
        // Stopped: what the search saw after the signal (back-ends killed) is not the back-end's doing.
        if (ctx.signal?.aborted) throw new SkipError(`the run was interrupted after ${tally}`);
        if (!result.failed) return `${tally}: every step answered or closed cleanly${unconfirmed}`;
        const dir = ctx.target.reportsDir ?? 'reports';
        await mkdir(dir, { recursive: true });
        const file = await saveCase(dir, {
          format: 'vhu-conform-fuzz-case',
          version: 1,
          check: ID,
          seed: plan.seed,
          path: result.path,
          backend: {
            binary: ctx.target.connect === null ? ctx.target.binary : null,
            ...(ctx.target.connect === null ? {} : { connect: ctx.target.connect }),
            args: ctx.target.extraArgs,
          },
          verdict: result.error instanceof TimeoutError ? 'timeout' : 'fail',
          message: result.error.message,
          ...(result.before.length ? { before: result.before } : {}),
          steps: result.steps,
        });
        const needs = result.before.length
          ? ` (it fails after the ${result.before.length} sequences before it on one back-end, reset between: the case keeps them)`
          : '';
        throw withCase(
          result.error,
          `shrunk from ${result.foundSteps} to ${result.steps.length} steps${needs} after ${tally}${unconfirmed}; case saved as ${file}; replay: vhu-conform replay ${file} <binary>`,
        );
      },
    },
  ],
  { destructive: true },
);
