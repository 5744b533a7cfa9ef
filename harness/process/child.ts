/**
 * Starting a child process with its output captured and its end awaited. Where the kernel gives pidfds, with
 * posix_spawn (sys/spawn.ts: the harness is not forked, which cost 15-25 ms of its main thread a launch);
 * elsewhere (a kernel before 5.3, a seccomp policy without pidfd_open) with execa, as before.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { FdWaiter } from '../sys/fd-waiter.js';
import { type ChildEnd, closeFd, PollEvent, pipe, reapChild } from '../sys/libc.js';
import { pidfdSupported, spawnProgram } from '../sys/spawn.js';

/** How a child ended: its exit status, or the signal that ended it. */
export type ExitInfo = ChildEnd;

export interface ChildOptions {
  /** Pipes on fds 1 and 2 to read (`stdout`, `stderr`); otherwise /dev/null there. */
  capture: boolean;
  /** Descriptors to hand over: child fd number -> our fd. Fds 0-2 not named get /dev/null. */
  fds: Record<number, number>;
}

export interface Child {
  pid: number;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Resolves once it has ended and been reaped, and what it printed has been read; never rejects. */
  ended: Promise<ExitInfo>;
  /** Whether it has been reaped, so that its pid may name another process now. */
  reaped(): boolean;
}

/**
 * How long the end of a child waits for its output pipes to close after it exits: a descendant it left
 * behind may hold them open for as long as it lives.
 */
const OUTPUT_AFTER_EXIT_MS = 250;
/** How often waitpid is asked, in the one case a pidfd cannot be waited on. */
const REAP_POLL_MS = 20;

type Starter = (binary: string, args: readonly string[], options: ChildOptions) => Child;

/** Starts `binary`; throws an Error naming the cause if it cannot be started. */
export function startChild(binary: string, args: readonly string[], options: ChildOptions): Child {
  return (pidfdSupported() ? starters.posixSpawn : starters.execa)(binary, args, options);
}

function spawnChild(binary: string, args: readonly string[], options: ChildOptions): Child {
  const fds = new Map(Object.entries(options.fds).map(([child, ours]) => [Number(child), ours]));
  const pipes = options.capture ? [pipe(), pipe()] : [];
  pipes.forEach(([, write], i) => {
    if (!fds.has(i + 1)) fds.set(i + 1, write);
  });
  let spawned: ReturnType<typeof spawnProgram>;
  try {
    spawned = spawnProgram({ file: binary, args, fds });
  } catch (err) {
    for (const [read] of pipes) closeFd(read);
    throw err;
  } finally {
    for (const [, write] of pipes) closeFd(write);
  }
  const [stdout = null, stderr = null] = pipes.map(
    ([read]) => new net.Socket({ fd: read, readable: true, writable: false }),
  );
  const { pid, pidfd } = spawned;
  const waiter = new FdWaiter(pidfd, `the pidfd of ${binary} (pid ${pid})`);
  let reaped = false;
  const ended = (async (): Promise<ExitInfo> => {
    let end: ChildEnd | undefined;
    try {
      // No deadline: the callers put theirs on this promise. Readable means it has ended.
      while (end === undefined) {
        await waiter.wait(PollEvent.POLLIN, Number.POSITIVE_INFINITY);
        end = reapChild(pid);
      }
    } catch {
      // The pidfd could not be waited on (poll failed on it): ask waitpid now and then instead.
      for (end = reapChild(pid); end === undefined; end = reapChild(pid)) await sleep(REAP_POLL_MS);
    } finally {
      waiter.close();
      closeFd(pidfd);
    }
    reaped = true;
    await Promise.all([stdout, stderr].map((stream) => stream && closedOrLate(stream)));
    return end;
  })();
  return { pid, stdout, stderr, ended, reaped: () => reaped };
}

/**
 * Resolves when `stream` has closed, or OUTPUT_AFTER_EXIT_MS from now, whichever comes first; in the second
 * case the stream still reads what comes, but no longer keeps the harness alive.
 */
function closedOrLate(stream: net.Socket): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      stream.unref();
      resolve();
    }, OUTPUT_AFTER_EXIT_MS);
    timer.unref();
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function execaChild(binary: string, args: readonly string[], options: ChildOptions): Child {
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe'];
  if (!options.capture) stdio.splice(1, 2, 'ignore', 'ignore');
  for (const [child, ours] of Object.entries(options.fds)) {
    const at = Number(child);
    while (stdio.length < at) stdio.push('ignore');
    stdio[at] = ours;
  }
  const subprocess = execa(binary, args, {
    stdio: stdio as never,
    reject: false,
    buffer: false,
    stripFinalNewline: false,
    cleanup: true,
    windowsHide: true,
  });
  if (subprocess.pid === undefined) {
    // execa reports spawn failures (ENOENT, EACCES) on the promise; make them synchronous and clear.
    subprocess.catch(() => undefined);
    throw new Error('the process did not start');
  }
  const ended = subprocess.then((result) => ({
    code: result.exitCode ?? null,
    signal: result.signal ?? null,
  }));
  return {
    pid: subprocess.pid,
    stdout: subprocess.stdout ?? null,
    stderr: subprocess.stderr ?? null,
    ended,
    reaped: () => subprocess.exitCode !== null || subprocess.signalCode !== null,
  };
}

/** Both ways to start a child, for the tests that hold them to the same behaviour. */
export const starters: Record<'posixSpawn' | 'execa', Starter> = {
  posixSpawn: spawnChild,
  execa: execaChild,
};
