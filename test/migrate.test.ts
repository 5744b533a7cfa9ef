/**
 * The migrate checks through the CLI. migrate.resume: the reference back-end moves (pass), the flawed
 * destination that skips what the source left fails saying so, qemu-storage-daemon moves between two daemons
 * sharing one image (through test/qemu-storage-daemon-adapter, which gives it --socket-path and --blk-file),
 * and attach mode skips it. migrate.abi-stable: the reference, qemu-storage-daemon, vhost-user-gpu and
 * virtiofsd keep their guest ABI across a reconnection and a second launch, the flaw that flips a feature on
 * every second front-end fails it naming the bit, and attach mode compares two connections.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import { awaitListening, expectClean, fixture, messageOf, ROOT, runCli, verdicts } from './helpers.js';

const GREP = ['--timeout', '3000', '--grep', '^migrate\\.'];
const ABI_STABLE = ['--timeout', '3000', '--grep', '^migrate\\.abi-stable$'];
const QSD = '/usr/bin/qemu-storage-daemon';
const QSD_ADAPTER = path.join(ROOT, 'test/qemu-storage-daemon-adapter');
const GPU = '/usr/lib/qemu/vhost-user-gpu';
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

/** A pass of migrate.abi-stable over two launches; `reconnected` says what the second connection found. */
function launchesAlike(reconnected: RegExp): RegExp {
  return new RegExp(
    `^two launches with the same arguments and socket path gave the same fingerprint \\(features 0x[0-9a-f]{16}, .*\\) and the same --print-capabilities; ${reconnected.source}$`,
  );
}

describe('the migrate checks through the CLI', function () {
  this.timeout(120_000);

  it('the reference back-end moves: the destination completes what the source left, on the shared disk', async () => {
    const run = await runCli([...GREP, fixture('vhu-reference')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({
      'migrate.resume': 'pass',
      'migrate.abi-stable': 'pass',
    });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /a fresh 8 MiB file given to both with --blk-file; the source stopped at base (\d+) with 6 requests left \(0 taken by the source itself\); the destination, started at \1 and kicked, completed 6 once each/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-resume-skips-pending fails it: the requests the source left are lost on the destination', async () => {
    const run = await runCli([...GREP, fixture('vhu-flaw-resume-skips-pending')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({
      'migrate.resume': 'fail',
      'migrate.abi-stable': 'pass',
    });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /the destination, started with SET_VRING_BASE \d+ and kicked, completed 0 of the 6 requests the source left available \(avail\.idx \d+\): 6 lost/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it('qemu-storage-daemon (two daemons, one image, locking=off) moves, and keeps its ABI, under every front-end profile', async () => {
    if (!existsSync(QSD)) expect.fail(`${QSD} is missing: run .ci/install-backends (qemu-system-common)`);
    const tmp = await dir({ prefix: 'vhu-selftest-migrate-', unsafeCleanup: true });
    try {
      // The adapter exports a file: every launch needs one (migrate.resume shares the run's with both sides).
      const image = path.join(tmp.path, 'disk.img');
      await writeFile(image, Buffer.alloc(8 * 1024 * 1024));
      const run = await runCli([...GREP, '--frontend', 'all', QSD_ADAPTER, '--', `--blk-file=${image}`], {
        env: { VHU_DESCRIPTOR_DIRS: undefined },
      });
      for (const id of ['migrate.resume', 'migrate.abi-stable']) {
        const row = run.report?.matrix?.checks[id] ?? {};
        expect(Object.keys(row), run.stdout).to.not.deep.equal([]);
        for (const [profile, verdict] of Object.entries(row))
          expect(verdict, `${id}@${profile}\n${run.stdout}`).to.equal('pass');
      }
      // libvhost-user's server takes the next front-end once one leaves: the reconnection is compared too.
      expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
        launchesAlike(/a second connection to launch 1 gave it too/),
      );
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    } finally {
      await tmp.cleanup();
    }
  });

  it('vhu-flaw-reconnect-features-flip fails migrate.abi-stable, naming the bit the second front-end was offered', async () => {
    const run = await runCli([...ABI_STABLE, fixture('vhu-flaw-reconnect-features-flip')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.abi-stable': 'fail' });
    expect(messageOf(run.report, 'migrate.abi-stable')).to.equal(
      'a second connection to launch 1 differs from the first: virtioFeatures: connection 1 0x0000000174000240, connection 2 0x0000000175000240 (VIRTIO_F_NOTIFY_ON_EMPTY offered on connection 2 only)',
    );
    // A SHOULD: the run still exits 0.
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it(`Debian's ${GPU} and ${VIRTIOFSD} keep their ABI across two launches (each ends when its front-end leaves)`, async () => {
    for (const binary of [GPU, VIRTIOFSD])
      if (!existsSync(binary))
        expect.fail(`${binary} is missing: run .ci/install-backends (qemu-system-gui, qemu-system-common)`);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      for (const args of [[GPU], [VIRTIOFSD, '--', '-o', `source=${share.path}`]]) {
        const run = await runCli([...ABI_STABLE, ...args], { env: { VHU_DESCRIPTOR_DIRS: undefined } });
        expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.abi-stable': 'pass' });
        expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
          launchesAlike(/it ended once its front-end left \(exit status 0\): no reconnection to compare/),
        );
        expect(run.exitCode, run.stderr).to.equal(0);
        expectClean(run);
      }
    } finally {
      await share.cleanup();
    }
  });

  it('attach mode skips migrate.resume (one back-end, and nothing launches a second) and compares two connections', async () => {
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
      expect(verdicts(run.report), run.stdout).to.deep.equal({
        'migrate.resume': 'skip',
        'migrate.abi-stable': 'pass',
      });
      expect(messageOf(run.report, 'migrate.resume')).to.match(/attach mode: the check needs two back-ends/);
      expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
        /^two connections gave the same fingerprint \(features 0x0000000174000240, .*\); attach mode: the launches are not compared/,
      );
      expect(run.exitCode, run.stderr).to.equal(0);
    } finally {
      await stop();
    }
  });
});
