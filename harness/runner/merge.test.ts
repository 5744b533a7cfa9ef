import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { UsageError } from '../errors.js';
import { validateReport } from '../schemas/validate.js';
import { mergeShards, readShardReport, type ShardReport } from './merge.js';
import { toJson } from './report-json.js';
import { checkResult, runResult } from './testing.js';
import type { CheckResult, RunResult, RunSettings } from './types.js';

const ORDER = ['conv.a', 'conv.b', 'proto.c', 'robust.fuzz', 'vring.d', 'vring.e'];
const OPTIONS = { order: ORDER, fuzzCheck: 'robust.fuzz' };

function shard(
  name: string,
  checks: CheckResult[],
  options: Partial<RunSettings> = {},
  extra: Partial<RunResult> = {},
): ShardReport {
  return {
    file: `${name.replace('/', '-of-')}.json`,
    result: { ...runResult(checks, undefined, 1000, { shard: name, ...options }), ...extra },
  };
}

/** The usage error `mergeShards` throws, as a message. */
function refusal(reports: ShardReport[]): string {
  try {
    mergeShards(reports, OPTIONS);
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  expect.fail('merged');
}

describe('runner/merge', () => {
  const one = shard('1/2', [checkResult('conv.a', 'pass'), checkResult('vring.d', 'fail', 'used.len')], {
    seed: 11,
  });
  const two = shard(
    '2/2',
    [checkResult('conv.b', 'skip'), checkResult('proto.c', 'pass'), checkResult('robust.fuzz', 'pass')],
    { seed: 22 },
    { startedAt: '2026-01-02T03:04:00.000Z', summary: { ...runResult([]).summary, durationMs: 3000 } },
  );

  it('joins the shards into one run: every check once in run order, the totals worked out again', () => {
    const merged = mergeShards([two, one], OPTIONS);
    expect(merged.checks.map((c) => c.id)).to.deep.equal([
      'conv.a',
      'conv.b',
      'proto.c',
      'robust.fuzz',
      'vring.d',
    ]);
    expect(merged.summary).to.include({ total: 5, passed: 3, failed: 1, skipped: 1, mustFailed: 1 });
    // Side by side: as long as the longest shard; from the earliest start.
    expect(merged.summary.durationMs).to.equal(3000);
    expect(merged.startedAt).to.equal('2026-01-02T03:04:00.000Z');
    // The seed of the shard that ran the generated sequences; no shard any more.
    expect(merged.options.seed).to.equal(22);
    expect(merged.options.shard).to.equal(null);
    expect(validateReport(JSON.parse(toJson(merged)))).to.deep.equal([]);
  });

  it('refuses what is not the n shards of one run, naming the files and what is wrong', () => {
    const plain = { file: 'plain.json', result: runResult([checkResult('conv.a', 'pass')]) };
    expect(refusal([plain])).to.match(/plain\.json: not the report of a shard/);
    expect(refusal([one])).to.match(/shard 2\/2 missing/);
    expect(refusal([one, shard('1/2', [checkResult('conv.b', 'pass')])])).to.match(
      /1-of-2\.json and 1-of-2\.json are both shard 1\/2/,
    );
    expect(refusal([one, shard('2/3', [])])).to.match(/2-of-3\.json is shard 2\/3, 1-of-2\.json one of 2/);
    expect(refusal([one, shard('2/2', [], { grep: '^conv' })])).to.match(/different settings \(grep\)/);
    expect(
      refusal([one, shard('2/2', [], {}, { tool: { name: 'vhu-conform', version: '9.9.9' } })]),
    ).to.match(/written by vhu-conform 0\.1\.0 and 9\.9\.9/);
    expect(
      refusal([one, shard('2/2', [], {}, { backend: { ...one.result.backend, binary: '/usr/bin/other' } })]),
    ).to.match(/checked different back-ends/);
    expect(refusal([one, shard('2/2', [checkResult('conv.a', 'pass')])])).to.match(
      /conv\.a is in both 1-of-2\.json and 2-of-2\.json/,
    );
    expect(refusal([])).to.match(/name the report\.json of every shard/);
  });

  it("works the baseline comparison out again from the shards' (fixed where no shard failed it)", () => {
    const baseline = (fixed: string[], notRun: string[]) => ({
      entries: 3,
      expectedFailures: 0,
      newFailures: [],
      fixed,
      notRun,
    });
    const known = { expected: { reason: 'known' } };
    const a = shard(
      '1/2',
      [checkResult('conv.a', 'pass', '', known)],
      { baseline: 'known.json' },
      {
        baseline: baseline(['conv.a'], ['vring.d', 'proto.c']),
      },
    );
    const b = shard(
      '2/2',
      [checkResult('vring.d', 'fail', 'x', known), checkResult('conv.b', 'fail', 'new')],
      { baseline: 'known.json' },
      { baseline: baseline([], ['conv.a', 'proto.c']) },
    );
    expect(mergeShards([a, b], OPTIONS).baseline).to.deep.equal({
      entries: 3,
      expectedFailures: 1,
      newFailures: ['conv.b'],
      fixed: ['conv.a'],
      notRun: ['proto.c'],
    });
  });

  it('orders a --frontend all run as one: every check under the first profile, then the others', () => {
    const matrix = { profiles: ['qemu', 'cloud-hypervisor'], checks: {} };
    const a = shard(
      '1/2',
      [
        checkResult('vring.e', 'pass', '', { frontend: 'qemu' }),
        checkResult('vring.e', 'fail', '', { frontend: 'cloud-hypervisor' }),
      ],
      { frontend: 'all' },
      { frontend: 'all', matrix },
    );
    const b = shard(
      '2/2',
      [
        checkResult('conv.a', 'pass'),
        checkResult('vring.d', 'pass', '', { frontend: 'qemu' }),
        checkResult('vring.d', 'pass', '', { frontend: 'cloud-hypervisor' }),
      ],
      { frontend: 'all' },
      { frontend: 'all', matrix },
    );
    const merged = mergeShards([a, b], OPTIONS);
    expect(merged.checks.map((c) => `${c.id}@${c.frontend ?? ''}`)).to.deep.equal([
      'conv.a@',
      'vring.d@qemu',
      'vring.e@qemu',
      'vring.d@cloud-hypervisor',
      'vring.e@cloud-hypervisor',
    ]);
    expect(merged.matrix?.checks['vring.e']).to.deep.equal({ qemu: 'pass', 'cloud-hypervisor': 'fail' });
  });

  it('reads a report.json, refusing other files with the reason', async () => {
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const good = join(tmp.path, 'good.json');
      await writeFile(good, toJson(one.result));
      expect((await readShardReport(good)).result.options.shard).to.equal('1/2');
      const cases: Array<[string, string, RegExp]> = [
        ['garbage.json', 'not json', /garbage\.json: not JSON/],
        ['other.json', '{"format":"vhu-conform-baseline"}', /other\.json: not a report\.json of vhu-conform/],
        [
          'broken.json',
          JSON.stringify({ format: 'vhu-conform-report' }),
          /broken\.json: not a valid vhu-conform-report report/,
        ],
      ];
      for (const [name, text, message] of cases) {
        await writeFile(join(tmp.path, name), text);
        const err = await readShardReport(join(tmp.path, name)).catch((e: Error) => e);
        expect(err).to.be.instanceOf(UsageError).with.property('message').that.matches(message);
      }
      const missing = await readShardReport(join(tmp.path, 'none.json')).catch((e: Error) => e);
      expect(missing)
        .to.be.instanceOf(UsageError)
        .with.property('message')
        .that.matches(/cannot read it/);
    } finally {
      await tmp.cleanup();
    }
  });
});
