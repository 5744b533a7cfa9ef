/**
 * Benchmark: the load mode (`vhu-conform load`, harness/load) next to issue 15's target, in one run on this
 * machine: 4 KiB reads at depth 64 against qemu-storage-daemon (null-co), and 60-byte frames looped through
 * dpdk-testpmd in io forwarding, printed side by side with DPDK's own virtio-user front-end (a second
 * testpmd, `--vdev net_virtio_user0,path=SOCK`, transmitting 60-byte frames as fast as it can) against the
 * same back-end, as a ratio: the back-end's Rx-pps (frames it took from the front-end each second, its own
 * statistic) under each front-end. The harness's rate counts frames that came back and were checked byte
 * for byte; virtio-user's is one way (its receive ring is never drained). Both sides' CPU as the load
 * reports it. On a loaded machine only the ratios mean something. Run with `npm run bench`.
 */
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { type LoadReport, runLoad } from '../../harness/load/load.js';
import { QSD, startQsd } from '../qsd.js';
import { startTestpmd, TESTPMD } from '../testpmd.js';

const DURATION_MS = 5000;
/** Issue 15, item 4: frames of 60 B a second through dpdk-testpmd io forwarding, on 2 cores. */
const NET_TARGET = 2_000_000;

function describe(r: LoadReport): string {
  const l = r.latencyUs;
  return (
    `${r.perSecond.toLocaleString('en-US').padStart(10)} ${r.unit}/s checked   latency p50 ${l.p50} us, p99 ${l.p99} us, ` +
    `max ${l.max} us; ${(r.kicks / Math.max(1, r.completed)).toFixed(3)} kicks and ${r.calls} calls in all; ` +
    `CPU: harness ${r.harnessCpuPercent}%, back-end ${r.backendCpuPercent ?? '?'}% of a core; ` +
    `the harness's own work a ${r.unit === 'frames' ? 'frame' : 'request'}, polling aside, ${r.harnessUsPer} us ` +
    `(${(1 / r.harnessUsPer).toFixed(2)} M/s if the back-end kept up)`
  );
}

/**
 * The highest of testpmd's per-second Rx-pps readings: the seconds a phase starts and ends in (the device
 * set up, the worker started, the drain) are only partly busy, so a median lands on them.
 */
function peak(values: number[]): number {
  return Math.max(0, ...values);
}

async function block(): Promise<void> {
  if (!existsSync(QSD)) {
    console.log(`  ${QSD} is not installed (package qemu-system-common): skipped`);
    return;
  }
  const qsd = await startQsd();
  try {
    const report = await runLoad({ type: 'block', connect: qsd.socket, durationMs: DURATION_MS });
    console.log(`  qemu-storage-daemon null-co, 4 KiB reads, depth 64: ${describe(report)}`);
  } finally {
    await qsd.stop();
  }
}

async function net(): Promise<void> {
  if (!existsSync(TESTPMD)) {
    console.log(`  ${TESTPMD} is not installed (package dpdk-dev): skipped`);
    return;
  }
  const testpmd = await startTestpmd({ queues: 1, statsPeriod: 1, lineBuffered: true });
  let samples: number[] = [];
  testpmd.process.stdout?.on('data', (chunk: Buffer) => {
    for (const m of chunk.toString().matchAll(/Rx-pps:\s+(\d+)/g)) samples.push(Number(m[1]));
  });
  try {
    samples = [];
    const report = await runLoad({ type: 'net', connect: testpmd.socket, durationMs: DURATION_MS });
    const harnessSeen = peak(samples);
    console.log(`  dpdk-testpmd io, 60 B frames, 256 in flight: ${describe(report)}`);
    samples = [];
    await virtioUser(testpmd.socket);
    const virtioUserSeen = peak(samples);
    const met = report.perSecond >= NET_TARGET ? 'met' : 'not met';
    console.log(
      `  the back-end's own Rx-pps (peak of its per-second statistic): harness ${harnessSeen.toLocaleString('en-US')}, ` +
        `DPDK virtio-user (txonly, one way) ${virtioUserSeen.toLocaleString('en-US')}: ` +
        `harness / virtio-user = ${virtioUserSeen ? (harnessSeen / virtioUserSeen).toFixed(3) : '?'}`,
    );
    console.log(
      `  target: at least ${NET_TARGET.toLocaleString('en-US')} frames/s of 60 B checked: ${report.perSecond.toLocaleString('en-US')} (${met})`,
    );
  } finally {
    await testpmd.stop();
  }
}

/**
 * DPDK's virtio-user front-end (a testpmd of its own, txonly, 60-byte frames) against the back-end at
 * `socket` for DURATION_MS; its main lcore on core 1, forwarding on core 0 (the back-end forwards on 1).
 */
async function virtioUser(socket: string): Promise<void> {
  const prefix = `vhu-vu-${process.pid}`;
  const child = execa(
    TESTPMD,
    [
      '--no-huge',
      '--no-pci',
      // A small guest: the back-end maps (and faults in) all of it at SET_MEM_TABLE.
      '-m',
      '64',
      `--file-prefix=${prefix}`,
      '-l',
      '0-1',
      '--main-lcore',
      '1',
      '--vdev',
      `net_virtio_user0,path=${socket},queues=1`,
      '--',
      '--forward-mode=txonly',
      '--txpkts=60',
      '--total-num-mbufs=4096',
      '--stats-period=1',
    ],
    { reject: false, stdin: 'ignore' },
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, DURATION_MS + 1000));
  } finally {
    child.kill('SIGKILL');
    await child;
    await execa('rm', ['-rf', `/var/run/dpdk/${prefix}`], { reject: false });
  }
}

console.log('load mode (vhu-conform load: rings polled from a worker thread, every completion checked):');
await block();
await net();
