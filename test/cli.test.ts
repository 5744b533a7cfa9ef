/**
 * The command line as a user meets it: listing and selecting checks, usage errors, --strict, report paths,
 * descriptor discovery and its folders, the default back-end, and plain output when stdout is not a terminal.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import type { RunResult } from '../harness/runner/types.js';
import { allChecks } from '../suites/index.js';
import { expectClean, fixture, messageOf, runCli, verdicts } from './helpers.js';

const SIGTERM_CHECKS = ['conv.sigterm.idle', 'conv.sigterm.connected', 'conv.sigterm.socket-removed'];
const CAPS_CHECKS = [
  'conv.caps.exit',
  'conv.caps.schema',
  'conv.caps.features-known',
  'conv.caps.no-normal-function',
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The check ids --list printed, in order: the lines that start with an id. */
function listedIds(stdout: string): string[] {
  return [...stdout.matchAll(/^([a-z]+\.[\w.-]+) /gm)].map((m) => m[1]!);
}

describe('cli: listing and selecting checks', function () {
  this.timeout(30_000);

  it('--list prints every check with its severity, spec anchor and title, and exits 0', async function () {
    this.timeout(20_000);
    const run = await runCli(['--list']);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(listedIds(run.stdout)).to.deep.equal(allChecks.map((c) => c.id));
    for (const c of allChecks) {
      const line = new RegExp(
        `^${escapeRegExp(c.id)} +${c.severity} +${escapeRegExp(c.spec)}\\n +${escapeRegExp(c.title)}$`,
        'm',
      );
      expect(run.stdout, c.id).to.match(line);
    }
    expect(run.stdout).to.match(new RegExp(`^${allChecks.length} checks$`, 'm'));
    expect(run.report, 'a listing runs nothing').to.equal(undefined);
  });

  it('--list --grep sigterm prints only the 3 sigterm checks', async function () {
    this.timeout(20_000);
    const run = await runCli(['--list', '--grep', 'sigterm']);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(listedIds(run.stdout)).to.deep.equal(SIGTERM_CHECKS);
    expect(run.stdout).to.match(/^3 checks$/m);
  });

  it('--timeout abc is a usage error: exit 2, the reason and the usage, nothing run', async function () {
    this.timeout(20_000);
    const run = await runCli(['--timeout', 'abc']);
    expect(run.exitCode).to.equal(2);
    expect(run.stderr).to.contain("option '--timeout <ms>' argument 'abc' is invalid");
    expect(run.stderr).to.contain('Usage: vhu-conform');
    expect(run.report).to.equal(undefined);
    expectClean(run);
  });

  it('--frontend bochs is a usage error naming the profiles: exit 2, nothing run', async function () {
    this.timeout(20_000);
    const run = await runCli(['--frontend', 'bochs', fixture('vhu-reference')]);
    expect(run.exitCode).to.equal(2);
    expect(run.stderr).to.contain('--frontend bochs: no such front-end profile');
    expect(run.stderr).to.contain('qemu, qemu-7.2, qemu-legacy, dpdk, cloud-hypervisor, crosvm, or all');
    expect(run.report).to.equal(undefined);
    expectClean(run);
  });

  it('--grep caps runs only the conv.caps.* checks', async function () {
    this.timeout(60_000);
    const run = await runCli(['--grep', 'caps', fixture('vhu-reference')]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.report?.checks.map((c) => c.id)).to.deep.equal(CAPS_CHECKS);
    expect(run.report?.summary.total).to.equal(4);
    expect(Object.values(verdicts(run.report))).to.deep.equal(['pass', 'pass', 'pass', 'pass']);
    expectClean(run);
  });
});

describe('cli: exit status and report files', function () {
  this.timeout(60_000);

  it('--strict makes a SHOULD failure fail the run', async function () {
    this.timeout(60_000);
    const args = ['--grep', 'socket-removed', fixture('vhu-flaw-socket-left')];
    const lenient = await runCli(args);
    expect(verdicts(lenient.report), lenient.stdout).to.deep.equal({ 'conv.sigterm.socket-removed': 'fail' });
    expect(lenient.exitCode, 'without --strict').to.equal(0);
    expectClean(lenient);
    const strict = await runCli(['--strict', ...args]);
    expect(verdicts(strict.report), strict.stdout).to.deep.equal({ 'conv.sigterm.socket-removed': 'fail' });
    expect(strict.exitCode, 'with --strict').to.equal(1);
    expectClean(strict);
  });

  it('--json FILE --junit FILE write the reports there, creating their folders', async function () {
    this.timeout(60_000);
    const out = await dir({ prefix: 'vhu-selftest-out-', unsafeCleanup: true });
    try {
      const json = path.join(out.path, 'json', 'nested', 'result.json');
      const junit = path.join(out.path, 'xml', 'result.xml');
      const run = await runCli([
        '--json',
        json,
        '--junit',
        junit,
        '--grep',
        'caps',
        fixture('vhu-reference'),
      ]);
      expect(run.exitCode, run.stderr).to.equal(0);
      expect(run.report, 'nothing in the --reports folder').to.equal(undefined);
      const report = JSON.parse(await readFile(json, 'utf8')) as RunResult;
      expect(report.checks.map((c) => c.id)).to.deep.equal(CAPS_CHECKS);
      const xml = await readFile(junit, 'utf8');
      expect(xml).to.match(/<testsuite name="conventions"[^>]* tests="4" failures="0"/);
      expect(run.stdout).to.contain(`report: ${junit}`);
      expect(run.stdout).to.contain(`report: ${json}`);
      expectClean(run);
    } finally {
      await out.cleanup();
    }
  });

  it('with no back-end named, runs the reference back-end', async function () {
    this.timeout(60_000);
    const run = await runCli(['--grep', 'caps.exit']);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.report?.backend.binary).to.match(/\/fixtures\/bin\/vhu-reference$/);
    expect(verdicts(run.report)).to.deep.equal({ 'conv.caps.exit': 'pass' });
    expectClean(run);
  });

  it('writes no ANSI escape when stdout is not a terminal', async function () {
    this.timeout(60_000);
    // PASS, FAIL, SKIP and INFO lines, messages and stderr tails: everything the reporter may colour.
    const run = await runCli(
      ['--verbose', '--grep', 'socket|caps|descriptor\\.type', fixture('vhu-flaw-socket-left')],
      { env: { VHU_DESCRIPTOR_DIRS: undefined } },
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    for (const tag of ['PASS', 'FAIL', 'SKIP', 'INFO'])
      expect(run.stdout).to.match(new RegExp(`^${tag} `, 'm'));
    expect(run.stdout).to.not.contain('\x1b');
    expect(run.stderr).to.not.contain('\x1b');
    expectClean(run);
  });
});

