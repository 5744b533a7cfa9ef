/**
 * Gating on "no new failure" as a back-end's CI would: --write-baseline records a run's failures,
 * --baseline makes them expected (exit 0, no JUnit <failure>), a failure not listed fails the run naming it,
 * entries whose checks pass now are reported fixed; a former report.json serves as a baseline; --skip; a bad
 * baseline file stops the run before it starts.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { type DirectoryResult, dir } from 'tmp-promise';
import type { BaselineDocument } from '../harness/runner/baseline.js';
import type { RunResult } from '../harness/runner/types.js';
import { validateBaseline, validateReport } from '../harness/schemas/validate.js';
import { type CliRun, expectClean, fixture, messageOf, runCli, xmllintErrors } from './helpers.js';

const GPU = '/usr/lib/qemu/vhost-user-gpu';
/**
 * vhost-user-gpu 7.2's six failures but gpu.request-flags (README, "What it found in real back-ends"): three
 * interoperability checks of gpu and three robustness checks, all SHOULDs (no sentence says MUST of them): the
 * run fails on them under --strict, which these runs use.
 */
const GPU_FAILURES = [
  'gpu.formats',
  'gpu.scanout-offset',
  'gpu.transfer-rect',
  'robust.ctl.framing',
  'robust.ctl.vring',
  'robust.fuzz',
];
/** Those checks and a SHOULD failure of its, without the rest of the suite (about 7 s instead of 30). */
const GPU_GREP =
  '^(gpu\\.(transfer-rect|scanout-offset|formats|request-flags)|robust\\.ctl\\.(framing|vring)|robust\\.fuzz)$';
/** gpu.pixels, which vhu-flaw-gpu-update-stride fails, and gpu.scanout, which vhu-flaw-gpu-scanout-resource-size fails. */
const FIXTURE_GREP = '^gpu\\.(pixels|scanout)$';

async function readBaseline(file: string): Promise<BaselineDocument> {
  const doc = JSON.parse(await readFile(file, 'utf8')) as BaselineDocument;
  expect(validateBaseline(doc), file).to.deep.equal([]);
  return doc;
}

function failures(xml: string | undefined): string[] {
  return [...(xml ?? '').matchAll(/<testcase [^>]*name="([^ "]+)[^>]*>\s*<failure/g)].map((m) => m[1]!);
}

/** The run's reports are what a CI server takes: junit.xml valid against junit-10.xsd, report.json against its schema. */
async function expectValidReports(run: CliRun): Promise<void> {
  expect(run.junit, 'junit.xml written').to.be.a('string');
  expect(await xmllintErrors(run.junit!)).to.equal('');
  expect(validateReport(run.report)).to.deep.equal([]);
}

describe('baseline: vhost-user-gpu gated on no new failure', function () {
  this.timeout(120_000);
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-baseline-', unsafeCleanup: true });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('a baseline of its current failures makes its run exit 0, with no JUnit <failure>', async () => {
    if (!existsSync(GPU))
      expect.fail(
        `${GPU} is missing: install the Debian package qemu-system-gui (apt-get install qemu-system-gui)`,
      );
    const file = path.join(tmp.path, 'vhost-user-gpu.baseline.json');
    const first = await runCli(['--strict', '--grep', GPU_GREP, '--write-baseline', file, GPU]);
    expect(first.exitCode, first.stdout).to.equal(1);
    expect(first.stdout).to.contain(`baseline: ${file}`);
    const written = await readBaseline(file);
    const ids = written.expected.map((e) => e.id);
    expect(ids, 'sorted').to.deep.equal([...ids].sort());
    expect(ids).to.include.members(GPU_FAILURES).and.include('gpu.request-flags');
    expect(ids).to.have.length(GPU_FAILURES.length + 1);
    for (const { id, reason } of written.expected)
      expect(messageOf(first.report, id).startsWith(reason.replace(/…$/, '')), id).to.equal(true);
    expectClean(first);

    const gated = await runCli(['--strict', '--grep', GPU_GREP, '--baseline', file, GPU]);
    expect(gated.exitCode, gated.stdout).to.equal(0);
    expect(gated.report?.summary.shouldFailed, 'the failures are still there').to.be.at.least(
      GPU_FAILURES.length,
    );
    expect(gated.report?.baseline).to.deep.equal({
      entries: 7,
      expectedFailures: 7,
      newFailures: [],
      fixed: [],
      notRun: [],
    });
    expect(gated.report?.options.baseline).to.equal(file);
    for (const c of gated.report?.checks ?? [])
      expect(c.expected?.reason, c.id).to.equal(written.expected.find((e) => e.id === c.id)?.reason);
    expect(gated.stdout).to.contain('baseline: 7 expected failures, 0 new, 0 fixed');
    expect(failures(gated.junit)).to.deep.equal([]);
    expect(gated.junit).to.contain('expected failure, in the baseline: ');
    await expectValidReports(gated);
    expectClean(gated);
  });
});

