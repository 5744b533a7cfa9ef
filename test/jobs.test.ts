/**
 * `--jobs N`: the checks that launch back-ends of their own (conventions, control messages, net, gpu, input,
 * robustness) run beside the others, which keep their order unless nothing follows -- (then they too run side
 * by side, around the check that judges the completion rules). The verdicts, their order and the reports are
 * those of a run one check at a time; Ctrl-C in the middle of several checks leaves nothing behind.
 */
import { expect } from 'chai';
import { DEFAULT_JOBS } from '../harness/runner/run.js';
import type { RunResult } from '../harness/runner/types.js';
import { type CliRun, expectClean, fixture, runCli } from './helpers.js';

/** Conventions, protocol, traffic and robustness checks of the reference, gates among them. */
const GREP =
  '^(conv\\.(caps\\..*|socket-path\\..*|sigterm\\..*)|proto\\.reply\\..*|vring\\.blk\\.read-write|vring\\.restart|robust\\.ctl\\.(request-id|fds)|robust\\.leaks)$';

/** The gpu device checks (lanes of their own), the ring checks beside them, the control-message checks. */
const GPU_GREP =
  '^(gpu\\..*|vring\\.(enable-gates|disable-stops|get-vring-base\\.drain)|proto\\.negotiation\\..*)$';

/** Checks of the ordered lane: the protocol checks with traffic, the ring and the migrate checks. */
const ORDERED_GREP =
  '^(proto\\.(mem-slots\\.add-rem|status\\.round-trip)|vring\\.(blk\\..*|restart|get-vring-base|enable-gates)|migrate\\.resume)$';

const verdictList = (report: RunResult | undefined) => report?.checks.map((c) => `${c.id} ${c.verdict}`);

describe('--jobs: checks side by side, reported as one at a time', function () {
  this.timeout(300_000);
  let one: CliRun;
  let three: CliRun;
  before(async () => {
    one = await runCli(['--jobs', '1', '--grep', GREP]);
    three = await runCli(['--jobs', '3', '--grep', GREP]);
  });

  it('gives the verdicts of a run one check at a time, in the same order; exit 0, nothing left behind', () => {
    expect(one.exitCode, one.stdout).to.equal(0);
    expect(three.exitCode, three.stdout).to.equal(0);
    expect(verdictList(three.report)).to.deep.equal(verdictList(one.report));
    expect(three.report!.checks.length).to.be.above(15);
    // The console lists them in plan order too, numbered 1..n.
    const numbered = [...three.stdout.matchAll(/\[\s*(\d+)\/\d+\]$/gm)].map((m) => Number(m[1]));
    expect(numbered).to.deep.equal(numbered.map((_, i) => i + 1));
    expectClean(three);
  });

  it('the full default run of the reference at the default --jobs: the verdicts of a run one at a time', async () => {
    const full = await runCli(['--jobs', String(DEFAULT_JOBS)]);
    const oneFull = await runCli(['--jobs', '1']);
    expect(oneFull.exitCode, oneFull.stdout).to.equal(0);
    expect(verdictList(full.report)).to.deep.equal(verdictList(oneFull.report));
    expect(full.report!.checks.filter((c) => c.verdict === 'pass').length).to.be.above(70);
    expectClean(full);
  });

  it('the gpu reference: its gpu checks, each in a lane of its own, beside its ring checks, give the verdicts of a run one at a time', async () => {
    const gpu = fixture('vhu-reference-gpu');
    const oneGpu = await runCli(['--jobs', '1', '--grep', GPU_GREP, gpu]);
    const threeGpu = await runCli(['--jobs', '3', '--grep', GPU_GREP, gpu]);
    expect(oneGpu.exitCode, oneGpu.stdout).to.equal(0);
    expect(verdictList(threeGpu.report)).to.deep.equal(verdictList(oneGpu.report));
    expect(oneGpu.report!.checks.filter((c) => c.verdict === 'pass').length).to.be.above(10);
    expectClean(threeGpu);
  });

  it('a flaw read-write fails on, named by the ring checks before and after it: their verdicts and findings as one at a time', async () => {
    // Nothing follows --, so the ordered lane's checks run side by side too, read-write after those before it
    // (mem-slots.add-rem leaves it its findings) and before those after it (they name its findings).
    const flawed = fixture('vhu-flaw-write-used-len-counts-data');
    const oneFlawed = await runCli(['--jobs', '1', '--grep', ORDERED_GREP, flawed]);
    const fourFlawed = await runCli(['--jobs', '4', '--grep', ORDERED_GREP, flawed]);
    expect(verdictList(fourFlawed.report)).to.deep.equal(verdictList(oneFlawed.report));
    const verdicts = new Map(fourFlawed.report!.checks.map((c) => [c.id, c]));
    expect(verdicts.get('vring.blk.read-write')!.verdict).to.equal('fail');
    for (const id of ['proto.mem-slots.add-rem', 'vring.blk.indirect', 'vring.restart']) {
      expect(verdicts.get(id)!.verdict, id).to.equal('pass');
      expect(verdicts.get(id)!.message, id).to.contain("vring.blk.read-write's finding");
    }
    expectClean(fourFlawed);
  });

  it('refuses a --jobs that is not a whole number from 1 to 64 (exit 2)', async () => {
    const bad = await runCli(['--jobs', '0']);
    expect(bad.exitCode).to.equal(2);
    expect(bad.stderr).to.contain('--jobs');
  });

  it('Ctrl-C while several checks run: exit 130, the report marked interrupted, nothing left behind', async () => {
    const run = await runCli(['--jobs', '3', '--grep', GREP], { interruptOnStdout: /proto\.reply\./ });
    expect(run.exitCode, run.stdout).to.equal(130);
    expect(run.report?.interrupted).to.equal(true);
    expect(run.socketsLeft).to.deep.equal([]);
    expectClean(run);
  });
});
