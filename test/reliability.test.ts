/**
 * The harness under abuse: a back-end that breaks everything at once (vhu-flaw-chaos), Ctrl-C in the middle
 * of a run, a back-end that cannot be launched, and one that crashes at once. Every run must end, say why,
 * and leave no process and no temp file behind.
 */

import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { allChecks } from '../suites/index.js';
import { type CliRun, expectClean, fixture, messageOf, runCli } from './helpers.js';

/** A V8 stack frame, `    at fn (file:///...:1:2)`: the harness crashed or reported its own fault. */
const JS_STACK_FRAME = /^\s+at \S.*:\d+:\d+\)?$/m;
/** C0 controls but \t and \n, DEL and C1 controls: back-end bytes that reached the console unescaped. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

const CHAOS_LIMIT_MS = 90_000;
const MEMORY_LIMIT_KB = 300 * 1024;

describe('reliability: a run against vhu-flaw-chaos', function () {
  this.timeout(10_000);
  let run: CliRun;

  before(async function () {
    this.timeout(CHAOS_LIMIT_MS + 10_000);
    run = await runCli(['--timeout', '1000', '--verbose', fixture('vhu-flaw-chaos')], {
      limitMs: CHAOS_LIMIT_MS,
      memoryPollMs: 100,
    });
  });

  it(`ends within ${CHAOS_LIMIT_MS / 1000} s with exit status 1 or 2 and a report of every check`, function () {
    this.timeout(5000);
    expect(run.signal, `killed at the ${CHAOS_LIMIT_MS} ms limit`).to.equal(undefined);
    expect(run.durationMs).to.be.below(CHAOS_LIMIT_MS);
    expect(run.exitCode, run.stderr).to.be.oneOf([1, 2]);
    expect(run.report, 'report.json').to.not.equal(undefined);
    expect(run.report?.checks).to.have.length(allChecks.length);
    expect(run.report?.summary.mustFailed).to.be.above(0);
  });

  it('does not crash: no unhandled error, no stack trace of the harness', function () {
    this.timeout(5000);
    expect(run.stderr).to.not.contain('Unhandled');
    expect(run.stderr).to.not.match(JS_STACK_FRAME);
  });

  it("escapes the back-end's random bytes on the console", function () {
    this.timeout(5000);
    expect(run.stdout).to.not.match(CONTROL);
  });

  it('leaves no process (the chaos child ignores SIGTERM) and no temp file', function () {
    this.timeout(5000);
    expectClean(run);
  });

  it('keeps its own memory bounded while the back-end floods stdout and stderr', function () {
    this.timeout(5000);
    expect(run.peakRssKb, 'no /proc/PID/status sample of the CLI').to.be.a('number');
    expect(run.peakRssKb, 'peak RSS of the CLI in KiB').to.be.below(MEMORY_LIMIT_KB);
  });
});

describe('reliability: Ctrl-C', () => {
  const INTERRUPT_MS = 1500;

  for (const name of ['vhu-reference', 'vhu-flaw-chaos']) {
    it(`SIGINT during a run against ${name} exits 130 and leaves nothing behind`, async function () {
      this.timeout(70_000);
      const run = await runCli(['--timeout', '1000', fixture(name)], {
        interruptAfterMs: INTERRUPT_MS,
        limitMs: 60_000,
      });
      expect(run.signal, 'killed at the limit').to.equal(undefined);
      expect(run.exitCode, run.stderr).to.equal(130);
      expect(run.stderr).to.match(/SIGINT: stopping/);
      expect(run.report?.summary.errors, 'harness errors in the interrupted run').to.equal(0);
      expect(run.durationMs, 'time to stop after SIGINT').to.be.below(INTERRUPT_MS + 15_000);
      expectClean(run);
    });
  }
});

describe('reliability: back-ends that cannot run', function () {
  this.timeout(30_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-', unsafeCleanup: true });
  });
  after(() => tmp?.cleanup());

  it('a back-end binary that does not exist: exit 2, naming the path', async function () {
    this.timeout(20_000);
    const missing = path.join(tmp.path, 'no-such-backend');
    const run = await runCli([missing]);
    expect(run.exitCode).to.equal(2);
    expect(run.stderr).to.contain(missing);
    expect(run.stderr).to.contain('not found');
    expectClean(run);
  });

  it('a back-end file that is not executable: exit 2, "not executable"', async function () {
    this.timeout(20_000);
    const plain = path.join(tmp.path, 'plain-backend');
    await writeFile(plain, '#!/bin/sh\nexit 0\n');
    await chmod(plain, 0o644);
    const run = await runCli([plain]);
    expect(run.exitCode).to.equal(2);
    expect(run.stderr).to.contain('not executable');
    expect(run.stderr).to.contain(plain);
    expectClean(run);
  });

  it('a back-end that crashes at once: the run completes, exit 1, conv.caps.exit names SIGSEGV', async function () {
    this.timeout(60_000);
    const crasher = path.join(tmp.path, 'segv-backend');
    // No core file: the back-end runs in our working directory.
    await writeFile(crasher, '#!/bin/sh\nulimit -c 0\nkill -SEGV $$\n');
    await chmod(crasher, 0o755);
    const run = await runCli(['--timeout', '1000', crasher], { limitMs: 50_000 });
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.report, 'report.json').to.not.equal(undefined);
    expect(run.report?.checks).to.have.length(allChecks.length);
    expect(run.report?.checks.filter((c) => c.verdict === 'error')).to.deep.equal([]);
    expect(run.report?.checks.find((c) => c.id === 'conv.caps.exit')?.verdict).to.equal('fail');
    expect(messageOf(run.report, 'conv.caps.exit')).to.contain('SIGSEGV');
    expectClean(run);
  });
});
