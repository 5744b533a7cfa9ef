/**
 * Where robust.fuzz's sequences run (harness/fuzz/fuzz.ts's SequenceRunner): on a back-end kept from one
 * sequence to the next while it lives, or on a fresh one. Launching costs more than a sequence (tens of ms for
 * a C back-end, hundreds for the Node reference, against a fraction of a ms a step), so the search keeps a
 * back-end that keeps listening while it serves a connection, reset between sequences as a front-end that
 * reconnects resets it: a new connection to the same socket (also after it closed one), found and made as
 * robust.ctl.* finds and makes it for its inputs (kept.ts's Reconnects, which says why it is sound). A back-end that takes
 * no second connection (libvhost-user's: they exit when their front-end leaves) gets a fresh launch per
 * sequence by default: resetting it with what a front-end sends (GET_VRING_BASE on each ring it started, as
 * QEMU stops a device, each reset step judged by the oracle like a step: Keep 'always') leaves state that hides
 * findings (see Keep). After a crash, or a close by a back-end that does not keep listening, it launches
 * again; spares launched ahead (a pool the lanes share) hide the launch's wait, and such back-ends serve
 * several sequences at once (DEFAULT_LANES), each on its own. Every back-end, kept, spare or in use, is the
 * check's scope's (ctx.launch), so a run stopped by a signal ends it. Attach mode keeps the way before: a new
 * connection to the one daemon per sequence, one at a time; so does --fresh-backends (a fresh launch per
 * sequence: Keep 'never').
 */
import { TimeoutError } from '../../harness/errors.js';
import type { Progress, SequenceRunner } from '../../harness/fuzz/fuzz.js';
import { ringEffect, type Step, stopRingSteps } from '../../harness/fuzz/steps.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { type Keepable, Reconnects } from './kept.js';
import {
  connectionGone,
  freshSubject,
  type Outcome,
  outcomeAfter,
  releaseSubject,
  type Subject,
} from './oracle.js';

/** A back-end is relaunched after this many sequences all the same: a case keeps at most as many before it. */
export const MAX_SEQUENCES_PER_BACKEND = 32;

/**
 * Sequences run at once on back-ends launched fresh for each (those that take no second connection), each lane
 * with its own: such a sequence is mostly waiting (a launch, a reply, the exit a close is watched for), not
 * computing, so four hide each other's waits on 2 cores. A back-end kept across sequences serves one lane: it
 * saves the launches, which more lanes would spend again. Fixed, not the run's --jobs nor the machine's cores:
 * what a kept back-end ran before a sequence follows from the lanes (fuzz.ts), and a seed's verdict must not
 * depend on the machine.
 */
export const DEFAULT_LANES = 4;

/**
 * Back-ends launched ahead at most (a pool shared by the lanes): a launch is mostly waiting (the process
 * starting, its socket appearing), so a sequence that ends the back-end it ran on takes one already listening.
 * As many as lanes: libvhost-user's back-ends close the connection on most bad messages and exit when their
 * front-end leaves, so every lane needs one about every sequence.
 */
export const DEFAULT_SPARES = DEFAULT_LANES;

/**
 * Which back-ends the search keeps from one sequence to the next: none (a fresh one each, as before issue 15);
 * those that keep listening while they serve a connection, reset by a new one (the default); or every one,
 * those that take no second connection reset by their rings stopped. The last is kept for the bench only: what
 * a sequence leaves in such a back-end (features, memory table, ring sizes, which queue threads exist), stopping
 * its rings does not undo, so a sequence runs differently there than on a fresh launch (virtiofsd, seed 5's
 * third sequence: 8 of its 11 steps answered after the second, 4 on a fresh launch) and a crash a fresh back-end
 * shows can be hidden; and it saves little, as those back-ends end most sequences by closing (9 in 10).
 */
export type Keep = 'never' | 'reconnecting' | 'always';

/**
 * A back-end in use: the sequences it ran since its launch, and how it is reset between two (`reconnects`: a
 * new connection, kept.ts; else its rings are stopped).
 */
interface Kept extends Keepable {
  history: Step[][];
  /** The rings its steps started and did not stop (see ringEffect). */
  started: Set<number>;
}

