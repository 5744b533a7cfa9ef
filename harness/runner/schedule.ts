/**
 * Runs the steps of a plan several at a time (`--jobs`): a step starts once the steps it needs have ended
 * and the one before it in its lane has, as slots free up, the one the longest chain of steps waits on
 * first. A lane is a run of steps that must not overlap: the checks that share one back-end (attach mode), or
 * that judge together what earlier ones saw (the traffic checks and their completion rules); a check that
 * launches back-ends of its own and shares no verdict is a lane of its own. The caller reports the results in
 * plan order, whatever ends first.
 */

export interface ScheduledStep {
  /** The lane it runs in: steps of one lane run one after the other, in plan order. */
  lane: string;
  /** The indices (in the plan) of the steps that must end before it starts. */
  needs: readonly number[];
  /**
   * How long it may take (its budget): of the steps the same number of steps wait on, the one that may take
   * longest starts first, so that the run does not end waiting on one started last.
   */
  weight?: number;
}

/** Whether one more step may start beside those running, below `jobs` (runner/cpu-load.ts). */
export interface Admission {
  /** Asked before each start beside at least one running step. */
  admit(running: number): boolean;
  /** When it said no: ask again after this many ms (the end of a step asks at once too). */
  retryMs: number;
}

/**
 * Starts `run(i)` for each step as the rules above allow, at most `jobs` at once and as `admission` lets,
 * and returns each step's promise, by plan index. Once `stopped()` says so, the steps not started yet are
 * not: their promises resolve with undefined. A rejected step counts as ended (its rejection is its
 * promise's).
 */
export function schedule<T>(
  steps: readonly ScheduledStep[],
  jobs: number,
  run: (index: number) => Promise<T>,
  stopped: () => boolean = () => false,
  admission?: Admission,
): Array<Promise<T | undefined>> {
  const ended = new Array<boolean>(steps.length).fill(false);
  const started = new Array<boolean>(steps.length).fill(false);
  const settle: Array<(value: Promise<T | undefined>) => void> = [];
  const promises = steps.map(
    () => new Promise<T | undefined>((resolve) => settle.push((value) => resolve(value))),
  );
  /** The plan index of the step before each one in its lane, -1 for the first. */
  const previous = steps.map((step, i) => {
    for (let j = i - 1; j >= 0; j--) if (steps[j]!.lane === step.lane) return j;
    return -1;
  });
  // The step with the longest chain of steps waiting on it goes first (then plan order): the chain through
  // the ordered lane is the run's critical path, and a slot it leaves to steps that could run at any time
  // lengthens the run. One job keeps plan order.
  const chain = longestChains(steps, previous);
  const order = [...steps.keys()];
  const weight = (i: number) => steps[i]!.weight ?? 0;
  if (jobs > 1) order.sort((a, b) => chain[b]! - chain[a]! || weight(b) - weight(a) || a - b);
  let running = 0;
  let retrying = false;
  const ready = (i: number) =>
    !started[i] && (previous[i]! < 0 || ended[previous[i]!]!) && steps[i]!.needs.every((n) => ended[n]);
  const pump = (): void => {
    if (stopped()) {
      steps.forEach((_, i) => {
        if (!started[i]) {
          started[i] = true;
          settle[i]!(Promise.resolve(undefined));
        }
      });
      return;
    }
    for (const i of order) {
      if (running >= jobs) break;
      if (!ready(i)) continue;
      if (running > 0 && admission && !admission.admit(running)) {
        if (!retrying) {
          retrying = true;
          setTimeout(() => {
            retrying = false;
            pump();
          }, admission.retryMs);
        }
        break;
      }
      started[i] = true;
      running++;
      const done = Promise.resolve().then(() => run(i));
      settle[i]!(done);
      const end = () => {
        ended[i] = true;
        running--;
        pump();
      };
      done.then(end, end);
    }
  };
  pump();
  return promises;
}

/**
 * For each step, the most steps on one chain from it to the end of the plan, itself included: each link the
 * next step of its lane or a step that needs it. Both come later in the plan, so one pass from the end does.
 */
function longestChains(steps: readonly ScheduledStep[], previous: readonly number[]): number[] {
  const chain = new Array<number>(steps.length).fill(1);
  for (let i = steps.length - 1; i >= 0; i--) {
    const before = [previous[i]!, ...steps[i]!.needs].filter((j) => j >= 0 && j < i);
    for (const j of before) chain[j] = Math.max(chain[j]!, chain[i]! + 1);
  }
  return chain;
}

/**
 * The steps of `lane`, each made a lane of its own so that they run beside each other, but for the steps that
 * `judge` what the lane's steps before them found: such a step starts after every step of the lane before
 * it, and the steps of the lane after it start after it. The other steps are left as they are.
 */
export function spreadLane(
  steps: readonly ScheduledStep[],
  lane: string,
  judges: (index: number) => boolean,
): ScheduledStep[] {
  /** The last step of the lane that judges, and the lane's steps since then. */
  let judge = -1;
  let since: number[] = [];
  return steps.map((step, i) => {
    if (step.lane !== lane) return step;
    const before = judge < 0 ? [] : [judge];
    if (!judges(i)) {
      since.push(i);
      return { ...step, lane: `${lane}#${i}`, needs: [...step.needs, ...before] };
    }
    const needs = [...step.needs, ...before, ...since];
    judge = i;
    since = [];
    return { ...step, lane: `${lane}#${i}`, needs };
  });
}
