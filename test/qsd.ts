/** qemu-storage-daemon (Debian package qemu-system-common) exporting one disk over vhost-user-blk, for the tests and benches. */
import { existsSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { dir } from 'tmp-promise';
import { awaitListening } from './helpers.js';

export const QSD = '/usr/bin/qemu-storage-daemon';

export interface Qsd {
  /** Its vhost-user socket, listening. */
  socket: string;
  daemon: ResultPromise;
  /** Kills the daemon and removes its folder (socket and image). */
  stop(): Promise<void>;
}

export interface QsdOptions {
  /** A raw image of this size (zeroes, sparse) to export, writable; without it, a 64 MiB null-co device whose reads give zeroes. */
  imageMiB?: number;
  /** The export's num-queues (the daemon's default otherwise). */
  queues?: number;
}

/** Starts one and waits until it listens; a daemon that never does is stopped before the error is thrown. */
export async function startQsd(options: QsdOptions = {}): Promise<Qsd> {
  if (!existsSync(QSD)) expect.fail(`${QSD} is missing: run .ci/install-backends (qemu-system-common)`);
  const tmp = await dir({ prefix: 'vhu-qsd-', unsafeCleanup: true });
  const socket = path.join(tmp.path, 'blk.sock');
  const image = path.join(tmp.path, 'disk.img');
  if (options.imageMiB !== undefined) {
    await writeFile(image, '');
    await truncate(image, options.imageMiB * 1024 * 1024);
  }
  const blockdev =
    options.imageMiB === undefined
      ? 'driver=null-co,node-name=disk0,size=67108864,read-zeroes=on'
      : `driver=file,node-name=disk0,filename=${image}`;
  const exportArgs = [
    'type=vhost-user-blk,id=exp0,node-name=disk0',
    ...(options.imageMiB === undefined ? [] : ['writable=on']),
    ...(options.queues === undefined ? [] : [`num-queues=${options.queues}`]),
    `addr.type=unix,addr.path=${socket}`,
  ];
  const daemon = execa(QSD, ['--blockdev', blockdev, '--export', exportArgs.join(',')], {
    reject: false,
    stdin: 'ignore',
  });
  const stop = async () => {
    daemon.kill('SIGKILL');
    await daemon;
    await tmp.cleanup();
  };
  await awaitListening(socket, QSD, 10_000, stop);
  return { socket, daemon, stop };
}
