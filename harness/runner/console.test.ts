import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { ConsoleReporter, colorWanted, printable } from './console.js';
import { checkResult, runResult } from './testing.js';
import { type CheckResult, frontendMatrix, type RunResult } from './types.js';

const NASTY = 'expected <reply> & flags 0x5, got ]]> \u0000 then \x1b[31mred\x1b[0m\x1b[2J';

function sample(): RunResult {
  const checks: CheckResult[] = [
    checkResult('conventions.a', 'pass', 'passing detail'),
    checkResult('conventions.b', 'fail', NASTY, { stderrTail: 'backend says \x1b]0;title\x07\n' }),
    checkResult('protocol.c', 'timeout', 'timed out after 500 ms\nlast sent: GET_FEATURES'),
    checkResult('protocol.d', 'skip', 'no REPLY_ACK', { severity: 'SHOULD' }),
    checkResult('vring.e', 'error', 'mmap failed', { durationMs: 1.6 }),
    checkResult('conventions.f', 'pass', 'socket at /tmp/x', { severity: 'INFO' }),
  ];
  return runResult(checks, ['--socket-path', '/tmp/my sock'], 1234);
}

function run(options: { color: boolean; verbose?: boolean }): string {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const reporter = new ConsoleReporter({ out, ...options });
  const result = sample();
  reporter.start(result.backend, result.checks.length);
  for (const c of result.checks) reporter.check(c);
  reporter.summary(result, ['reports/run.json', 'reports/run.xml']);
  return Buffer.concat(chunks).toString('utf8');
}