// The gpu checks are interoperability SHOULDs: these runs gate on them with --strict, as a CI job that wants
// every finding would.
describe('baseline: gpu fixtures, one more rule broken', function () {
  this.timeout(120_000);
  let tmp: DirectoryResult;
  /** The baseline written from vhu-flaw-gpu-update-stride's run, and that run's report.json. */
  let strideBaseline: string;
  let strideReport: string;
  before(async function () {
    this.timeout(120_000);
    tmp = await dir({ prefix: 'vhu-selftest-baseline-', unsafeCleanup: true });
    strideBaseline = path.join(tmp.path, 'stride.baseline.json');
    strideReport = path.join(tmp.path, 'stride.report.json');
    const run = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--write-baseline',
      strideBaseline,
      '--json',
      strideReport,
      fixture('vhu-flaw-gpu-update-stride'),
    ]);
    expect(run.exitCode, run.stdout).to.equal(1);
    const report = JSON.parse(await readFile(strideReport, 'utf8')) as RunResult;
    expect((await readBaseline(strideBaseline)).expected).to.deep.equal([
      { id: 'gpu.pixels', reason: messageOf(report, 'gpu.pixels').split('; ')[0] },
    ]);
    expectClean(run);
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('a baseline of the reference has no entry: update-stride exits 1 naming gpu.pixels as the new failure', async () => {
    const file = path.join(tmp.path, 'reference.baseline.json');
    const reference = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--write-baseline',
      file,
      fixture('vhu-reference-gpu'),
    ]);
    expect(reference.exitCode, reference.stdout).to.equal(0);
    expect((await readBaseline(file)).expected).to.deep.equal([]);

    const flawed = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--baseline',
      file,
      fixture('vhu-flaw-gpu-update-stride'),
    ]);
    expect(flawed.exitCode, flawed.stdout).to.equal(1);
    expect(flawed.stdout).to.match(/^baseline: 0 expected failures, 1 new, 0 fixed$/m);
    expect(flawed.stdout).to.match(/^new failure: gpu\.pixels$/m);
    expect(flawed.report?.baseline?.newFailures).to.deep.equal(['gpu.pixels']);
    expect(failures(flawed.junit)).to.deep.equal(['gpu.pixels']);
    await expectValidReports(flawed);
    expectClean(flawed);
  });

  it("a baseline of update-stride's failure makes the same flaw exit 0, gpu.pixels a passed testcase", async () => {
    const run = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--baseline',
      strideBaseline,
      fixture('vhu-flaw-gpu-update-stride'),
    ]);
    expect(run.exitCode, run.stdout).to.equal(0);
    expect(run.report?.checks.map((c) => [c.id, c.verdict])).to.deep.equal([
      ['gpu.scanout', 'pass'],
      ['gpu.pixels', 'fail'],
    ]);
    expect(run.report?.baseline).to.deep.equal({
      entries: 1,
      expectedFailures: 1,
      newFailures: [],
      fixed: [],
      notRun: [],
    });
    expect(failures(run.junit)).to.deep.equal([]);
    expect(run.junit).to.match(
      /<testcase [^>]*name="gpu\.pixels [^>]*>\s*<system-out>[^<]*expected failure, in the baseline: /,
    );
    await expectValidReports(run);
    expectClean(run);
  });

  it('against the same baseline, scanout-resource-size exits 1 naming gpu.scanout, and reports gpu.pixels fixed', async () => {
    const run = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--baseline',
      strideBaseline,
      fixture('vhu-flaw-gpu-scanout-resource-size'),
    ]);
    expect(run.exitCode, run.stdout).to.equal(1);
    expect(run.stdout).to.match(/^baseline: 0 expected failures, 1 new, 1 fixed$/m);
    expect(run.stdout).to.match(/^new failure: gpu\.scanout$/m);
    expect(run.stdout).to.match(/^fixed: remove gpu\.pixels from the baseline \(it passes now\)$/m);
    expect(run.report?.baseline).to.deep.include({ newFailures: ['gpu.scanout'], fixed: ['gpu.pixels'] });
    expect(failures(run.junit)).to.deep.equal(['gpu.scanout']);
    expect(run.junit).to.contain('fixed: the baseline expected a failure (');
    await expectValidReports(run);
    expectClean(run);
  });

  it('a former report.json serves as the baseline: its failures are expected', async () => {
    const run = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--baseline',
      strideReport,
      fixture('vhu-flaw-gpu-update-stride'),
    ]);
    expect(run.exitCode, run.stdout).to.equal(0);
    expect(run.report?.baseline).to.deep.include({ entries: 1, expectedFailures: 1, newFailures: [] });
    expect(failures(run.junit)).to.deep.equal([]);
    expectClean(run);
  });

  it('a check expected to fail but not run (--skip) is not fixed', async () => {
    const run = await runCli([
      '--strict',
      '--grep',
      FIXTURE_GREP,
      '--skip',
      'pixels',
      '--baseline',
      strideBaseline,
      fixture('vhu-reference-gpu'),
    ]);
    expect(run.exitCode, run.stdout).to.equal(0);
    expect(run.report?.checks.map((c) => c.id)).to.deep.equal(['gpu.scanout']);
    expect(run.report?.options.skip).to.equal('pixels');
    expect(run.report?.baseline).to.deep.equal({
      entries: 1,
      expectedFailures: 0,
      newFailures: [],
      fixed: [],
      notRun: ['gpu.pixels'],
    });
    expect(run.stdout).to.match(
      /^baseline: 0 expected failures, 0 new, 0 fixed, 1 not run \(filtered or skipped\)$/m,
    );
    expect(run.stdout).not.to.match(/^fixed:/m);
    expectClean(run);
  });
});

