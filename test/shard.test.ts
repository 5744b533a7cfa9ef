/**
 * A run spread over machines as a CI job matrix spreads it: `--shard i/n` runs, each reporting its own checks
 * (the gates they need run too, not reported), and `vhu-conform merge` joining their report.json files into
 * the reports one run writes, with its verdicts and its exit status; reports that are not the shards of one
 * run are refused.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { type DirectoryResult, dir } from 'tmp-promise';
import type { RunResult } from '../harness/runner/types.js';
import { validateReport } from '../harness/schemas/validate.js';
import { CLI, runCli, xmllintErrors } from './helpers.js';

/** Checks of the reference with gates among them (vring.* need vring.blk.read-write), a skip, a SHOULD. */
const GREP =
  '^(proto\\.reply\\..*|vring\\.blk\\.read-write|vring\\.get-vring-base|vring\\.restart|net\\.loopback)$';

describe('--shard i/n and merge: one run spread over machines', function () {
  this.timeout(300_000);
  let tmp: DirectoryResult;
  const shards: RunResult[] = [];
  const files: string[] = [];
  let whole: RunResult;
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-shard-', unsafeCleanup: true });
    const full = await runCli(['--grep', GREP]);
    expect(full.exitCode, full.stdout).to.equal(0);
    whole = full.report!;
    for (const i of [1, 2]) {
      const file = path.join(tmp.path, `shard-${i}.json`);
      const run = await runCli(['--grep', GREP, '--shard', `${i}/2`, '--json', file]);
      expect(run.exitCode, run.stdout).to.equal(0);
      expect(run.tempLeft, 'nothing left in TMPDIR').to.deep.equal([]);
      const report = JSON.parse(await readFile(file, 'utf8')) as RunResult;
      expect(validateReport(report)).to.deep.equal([]);
      expect(report.options.shard).to.equal(`${i}/2`);
      shards.push(report);
      files.push(file);
    }
  });
  after(async () => {
    await tmp?.cleanup();
  });

  it('deals every check to one shard, which runs the gates of its checks without reporting them', () => {
    const ids = shards.map((s) => s.checks.map((c) => c.id));
    expect([...ids[0]!, ...ids[1]!].sort()).to.deep.equal(whole.checks.map((c) => c.id).sort());
    expect(
      ids[0]!.filter((id) => ids[1]!.includes(id)),
      'no check in both',
    ).to.deep.equal([]);
    // Whichever shard vring.restart fell to ran read-write for its gate: both passed there, read-write being
    // reported by its own shard only.
    const restart = shards.find((s) => s.checks.some((c) => c.id === 'vring.restart'))!;
    const readWrite = shards.find((s) => s.checks.some((c) => c.id === 'vring.blk.read-write'))!;
    expect(restart.checks.find((c) => c.id === 'vring.restart')!.verdict).to.equal('pass');
    if (restart !== readWrite) expect(restart.checks.map((c) => c.id)).to.not.include('vring.blk.read-write');
  });

  it('merge writes the reports of one run: every check once, in run order, the verdicts of a full run; exit 0', async () => {
    const out = path.join(tmp.path, 'merged');
    const merged = await execa(process.execPath, [CLI, 'merge', ...files, '--reports', out, '--html'], {
      reject: false,
    });
    expect(merged.exitCode, merged.stdout + merged.stderr).to.equal(0);
    expect(merged.stdout).to.contain(`merged 2 shards: ${files.join(', ')}`);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as RunResult;
    expect(validateReport(report)).to.deep.equal([]);
    expect(report.options.shard).to.equal(null);
    expect(report.checks.map((c) => [c.id, c.verdict])).to.deep.equal(
      whole.checks.map((c) => [c.id, c.verdict]),
    );
    expect(report.summary).to.deep.include({ ...whole.summary, durationMs: report.summary.durationMs });
    const junit = await readFile(path.join(out, 'junit.xml'), 'utf8');
    expect(await xmllintErrors(junit)).to.equal('');
    expect((await readFile(path.join(out, 'report.html'), 'utf8')).length).to.be.above(1000);
  });

  it('merge refuses a shard missing, and a report named as its own output (exit 2, the cause said)', async () => {
    const missing = await execa(process.execPath, [CLI, 'merge', files[0]!, '--reports', tmp.path], {
      reject: false,
    });
    expect(missing.exitCode).to.equal(2);
    expect(missing.stderr).to.contain('shard 2/2 missing');
    const over = await execa(process.execPath, [CLI, 'merge', ...files, '--json', files[1]!], {
      reject: false,
    });
    expect(over.exitCode).to.equal(2);
    expect(over.stderr).to.contain('is one of the reports to join');
  });

  it('--shard refuses what is not i/n, and --all (exit 2)', async () => {
    const bad = await runCli(['--shard', '3/2']);
    expect(bad.exitCode).to.equal(2);
    expect(bad.stderr).to.contain('--shard 3/2: expected i/n');
    const all = await runCli(['--all', '--shard', '1/2']);
    expect(all.exitCode).to.equal(2);
    expect(all.stderr).to.contain('--shard');
  });
});
