import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { type DirectoryResult, dir } from 'tmp-promise';
import { UsageError } from '../errors.js';
import { validateBaseline, validateReport } from '../schemas/validate.js';
import {
  BASELINE_FORMAT,
  BASELINE_FORMAT_VERSION,
  type Baseline,
  baselineOf,
  compareWithBaseline,
  expectationFor,
  loadBaseline,
  parseBaseline,
  writeBaseline,
} from './baseline.js';
import { toJson } from './report-json.js';
import { checkResult, runResult } from './testing.js';
import { type CheckResult, failsRun } from './types.js';

const IDS = ['conv.a', 'proto.b', 'vring.c', 'gpu.d'];

function doc(expected: unknown, extra: object = {}): string {
  return JSON.stringify({
    format: BASELINE_FORMAT,
    formatVersion: BASELINE_FORMAT_VERSION,
    expected,
    ...extra,
  });
}

/** The usage error `parseBaseline` throws for `text`, as a message. */
function refusal(text: string): string {
  try {
    parseBaseline(text, 'known.json', IDS);
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

/** Results annotated as the runner does. */
function annotate(baseline: Baseline, checks: CheckResult[]): CheckResult[] {
  return checks.map((c) => {
    const e = expectationFor(baseline, c);
    return e ? { ...c, expected: { reason: e.reason } } : c;
  });
}

describe('baseline', () => {
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('reads a baseline file; an id@profile entry wins over the bare id, which names every profile', () => {
    const baseline = parseBaseline(
      doc([
        { id: 'vring.c', reason: 'everywhere' },
        { id: 'vring.c@dpdk', reason: 'dpdk only' },
        { id: 'conv.a', reason: 'r' },
      ]),
      'known.json',
      IDS,
    );
    expect(baseline.file).to.equal('known.json');
    const reason = (c: CheckResult) => expectationFor(baseline, c)?.reason;
    expect(reason(checkResult('vring.c', 'fail', '', { frontend: 'dpdk' }))).to.equal('dpdk only');
    expect(reason(checkResult('vring.c', 'fail', '', { frontend: 'qemu' }))).to.equal('everywhere');
    expect(reason(checkResult('vring.c', 'fail'))).to.equal('everywhere');
    expect(reason(checkResult('conv.a', 'fail'))).to.equal('r');
    expect(reason(checkResult('proto.b', 'fail'))).to.equal(undefined);
  });

  it('refuses, naming the problem: not JSON, neither format, a schema violation, twice, unknown ids', () => {
    expect(refusal('{"format":')).to.match(/^--baseline known\.json: not JSON: /);
    expect(refusal('{"checks": []}')).to.match(
      /neither a baseline \(format "vhu-conform-baseline"\) nor a report\.json \(format "vhu-conform-report"\); its format is null/,
    );
    expect(refusal('[1]')).to.match(/neither a baseline/);
    expect(refusal(doc([], { formatVersion: 2 }))).to.match(
      /not a valid vhu-conform-baseline file: \/formatVersion must be equal to constant: 1/,
    );
    expect(refusal(doc([{ id: 'conv.a' }]))).to.match(/\/expected\/0 must have required property 'reason'/);
    expect(refusal(doc([{ id: 'conv.a', reason: '' }]))).to.match(/\/expected\/0\/reason/);
    expect(refusal(doc([{ id: 'Conv A', reason: 'r' }]))).to.match(/\/expected\/0\/id must match pattern/);
    expect(refusal(doc([], { extra: 1 }))).to.match(/must NOT have additional properties: extra/);
    expect(refusal(doc({ 'conv.a': 'r' }))).to.match(/\/expected must be array/);
    const twice = [
      { id: 'conv.a', reason: 'r' },
      { id: 'conv.a', reason: 's' },
    ];
    expect(refusal(doc(twice))).to.equal('--baseline known.json: conv.a is listed twice');
    expect(refusal(doc([{ id: 'conv.zz', reason: 'r' }]))).to.equal(
      '--baseline known.json: conv.zz: no such check (see --list)',
    );
    expect(refusal(doc([{ id: 'vring.c@bochs', reason: 'r' }]))).to.match(
      /^--baseline known\.json: vring\.c@bochs: no front-end profile bochs \(qemu, /,
    );
  });

  it('takes a report.json: its failed and timed-out checks, by id@profile, become the entries', () => {
    const report = runResult([
      checkResult('conv.a', 'fail', 'exited 0; expected 1\nsecond line'),
      checkResult('proto.b', 'pass'),
      checkResult('gpu.d', 'skip', 'no gpu'),
      checkResult('vring.c', 'timeout', 'timed out after 100 ms waiting for a used buffer', {
        frontend: 'dpdk',
      }),
      checkResult('vring.c', 'fail', 'bad len', { frontend: 'qemu', expected: { reason: 'known: bug 7' } }),
    ]);
    const baseline = parseBaseline(toJson(report), 'report.json', IDS);
    expect(baseline.expected).to.deep.equal([
      { id: 'conv.a', reason: 'exited 0' },
      { id: 'vring.c@dpdk', reason: 'timed out after 100 ms waiting for a used buffer' },
      { id: 'vring.c@qemu', reason: 'known: bug 7' },
    ]);
    const broken = JSON.parse(toJson(report));
    delete broken.interrupted;
    expect(refusal(JSON.stringify(broken))).to.match(
      /not a valid vhu-conform-report report: \(root\) must have required property 'interrupted'/,
    );
  });

  it('an expected failure fails nothing; counts expected, new, fixed and not run', () => {
    const baseline = parseBaseline(
      doc([
        { id: 'conv.a', reason: 'known' },
        { id: 'proto.b', reason: 'fixed since' },
        { id: 'gpu.d', reason: 'skipped now' },
        { id: 'vring.c', reason: 'fails under one profile still' },
      ]),
      'known.json',
      [...IDS, 'proto.e'],
    );
    const checks = annotate(baseline, [
      checkResult('conv.a', 'fail', 'x'),
      checkResult('proto.b', 'pass'),
      checkResult('gpu.d', 'skip', 'no gpu'),
      checkResult('vring.c', 'pass', '', { frontend: 'qemu' }),
      checkResult('vring.c', 'timeout', 'late', { frontend: 'dpdk' }),
      checkResult('proto.e', 'fail', 'new one'),
    ]);
    expect(checks.map((c) => failsRun(c, true))).to.deep.equal([false, false, false, false, false, true]);
    expect(compareWithBaseline(baseline, checks, false)).to.deep.equal({
      entries: 4,
      expectedFailures: 2,
      newFailures: ['proto.e'],
      fixed: ['proto.b'],
      notRun: ['gpu.d'],
    });
  });

  it('writes what makes the same run pass: every failure sorted, reasons kept, nothing of the moment', async () => {
    const given = parseBaseline(doc([{ id: 'proto.b', reason: 'edited by hand' }]), 'known.json', IDS);
    const run = runResult(
      annotate(given, [
        checkResult('vring.c', 'fail', 'used.len 0; expected 512; took 12 ms', { frontend: 'qemu' }),
        checkResult('proto.b', 'fail', 'refused'),
        checkResult('conv.a', 'fail', 'x'.repeat(300), { severity: 'SHOULD' }),
        checkResult('gpu.d', 'timeout', ''),
        checkResult('proto.e', 'pass'),
      ]),
    );
    const written = baselineOf(run);
    expect(validateBaseline(written)).to.deep.equal([]);
    expect(written.note).to.match(/replace it with why the failure is accepted/);
    expect(written.expected.map((e) => e.id)).to.deep.equal(['conv.a', 'gpu.d', 'proto.b', 'vring.c@qemu']);
    expect(written.expected.map((e) => e.reason)).to.deep.equal([
      `${'x'.repeat(199)}…`,
      'MUST check timed out',
      'edited by hand',
      'used.len 0',
    ]);
    const later = {
      ...run,
      startedAt: '2030-01-01T00:00:00.000Z',
      summary: { ...run.summary, durationMs: 9 },
    };
    expect(baselineOf(later)).to.deep.equal(written);

    const file = join(tmp.path, 'nested', 'known.json');
    await writeBaseline(run, file);
    const text = await readFile(file, 'utf8');
    expect(text).to.equal(`${JSON.stringify(written, null, 2)}\n`);
    const again = await loadBaseline(file, [...IDS, 'proto.e']);
    const rerun = annotate(again, run.checks);
    expect(rerun.filter((c) => failsRun(c, true))).to.deep.equal([]);
  });

  it('a missing file is a usage error naming it', async () => {
    const missing = join(tmp.path, 'nope.json');
    const err = await loadBaseline(missing, IDS).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(UsageError);
    expect(err?.message).to.match(new RegExp(`^--baseline ${missing}: cannot read it: ENOENT`));
  });

  it('report.json keeps the expectations and the comparison, valid against its schema', () => {
    const baseline = parseBaseline(doc([{ id: 'conv.a', reason: 'known' }]), 'known.json', IDS);
    const checks = annotate(baseline, [checkResult('conv.a', 'fail', 'x'), checkResult('proto.b', 'fail')]);
    const result = {
      ...runResult(checks, undefined, undefined, { baseline: 'known.json', skip: '^gpu\\.' }),
      baseline: compareWithBaseline(baseline, checks, false),
    };
    const parsed = JSON.parse(toJson(result));
    expect(validateReport(parsed)).to.deep.equal([]);
    expect(parsed.options).to.include({ baseline: 'known.json', skip: '^gpu\\.' });
    expect(parsed.checks[0].expected).to.deep.equal({ reason: 'known' });
    expect(parsed.checks[1]).not.to.have.property('expected');
    expect(parsed.baseline).to.deep.equal({
      entries: 1,
      expectedFailures: 1,
      newFailures: ['proto.b'],
      fixed: [],
      notRun: [],
    });
  });
});
