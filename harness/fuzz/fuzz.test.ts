import { expect } from 'chai';
import { BackendError, TimeoutError } from '../errors.js';
import { fuzz, type RunSequence, signature } from './fuzz.js';
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

describe('fuzz/fuzz (search and shrink, against a back-end played in process)', () => {
  it('finds the failing sequence and shrinks it to the two steps that make it', async () => {
    const result = await fuzz(flawed, { seed: 5, budgetMs: 5000, shrinkBudgetMs: 5000, sequences: 200 });
    expect(result.failed).to.equal(true);
    if (!result.failed) return;
    expect(result.steps.map((s) => s.what.replace(/num \d+$/, 'num N'))).to.deep.equal([
      'SET_VRING_KICK ring 0 without an fd (polling)',
      'SET_VRING_NUM ring 0 num N',
    ]);
    expect(result.error.message).to.match(/after step 2 of 2 .*SIGABRT/);
    expect(result.foundSteps).to.be.at.least(2);
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
