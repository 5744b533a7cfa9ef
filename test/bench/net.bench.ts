/**
 * Benchmark: virtio-net frames looped back through queue pair 0, split and packed rings, against the
 * fixture's net device and dpdk-testpmd (io forwarding): frames per second, the harness's CPU time per frame
 * (this process) and the back-end's (its process tree, from /proc); for testpmd also the rate it reports
 * itself (its Rx-pps statistic, printed every second). Run with `npm run bench`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testFrame } from '../../harness/devices/net/net.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext, type Target } from '../../harness/runner/check.js';
import { openNet } from '../../suites/common/net.js';
import { startTestpmd, TESTPMD } from '../testpmd.js';
import { backendCpuUs, benchTarget } from './common.js';

const REFERENCE_NET = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference-net',
);
/** Each measurement runs this long: testpmd prints its rate once a second. */
const DURATION_MS = 3000;

async function measure(label: string, t: Target, reported?: () => number | undefined): Promise<void> {
  for (const packed of [false, true]) {
    const scope = new Scope();
    try {
      const net = await openNet(makeContext(t, 10_000, scope), { packed });
      for (const length of [60, 1514]) {
        const frames = Array.from({ length: 32 }, (_, i) => testFrame(1, i, length));
        await net.roundTrip(frames); // warm-up
        reported?.(); // the rate testpmd printed so far is not this measurement's
        const cpu = process.cpuUsage();
        const backendBefore = backendCpuUs();
        const started = performance.now();
        let done = 0;
        for (; performance.now() - started < DURATION_MS; done += frames.length) {
          const back = await net.roundTrip(frames);
          // Every byte checked, as the checks do: a rate of frames that did not come back intact means nothing.
          if (back.length !== frames.length || back.some((b, i) => !Buffer.from(b.frame).equals(frames[i]!)))
            throw new Error(`frames ${done}..${done + frames.length} did not all come back intact`);
        }
        const wallMs = performance.now() - started;
        const used = process.cpuUsage(cpu);
        const harnessUs = (used.user + used.system) / done;
        const backendUs = (backendCpuUs() - backendBefore) / done;
        const rate = Math.round((done / wallMs) * 1000);
        const own = reported?.();
        console.log(
          `  ${label.padEnd(22)} ${packed ? 'packed' : 'split '} ${String(length).padStart(4)} B ` +
            `${String(rate).padStart(7)} frames/s   CPU per frame: harness ${harnessUs.toFixed(1)} us, ` +
            `back-end ${backendUs.toFixed(1)} us${own === undefined ? '' : `   (testpmd's own peak: ${own} Rx-pps)`}`,
        );
      }
    } catch (err) {
      console.log(`  ${label.padEnd(22)} ${packed ? 'packed' : 'split '}: ${(err as Error).message}`);
    } finally {
      await scope.close();
    }
  }
}

console.log('virtio-net frames looped back through queue pair 0 (harness as front-end):');
await measure('reference net device', benchTarget('net', { binary: REFERENCE_NET }));
if (existsSync(TESTPMD)) {
  const testpmd = await startTestpmd({ queues: 1, statsPeriod: 1, lineBuffered: true });
  // The highest Rx-pps testpmd printed since the last look.
  let peak = 0;
  testpmd.process.stdout?.on('data', (chunk: Buffer) => {
    for (const m of chunk.toString().matchAll(/Rx-pps:\s+(\d+)/g)) peak = Math.max(peak, Number(m[1]));
  });
  try {
    await measure('dpdk-testpmd io', benchTarget('net', { connect: testpmd.socket }), () => {
      const seen = peak;
      peak = 0;
      return seen;
    });
  } finally {
    await testpmd.stop();
  }
} else {
  console.log(`  ${TESTPMD} is not installed (package dpdk-dev): skipped`);
}
