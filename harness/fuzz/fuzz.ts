/**
 * Property-based search for a sequence that breaks a back-end: fast-check draws sequences of steps
 * (steps.ts) from a seed (the same seed draws the same sequences), `runSequence` sends each to a fresh
 * back-end with the oracle after every step and throws what the oracle throws. A failure found is shrunk:
 * cut after the step that failed, then steps dropped one at a time, last first, as long as the sequence still
 * fails the same way (each try is a fresh back-end, so the shrink has a budget of its own).
 */
import fc from 'fast-check';
import { BackendError, ProtocolError, TimeoutError } from '../errors.js';
import { concretizeAll, type Draw, drawArbitrary, type Step } from './steps.js';

export interface FuzzOptions {
  seed: number;
  /** How long to search for a failing sequence. */
  budgetMs: number;
  /** Stop after this many sequences (within the budget): a fixed count makes a seed's verdict repeat. */
  sequences?: number;
  /** How long to shrink one, once found. */
  shrinkBudgetMs: number;
  /** The longest sequence drawn. */
  maxSteps?: number;
}

/** What running sequences cost: for the check's fact and the bench. */
export interface FuzzCounts {
  sequences: number;
  messages: number;
  requests: number;
}

export type VerdictError = BackendError | ProtocolError | TimeoutError;

export type FuzzResult =
  | ({ failed: false } & FuzzCounts)
  | ({
      failed: true;
      /** The oracle's error on the shrunk sequence. */
      error: VerdictError;
      steps: Step[];
      /** fast-check's path to the sequence as found, with the seed. */
      path: string;
      /** The length of the sequence as found, before shrinking. */
      foundSteps: number;
    } & FuzzCounts);

/**
 * Runs one sequence against a fresh back-end, counting in `progress.sent` the steps sent so far (the oracle
 * judges each after it is counted); throws what the oracle threw.
 */
export type RunSequence = (steps: Step[], progress: { sent: number }) => Promise<void>;

export const DEFAULT_MAX_STEPS = 32;

/** A back-end's verdict, as opposed to a fault of the harness (which ends the search as it is). */
export function isVerdictError(err: unknown): err is VerdictError {
  return err instanceof BackendError || err instanceof ProtocolError || err instanceof TimeoutError;
}

/** What kind of failure an error is, whatever step it came after: a shrunk sequence must fail the same way. */
export function signature(err: VerdictError): string {
  const words = err.message
    .replace(/step \d+ of \d+ \([^)]*\)/g, 'step')
    .split(/[;:]/)
    .slice(0, 2)
    .join(':');
  return `${err.constructor.name} ${words}`;
}

export async function fuzz(runSequence: RunSequence, options: FuzzOptions): Promise<FuzzResult> {
  const counts: FuzzCounts = { sequences: 0, messages: 0, requests: 0 };
  /** Runs the sequence `draws` makes; the error and how many steps were sent when it failed. */
  const attempt = async (draws: Draw[]): Promise<{ error?: unknown; sent: number }> => {
    const steps = concretizeAll(draws);
    const progress = { sent: 0 };
    counts.sequences++;
    try {
      await runSequence(steps, progress);
      return { sent: progress.sent };
    } catch (error) {
      return { error, sent: progress.sent };
    } finally {
      for (const step of steps.slice(0, progress.sent)) {
        if (step.kind === 'message') counts.messages++;
        else counts.requests++;
      }
    }
  };
  // Unbiased: lengths spread up to the maximum from the first sequence on (states worth reaching take a
  // dozen steps), where fast-check would start small.
  const sequences = fc.noBias(
    fc.array(drawArbitrary, { minLength: 1, maxLength: options.maxSteps ?? DEFAULT_MAX_STEPS, size: 'max' }),
  );
  let found: { draws: Draw[]; error: unknown; sent: number } | undefined;
  const search = await fc.check(
    fc.asyncProperty(sequences, async (draws) => {
      const result = await attempt(draws);
      if (result.error === undefined) return true;
      found = { draws, error: result.error, sent: result.sent };
      return false;
    }),
    {
      seed: options.seed,
      numRuns: options.sequences ?? Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: options.budgetMs,
      endOnFailure: true,
    },
  );
  if (!search.failed || !found) return { failed: false, ...counts };
  if (!isVerdictError(found.error)) throw found.error;

  let draws = found.draws.slice(0, Math.max(1, found.sent));
  let error: VerdictError = found.error;
  const deadline = performance.now() + options.shrinkBudgetMs;
  for (let shrunk = true; shrunk && performance.now() < deadline; ) {
    shrunk = false;
    for (let i = draws.length - 1; i >= 0 && draws.length > 1 && performance.now() < deadline; i--) {
      const candidate = [...draws.slice(0, i), ...draws.slice(i + 1)];
      const result = await attempt(candidate);
      if (!isVerdictError(result.error) || signature(result.error) !== signature(error)) continue;
      draws = candidate.slice(0, Math.max(1, result.sent));
      error = result.error;
      shrunk = true;
      i = Math.min(i, draws.length);
    }
  }
  return {
    failed: true,
    error,
    steps: concretizeAll(draws),
    path: search.counterexamplePath ?? '',
    foundSteps: found.sent,
    ...counts,
  };
}
