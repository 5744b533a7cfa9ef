/**
 * Property-based search for a sequence that breaks a back-end: fast-check draws sequences of steps
 * (steps.ts) from a seed (the same seed draws the same sequences), and a runner sends each with the oracle
 * after every step, throwing what the oracle throws. The search runs them on a back-end kept from one sequence
 * to the next while it lives (a launch costs more than a sequence); a failure seen there is a finding only once
 * it is seen again on a fresh back-end: the sequence alone, or else with the sequences that ran before it on the
 * kept one (the case then keeps them). One that does not come back is not a verdict (state the reuse left), and
 * the search goes on. A finding is shrunk on fresh back-ends: cut after the step that failed, then steps dropped
 * one at a time, last first, as long as the sequence still fails the same way (the shrink has a budget of its
 * own).
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
  /** Failures seen on a kept back-end that a fresh one did not give again: not verdicts. */
  unconfirmed: number;
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
      /** The sequences it fails after only (on one back-end, reset between): empty when it fails alone. */
      before: Step[][];
    } & FuzzCounts);

/** How far a sequence went: the steps sent so far (the oracle judges each after it is counted). */
export interface Progress {
  sent: number;
  /** Set by a kept run: the sequences the kept back-end ran before this one (none: it was fresh). */
  before?: Step[][];
}

/** Runs one sequence against a fresh back-end, counting in `progress.sent`; throws what the oracle threw. */
export type RunSequence = (steps: Step[], progress: Progress) => Promise<void>;

/** Where sequences run: on a back-end kept from earlier sequences, or on a fresh one. */
export interface SequenceRunner {
  /** On the back-end the sequences before used while it lives (else a fresh one), reset first. */
  kept: RunSequence;
  /** On a fresh back-end: `before` first (each judged, reset between as `kept` resets), then `steps`. */
  fresh(steps: Step[], progress: Progress, before?: readonly Step[][]): Promise<void>;
}

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

/** A plain function runs every sequence on a fresh back-end: kept and fresh are the same. */
function asRunner(run: RunSequence | SequenceRunner): SequenceRunner {
  if (typeof run !== 'function') return run;
  return {
    kept: run,
    fresh: async (steps, progress, before = []) => {
      for (const earlier of before) await run(earlier, { sent: 0 });
      await run(steps, progress);
    },
  };
}

interface Attempt {
  error?: unknown;
  sent: number;
  before: Step[][];
}

export async function fuzz(run: RunSequence | SequenceRunner, options: FuzzOptions): Promise<FuzzResult> {
  const runner = asRunner(run);
  const counts: FuzzCounts = { sequences: 0, messages: 0, requests: 0, unconfirmed: 0 };
  /**
   * Runs the sequence `draws` makes, on the kept back-end or on a fresh one after `before`; the error, how many
   * steps were sent when it failed and the sequences the back-end had run before it.
   */
  const attempt = async (
    draws: Draw[],
    on: { kept: true } | { kept: false; before?: readonly Step[][] },
  ): Promise<Attempt> => {
    const steps = concretizeAll(draws);
    const progress: Progress = { sent: 0 };
    counts.sequences++;
    const before = () => (on.kept ? (progress.before ?? []) : [...(on.before ?? [])]);
    try {
      if (on.kept) await runner.kept(steps, progress);
      else await runner.fresh(steps, progress, on.before);
      return { sent: progress.sent, before: before() };
    } catch (error) {
      return { error, sent: progress.sent, before: before() };
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
  let found: ({ draws: Draw[] } & Attempt) | undefined;
  const search = await fc.check(
    fc.asyncProperty(sequences, async (draws) => {
      const result = await attempt(draws, { kept: true });
      if (result.error === undefined) return true;
      if (!isVerdictError(result.error)) {
        found = { draws, ...result };
        return false;
      }
      // Seen on a fresh back-end, alone or after what the kept one ran before it, or not a verdict.
      const alone = result.before.length ? await attempt(draws, { kept: false }) : result;
      if (alone.error !== undefined) {
        found = { draws, ...alone };
        return false;
      }
      const after = await attempt(draws, { kept: false, before: result.before });
      if (after.error !== undefined) {
        found = { draws, ...after };
        return false;
      }
      counts.unconfirmed++;
      return true;
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
  const before = found.before;

  let draws = found.draws.slice(0, Math.max(1, found.sent));
  let error: VerdictError = found.error;
  const deadline = performance.now() + options.shrinkBudgetMs;
  for (let shrunk = true; shrunk && performance.now() < deadline; ) {
    shrunk = false;
    for (let i = draws.length - 1; i >= 0 && draws.length > 1 && performance.now() < deadline; i--) {
      const candidate = [...draws.slice(0, i), ...draws.slice(i + 1)];
      const result = await attempt(candidate, { kept: false, before });
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
    before,
    ...counts,
  };
}
