/**
 * Generated sequences (issue 5): fast-check draws sequences of valid and invalid control messages and
 * data-plane requests from a model of what is set up (harness/fuzz/steps.ts), each sent to a fresh back-end
 * with the crash/hang oracle after every step. A failure is shrunk to a minimal sequence and saved as a case
 * file in the reports folder, which `vhu-conform replay <case.json> <binary>` sends again.
 */
import { mkdir } from 'node:fs/promises';
import { BackendError, ProtocolError, SysError, TimeoutError } from '../../harness/errors.js';
import { type FuzzCase, saveCase } from '../../harness/fuzz/case.js';
import type { VerdictError } from '../../harness/fuzz/fuzz.js';
import type { Step } from '../../harness/fuzz/steps.js';
import {
  type CheckContext,
  defineChecks,
  type FuzzSettings,
  fuzzSeed,
  type Target,
} from '../../harness/runner/check.js';
import { ClosedError } from '../../harness/sys/fd-waiter.js';
import { freshSubject, HARDENING_RULE, outcomeAfter, releaseSubject } from './oracle.js';

/**
 * fast-check and the sequence runtime are loaded when robust.fuzz runs, not with the suites: every CLI run
 * loads the suites, and the sooner it is up, the sooner its Ctrl-C handler is.
 */
const fuzzing = () => import('../../harness/fuzz/fuzz.js');

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

/** Sends `steps` to a fresh back-end, the oracle after each, counting in `progress` the steps sent. */
export async function runSequence(ctx: CheckContext, steps: Step[], progress = { sent: 0 }): Promise<void> {
  const { SequenceRuntime } = await import('../../harness/fuzz/execute.js');
  const subject = await freshSubject(ctx);
  const runtime = new SequenceRuntime();
  try {
    for (const [i, step] of steps.entries()) {
      try {
        await runtime.run(step, subject.session.connection);
      } catch (err) {
        // A back-end that stopped reading or closed shows it to the oracle.
        if (!(err instanceof TimeoutError || connectionGone(err))) throw err;
      }
      progress.sent = i + 1;
      const outcome = await outcomeAfter(ctx, subject, `step ${i + 1} of ${steps.length} (${step.what})`);
      if (outcome === 'closed') break;
    }
  } finally {
    runtime.close();
    await releaseSubject(subject);
  }
}

function connectionGone(err: unknown): boolean {
  return err instanceof BackendError || err instanceof ClosedError || err instanceof SysError;
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

async function replay(ctx: CheckContext, file: string, fuzzCase: FuzzCase): Promise<string> {
  try {
    const progress = { sent: 0 };
    await runSequence(ctx, fuzzCase.steps, progress);
    return `replayed ${file}: ${progress.sent} of ${fuzzCase.steps.length} steps, each answered or closed cleanly (the case recorded: ${fuzzCase.verdict})`;
  } catch (err) {
    if (!(await fuzzing()).isVerdictError(err)) throw err;
    throw withCase(err, `replayed ${fuzzCase.steps.length} steps of ${file}`);
  }
}

function budgetMs(timeoutMs: number, target: Target): number {
  if (target.fuzz?.replay) return target.fuzz.replay.fuzzCase.steps.length * 2 * timeoutMs + 10_000;
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
        const result = await fuzz((steps, progress) => runSequence(ctx, steps, progress), {
          seed: plan.seed,
          budgetMs: plan.searchMs,
          shrinkBudgetMs: plan.shrinkMs,
          ...(plan.sequences ? { sequences: plan.sequences } : {}),
        });
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        const tally = `${result.sequences} sequences, ${result.messages} messages and ${result.requests} requests in ${seconds} s (seed ${plan.seed})`;
        if (!result.failed) return `${tally}: every step answered or closed cleanly`;
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
          steps: result.steps,
        });
        throw withCase(
          result.error,
          `shrunk from ${result.foundSteps} to ${result.steps.length} steps after ${tally}; case saved as ${file}; replay: vhu-conform replay ${file} <binary>`,
        );
      },
    },
  ],
  { destructive: true },
);
