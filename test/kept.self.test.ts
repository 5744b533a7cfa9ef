/**
 * robust.ctl.* on a back-end kept from input to input (suites/robustness/kept.ts): the reference, which serves
 * a new connection after each, takes every input of a check on one launch; --fresh-backends gives each input a
 * launch of its own, as before issue 15. The flaw refusal-outlives-connection crashes only on a process that
 * refused a message on an earlier connection: the kept back-end's crashes are reported, naming the inputs before
 * them, and not counted, since a fresh launch given each input alone does not crash; with --fresh-backends
 * there is nothing to report.
 */
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { runConformance } from '../harness/runner/run.js';
import type { CheckResult } from '../harness/runner/types.js';
import { allChecks } from '../suites/index.js';
import { fixture } from './helpers.js';

const CTL = '^robust\\.ctl\\.';
/** The check run again with --fresh-backends: one launch per input is slow, and one check shows it. */
const ONE = '^robust\\.ctl\\.request-id$';

/** The inputs a check tried, from its fact ("12 of 14 inputs answered..."). */
function inputsOf(check: CheckResult): number {
  const count = /^\d+ of (\d+) inputs answered/.exec(check.message ?? '')?.[1];
  expect(count, `${check.id}: ${check.message}`).to.be.a('string');
  return Number(count);
}

describe('robust.ctl.* on a kept back-end', function () {
  this.timeout(300_000);
  let tmp: { path: string; cleanup: () => Promise<void> };

  before(async () => {
    tmp = await dir({ prefix: 'vhu-kept-', unsafeCleanup: true, tmpdir: os.tmpdir() });
  });
  after(() => tmp.cleanup());

  const run = (wrapper: string, freshBackends: boolean) =>
    runConformance({
      binary: fixture(wrapper),
      checks: allChecks,
      grep: freshBackends ? ONE : CTL,
      descriptorDirs: [],
      reportsDir: path.join(tmp.path, `${wrapper}-${freshBackends}`),
      jobs: 1,
      ...(freshBackends ? { freshBackends: true } : {}),
    });

  it('the reference: every input of a check on one launch; with --fresh-backends, a launch per input', async () => {
    const kept = await run('vhu-reference', false);
    const fresh = await run('vhu-reference', true);
    expect(kept.checks.map((c) => c.id)).to.have.length(5);
    for (const check of kept.checks) {
      expect(check.verdict, `${check.id}: ${check.message}`).to.equal('pass');
      expect(check.launches, check.id).to.equal(1);
      expect(inputsOf(check), check.id).to.be.above(1);
      expect(check.message).to.not.contain('not counted');
    }
    const [before] = fresh.checks;
    expect(before?.verdict, `${before?.id}: ${before?.message}`).to.equal('pass');
    expect(before?.launches).to.equal(6);
    expect(inputsOf(before!)).to.equal(6);
    expect(fresh.options.freshBackends).to.equal(true);
    expect(kept.options.freshBackends).to.equal(false);
  });

  it('a crash only a process that served an earlier front-end shows: reported with the inputs before it, not counted; nothing to report on fresh back-ends', async () => {
    const kept = await run('vhu-flaw-refusal-outlives-connection', false);
    for (const check of kept.checks) expect(check.verdict, `${check.id}: ${check.message}`).to.equal('pass');
    const requestId = kept.checks.find((c) => c.id === 'robust.ctl.request-id')!;
    // Request 0 is refused on the first connection; request 46, on the second, aborts the process.
    expect(requestId.message).to.match(
      /^6 of 6 inputs answered\. request 46: seen only after earlier inputs, not counted: on a back-end kept from \[request 0\], it crashed after request 46: killed by SIGABRT; .*; a fresh back-end given it alone answered; /,
    );
    // Each such crash costs the fresh launch that clears it, which takes the next input in turn.
    expect(requestId.launches).to.equal(6);
    const fresh = await run('vhu-flaw-refusal-outlives-connection', true);
    expect(fresh.checks.map((c) => [c.id, c.verdict, c.message])).to.deep.equal([
      ['robust.ctl.request-id', 'pass', '6 of 6 inputs answered'],
    ]);
  });
});
