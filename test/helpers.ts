/** Running the CLI as a user would, in a sandbox of its own temp folder, and finding what it left behind. */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import { isListeningAt } from '../harness/process/procfs.js';
import type { RunResult, Verdict } from '../harness/runner/types.js';
import { pollUntil } from '../harness/util/deadline.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/harness/cli/main.js');
export const fixture = (name: string) => path.join(ROOT, 'fixtures/bin', name);

export interface CliRun {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  report: RunResult | undefined;
  /** The text of the JUnit report in the --reports folder, when the run wrote one there. */
  junit: string | undefined;
  /** What the run left in the TMPDIR it was given (which is then removed): empty when it cleaned up. */
  tempLeft: string[];
  /** Unix sockets still bound to a path in that TMPDIR (/proc/net/unix) when the run ended. */
  socketsLeft: string[];
  /** Marker in the environment of every process the run started. */
  marker: string;
  durationMs: number;
  /** Peak resident memory of the CLI process in KiB, when `memoryPollMs` was given and /proc could be read. */
  peakRssKb?: number;
  /** The PNG files the run saved next to its reports (a scanout), by absolute path, read before cleanup. */
  pngs: Record<string, Buffer>;
}

export interface CliOptions {
  /** Sends SIGINT (or `interruptSignal`) this long after the start. */
  interruptAfterMs?: number;
  /** Sends SIGINT (or `interruptSignal`) once the CLI's stdout matches this: a point in the run, whatever the load. */
  interruptOnStdout?: RegExp;
  interruptSignal?: NodeJS.Signals;
  /** Hard limit for the whole CLI run; past it the test fails. */
  limitMs?: number;
  /** Environment entries for the CLI on top of ours; an `undefined` value removes the variable. */
  env?: Record<string, string | undefined>;
  /** Reads the CLI process' VmRSS and VmHWM from /proc this often, for `peakRssKb`. */
  memoryPollMs?: number;
}

/** Runs `vhu-conform ARGS`, with the JSON report in a temp folder, and reads the report back. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const reports = await dir({ prefix: 'vhu-selftest-reports-', unsafeCleanup: true });
  const tmp = await dir({ prefix: 'vhu-selftest-tmp-', unsafeCleanup: true });
  const marker = randomUUID();
  const started = performance.now();
  try {
    // One check at a time unless the test says otherwise: several tests run fixture runs side by side
    // (conventions.self.test.ts), and a run's own --jobs on top of those overloads two cores; test/jobs.test.ts
    // runs checks side by side on purpose.
    const jobs = args.includes('--jobs') ? [] : ['--jobs', '1'];
    const child = execa(process.execPath, [CLI, '--reports', reports.path, ...jobs, ...args], {
      reject: false,
      env: { ...options.env, TMPDIR: tmp.path, VHU_SELFTEST_MARKER: marker },
      timeout: options.limitMs ?? 120_000,
      forceKillAfterDelay: 2000,
    });
    if (options.interruptAfterMs !== undefined)
      setTimeout(() => child.kill(options.interruptSignal ?? 'SIGINT'), options.interruptAfterMs);
    const when = options.interruptOnStdout;
    if (when) {
      let seen = '';
      const onData = (chunk: Buffer) => {
        seen += chunk.toString();
        if (!when.test(seen)) return;
        child.stdout?.off('data', onData);
        child.kill(options.interruptSignal ?? 'SIGINT');
      };
      child.stdout?.on('data', onData);
    }
    let peakRssKb: number | undefined;
    const poller =
      options.memoryPollMs === undefined || child.pid === undefined
        ? undefined
        : setInterval(() => {
            const kb = residentKb(child.pid!);
            if (kb !== undefined) peakRssKb = Math.max(peakRssKb ?? 0, kb);
          }, options.memoryPollMs);
    const result = await child.finally(() => clearInterval(poller));
    let report: RunResult | undefined;
    try {
      report = JSON.parse(readFileSync(path.join(reports.path, 'report.json'), 'utf8')) as RunResult;
    } catch {
      report = undefined;
    }
    let junit: string | undefined;
    try {
      junit = readFileSync(path.join(reports.path, 'junit.xml'), 'utf8');
    } catch {
      junit = undefined;
    }
    const pngs: Record<string, Buffer> = {};
    for (const name of readdirSync(reports.path).filter((n) => n.endsWith('.png')))
      pngs[path.join(reports.path, name)] = readFileSync(path.join(reports.path, name));
    return {
      pngs,
      exitCode: result.exitCode,
      signal: result.signal,
      stdout: String(result.stdout),
      stderr: String(result.stderr),
      report,
      junit,
      tempLeft: readdirSync(tmp.path),
      socketsLeft: boundSocketsUnder(tmp.path),
      marker,
      durationMs: performance.now() - started,
      ...(peakRssKb === undefined ? {} : { peakRssKb }),
    };
  } finally {
    await reports.cleanup();
    await tmp.cleanup();
  }
}

/** Unix sockets bound to a path under `dir`, from /proc/net/unix (its last column is the path). */
export function boundSocketsUnder(dir: string): string[] {
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[7] ?? '')
    .filter((p) => p.startsWith(`${dir}/`));
}