describe('--skip and bad baselines', function () {
  this.timeout(60_000);
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-baseline-', unsafeCleanup: true });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('--skip leaves out the checks whose id matches, after --grep; leaving none is a usage error', async () => {
    const list = await runCli(['--list', '--grep', 'caps', '--skip', 'schema|exit$']);
    expect(list.exitCode, list.stderr).to.equal(0);
    expect([...list.stdout.matchAll(/^(conv\.[\w.-]+) /gm)].map((m) => m[1])).to.deep.equal([
      'conv.caps.features-known',
      'conv.caps.no-normal-function',
    ]);
    const run = await runCli(['--grep', 'caps', '--skip', 'schema|exit$', fixture('vhu-reference')]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.report?.checks.map((c) => c.id)).to.deep.equal([
      'conv.caps.features-known',
      'conv.caps.no-normal-function',
    ]);
    expectClean(run);
    const none = await runCli(['--grep', 'caps', '--skip', '^conv\\.', fixture('vhu-reference')]);
    expect(none.exitCode).to.equal(2);
    expect(none.stderr).to.contain('--skip ^conv\\. leaves no check of --grep caps');
    expect(none.report).to.equal(undefined);
  });

  it('a malformed baseline, or a file that is neither a baseline nor a report, is exit 2 naming the problem, nothing run', async () => {
    const cases: Array<[string, string, string]> = [
      ['garbled.json', '{"format": "vhu-conform-baseline",', 'not JSON: '],
      [
        'no-reason.json',
        JSON.stringify({
          format: 'vhu-conform-baseline',
          formatVersion: 1,
          expected: [{ id: 'gpu.pixels' }],
        }),
        "not a valid vhu-conform-baseline file: /expected/0 must have required property 'reason'",
      ],
      ['other.json', JSON.stringify({ name: 'vhu-conform', version: '1.0.0' }), 'neither a baseline'],
    ];
    for (const [name, text, problem] of cases) {
      const file = path.join(tmp.path, name);
      await writeFile(file, text);
      const run = await runCli(['--grep', 'caps', '--baseline', file, fixture('vhu-reference')]);
      expect(run.exitCode, name).to.equal(2);
      expect(run.stderr, name).to.contain(`vhu-conform: error: --baseline ${file}: ${problem}`);
      expect(run.report, `${name}: nothing run`).to.equal(undefined);
      expectClean(run);
    }
  });
});