export class FuzzBackends implements SequenceRunner {
  /** Lanes at most (DEFAULT_LANES unless told). */
  readonly #laneCount: number;
  readonly #ctx: CheckContext;
  readonly #spareCount: number;
  readonly #spares: Array<Promise<Subject>> = [];
  /** Spares kept launching: one more each time a back-end had to be launched again, up to #spareCount. */
  #wanted = 0;
  #launched = 0;
  /** Whether a back-end that listens while it serves is reset by a new connection (no longer once one failed). */
  readonly #reconnects: Reconnects;
  /** Each lane's kept back-end. */
  readonly #kept: Array<Kept | undefined>;

  /**
   * `keep`: which back-ends serve more than one sequence (default: those that take a new connection);
   * `spares`: at most this many back-ends launched ahead (0: each launched when needed; attach mode has none),
   * as many as launching again turns out to be needed (a back-end that keeps listening seldom needs one);
   * `lanes`: sequences run at once (attach mode: one, the one daemon serving one front-end at a time).
   */
  constructor(ctx: CheckContext, options: { keep?: Keep; spares?: number; lanes?: number } = {}) {
    this.#ctx = ctx;
    // Attach mode: a new connection to the one daemon per sequence, as before.
    // --fresh-backends: a fresh launch per sequence, as before issue 15.
    const keep = ctx.target.freshBackends ? 'never' : (options.keep ?? 'reconnecting');
    this.#keep = ctx.target.connect === null ? keep : 'never';
    this.#spareCount = ctx.target.connect === null ? (options.spares ?? DEFAULT_SPARES) : 0;
    this.#laneCount = ctx.target.connect === null ? Math.max(1, options.lanes ?? DEFAULT_LANES) : 1;
    this.#kept = Array.from({ length: this.#laneCount }, () => undefined);
    this.#reconnects = new Reconnects(ctx);
  }

  /**
   * How many sequences run at once: one when the back-end is kept across sequences, else the lanes asked for.
   * The first launch tells, made here: kept for the first sequence when it serves a new connection (the reset
   * between sequences, tried now: a listener still seen just after it took its one front-end is no proof).
   */
  async lanes(): Promise<number> {
    if (this.#laneCount === 1 || this.#keep === 'always') return 1;
    if (this.#keep === 'never') return this.#laneCount;
    let first: Kept;
    try {
      first = await this.#fresh();
    } catch {
      // One that fails to launch fails the first sequence, as any launch does.
      return this.#laneCount;
    }
    if (!first.reconnects) {
      // No listener left: it takes no second connection, and serves lane 0's first sequence as launched.
      this.#kept[0] = first;
      return this.#laneCount;
    }
    const reset = await this.#reset(first).catch(async (err: unknown) => {
      await releaseSubject(first.subject);
      throw err;
    });
    if (reset === 'answered') {
      this.#kept[0] = first;
      return 1;
    }
    await releaseSubject(first.subject);
    return this.#laneCount;
  }

  readonly #keep: Keep;

