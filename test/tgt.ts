/**
 * Debian's user-space iSCSI target (package tgt) as the disk behind QEMU 7.2's contrib/vhost-user-scsi: a tgtd
 * of the test's own, in the foreground, on 127.0.0.1 at a free port, with a control socket of its own
 * (-C N: /var/run/tgtd/socket.N) so that it clashes neither with a system tgtd nor with another test's, and one
 * target whose LUN 1 is a file in a temp folder. stop() leaves no process and no file behind.
 */
import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { dir } from 'tmp-promise';
import { isListeningAt } from '../harness/process/procfs.js';
import { pollUntil, withDeadline } from '../harness/util/deadline.js';

export const TGTD = '/usr/sbin/tgtd';
export const TGTADM = '/usr/sbin/tgtadm';
/** Where tgtd puts its control socket (and its lock file) for control port N: socket.N. */
const TGTD_RUN_DIR = '/var/run/tgtd';
const IQN = 'iqn.2026-12.org.vhu-conform:selftest';

export interface IscsiTarget {
  /** The iSCSI URL of LUN 1, as vhost-user-scsi's --iscsi-uri takes it. */
  uri: string;
  process: ResultPromise;
  /** Deletes the target, ends tgtd (SIGKILL past a deadline), removes its control socket and the LUN file. */
  stop(): Promise<void>;
  /** What of tgtd's files and the LUN's folder still exists (nothing, once stopped). */
  filesLeft(): string[];
}

/** A TCP port nobody listens on at 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no TCP port for tgtd');
  return address.port;
}

/**
 * A control port whose socket and lock file do not exist yet. tgtd takes -C only up to 32767 ("-C argument
 * value '35783' out of range", exit 34): half of the old 1000-61000 range made it exit at once.
 */
function freeControlPort(): number {
  for (;;) {
    const port = 1000 + Math.floor(Math.random() * 31_000);
    if (!existsSync(path.join(TGTD_RUN_DIR, `socket.${port}`))) return port;
  }
}

/** Starts tgtd with a target whose LUN 1 is a zeroed file of `sizeMiB` MiB, and waits until it is served. */
export async function startTgt(options: { sizeMiB: number } = { sizeMiB: 16 }): Promise<IscsiTarget> {
  if (!existsSync(TGTD)) expect.fail(`${TGTD} is missing: run .ci/install-backends (Debian package tgt)`);
  const tmp = await dir({ prefix: 'vhu-selftest-tgt-', unsafeCleanup: true });
  const lun = path.join(tmp.path, 'lun1.img');
  await writeFile(lun, '');
  await truncate(lun, options.sizeMiB * 1024 * 1024);
  const runDirExisted = existsSync(TGTD_RUN_DIR);
  const control = freeControlPort();
  const port = await freePort();
  const controlSocket = path.join(TGTD_RUN_DIR, `socket.${control}`);
  const child = execa(TGTD, ['-f', '-C', String(control), '--iscsi', `portal=127.0.0.1:${port}`], {
    reject: false,
    stdin: 'ignore',
  });
  const tgtadm = (...args: string[]) => execa(TGTADM, ['-C', String(control), ...args], { reject: false });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= stopTgtd();
    return stopping;
  };
  const stopTgtd = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1');
      await tgtadm('--mode', 'system', '--op', 'delete');
      try {
        await withDeadline(child, 3000, 'tgtd to exit', false);
      } catch {
        child.kill('SIGKILL');
      }
    }
    await child;
    rmSync(controlSocket, { force: true });
    rmSync(`${controlSocket}.lock`, { force: true });
    if (!runDirExisted && existsSync(TGTD_RUN_DIR) && readdirSync(TGTD_RUN_DIR).length === 0)
      rmdirSync(TGTD_RUN_DIR);
    await tmp.cleanup();
  };
  // Listening, or ended (a bad option, a port taken): the wait ends at once either way.
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  try {
    await pollUntil(
      () => (ended() || isListeningAt(controlSocket) ? true : undefined),
      10_000,
      `${TGTD} to listen`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  if (ended()) {
    await stop();
    const { stderr, exitCode } = await child;
    expect.fail(
      `${TGTD} -C ${control} ended before listening (exit status ${exitCode}): ${String(stderr).trim().split('\n').slice(-2).join(' | ')}`,
    );
  }
  const iscsi = (mode: string, op: string, ...rest: string[]) => [
    '--lld',
    'iscsi',
    '--mode',
    mode,
    '--op',
    op,
    ...rest,
  ];
  for (const args of [
    iscsi('target', 'new', '--tid', '1', '--targetname', IQN),
    iscsi('logicalunit', 'new', '--tid', '1', '--lun', '1', '--backing-store', lun),
    iscsi('target', 'bind', '--tid', '1', '--initiator-address', '127.0.0.1'),
  ]) {
    const result = await tgtadm(...args);
    if (result.exitCode !== 0) {
      await stop();
      expect.fail(`tgtadm ${args.join(' ')}: exit status ${result.exitCode}: ${result.stderr}`);
    }
  }
  const files = [controlSocket, `${controlSocket}.lock`, tmp.path];
  return {
    uri: `iscsi://127.0.0.1:${port}/${IQN}/1`,
    process: child,
    stop,
    filesLeft: () => files.filter((file) => existsSync(file)),
  };
}
