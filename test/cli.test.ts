/**
 * The command line as a user meets it: listing and selecting checks, usage errors, --strict, report paths,
 * descriptor discovery and its folders, the default back-end, and plain output when stdout is not a terminal.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import type { RunResult } from '../harness/runner/types.js';
import { allChecks } from '../suites/index.js';
import {
  awaitListening,
  CLI,
  type CliRun,
  expectClean,
  fixture,
  messageOf,
  runCli,
  startListening,
  verdicts,
} from './helpers.js';

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
        `^${escapeRegExp(c.id)} +${c.severity}${c.interop ? ' \\(interop\\)' : ''} +${escapeRegExp(c.spec)}\\n +${escapeRegExp(c.title)}$`,
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

  it('--grep runs what a refusal check needs too: a refusal from /bin/false is no pass; --list shows it', async function () {
    this.timeout(30_000);
    const run = await runCli(['--grep', '^conv\\.fd\\.exclusive$', '/bin/false']);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(verdicts(run.report)).to.deep.equal({
      'conv.socket-path.listen': 'fail',
      'conv.fd.exclusive': 'skip',
    });
    expect(run.stdout).to.contain(
      'note: also running a check the selected ones need, so that each gets the verdict a full run gives it: conv.socket-path.listen (for conv.fd.exclusive)',
    );
    const list = await runCli(['--list', '--grep', '^conv\\.fail-early\\.bad-fd$']);
    expect(listedIds(list.stdout)).to.deep.equal(['conv.socket-path.listen', 'conv.fail-early.bad-fd']);
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
      { env: { VHU_DESCRIPTOR_DIRS: undefined, FORCE_COLOR: undefined, NO_COLOR: undefined } },
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

  it('--discover exits 1 when a descriptor has problems, saying how many', async function () {
    this.timeout(20_000);
    const broken = path.join(tmp.path, 'broken');
    await mkdir(broken);
    await writeFile(path.join(broken, '10-ok.json'), doc('fine'));
    await writeFile(path.join(broken, '20-bad.json'), '{"type": "block",');
    const run = await runCli(['--discover', '--descriptor-dirs', broken], {
      env: { VHU_DESCRIPTOR_DIRS: undefined },
    });
    expect(run.exitCode, run.stdout).to.equal(1);
    expect(run.stdout).to.match(/^2\. 20-bad\.json .*\n.*\n {3}problems: /m);
    expect(run.stdout).to.contain('1 of 2 descriptors have problems');
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

describe('cli: failing fast, before any check, with exit 2 and the cause', function () {
  this.timeout(30_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-failfast-', unsafeCleanup: true });
  });
  after(() => tmp?.cleanup());

  /** Exit 2, `cause` on stderr, no check run (no check line, no report), nothing left. */
  function expectRefused(run: CliRun, cause: string | RegExp): void {
    expect(run.exitCode, run.stdout).to.equal(2);
    if (typeof cause === 'string') expect(run.stderr).to.contain(cause);
    else expect(run.stderr).to.match(cause);
    expect(run.stdout).to.not.match(/^(PASS|FAIL|TIME|SKIP|ERR) /m);
    expect(run.report).to.equal(undefined);
    expectClean(run);
  }

  it('--connect to a path that does not exist', async () => {
    const socket = path.join(tmp.path, 'nothing.sock');
    expectRefused(await runCli(['--connect', socket]), `--connect ${socket}: no such file`);
  });

  it('--connect to a regular file', async () => {
    const file = path.join(tmp.path, 'regular');
    await writeFile(file, 'not a socket');
    expectRefused(await runCli(['--connect', file]), `--connect ${file}: not a socket but a regular file`);
  });

  it('--connect to a socket nothing listens at (its back-end was killed)', async () => {
    const socket = path.join(tmp.path, 'stale.sock');
    const backend = execa(fixture('vhu-reference'), [`--socket-path=${socket}`], { reject: false });
    await awaitListening(socket, 'vhu-reference', 10_000, async () => {
      backend.kill('SIGKILL');
      await backend;
    });
    // SIGKILL: no clean-up, the socket file stays with nothing behind it.
    backend.kill('SIGKILL');
    await backend;
    expect(existsSync(socket)).to.equal(true);
    expectRefused(await runCli(['--connect', socket]), `--connect ${socket}: nothing listens at this socket`);
  });

  it('--reports naming a file, --junit under /proc: before the run, naming the path', async () => {
    const file = path.join(tmp.path, 'a-file');
    await writeFile(file, '');
    expectRefused(
      await runCli(['--reports', file]),
      `--reports ${file}: cannot write there: ${file} is not a folder`,
    );
    expectRefused(
      await runCli(['--junit', '/proc/x/junit.xml', fixture('vhu-reference')]),
      "--junit /proc/x/junit.xml: cannot write there: ENOENT: no such file or directory, mkdir '/proc/x'",
    );
  });

  it('leaves no empty report behind when a later report path is refused', async () => {
    const junit = path.join(tmp.path, 'out', 'junit.xml');
    expectRefused(
      await runCli(['--junit', junit, '--json', '/proc/x/report.json']),
      '--json /proc/x/report.json',
    );
    expect(existsSync(junit), 'the probe of --junit removed again').to.equal(false);
  });

  it('--timeout beyond 600000 ms (Node timers overflow at 2^31-1) or under 100 ms, saying the bounds', async () => {
    for (const value of ['999999999', '50', '1.5']) {
      expectRefused(
        await runCli(['--timeout', value]),
        `option '--timeout <ms>' argument '${value}' is invalid. expected a whole number of milliseconds from 100 to 600000`,
      );
    }
  });

  it('--type outside vhost-user.json, naming the types', async () => {
    expectRefused(
      await runCli(['--type', 'bogus', fixture('vhu-reference')]),
      "argument 'bogus' is invalid. Allowed choices are 9p, balloon, block,",
    );
  });
});