  readonly kept = async (steps: Step[], progress: Progress, lane: number): Promise<void> => {
    let kept = this.#kept[lane];
    this.#kept[lane] = undefined;
    if (kept && (!kept.subject.backend?.alive || kept.history.length >= MAX_SEQUENCES_PER_BACKEND)) {
      await releaseSubject(kept.subject);
      kept = undefined;
    }
    // One with no history yet (lanes() tried its new connection) needs no reset.
    if (kept?.history.length) {
      // Set first: a reset that fails is a failure after these sequences.
      progress.before = [...kept.history];
      const reset = await this.#reset(kept).catch(async (err: unknown) => {
        await releaseSubject(kept!.subject);
        throw err;
      });
      if (reset === 'closed') {
        await releaseSubject(kept.subject);
        kept = undefined;
      }
    }
    if (!kept) {
      kept = await this.#fresh();
      progress.before = [];
    }
    let outcome: Outcome;
    try {
      outcome = await runOn(this.#ctx, kept.subject, steps, progress, kept.started);
    } catch (err) {
      await releaseSubject(kept.subject);
      throw err;
    }
    // A back-end that closed this connection and still listens is reset as between sequences: reconnected.
    const keeps = this.#keep === 'always' || (this.#keep === 'reconnecting' && kept.reconnects);
    if (!keeps || !this.#carriesOn(kept, outcome)) {
      await releaseSubject(kept.subject);
      return;
    }
    kept.history.push(steps);
    this.#kept[lane] = kept;
  };

  async fresh(steps: Step[], progress: Progress, before: readonly Step[][] = []): Promise<void> {
    const kept = await this.#fresh();
    try {
      for (const [i, earlier] of before.entries()) {
        // A failure here is one on a fresh back-end, said as where it came; an end the kept back-end did not
        // come to is not the history the search saw, and the sequence is not tried after it.
        const where = `before it, sequence ${i + 1} of ${before.length}: `;
        const outcome = await runOn(this.#ctx, kept.subject, earlier, { sent: 0 }, kept.started, where);
        if (!this.#carriesOn(kept, outcome) || (await this.#reset(kept)) === 'closed') return;
      }
      await runOn(this.#ctx, kept.subject, steps, progress, kept.started);
    } finally {
      await releaseSubject(kept.subject);
    }
  }

  /** Ends the kept back-ends and the spares. */
  async close(): Promise<void> {
    const kept = [...this.#kept];
    this.#kept.fill(undefined);
    for (const lane of kept) if (lane) await releaseSubject(lane.subject);
    for (const spare of this.#spares.splice(0)) {
      const subject = await spare.catch(() => undefined);
      if (subject) await releaseSubject(subject);
    }
  }

  /** A back-end no sequence has touched: a spare launched ahead, or one launched now. */
  async #fresh(): Promise<Kept> {
    const next = this.#spares.shift() ?? freshSubject(this.#ctx);
    // Past each lane's first: one launched again, so one more wanted ahead.
    if (this.#launched++ >= this.#laneCount) this.#wanted = Math.min(this.#spareCount, this.#wanted + 1);
    while (this.#spares.length < this.#wanted) {
      const spare = freshSubject(this.#ctx);
      // Its failure is seen by whoever takes it.
      spare.catch(() => undefined);
      this.#spares.push(spare);
    }
    const subject = await next;
    const reconnects = this.#reconnects.listensWhileServing(subject);
    return { subject, reconnects, history: [], started: new Set() };
  }

  /**
   * Whether `kept` serves the next sequence after `outcome`: it answered (reset by a new connection, or by its
   * rings stopped when it is kept though it takes no second connection), or closed and still listens.
   */
  #carriesOn(kept: Kept, outcome: Outcome): boolean {
    return outcome === 'answered' || this.#reconnects.carriesOn(kept, outcome);
  }

  /**
   * Resets `kept` for the next sequence: a new connection, or the rings its steps started stopped (judged, as
   * steps are; the back-end keeps the rest: features, memory table, ring sizes and addresses).
   */
  async #reset(kept: Kept): Promise<Outcome> {
    if (!kept.reconnects) {
      const stop = stopRingSteps(kept.started);
      return runOn(this.#ctx, kept.subject, stop, { sent: 0 }, kept.started, 'reset between sequences: ');
    }
    kept.started.clear();
    return this.#reconnects.reconnect(kept);
  }
}

/**
 * Sends `steps` on `subject`, the oracle after each, counting in `progress` the steps sent; 'closed' when the
 * back-end closed the connection (cleanly: a crash or a hang throws), the rest not sent. `label` goes before
 * each step's name in messages.
 */
export async function runOn(
  ctx: CheckContext,
  subject: Subject,
  steps: readonly Step[],
  progress: Progress,
  started: Set<number>,
  label = '',
): Promise<Outcome> {
  const { SequenceRuntime } = await import('../../harness/fuzz/execute.js');
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
      const { start, stop } = ringEffect(step);
      if (start !== undefined) started.add(start);
      if (stop !== undefined) started.delete(stop);
      const input = `${label}step ${i + 1} of ${steps.length} (${step.what})`;
      if ((await outcomeAfter(ctx, subject, input)) === 'closed') return 'closed';
    }
    return 'answered';
  } finally {
    runtime.close();
  }
}