describe('console reporter', () => {
  describe('printable', () => {
    it('neutralises terminal escapes', () => {
      expect(printable('\x1b[2J')).to.equal('\\x1b[2J');
      expect(printable('a\x1b]0;t\x07b')).to.equal('a\\x1b]0;t\\x07b');
      expect(printable('\u0000\r\x7f\u009b')).to.equal('\\x00\\x0d\\x7f\\x9b');
    });

    it('keeps newlines, tabs and printable text', () => {
      expect(printable('a\tb\nc <&> caf\u00e9')).to.equal('a\tb\nc <&> caf\u00e9');
    });
  });

  it('prints a header naming the back-end', () => {
    const [header] = run({ color: false }).split('\n');
    expect(header).to.equal(
      "vhu-conform: /usr/libexec/vhost-user-blk --socket-path '/tmp/my sock' (type: block), 6 checks",
    );
  });

  it('prints one line per check with tag, severity, id, title and duration', () => {
    const lines = run({ color: false }).split('\n');
    expect(lines).to.include('PASS  MUST    conventions.a  title of conventions.a (12 ms) [1/6]');
    expect(lines).to.include('FAIL  MUST    conventions.b  title of conventions.b (12 ms) [2/6]');
    expect(lines).to.include('TIME  MUST    protocol.c  title of protocol.c (12 ms) [3/6]');
    expect(lines).to.include('SKIP  SHOULD  protocol.d  title of protocol.d (12 ms) [4/6]');
    expect(lines).to.include('ERR   MUST    vring.e  title of vring.e (2 ms) [5/6]');
    expect(lines).to.include('INFO  INFO    conventions.f  title of conventions.f (12 ms) [6/6]');
  });

  it('counts the checks against the total the header gave, aligned', () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false });
    const result = sample();
    reporter.start(result.backend, 12);
    for (const c of result.checks.slice(0, 2)) reporter.check(c);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    expect(lines[1]).to.match(/\(12 ms\) \[ 1\/12\]$/);
    expect(lines.find((l) => l.startsWith('FAIL'))).to.match(/\(12 ms\) \[ 2\/12\]$/);
  });

  it('on a terminal, shows a long check running with its elapsed time, then wipes it for the verdict', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false, live: true });
    const result = sample();
    reporter.start(result.backend, 6);
    reporter.running('conventions.a');
    await new Promise((resolve) => setTimeout(resolve, 1300));
    reporter.check(result.checks[0]!);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = '\r      running conventions.a (1 s)';
    expect(text).to.contain(status);
    // Blanked with spaces and a carriage return (no escape sequence), then the verdict's line.
    expect(text).to.contain(`${status}\r${' '.repeat(status.length - 1)}\rPASS  MUST    conventions.a`);
    expect(text).to.not.contain('\x1b');
  });

  it('shows no status line off a terminal', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false });
    reporter.running('conventions.a');
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect(Buffer.concat(chunks).toString('utf8')).to.equal('');
  });

  it('prints messages indented under the check, escaped', () => {
    const lines = run({ color: false }).split('\n');
    const nextLine = (prefix: string) => lines[lines.findIndex((l) => l.startsWith(prefix)) + 1];
    expect(nextLine('FAIL')).to.equal(
      '      expected <reply> & flags 0x5, got ]]> \\x00 then \\x1b[31mred\\x1b[0m\\x1b[2J',
    );
    expect(nextLine('TIME')).to.equal('      timed out after 500 ms');
    expect(lines).to.include('      last sent: GET_FEATURES');
    expect(nextLine('SKIP')).to.equal('      no REPLY_ACK');
    expect(nextLine('ERR')).to.equal('      mmap failed');
    expect(nextLine('INFO')).to.equal('      socket at /tmp/x');
    // A plain pass keeps its message for verbose runs.
    expect(nextLine('PASS')).to.match(/^FAIL/);
  });

  it('prints pass messages and stderr tails when verbose', () => {
    const lines = run({ color: false, verbose: true }).split('\n');
    expect(lines[lines.findIndex((l) => l.startsWith('PASS')) + 1]).to.equal('      passing detail');
    expect(lines).to.include('      stderr:');
    expect(lines).to.include('      | backend says \\x1b]0;title\\x07');
  });

  it('prints the totals and the reports written', () => {
    const lines = run({ color: false }).split('\n');
    expect(lines).to.include('6 checks: 2 passed, 1 failed, 1 timed out, 1 skipped, 1 errors in 1.23 s');
    expect(lines).to.include('MUST failures: 2, SHOULD failures: 0');
    expect(lines).to.include('report: reports/run.json');
    expect(lines).to.include('report: reports/run.xml');
  });

  it('writes plain ASCII without escape codes when color is off', () => {
    for (const verbose of [false, true]) {
      const text = run({ color: false, verbose });
      expect(text).not.to.include('\x1b');
      expect(text).to.match(/^[\x20-\x7e\n]*$/);
    }
  });

  it('colours with ANSI escapes when color is on, and only its own', () => {
    const text = run({ color: true, verbose: true });
    expect(text).to.include('\x1b[32mPASS\x1b[0m');
    expect(text).to.include('\x1b[31mFAIL\x1b[0m');
    // Every escape in the output is an SGR sequence the reporter wrote, none from the back-end.
    const afterEscapes = text.split('\x1b').slice(1);
    expect(afterEscapes.length).to.be.greaterThan(0);
    for (const rest of afterEscapes) expect(rest).to.match(/^\[\d+m/);
    expect(text).not.to.include('\x1b[2J');
    expect(text).not.to.include('\x1b]0;');
  });

  it('prints check@profile lines and, with --frontend all, a profile x check table', () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false });
    const checks = [
      checkResult('vring.x', 'pass', '', { frontend: 'qemu' }),
      checkResult('vring.x', 'fail', 'dropped', { frontend: 'dpdk' }),
      checkResult('net.y', 'skip', 'a block device', { frontend: 'qemu' }),
      checkResult('net.y', 'skip', 'a block device', { frontend: 'dpdk' }),
    ];
    const result = {
      ...runResult(checks),
      frontend: 'all',
      matrix: frontendMatrix(['qemu', 'dpdk'], checks),
    };
    for (const c of checks) reporter.check(c);
    reporter.summary(result, []);
    const text = Buffer.concat(chunks).toString('utf8');
    expect(text).to.match(/^FAIL\s+MUST\s+vring\.x@dpdk\s/m);
    expect(text).to.match(/^check\s+qemu\s+dpdk\s*$/m);
    expect(text).to.match(/^vring\.x\s+pass\s+fail\s*$/m);
    // Skipped under every profile: not a row of the table, counted.
    expect(text).not.to.match(/^net\.y\s/m);
    expect(text).to.match(/^\(1 more check skipped under every profile, not shown\)$/m);
  });

  it('with a baseline: the reason under an expected failure, fixed under a pass, then the counts and each new failure and entry to remove', () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false });
    const checks = [
      checkResult('gpu.a', 'fail', 'pixels differ', { expected: { reason: 'bug 42\x1b[2J' } }),
      checkResult('gpu.b', 'pass', '', { expected: { reason: 'was broken' } }),
      checkResult('gpu.c', 'fail', 'new'),
    ];
    const result = {
      ...runResult(checks),
      baseline: {
        entries: 3,
        expectedFailures: 1,
        newFailures: ['gpu.c'],
        fixed: ['gpu.b'],
        notRun: ['gpu.z'],
      },
    };
    for (const c of checks) reporter.check(c);
    reporter.summary(result, []);
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    expect(lines).to.include('      expected failure, in the baseline: bug 42\\x1b[2J');
    expect(lines).to.include('      fixed: the baseline expected a failure (was broken); it passes now');
    expect(lines).to.include('baseline: 1 expected failure, 1 new, 1 fixed, 1 not run (filtered or skipped)');
    expect(lines).to.include('new failure: gpu.c');
    expect(lines).to.include('fixed: remove gpu.b from the baseline (it passes now)');
  });
});

