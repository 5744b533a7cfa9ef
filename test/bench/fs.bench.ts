/**
 * Benchmark: FUSE LOOKUPs per second through a virtio-fs request queue, against the fixture's fs device and
 * Debian's virtiofsd, each answer checked (the size the file has), with the harness's CPU time per request
 * and the back-end's (its process tree, from /proc). Run with `npm run bench`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dir } from 'tmp-promise';
import { Scope } from '../../harness/process/scope.js';
import { makeContext } from '../../harness/runner/check.js';
import { lookup, openInitialized } from '../../suites/common/fs.js';
import { backendCpuUs, benchTarget } from './common.js';

const REFERENCE_FS = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../fixtures/bin/vhu-reference-fs',
);
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const DURATION_MS = 3000;

async function measure(label: string, binary: string, extraArgs: string[]): Promise<void> {
  const scope = new Scope();
  try {
    const target = benchTarget('fs', { binary, extraArgs });
    const setup = await openInitialized(makeContext(target, 10_000, scope));
    const files = setup.tree.files;
    const cpu = process.cpuUsage();
    const backendBefore = backendCpuUs();
    const started = performance.now();
    let done = 0;
    for (; performance.now() - started < DURATION_MS; done++) {
      const file = files[done % files.length]!;
      const entry = await lookup(setup.fs, setup.treeNode, file.name);
      if (entry.attr.size !== BigInt(file.content.length))
        throw new Error(`LOOKUP ${file.name}: size ${entry.attr.size}, the file has ${file.content.length}`);
    }
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    console.log(
      `  ${label.padEnd(22)} ${String(Math.round((done / wallMs) * 1000)).padStart(7)} LOOKUP/s   CPU per request: ` +
        `harness ${((used.user + used.system) / done).toFixed(1)} us, back-end ${((backendCpuUs() - backendBefore) / done).toFixed(1)} us`,
    );
  } catch (err) {
    console.log(`  ${label.padEnd(22)} ${(err as Error).message}`);
  } finally {
    await scope.close();
  }
}

console.log('virtio-fs: one FUSE LOOKUP at a time on the first request queue (harness as front-end):');
const shared = await dir({ prefix: 'vhu-bench-fs-', unsafeCleanup: true });
try {
  await measure('reference fs device', REFERENCE_FS, [`--shared-dir=${shared.path}`]);
  if (existsSync(VIRTIOFSD)) await measure('virtiofsd', VIRTIOFSD, ['-o', `source=${shared.path}`]);
  else console.log(`  ${VIRTIOFSD} is not installed (package qemu-system-common): skipped`);
} finally {
  await shared.cleanup();
}