/** Processes, other than zombies, whose environment carries `marker`: what a run left running. */
export function leftovers(marker: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/environ`, 'latin1').includes(`VHU_SELFTEST_MARKER=${marker}`))
        continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      found.push(`${name} ${readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`);
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

/** Files and folders left in a run's TMPDIR. */
export function tempLeftovers(run: CliRun): string[] {
  return run.tempLeft;
}

/** id -> verdict of a report. */
export function verdicts(report: RunResult | undefined): Record<string, Verdict> {
  return Object.fromEntries((report?.checks ?? []).map((c) => [c.id, c.verdict]));
}

/** The ids whose verdict counts as broken (fail or timeout). */
export function broken(report: RunResult | undefined): string[] {
  return (report?.checks ?? [])
    .filter((c) => c.verdict === 'fail' || c.verdict === 'timeout')
    .map((c) => c.id);
}

export function messageOf(report: RunResult | undefined, id: string): string {
  return report?.checks.find((c) => c.id === id)?.message ?? '';
}

/**
 * The larger of VmRSS and VmHWM (the kernel's own high-water mark, so a peak between two polls still counts)
 * of `pid`, in KiB; undefined once it is gone.
 */
export function residentKb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const values = [...status.matchAll(/^Vm(?:RSS|HWM):\s+(\d+) kB$/gm)].map((m) => Number(m[1]));
    return values.length ? Math.max(...values) : undefined;
  } catch {
    return undefined;
  }
}

/** Asserts that a run left no process running and nothing in its TMPDIR. */
export function expectClean(run: CliRun): void {
  expect(leftovers(run.marker), 'processes left running').to.deep.equal([]);
  expect(tempLeftovers(run), 'temp files left').to.deep.equal([]);
}

/**
 * Waits until a daemon the test started listens at `socket`; when it does not within `timeoutMs`, `stop`s
 * it (kill, and remove what it left) before throwing.
 */
export async function awaitListening(
  socket: string,
  what: string,
  timeoutMs: number,
  stop: () => Promise<void>,
): Promise<void> {
  try {
    await pollUntil(() => (isListeningAt(socket) ? true : undefined), timeoutMs, `${what} to listen`);
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The schema: `<clone>/../shared/junit/junit-10.xsd` in CI; from a worktree, a folder further up. */
function findXsd(): string {
  const tried: string[] = [];
  for (let dir = path.dirname(ROOT); ; dir = path.dirname(dir)) {
    const xsd = path.join(dir, 'shared/junit/junit-10.xsd');
    tried.push(xsd);
    if (existsSync(xsd)) return xsd;
    if (dir === path.dirname(dir))
      throw new Error(`junit-10.xsd not found (Jenkins' xUnit schema, tried ${tried.join(', ')})`);
  }
}

/** xmllint's findings on `xml` against junit-10.xsd; empty when valid. */
export async function xmllintErrors(xml: string): Promise<string> {
  const xsd = findXsd();
  const lint = await execa('xmllint', ['--noout', '--schema', xsd, '-'], { input: xml, reject: false });
  if ((lint as { code?: string }).code === 'ENOENT')
    throw new Error('xmllint not found: install Debian package libxml2-utils (.ci/install-backends does)');
  return lint.exitCode === 0 ? '' : String(lint.stderr);
}

/** A 1 MiB disk whose boot sector prints "VHU" on port 0x402 (isa-debugcon) and halts. */
export function bootDisk(): Buffer {
  const code = [
    [0xba, 0x02, 0x04], // mov dx, 0x402
    [0xb0, 0x56, 0xee], // mov al, 'V'; out dx, al
    [0xb0, 0x48, 0xee], // mov al, 'H'; out dx, al
    [0xb0, 0x55, 0xee], // mov al, 'U'; out dx, al
    [0xfa, 0xf4, 0xeb, 0xfe], // cli; hlt; jmp $
  ].flat();
  const disk = Buffer.alloc(1024 * 1024);
  Buffer.from(code).copy(disk);
  disk.writeUInt16LE(0xaa55, 510);
  return disk;
}

/** A back-end the test started as someone else would, for attach mode: its socket, its folder, how to end it. */
export interface StartedBackend {
  socket: string;
  /** A temp folder of its own (the socket is in it), removed by `stop`. */
  dir: string;
  /** Ends it with `signal` and removes its folder. */
  stop: () => Promise<void>;
}

/**
 * Starts `binary` with `--socket-path=<dir>/<socketName>` and the arguments `args(dir)` gives (which may make
 * files there first: a disk image), and waits until it listens (or ends it and throws).
 */
export async function startListening(
  binary: string,
  options: {
    socketName?: string;
    args?: (dir: string) => Promise<string[]> | string[];
    signal?: NodeJS.Signals;
  } = {},
): Promise<StartedBackend> {
  const tmp = await dir({ prefix: 'vhu-selftest-backend-', unsafeCleanup: true });
  const socket = path.join(tmp.path, options.socketName ?? 'backend.sock');
  const args = (await options.args?.(tmp.path)) ?? [];
  const backend = execa(binary, [`--socket-path=${socket}`, ...args], {
    reject: false,
    stdin: 'ignore',
  });
  const stop = async () => {
    backend.kill(options.signal ?? 'SIGTERM');
    await backend;
    await tmp.cleanup();
  };
  await awaitListening(socket, path.basename(binary), 10_000, stop);
  return { socket, dir: tmp.path, stop };
}
