/**
 * QEMU accepts the reference back-end: qemu-system-x86_64 (TCG) boots from a vhost-user-blk disk served by
 * fixtures/bin/vhu-reference. SeaBIOS finds the virtio-blk device, reads the boot sector through the
 * virtqueue, and runs it; the boot sector writes "VHU" to the debug console. That proves QEMU negotiated,
 * shared its memory, set up the ring and got correct data back: our reading of the spec matches a real
 * front-end's.
 */

import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import { isListeningAt } from '../harness/process/procfs.js';
import { pollUntil } from '../harness/util/deadline.js';
import { bootDisk, fixture } from './helpers.js';

const QEMU = '/usr/bin/qemu-system-x86_64';

describe('QEMU as the front-end of the reference back-end', function () {
  this.timeout(120_000);

  it('boots from the vhost-user-blk disk the reference back-end serves', async () => {
    if (!existsSync(QEMU)) expect.fail(`${QEMU} is missing: install the Debian package qemu-system-x86`);
    const tmp = await dir({ prefix: 'vhu-selftest-qemu-', unsafeCleanup: true });
    const socket = path.join(tmp.path, 'blk.sock');
    const image = path.join(tmp.path, 'disk.img');
    const debugLog = path.join(tmp.path, 'debugcon.log');
    await writeFile(image, bootDisk());
    const backend = execa(fixture('vhu-reference'), [`--socket-path=${socket}`, `--blk-file=${image}`], {
      reject: false,
      stdin: 'ignore',
    });
    let qemu: ReturnType<typeof execa> | undefined;
    try {
      await pollUntil(
        () => (isListeningAt(socket) ? true : undefined),
        10_000,
        'the reference back-end to listen',
      );
      qemu = execa(
        QEMU,
        [
          ['-machine', 'q35,accel=tcg', '-m', '64', '-nodefaults', '-display', 'none', '-no-reboot'],
          ['-object', 'memory-backend-memfd,id=mem,size=64M,share=on', '-numa', 'node,memdev=mem'],
          [
            '-chardev',
            `socket,id=blk0,path=${socket}`,
            '-device',
            'vhost-user-blk-pci,chardev=blk0,num-queues=1',
          ],
          ['-chardev', `file,id=dbg,path=${debugLog}`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg'],
        ].flat(),
        { reject: false, stdin: 'ignore' },
      );
      const log = await pollUntil(
        () => {
          if (qemu?.exitCode !== null && qemu?.exitCode !== undefined) throw new Error('QEMU exited');
          const text = existsSync(debugLog) ? readFileSync(debugLog, 'latin1') : '';
          return text.includes('VHU') ? text : undefined;
        },
        90_000,
        'the boot sector to print VHU',
        100,
      ).catch(async (err: Error) => {
        qemu?.kill('SIGKILL');
        const result = await qemu;
        const text = existsSync(debugLog) ? readFileSync(debugLog, 'latin1') : '';
        throw new Error(`${err.message}\nQEMU stderr: ${result?.stderr}\nSeaBIOS: ${text.slice(-2000)}`);
      });
      expect(log).to.match(/found virtio-blk at/);
      expect(log).to.contain('Booting from Hard Disk');
      expect(log).to.match(/Booting from 0000:7c00\s*VHU/);
    } finally {
      qemu?.kill('SIGKILL');
      await qemu;
      backend.kill('SIGTERM');
      const ended = await backend;
      await tmp.cleanup();
      expect(ended.exitCode, String(ended.stderr)).to.equal(0);
      // BACKEND_REQ is offered: QEMU hands over the back-end request channel.
      expect(String(ended.stderr)).to.contain('back-end request channel set (SET_BACKEND_REQ_FD)');
    }
  });
});
