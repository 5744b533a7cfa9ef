import { expect } from 'chai';
import { BackendError, TimeoutError } from '../errors.js';
import { fuzz, type Progress, type RunSequence, type SequenceRunner, signature } from './fuzz.js';
import type { Step } from './steps.js';

/**
 * A back-end played in process: it "crashes" on SET_VRING_NUM for ring 0 once ring 0's kick came without an
 * fd (the fixture flaw fuzz-num-while-started), and answers everything else.
 */
const flawed: RunSequence = async (steps: Step[], progress) => {
  let started = false;
  for (const [i, step] of steps.entries()) {
    progress.sent = i + 1;
    if (/^SET_VRING_KICK ring 0 without an fd/.test(step.what)) started = true;
    if (/^GET_VRING_BASE ring 0$/.test(step.what)) started = false;
    if (started && /^SET_VRING_NUM ring 0 /.test(step.what))
      throw new BackendError(
        `it crashed after step ${i + 1} of ${steps.length} (${step.what}): killed by SIGABRT`,
      );
  }
};

/** The same back-end kept from one sequence to the next, its state with it (nothing resets it). */
class Kept implements SequenceRunner {
  #history: Step[][] = [];
  #started = { value: false };
  /** Sequences run on the kept back-end, and on fresh ones. */
  readonly runs = { kept: 0, fresh: 0 };

