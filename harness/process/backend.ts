/**
 * Launching a back-end as a management layer would: no shell, stdin on /dev/null, inherited sockets at the
 * fd numbers asked for, bounded capture of what it prints, and a teardown that always ends it and anything
 * it started.
 */
import { setPriority } from 'node:os';
import { BackendError, TimeoutError } from '../errors.js';
import { becomeChildSubreaper, reapIfExited } from '../sys/libc.js';
import { pollUntil, withDeadline } from '../util/deadline.js';
import { type Child, type ExitInfo, startChild } from './child.js';
import {
  CLOCK_TICKS_PER_SECOND,
  descendantsOf,
  ownChildren,
  type ProcStat,
  readStat,
  stillRunning,
} from './procfs.js';
import type { Scope } from './scope.js';

export interface LaunchOptions {
  args: string[];
  /** 'pipe' captures stdout and stderr; 'devnull' puts fds 0, 1 and 2 on /dev/null. */
  stdio?: 'pipe' | 'devnull';
  /** Descriptors to hand over: child fd number -> our fd. */
  fds?: Record<number, number>;
  /** How much of stdout to keep (default 1 MiB); the rest is read and dropped, and `stdoutOverflow` is set. */
  stdoutLimit?: number;
  /** Grace time between SIGTERM and SIGKILL at teardown. */
  graceMs: number;
}

export type { ExitInfo };

const STDERR_TAIL = 8 * 1024;

/**
 * CPU a back-end may use while the harness waits for it to exit before it is made to yield (nice 19) for the
 * rest of the wait. A back-end busy where it should end (vhost-user-gpu 7.2 given `--fd` of a descriptor that
 * is not open polls it in a loop until killed) would otherwise take a core from the checks beside it for the
 * whole deadline. It still runs, and the deadline is unchanged: by then it has had a second of CPU to end,
 * which no start-up failure and no SIGTERM handler needs.
 */
export const YIELD_AFTER_CPU_MS = 1000;
/** How often a wait for an exit reads the back-end's CPU time. */
const CPU_SAMPLE_MS = 100;

/** How long the teardown waits for the descendants it killed to be gone. */
const SURVIVORS_GONE_MS = 2000;

/** Every process launched and not yet known to be gone: the CLI kills them all on Ctrl-C. */
const live = new Set<BackendProcess>();
let exitHooked = false;

export class BackendProcess {
  readonly pid: number;
  readonly startedAt = performance.now();
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  exitedAt: number | undefined;
  stdoutOverflow = false;
  /** Set when a wait for its exit made it yield the CPU (YIELD_AFTER_CPU_MS). */
  yielded = false;
  private stdoutChunks: Buffer[] = [];
  private stdoutBytes = 0;
  private stderrTailText = '';
  /** Descendants seen so far: checked again at teardown, so that orphans are found too. */
  private readonly seen = new Map<number, ProcStat>();
  /** Its start time in /proc, to tell it from a later process given its pid. */
  private readonly starttime: number | undefined;
  private readonly child: Child;

