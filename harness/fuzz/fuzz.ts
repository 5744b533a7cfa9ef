/**
 * Property-based search for a sequence that breaks a back-end: fast-check draws sequences of steps
 * (steps.ts) from a seed (the same seed draws the same sequences), and a runner sends each with the oracle
 * after every step, throwing what the oracle throws. The search runs them on a back-end kept from one sequence
 * to the next while it lives (a launch costs more than a sequence); a failure seen there is a finding only once
 * it is seen again on a fresh back-end: the sequence alone, or else with the sequences that ran before it on the
 * kept one (the case then keeps them). One that does not come back is not a verdict (state the reuse left), and
 * the search goes on. A finding is shrunk on fresh back-ends: cut after the step that failed, then steps dropped
 * one at a time, last first, as long as the sequence still fails the same way (the shrink has a budget of its
 * own). Sequences run in lanes, several at once when the runner has more than one (a sequence is mostly
 * waiting: a launch, a reply, a process's exit): sequence i in lane i mod lanes, each lane in order, so that what
 * a kept back-end ran before a sequence does not depend on timing, and the finding is the failing sequence of
 * lowest index, whichever ended first.
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
  /** Aborted: no sequence more is started, nor a shrink step (the run is stopping). */
  signal?: AbortSignal;
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
  /**
   * How many sequences may run at once, each in a lane of its own with its own back-ends (default 1); asked once,
   * before the first.
   */
  lanes?(): Promise<number>;
  /**
   * In `lane`, on the back-end the lane's sequences before used while it lives (else a fresh one), reset first.
   */
  kept(steps: Step[], progress: Progress, lane: number): Promise<void>;
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
    kept: (steps, progress) => run(steps, progress),
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
    on: { lane: number } | { before?: readonly Step[][] },
  ): Promise<Attempt> => {
    const steps = concretizeAll(draws);
    const progress: Progress = { sent: 0 };
    counts.sequences++;
    const before = () => ('lane' in on ? (progress.before ?? []) : [...(on.before ?? [])]);
    try {
      if ('lane' in on) await runner.kept(steps, progress, on.lane);
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
  /** Sequence `draws` in `lane`: a failure there, once seen on a fresh back-end (or a harness fault), or none. */
  const trial = async (draws: Draw[], lane: number): Promise<({ draws: Draw[] } & Attempt) | undefined> => {
    const result = await attempt(draws, { lane });
    if (result.error === undefined) return undefined;
    // Stopped: the back-ends were ended under it, and no fresh one is launched to see it again.
    if (options.signal?.aborted) return undefined;
    if (!isVerdictError(result.error)) return { draws, ...result };
    // Seen on a fresh back-end, alone or after what the kept one ran before it, or not a verdict.
    const alone = result.before.length ? await attempt(draws, {}) : result;
    if (alone.error !== undefined) return { draws, ...alone };
    const after = await attempt(draws, { before: result.before });
    if (after.error !== undefined) return { draws, ...after };
    counts.unconfirmed++;
    return undefined;
  };
  // Unbiased: lengths spread up to the maximum from the first sequence on (states worth reaching take a
  // dozen steps), where fast-check would start small.
  const sequences = fc.noBias(
    fc.array(drawArbitrary, { minLength: 1, maxLength: options.maxSteps ?? DEFAULT_MAX_STEPS, size: 'max' }),
  );
  const lanes = Math.max(1, (await runner.lanes?.()) ?? 1);
  /** Each lane's last sequence, ended (never rejected: its failure is in `failures`). */
  const tails: Array<Promise<void>> = Array.from({ length: lanes }, () => Promise.resolve());
  /** Failing sequences by index (fast-check's path to each); any one stops the search. */
  const failures = new Map<number, { draws: Draw[] } & Attempt>();
  let drawn = 0;
  await fc.check(
    fc.asyncProperty(sequences, async (draws) => {
      const index = drawn++;
      const lane = index % lanes;
      // The sequence before it in its lane has ended: the lane's history is the same whatever the timing.
      await tails[lane];
      if (failures.size || options.signal?.aborted) return false;
      tails[lane] = trial(draws, lane).then(
        (failure) => {
          if (failure) failures.set(index, failure);
        },
        (error: unknown) => {
          failures.set(index, { draws, error, sent: 0, before: [] });
        },
      );
      return true;
    }),
    {
      seed: options.seed,
      numRuns: options.sequences ?? Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: options.budgetMs,
      endOnFailure: true,
    },
  );
  // Every sequence drawn before a failing one has run to its end: the lowest index is the same every run.
  await Promise.all(tails);
  // A fault of the harness ends the search as it is, whichever lane it came in.
  const fault = [...failures.entries()].sort(([a], [b]) => a - b).find(([, f]) => !isVerdictError(f.error));
  if (fault) throw fault[1].error;
  const first = Math.min(...failures.keys());
  const found = failures.get(first);
  if (!found) return { failed: false, ...counts };
  if (!isVerdictError(found.error)) throw found.error;
  const before = found.before;

  let draws = found.draws.slice(0, Math.max(1, found.sent));
  let error: VerdictError = found.error;
  const deadline = performance.now() + options.shrinkBudgetMs;
  const goOn = () => performance.now() < deadline && !options.signal?.aborted;
  for (let shrunk = true; shrunk && goOn(); ) {
    shrunk = false;
    for (let i = draws.length - 1; i >= 0 && draws.length > 1 && goOn(); i--) {
      const candidate = [...draws.slice(0, i), ...draws.slice(i + 1)];
      const result = await attempt(candidate, { before });
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
    path: String(first),
    foundSteps: found.sent,
    before,
    ...counts,
  };
}