describe('cli: a back-end that dies at once whatever it is asked (launch mode)', function () {
  this.timeout(60_000);

  it('/bin/false: the launching checks fail naming the exit, the rest skip saying what they need, no unearned pass', async () => {
    const run = await runCli(['/bin/false']);
    expect(run.exitCode, run.stdout).to.equal(1);
    const seen = verdicts(run.report);
    expect(Object.values(seen), 'no check waits out a deadline').to.not.include('timeout');
    expect(seen['conv.socket-path.listen']).to.equal('fail');
    expect(messageOf(run.report, 'conv.socket-path.listen')).to.contain('the back-end ended (exit status 1');
    expect(messageOf(run.report, 'conv.caps.schema')).to.contain('stdout is not exactly one JSON document (');
    // Refusing an unknown option or --fd with --socket-path proves nothing from a binary that refuses all.
    for (const id of ['conv.fd.exclusive', 'conv.fail-early.unknown-option', 'conv.fail-early.bad-fd']) {
      expect(seen[id], id).to.equal('skip');
      expect(messageOf(run.report, id), id).to.equal(
        'needs conv.socket-path.listen, which did not pass (fail)',
      );
    }
    expect(messageOf(run.report, 'conv.caps.no-normal-function')).to.equal(
      'needs conv.caps.exit, which did not pass (fail)',
    );
    // What passes is about the host's descriptor files, not about the binary.
    const passed = Object.keys(seen).filter((id) => seen[id] === 'pass');
    expect(
      passed.every((id) => id.startsWith('conv.descriptor.')),
      passed.join(', '),
    ).to.equal(true);
    expectClean(run);
  });
});

describe('cli: attach mode without --type', function () {
  this.timeout(60_000);

  it('says at the start which checks will be skipped and how to name the type', async () => {
    const { socket, stop } = await startListening(fixture('vhu-reference'));
    try {
      const run = await runCli([
        '--connect',
        socket,
        '--grep',
        '^(proto\\.features\\.protocol-bit|vring\\.blk\\.read-write)$',
      ]);
      expect(run.exitCode, run.stderr).to.equal(0);
      const lines = run.stdout.split('\n');
      expect(lines[1]).to.equal(
        'note: attach mode without --type, the checks that drive the device will be skipped: 1 (vring); ' +
          "name the back-end's device type with --type <device> (9p, balloon, block, caif, console, crypto, gpu, input, net, rng, rpmsg, rproc-serial, scsi, vsock, fs)",
      );
      expect(verdicts(run.report)).to.deep.equal({
        'proto.features.protocol-bit': 'pass',
        'vring.blk.read-write': 'skip',
      });
      expectClean(run);
    } finally {
      await stop();
    }
  });
});