describe('colorWanted', () => {
  const tty = true;
  const pipe = false;

  it('colours on a terminal only, with no variable set', () => {
    expect(colorWanted(true, tty, {})).to.equal(true);
    expect(colorWanted(true, pipe, {})).to.equal(false);
  });

  it('NO_COLOR (any non-empty value) means no colours even on a terminal; empty means unset', () => {
    expect(colorWanted(true, tty, { NO_COLOR: '1' })).to.equal(false);
    expect(colorWanted(true, tty, { NO_COLOR: 'yes please' })).to.equal(false);
    expect(colorWanted(true, tty, { NO_COLOR: '' })).to.equal(true);
  });

  it('FORCE_COLOR colours into a pipe, over NO_COLOR as in Node; 0 or false means none even on a terminal', () => {
    for (const value of ['1', '2', '3', 'true', ''])
      expect(colorWanted(true, pipe, { FORCE_COLOR: value }), value).to.equal(true);
    expect(colorWanted(true, pipe, { FORCE_COLOR: '1', NO_COLOR: '1' })).to.equal(true);
    for (const value of ['0', 'false', 'FALSE'])
      expect(colorWanted(true, tty, { FORCE_COLOR: value }), value).to.equal(false);
  });

  it('--no-color wins over everything', () => {
    expect(colorWanted(false, tty, {})).to.equal(false);
    expect(colorWanted(false, pipe, { FORCE_COLOR: '1' })).to.equal(false);
  });
});

describe('ConsoleReporter.note', () => {
  it('prints a note line, escaping control characters, coloured only when asked', () => {
    for (const color of [false, true]) {
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (chunk: Buffer) => chunks.push(chunk));
      new ConsoleReporter({ out, color }).note('skip \x1b[2J this');
      const text = Buffer.concat(chunks).toString('utf8');
      expect(text).to.equal(
        color ? '\x1b[33mnote:\x1b[0m skip \\x1b[2J this\n' : 'note: skip \\x1b[2J this\n',
      );
    }
  });

  it('--all: a second run counts from 1 again, and the back-end table shows what each back-end did', () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const reporter = new ConsoleReporter({ out, color: false });
    const result = sample();
    for (let i = 0; i < 2; i++) {
      reporter.start(result.backend, 1);
      reporter.check(result.checks[0]!);
    }
    reporter.table(
      ['50-ref', 'a-long-back-end-name'],
      { 'conv.a': { '50-ref': 'pass', 'a-long-back-end-name': 'fail' }, 'gpu.b': { '50-ref': 'skip' } },
      'back-end',
    );
    const lines = Buffer.concat(chunks).toString('utf8').split('\n');
    expect(lines.filter((l) => l.endsWith('[1/1]'))).to.have.length(2);
    expect(lines).to.include('');
    expect(lines).to.include('check   50-ref   a-long-back-end-name');
    expect(lines).to.include('conv.a  pass     fail                ');
    expect(lines).to.include('(1 more check skipped under every back-end, not shown)');
  });
});
