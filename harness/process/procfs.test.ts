import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'chai';
import {
  allProcesses,
  cpuWaitSince,
  descendantsOf,
  isSelfOrDescendant,
  type ProcStat,
  parseStat,
  readStat,
  runQueueWaitMs,
  stillRunning,
} from './procfs.js';

describe('process/procfs', () => {
  it('reads how long a process waited for a CPU (its schedstat), nothing for one that is gone', () => {
    const waited = runQueueWaitMs(process.pid);
    expect(waited).to.be.a('number').and.at.least(0);
    expect(runQueueWaitMs(0x3fffffff)).to.equal(undefined);
    const since = cpuWaitSince(process.pid);
    expect(since()).to.be.at.least(0);
    expect(cpuWaitSince(0x3fffffff)()).to.equal(0);
  });

  it('parses a stat line whose comm holds spaces and parentheses', () => {
    const line = '4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1 0 0 0 17 5 0 0 20 0 1 0 987654 0 0';
    expect(parseStat(line)).to.deep.equal({
      pid: 4242,
      comm: 'a (b) c',
      state: 'S',
      ppid: 1,
      pgrp: 4242,
      session: 4242,
      starttime: 987654,
      cpuTicks: 22,
    });
  });

  it('finds a grandchild among the descendants and sees it end', async () => {
    const child = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
    await once(child, 'spawn');
    let grandchild: number | undefined;
    for (let i = 0; i < 200 && grandchild === undefined; i++) {
      grandchild = descendantsOf(child.pid!).find((p) => p.comm === 'sleep')?.pid;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(grandchild).to.be.a('number');
    // From the threads' children lists as from every process's stat: the same processes.
    const pids = (table?: ProcStat[]) =>
      descendantsOf(process.pid, table)
        .map((p) => p.pid)
        .sort();
    expect(pids()).to.include.members([child.pid!, grandchild!]);
    expect(pids()).to.deep.equal(pids(allProcesses()));
    expect(isSelfOrDescendant(grandchild!, process.pid)).to.equal(true);
    const stat = readStat(grandchild!)!;
    process.kill(grandchild!, 'SIGKILL');
    await once(child, 'exit');
    expect(stillRunning(stat)).to.equal(false);
  });
});

describe('process/procfs /proc/net/unix', () => {
  it('keeps only listening sockets', async () => {
    const { parseListeningUnix } = await import('./procfs.js');
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '000000004a9868c7: 00000002 00000000 00010000 0001 01 12698 /tmp/g.sock',
      '00000000d32dd3ed: 00000003 00000000 00000000 0001 03 18838 /tmp/connected.sock',
      '00000000d32dd3ee: 00000002 00000000 00010000 0001 01 18839 /tmp/with space.sock',
      '00000000d32dd3ef: 00000003 00000000 00000000 0001 03 18840',
    ].join('\n');
    expect([...parseListeningUnix(text)]).to.deep.equal(['/tmp/g.sock', '/tmp/with space.sock']);
  });
});

describe('process/procfs socket owner', () => {
  it('finds the inode of the listening socket at a path, not a connected one', async () => {
    const { listeningInodes } = await import('./procfs.js');
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '000000004a9868c7: 00000002 00000000 00010000 0001 01 12698 /tmp/g.sock',
      '00000000d32dd3ed: 00000003 00000000 00000000 0001 03 18838 /tmp/g.sock',
      '00000000d32dd3ee: 00000002 00000000 00010000 0001 01 18839 /tmp/other.sock',
    ].join('\n');
    expect([...listeningInodes(text, '/tmp/g.sock')]).to.deep.equal([12698]);
  });

  it('names this process as the owner of a socket it listens on, and nobody once it is closed', async () => {
    const { socketOwner } = await import('./procfs.js');
    const { closeFd, listenUnix } = await import('../sys/libc.js');
    const { dir } = await import('tmp-promise');
    const tmp = await dir({ unsafeCleanup: true });
    const path = `${tmp.path}/owner.sock`;
    const fd = listenUnix(path);
    try {
      expect(socketOwner(path)).to.equal(process.pid);
    } finally {
      closeFd(fd);
    }
    expect(socketOwner(path)).to.equal(undefined);
    await tmp.cleanup();
  });
});