describe('cli: colours, and --help', function () {
  this.timeout(60_000);
  const grep = ['--grep', 'caps\\.exit', fixture('vhu-reference')];
  const noColorEnv = { FORCE_COLOR: undefined, NO_COLOR: undefined };

  it('FORCE_COLOR colours into a pipe; FORCE_COLOR=0 and --no-color do not', async () => {
    const forced = await runCli(grep, { env: { ...noColorEnv, FORCE_COLOR: '1' } });
    expect(forced.exitCode, forced.stderr).to.equal(0);
    expect(forced.stdout).to.contain('\n\x1b[32mPASS\x1b[0m  MUST');
    for (const [args, env] of [
      [grep, { FORCE_COLOR: '0' }],
      [['--no-color', ...grep], { FORCE_COLOR: '1' }],
    ] as const) {
      const plain = await runCli([...args], { env: { ...noColorEnv, ...env } });
      expect(plain.exitCode, plain.stderr).to.equal(0);
      expect(plain.stdout, JSON.stringify(env))
        .to.match(/^PASS {2}MUST/m)
        .and.not.contain('\x1b');
    }
  });

  it('on a terminal: colours, and none with NO_COLOR=1', async () => {
    // script(1) gives the CLI a pseudo-terminal as stdout.
    const runOnTerminal = async (env: Record<string, string | undefined>) => {
      const reports = await dir({ prefix: 'vhu-selftest-tty-', unsafeCleanup: true });
      try {
        const command = [process.execPath, CLI, '--reports', reports.path, ...grep];
        const run = await execa('script', ['-qec', command.map((a) => `'${a}'`).join(' '), '/dev/null'], {
          env: { ...noColorEnv, ...env },
          reject: false,
        });
        expect(run.exitCode, String(run.stdout)).to.equal(0);
        return String(run.stdout);
      } finally {
        await reports.cleanup();
      }
    };
    expect(await runOnTerminal({})).to.contain('\x1b[32mPASS\x1b[0m  MUST');
    const plain = await runOnTerminal({ NO_COLOR: '1' });
    expect(plain)
      .to.match(/^PASS {2}MUST/m)
      .and.not.contain('\x1b[');
  });

  it('--help lists examples, the exit statuses and the colour variables, and exits 0', async () => {
    const run = await runCli(['--help']);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/^Examples:\n {2}vhu-conform /m);
    expect(run.stdout).to.contain('vhu-conform --connect /run/blk.sock --type block');
    expect(run.stdout).to.contain('vhu-conform --baseline known.json /path/to/backend');
    for (const status of [0, 1, 2, 130, 143])
      expect(run.stdout).to.match(new RegExp(`^  ${status} +\\S`, 'm'));
    expect(run.stdout)
      .to.match(/^ {2}NO_COLOR=1 /m)
      .and.match(/^ {2}FORCE_COLOR=1 /m);
    expect(run.stdout).to.contain('--timeout <ms>').and.contain('(100 to 600000)');
  });
});

describe('cli: subcommands (commander), and --wire-log DIR', function () {
  this.timeout(120_000);

  it('--help lists replay, abi and compat; each has its own --help, also as `help <command>`', async () => {
    const root = await runCli(['--help']);
    expect(root.stdout).to.match(/^Commands:\n/m);
    for (const word of ['replay', 'abi', 'compat'])
      expect(root.stdout).to.match(new RegExp(`^ {2}${word} `, 'm'));
    const replay = await runCli(['replay', '--help']);
    expect(replay.exitCode, replay.stderr).to.equal(0);
    expect(replay.stdout)
      .to.contain('Usage: vhu-conform replay [options] <case> [backend] [args...]')
      .and.contain('--timeout <ms>')
      .and.contain('--strict');
    const abi = await runCli(['help', 'abi']);
    expect(abi.exitCode, abi.stderr).to.equal(0);
    expect(abi.stdout).to.contain('Usage: vhu-conform abi [options]').and.contain('--out <file>');
  });

  it('a subcommand refuses what it does not take, with its usage: exit 2', async () => {
    const replay = await runCli(['replay']);
    expect(replay.exitCode).to.equal(2);
    expect(replay.stderr).to.contain("missing required argument 'case'");
    const abi = await runCli(['abi', '--frontend', 'qemu', fixture('vhu-reference')]);
    expect(abi.exitCode).to.equal(2);
    expect(abi.stderr).to.contain("unknown option '--frontend'").and.contain('Usage: vhu-conform abi');
    const two = await runCli(['abi', fixture('vhu-reference'), fixture('vhu-reference')]);
    expect(two.exitCode).to.equal(2);
    expect(two.stderr).to.contain('abi: one back-end, not also');
  });

  it('--wire-log=DIR writes the failed checks logs there, and refuses a back-end binary as DIR', async () => {
    const out = await dir({ prefix: 'vhu-wire-dir-', unsafeCleanup: true });
    try {
      const wire = path.join(out.path, 'logs');
      const run = await runCli([
        `--wire-log=${wire}`,
        '--grep',
        '^conv\\.socket-path\\.',
        fixture('vhu-flaw-bad-reply-flags'),
      ]);
      expect(run.exitCode, run.stderr).to.equal(1);
      expect(verdicts(run.report)).to.include({ 'conv.socket-path.reply': 'fail' });
      const text = await readFile(path.join(wire, 'conv.socket-path.reply.txt'), 'utf8');
      expect(text).to.match(/^# conv\.socket-path\.reply \(MUST, .*\): fail$/m);
      expect(existsSync(path.join(wire, 'conv.socket-path.reply.jsonl'))).to.equal(true);
      const eaten = await runCli(['--wire-log', fixture('vhu-flaw-bad-reply-flags')]);
      expect(eaten.exitCode).to.equal(2);
      expect(eaten.stderr)
        .to.contain('an executable file, not overwritten with a report')
        .and.contain('--wire-log=DIR');
    } finally {
      await out.cleanup();
    }
  });
});
