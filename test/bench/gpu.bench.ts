/**
 * Benchmark: virtio-gpu 2D frames per second, a 64x64 B8G8R8X8 resource transferred and flushed again and
 * again, every UPDATE's pixels compared with the guest's, against the fixture's gpu device and Debian's
 * vhost-user-gpu, with the harness's CPU time per frame and the back-end's. Run with `npm run bench`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPattern, toXrgb } from '../../harness/devices/gpu/gpu.js';
import { VirtioGpuFormat } from '../../harness/devices/gpu/spec.js';
import { Scope } from '../../harness/process/scope.js';
import { makeContext } from '../../harness/runner/check.js';
import { openGpu } from '../../suites/common/gpu.js';
import {
  createResource,
  flushAndExpect,
  full,
  setScanout,
  transfer,
} from '../../suites/devices/gpu-common.js';
import { backendCpuUs, benchTarget } from './common.js';

const REFERENCE_GPU = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference-gpu',
);
const GPU = '/usr/lib/qemu/vhost-user-gpu';
const DURATION_MS = 3000;

async function measure(label: string, binary: string): Promise<void> {
  const scope = new Scope();
  try {
    const target = benchTarget('gpu', { binary });
    const ctx = makeContext(target, 10_000, scope);
    const setup = await openGpu(ctx);
    const format = VirtioGpuFormat.B8G8R8X8_UNORM;
    const pixels = testPattern(64, 64, 7);
    const res = await createResource(setup.gpu, { id: 1, format, width: 64, height: 64 }, pixels);
    await setScanout(setup.gpu, res, full(res));
    const expected = toXrgb(format, pixels);
    const cpu = process.cpuUsage();
    const backendBefore = backendCpuUs();
    const started = performance.now();
    let frames = 0;
    for (; performance.now() - started < DURATION_MS; frames++) {
      await transfer(setup.gpu, res, full(res));
      await flushAndExpect(ctx, setup, res, full(res), expected);
    }
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    console.log(
      `  ${label.padEnd(22)} ${String(Math.round((frames / wallMs) * 1000)).padStart(6)} frames/s   CPU per frame: ` +
        `harness ${((used.user + used.system) / frames).toFixed(1)} us, back-end ${((backendCpuUs() - backendBefore) / frames).toFixed(1)} us`,
    );
  } catch (err) {
    console.log(`  ${label.padEnd(22)} ${(err as Error).message}`);
  } finally {
    await scope.close();
  }
}

console.log(
  'virtio-gpu 2D: TRANSFER_TO_HOST_2D + RESOURCE_FLUSH of 64x64, each UPDATE checked (harness as front-end):',
);
await measure('reference gpu device', REFERENCE_GPU);
if (existsSync(GPU)) await measure('vhost-user-gpu', GPU);
else console.log(`  ${GPU} is not installed (package qemu-system-gui): skipped`);