describe('cli: descriptor discovery', function () {
  this.timeout(30_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let general: string;
  let specific: string;
  const reference = fixture('vhu-reference');
  const doc = (description: string) => JSON.stringify({ description, type: 'block', binary: reference });

  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-descriptors-', unsafeCleanup: true });
    general = path.join(tmp.path, 'general');
    specific = path.join(tmp.path, 'specific');
    await mkdir(general);
    await mkdir(specific);
    // Two general files: one replaced by a specific file of the same name, one masked by an empty one.
    await writeFile(path.join(general, '20-replaced.json'), doc('general version'));
    await writeFile(path.join(general, '30-masked.json'), doc('masked version'));
    await writeFile(path.join(specific, '20-replaced.json'), doc('specific version'));
    await writeFile(path.join(specific, '30-masked.json'), '');
    // Only in the specific folder, and first by name: the order is by name, not by folder.
    await writeFile(path.join(specific, '10-specific-only.json'), doc('specific only'));
  });
  after(() => tmp?.cleanup());

  /** The listing --discover prints for general:specific. */
  function expectListing(stdout: string): void {
    const lines = stdout.split('\n');
    expect(lines[0]).to.equal(`descriptor folders (general to specific): ${general}, ${specific}`);
    const entries = lines.filter((l) => /^\d+\. /.test(l));
    expect(entries).to.deep.equal([
      `1. 10-specific-only.json  ${path.join(specific, '10-specific-only.json')}`,
      `2. 20-replaced.json  ${path.join(specific, '20-replaced.json')}`,
    ]);
    expect(stdout).to.contain('description: specific version');
    expect(stdout).to.not.contain('description: general version');
    expect(stdout).to.contain(`   overrides: ${path.join(general, '20-replaced.json')}\n`);
    expect(stdout).to.contain(
      `masked: 30-masked.json by ${path.join(specific, '30-masked.json')} (zero-length), hiding ${path.join(general, '30-masked.json')}`,
    );
    expect(stdout).to.not.contain('description: masked version');
    expect(stdout).to.not.contain('problems:');
  }

  it('--discover --descriptor-dirs A:B lists the files in effect in precedence order, overrides and masks', async function () {
    this.timeout(20_000);
    const run = await runCli(['--discover', '--descriptor-dirs', `${general}:${specific}`], {
      env: { VHU_DESCRIPTOR_DIRS: undefined },
    });
    expect(run.exitCode, run.stderr).to.equal(0);
    expectListing(run.stdout);
    expect(run.report, 'discovery runs nothing').to.equal(undefined);
  });

  it('takes the default descriptor folders from VHU_DESCRIPTOR_DIRS', async function () {
    this.timeout(60_000);
    const env = { VHU_DESCRIPTOR_DIRS: `${general}:${specific}` };
    const listed = await runCli(['--discover'], { env });
    expect(listed.exitCode, listed.stderr).to.equal(0);
    expectListing(listed.stdout);

    const checked = await runCli(['--grep', 'descriptor\\.found', reference], { env });
    expect(checked.exitCode, checked.stderr).to.equal(0);
    const found = messageOf(checked.report, 'conv.descriptor.found');
    expect(found).to.contain(`${path.join(specific, '20-replaced.json')} (position 2 of 2, overriding`);
    expect(found).to.not.contain('30-masked.json');
    expectClean(checked);

    // --descriptor-dirs wins over the environment.
    const flagged = await runCli(['--discover', '--descriptor-dirs', general], { env });
    expect(flagged.stdout.split('\n')[0]).to.equal(`descriptor folders (general to specific): ${general}`);
    expect(flagged.stdout).to.contain('description: general version');
  });

  it('without VHU_DESCRIPTOR_DIRS, uses the standard folders', async function () {
    this.timeout(20_000);
    const run = await runCli(['--discover'], { env: { VHU_DESCRIPTOR_DIRS: undefined } });
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.stdout.split('\n')[0]).to.match(
      /^descriptor folders \(general to specific\): \/usr\/share\/qemu\/vhost-user, \/etc\/qemu\/vhost-user, \S+\/qemu\/vhost-user$/,
    );
  });
});