  constructor(
    readonly binary: string,
    readonly options: LaunchOptions,
  ) {
    try {
      this.child = startChild(binary, options.args, {
        capture: options.stdio !== 'devnull',
        fds: options.fds ?? {},
      });
    } catch (err) {
      throw new BackendError(`cannot launch ${binary}: ${(err as Error).message}`, { cause: err });
    }
    const child = this.child;
    this.pid = child.pid;
    this.starttime = readStat(this.pid)?.starttime;
    const limit = options.stdoutLimit ?? 1024 * 1024;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.stdoutBytes + chunk.length > limit) {
        this.stdoutOverflow = true;
        chunk = chunk.subarray(0, Math.max(0, limit - this.stdoutBytes));
      }
      if (chunk.length) {
        this.stdoutChunks.push(chunk);
        this.stdoutBytes += chunk.length;
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTailText = (this.stderrTailText + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    if (!exitHooked) {
      // What execa's `cleanup` did: nothing launched outlives the harness that exits without a teardown.
      process.once('exit', killAllBackends);
      exitHooked = true;
    }
    live.add(this);
    this.exited = child.ended.then((exit) => {
      this.exit = exit;
      this.exitedAt = performance.now();
      live.delete(this);
      return this.exit;
    });
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  get stdout(): Buffer {
    return Buffer.concat(this.stdoutChunks);
  }

  get stderrTail(): string {
    return this.stderrTailText;
  }

  /** Records the current descendants, so that teardown can find them after they are orphaned. */
  noteDescendants(): ProcStat[] {
    const now = descendantsOf(this.pid);
    for (const stat of now) this.seen.set(stat.pid, stat);
    return now;
  }

  /** The descendants seen at any point that still run. */
  survivors(): ProcStat[] {
    return [...this.seen.values()].filter(stillRunning);
  }

  /** CPU time used so far, user plus system, in ms; undefined once it is reaped. */
  cpuMs(): number | undefined {
    const stat = this.alive && !this.child.reaped() ? readStat(this.pid) : undefined;
    return stat && stat.starttime === this.starttime
      ? (stat.cpuTicks * 1000) / CLOCK_TICKS_PER_SECOND
      : undefined;
  }

  /**
   * Waits for the process to exit on its own. If it uses YIELD_AFTER_CPU_MS of CPU meanwhile, it runs at
   * the lowest priority for the rest of the wait (and after: it is meant to be ending).
   */
  async waitExit(ms: number, what = `${this.binary} to exit`): Promise<ExitInfo> {
    const from = this.cpuMs();
    const sampler =
      from === undefined || this.yielded
        ? undefined
        : setInterval(() => {
            const now = this.cpuMs();
            if (now === undefined || now - from < YIELD_AFTER_CPU_MS) return;
            clearInterval(sampler);
            this.yieldCpu();
          }, CPU_SAMPLE_MS).unref();
    try {
      return await withDeadline(this.exited, ms, what);
    } finally {
      clearInterval(sampler);
    }
  }

  private yieldCpu(): void {
    try {
      setPriority(this.pid, 19);
      this.yielded = true;
    } catch {
      // Gone, or not ours to renice: it keeps its priority.
    }
  }

  /**
   * SIGTERM, then SIGKILL after `ms`. Returns how it ended and whether SIGKILL was needed. Every descendant
   * seen is killed too, so nothing it started outlives the teardown.
   */
  async terminate(ms = this.options.graceMs): Promise<{ exit: ExitInfo; afterMs: number; killed: boolean }> {
    if (this.alive) this.noteDescendants();
    const sentAt = performance.now();
    let killed = false;
    if (this.alive) {
      this.signal('SIGTERM');
      try {
        await this.waitExit(ms);
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        killed = true;
        this.signal('SIGKILL');
      }
    }
    const exit = await this.exited;
    return { exit, afterMs: (this.exitedAt ?? sentAt) - sentAt, killed };
  }

  /** SIGKILL this process and every descendant seen, without waiting. */
  killAll(): void {
    if (this.alive) this.noteDescendants();
    this.signal('SIGKILL');
    for (const stat of this.survivors()) safeKill(stat.pid, 'SIGKILL');
  }

  /** Sends `signal` unless it has been reaped (its pid may be another process's by then). */
  signal(signal: NodeJS.Signals): void {
    if (this.alive && !this.child.reaped()) safeKill(this.pid, signal);
  }
}

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** Launches `binary` and makes `scope` own it: at scope close it is terminated, and its survivors killed. */
export function launch(scope: Scope, binary: string, options: LaunchOptions): BackendProcess {
  const backend = new BackendProcess(binary, options);
  scope.defer(`back-end pid ${backend.pid}`, async () => {
    await backend.terminate();
    const survivors = backend.survivors();
    for (const stat of survivors) safeKill(stat.pid, 'SIGKILL');
    // A process killed while it holds much memory (dpdk-testpmd's 512 MB) takes a moment to go: the harness
    // waits for it, so that nothing of the back-end's runs on after the check.
    if (survivors.length)
      await pollUntil(
        () => (survivors.some(stillRunning) ? undefined : true),
        SURVIVORS_GONE_MS,
        'the killed descendants to end',
      ).catch(() => undefined);
  });
  return backend;
}

/** Ctrl-C and fatal paths: SIGKILL everything launched and not yet reaped. */
export function killAllBackends(): void {
  for (const backend of live) backend.killAll();
}

let adopting = false;

/**
 * Makes this process the reaper of orphans (PR_SET_CHILD_SUBREAPER), so that whatever a back-end leaves
 * behind when it daemonizes or exits becomes our child, and `sweepOrphans` can end it. For the CLI only.
 */
export function adoptOrphans(): void {
  becomeChildSubreaper();
  adopting = true;
}

/** Kills and reaps every child of ours that we did not launch: orphans adopted from back-ends. */
export function sweepOrphans(): number {
  if (!adopting) return 0;
  const ours = new Set([...live].map((b) => b.pid));
  let swept = 0;
  for (const stat of ownChildren()) {
    if (ours.has(stat.pid)) continue;
    if (stat.state !== 'Z') {
      safeKill(stat.pid, 'SIGKILL');
      swept++;
    }
  }
  // Reap after the kills: SIGKILL is delivered before waitpid can see the exit, so poll briefly.
  for (let i = 0; i < 50; i++) {
    const zombies = ownChildren().filter((s) => !ours.has(s.pid));
    if (!zombies.length) break;
    for (const z of zombies) reapIfExited(z.pid);
  }
  return swept;
}