  readonly kept = async (steps: Step[], progress: Progress): Promise<void> => {
    this.runs.kept++;
    progress.before = [...this.#history];
    try {
      await play(this.#started, steps, progress);
      this.#history.push(steps);
    } catch (err) {
      this.#history = [];
      this.#started = { value: false };
      throw err;
    }
  };

  async fresh(steps: Step[], progress: Progress, before: readonly Step[][] = []): Promise<void> {
    this.runs.fresh++;
    const started = { value: false };
    for (const earlier of before) await play(started, earlier, { sent: 0 });
    await play(started, steps, progress);
  }
}

/** `flawed`'s back-end, its state given. */
async function play(started: { value: boolean }, steps: Step[], progress: Progress): Promise<void> {
  for (const [i, step] of steps.entries()) {
    progress.sent = i + 1;
    if (/^SET_VRING_KICK ring 0 without an fd/.test(step.what)) started.value = true;
    if (/^GET_VRING_BASE ring 0$/.test(step.what)) started.value = false;
    if (started.value && /^SET_VRING_NUM ring 0 /.test(step.what))
      throw new BackendError(
        `it crashed after step ${i + 1} of ${steps.length} (${step.what}): killed by SIGABRT`,
      );
  }
}

describe('fuzz/fuzz (search and shrink, against a back-end played in process)', () => {
  it('finds the failing sequence and shrinks it to the steps that make it: ring 0 set up, started, resized', async () => {
    const result = await fuzz(flawed, { seed: 5, budgetMs: 5000, shrinkBudgetMs: 5000, sequences: 200 });
    expect(result.failed).to.equal(true);
    if (!result.failed) return;
    // The kick comes after what a front-end sends before it (steps.ts, SET_UP_ORDER).
    expect(result.steps.map((s) => s.what.replace(/num \d+$/, 'num N'))).to.deep.equal([
      'SET_MEM_TABLE one region',
      'SET_VRING_NUM ring 0 num N',
      'SET_VRING_ADDR ring 0',
      'SET_VRING_KICK ring 0 without an fd (polling)',
      'SET_VRING_NUM ring 0 num N',
    ]);
    expect(result.error.message).to.match(/after step 5 of 5 .*SIGABRT/);
    expect(result.foundSteps).to.be.at.least(2);
  });

  it('on a kept back-end, keeps a failure that needs the sequences before it, and a case that gives it again', async () => {
    const runner = new Kept();
    const result = await fuzz(runner, { seed: 5, budgetMs: 10_000, shrinkBudgetMs: 5000, sequences: 200 });
    expect(result.failed).to.equal(true);
    if (!result.failed) return;
    expect(runner.runs.kept).to.be.above(1);
    // Seed 5's first failing sequence fails only after those before it on the same back-end.
    expect(result.before).to.not.be.empty;
    const again = await runner.fresh(result.steps, { sent: 0 }, result.before).catch((e: unknown) => e);
    expect(signature(again as BackendError)).to.equal(signature(result.error));
    const alone = await runner.fresh(result.steps, { sent: 0 }).catch((e: unknown) => e);
    expect(alone).to.equal(undefined);
  });

  it('runs lanes at once, each in order, and finds the same failure whichever sequence ends first', async () => {
    /** Kept back-ends per lane, each sequence taking a time of its own (the same draws, another timing). */
    const lanes = (delays: (n: number) => number) => {
      const kept = Array.from({ length: 3 }, () => new Kept());
      let running = 0;
      let n = 0;
      const runner: SequenceRunner & { most: number } = {
        lanes: async () => 3,
        most: 0,
        kept: async (steps, progress, lane) => {
          runner.most = Math.max(runner.most, ++running);
          await new Promise((resolve) => setTimeout(resolve, delays(n++)));
          running--;
          await kept[lane]!.kept(steps, progress);
        },
        fresh: (steps, progress, before) => kept[0]!.fresh(steps, progress, before),
      };
      return runner;
    };
    const options = { seed: 5, budgetMs: 20_000, shrinkBudgetMs: 5000, sequences: 200 };
    const slowFirst = lanes((n) => (n % 3 === 0 ? 6 : 0));
    const slowLast = lanes((n) => (n % 3 === 2 ? 6 : 0));
    const [a, b] = [await fuzz(slowFirst, options), await fuzz(slowLast, options)];
    expect(slowFirst.most).to.equal(3);
    expect(a.failed).to.equal(true);
    expect({ ...b, sequences: 0, messages: 0, requests: 0 }).to.deep.equal({
      ...a,
      sequences: 0,
      messages: 0,
      requests: 0,
    });
  });

  it('does not take a failure that a fresh back-end does not give again, and says how many it saw', async () => {
    let kept = 0;
    const runner: SequenceRunner = {
      kept: async (steps, progress) => {
        progress.before = kept++ ? [[]] : [];
        progress.sent = steps.length;
        if (kept === 3) throw new BackendError('it crashed after step 1 of 1 (x): killed by SIGSEGV');
      },
      fresh: async (steps, progress) => {
        progress.sent = steps.length;
      },
    };
    const result = await fuzz(runner, { seed: 5, budgetMs: 5000, shrinkBudgetMs: 5000, sequences: 10 });
    expect(result).to.deep.include({ failed: false, unconfirmed: 1 });
  });

  it('draws the same sequences from the same seed', async () => {
    const seen: string[][] = [[], []];
    for (const run of [0, 1]) {
      await fuzz(
        async (steps, progress) => {
          seen[run]!.push(steps.map((s) => s.what).join('|'));
          progress.sent = steps.length;
        },
        { seed: 11, budgetMs: 5000, shrinkBudgetMs: 0, sequences: 20 },
      );
    }
    expect(seen[0]).to.have.length(20);
    expect(seen[1]).to.deep.equal(seen[0]);
  });

  it('passes, counting messages and requests, when nothing fails', async () => {
    const result = await fuzz(
      async (steps, progress) => {
        progress.sent = steps.length;
      },
      { seed: 1, budgetMs: 5000, shrinkBudgetMs: 0, sequences: 10 },
    );
    expect(result).to.deep.include({ failed: false, sequences: 10 });
    expect(result.messages + result.requests).to.be.above(10);
  });

  it('ends at once on a fault of the harness itself, which is not shrunk as a verdict', async () => {
    const err = await fuzz(
      async () => {
        throw new RangeError('a bug of ours');
      },
      { seed: 1, budgetMs: 5000, shrinkBudgetMs: 5000 },
    ).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(RangeError);
  });

  it('tells failures apart by kind, whatever step they came after', () => {
    const crash = (n: number) =>
      new BackendError(
        `it crashed after step ${n} of 9 (SET_VRING_NUM ring 0 num 8): killed by SIGABRT; stderr: x`,
      );
    expect(signature(crash(2))).to.equal(signature(crash(7)));
    const hang = new TimeoutError(
      'GET_FEATURES to be answered or the connection closed after step 2 of 9 (x)',
      100,
    );
    expect(signature(hang)).to.not.equal(signature(crash(2)));
  });
});
