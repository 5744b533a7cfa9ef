/**
 * migrate.resume through the CLI: the reference back-end moves (pass), the flawed destination that skips what
 * the source left fails saying so, qemu-storage-daemon moves between two daemons sharing one image (through
 * test/qemu-storage-daemon-adapter, which gives it --socket-path and --blk-file), and attach mode skips it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import { awaitListening, expectClean, fixture, messageOf, ROOT, runCli, verdicts } from './helpers.js';

const GREP = ['--timeout', '3000', '--grep', '^migrate\\.'];
const QSD = '/usr/bin/qemu-storage-daemon';
const QSD_ADAPTER = path.join(ROOT, 'test/qemu-storage-daemon-adapter');

describe('migrate.resume through the CLI', function () {
  this.timeout(120_000);

  it('the reference back-end moves: the destination completes what the source left, on the shared disk', async () => {
    const run = await runCli([...GREP, fixture('vhu-reference')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /a fresh 8 MiB file given to both with --blk-file; the source stopped at base (\d+) with 6 requests left \(0 taken by the source itself\); the destination, started at \1 and kicked, completed 6 once each/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-resume-skips-pending fails it: the requests the source left are lost on the destination', async () => {
    const run = await runCli([...GREP, fixture('vhu-flaw-resume-skips-pending')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'fail' });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /the destination, started with SET_VRING_BASE \d+ and kicked, completed 0 of the 6 requests the source left available \(avail\.idx \d+\): 6 lost/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it('qemu-storage-daemon (two daemons, one image, locking=off) moves under every front-end profile', async () => {
    if (!existsSync(QSD)) expect.fail(`${QSD} is missing: run .ci/install-backends (qemu-system-common)`);
    const run = await runCli([...GREP, '--frontend', 'all', QSD_ADAPTER], {
      env: { VHU_DESCRIPTOR_DIRS: undefined },
    });
    const row = run.report?.matrix?.checks['migrate.resume'] ?? {};
    expect(Object.keys(row), run.stdout).to.not.deep.equal([]);
    for (const [profile, verdict] of Object.entries(row))
      expect(verdict, `${profile}\n${run.stdout}`).to.equal('pass');
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('attach mode skips it: one back-end, and nothing launches a second', async () => {
    const tmp = await dir({ prefix: 'vhu-selftest-migrate-', unsafeCleanup: true });
    const socket = path.join(tmp.path, 'backend.sock');
    const backend = execa(fixture('vhu-reference'), [`--socket-path=${socket}`], {
      reject: false,
      stdin: 'ignore',
    });
    const stop = async () => {
      backend.kill('SIGTERM');
      await backend;
      await tmp.cleanup();
    };
    try {
      await awaitListening(socket, 'the reference back-end', 10_000, stop);
      const run = await runCli([...GREP, '--connect', socket, '--type', 'block']);
      expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'skip' });
      expect(messageOf(run.report, 'migrate.resume')).to.match(/attach mode: the check needs two back-ends/);
      expect(run.exitCode, run.stderr).to.equal(0);
    } finally {
      await stop();
    }
  });
});
