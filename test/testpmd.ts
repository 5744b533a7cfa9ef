/** dpdk-testpmd (Debian package dpdk-dev) as a vhost-user net back-end, for the attach tests and the net bench. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa, type ResultPromise } from 'execa';
import { dir } from 'tmp-promise';
import { awaitListening, type CliOptions, type CliRun, runCli } from './helpers.js';

export const TESTPMD = '/usr/bin/dpdk-testpmd';

export interface Testpmd {
  /** Its vhost-user socket, listening. */
  socket: string;
  process: ResultPromise;
  /** Kills it and removes its socket folder and runtime files. */
  stop(): Promise<void>;
}

/**
 * Starts testpmd with a net_vhost port on `queues` queue pairs, io forwarding, and waits until it listens.
 * `statsPeriod` seconds between its statistics (without a period it waits on stdin, and would end at once on
 * /dev/null); `lineBuffered` for reading them as they come (printf'd, block-buffered into a pipe otherwise).
 */
export async function startTestpmd(options: {
  queues: number;
  statsPeriod: number;
  lineBuffered?: boolean;
}): Promise<Testpmd> {
  const tmp = await dir({ prefix: 'vhu-testpmd-', unsafeCleanup: true });
  const socket = path.join(tmp.path, 'net.sock');
  // A prefix of our own: its runtime files go under /var/run/dpdk/<prefix>, removed by stop().
  const prefix = `vhu-${process.pid}-${path.basename(tmp.path)}`;
  const args = [
    '--no-huge',
    '--no-pci',
    '-m',
    '512',
    `--file-prefix=${prefix}`,
    '--vdev',
    `net_vhost0,iface=${socket},queues=${options.queues}`,
    '--',
    '--forward-mode=io',
    // Every queue pair forwarded (GET_QUEUE_NUM answers 128 whatever these say).
    `--rxq=${options.queues}`,
    `--txq=${options.queues}`,
    '--total-num-mbufs=16384',
    `--stats-period=${options.statsPeriod}`,
  ];
  const child = options.lineBuffered
    ? execa('stdbuf', ['-oL', TESTPMD, ...args], { reject: false, stdin: 'ignore', buffer: false })
    : execa(TESTPMD, args, { reject: false, stdin: 'ignore' });
  const stop = async () => {
    child.kill('SIGKILL');
    await child;
    await execa('rm', ['-rf', `/var/run/dpdk/${prefix}`], { reject: false });
    await tmp.cleanup();
  };
  await awaitListening(socket, TESTPMD, 20_000, stop);
  return { socket, process: child, stop };
}

/** A testpmd of a mocha describe's own, and the run against it. */
export interface TestpmdRun {
  readonly testpmd: Testpmd;
  readonly run: CliRun;
}

/**
 * For a mocha describe: a testpmd of its own (two queue pairs, io forwarding) started before its tests,
 * `vhu-conform --connect SOCK --type net ARGS` run against it, and the testpmd stopped after them.
 */
export function testpmdRun(args: readonly string[], options: CliOptions = {}): TestpmdRun {
  const state: { testpmd?: Testpmd; run?: CliRun } = {};
  before(async () => {
    if (!existsSync(TESTPMD)) expect.fail(`${TESTPMD} is missing: install the Debian package dpdk-dev`);
    state.testpmd = await startTestpmd({ queues: 2, statsPeriod: 10 });
    state.run = await runCli(['--connect', state.testpmd.socket, '--type', 'net', ...args], options);
  });
  after(async () => {
    await state.testpmd?.stop();
  });
  return {
    get testpmd() {
      return state.testpmd!;
    },
    get run() {
      return state.run!;
    },
  };
}
