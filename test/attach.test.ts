/**
 * Attach mode (--connect) against a back-end someone else started: Debian's qemu-storage-daemon exporting a
 * null block device over vhost-user-blk. The conventions are skipped (vhu-conform did not launch it); the
 * protocol checks run over connections to its socket. The verdicts are what it was seen to do by hand.
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { dir } from 'tmp-promise';
import { isListeningAt } from '../harness/process/procfs.js';
import { pollUntil } from '../harness/util/deadline.js';
import { allChecks } from '../suites/index.js';
import { type CliRun, expectClean, messageOf, runCli, verdicts } from './helpers.js';

const QSD = '/usr/bin/qemu-storage-daemon';

describe('attach mode: qemu-storage-daemon --export type=vhost-user-blk', function () {
  this.timeout(60_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let daemon: ResultPromise | undefined;
  let run: CliRun;

  before(async () => {
    if (!existsSync(QSD)) expect.fail(`${QSD} is missing: install the Debian package qemu-system-common`);
    tmp = await dir({ prefix: 'vhu-selftest-qsd-', unsafeCleanup: true });
    const socket = path.join(tmp.path, 'blk.sock');
    daemon = execa(
      QSD,
      [
        '--blockdev',
        'driver=null-co,node-name=null0,size=67108864',
        '--export',
        `type=vhost-user-blk,id=exp0,node-name=null0,addr.type=unix,addr.path=${socket},writable=on`,
      ],
      { reject: false, stdin: 'ignore' },
    );
    await pollUntil(() => (isListeningAt(socket) ? true : undefined), 10_000, `${QSD} to listen`);
    run = await runCli(['--connect', socket, '--type', 'block']);
  });

  after(async () => {
    daemon?.kill('SIGKILL');
    await daemon;
    await tmp?.cleanup();
  });

  it('skips every conventions check, saying why, and runs every protocol check', () => {
    const all = verdicts(run.report);
    for (const check of allChecks) {
      if (check.area === 'conventions') {
        expect(all[check.id], check.id).to.equal('skip');
        expect(messageOf(run.report, check.id)).to.contain('attach mode');
      } else {
        expect(all[check.id], check.id).to.be.oneOf(['pass', 'fail']);
      }
    }
    expect(run.report?.backend.binary).to.equal(null);
    expect(run.report?.backend.connect).to.match(/blk\.sock$/);
    expect(run.stdout).to.match(/attached to .*blk\.sock \(type: block\)/);
  });

  it('has exactly the protocol verdicts seen by hand', () => {
    const protocol = Object.fromEntries(
      Object.entries(verdicts(run.report)).filter(([id]) => id.startsWith('proto.')),
    );
    expect(protocol, run.stdout).to.deep.equal(
      Object.fromEntries(
        allChecks
          .filter((c) => c.area === 'protocol')
          // It drops the connection on SET_VRING_NUM for a vring that does not exist instead of a non-zero ack.
          .map((c) => [c.id, c.id === 'proto.reply-ack.invalid' ? 'fail' : 'pass']),
      ),
    );
    expect(messageOf(run.report, 'proto.reply-ack.invalid')).to.contain('closed the connection');
    expect(run.exitCode, run.stderr).to.equal(0);
  });

  it('leaves nothing behind', () => {
    expectClean(run);
  });
});
