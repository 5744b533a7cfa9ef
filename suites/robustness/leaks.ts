/**
 * The leak oracle (issue 5): the back-end's open fds (/proc/PID/fd) and resident memory (/proc/PID/status
 * VmRSS) across many repetitions of what a front-end does over a VM's life: memory table and ring set up then
 * torn down, kick and call fds replaced, front-ends that leave and come back. A leak is SHOULD (it harms in
 * the long run, not at once), reported with its figures.
 */
import { readFileSync } from 'node:fs';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { openFds, readStat } from '../../harness/process/procfs.js';
import { Scope } from '../../harness/process/scope.js';
import { encodeVringFile } from '../../harness/protocol/messages.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { EventFd } from '../../harness/sys/eventfd.js';
import { connectUnix } from '../../harness/sys/libc.js';
import { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { withDeadline } from '../../harness/util/deadline.js';
import { NEEDS_SOCKET } from '../protocol/common.js';
import { RobustSpec } from './control.js';
import { freshSubject } from './oracle.js';

/** Repetitions of each pattern measured, after WARM_UP unmeasured ones (first allocations, lazy set-up). */
const ITERATIONS = 64;
const WARM_UP = 16;
/** Samples at each end whose minimum is compared: the low points after garbage collection, not its peaks. */
const WINDOW = 8;
/**
 * Fds: a constant few may come and go: a timer, a worker's pipe, and the fds of the last front-ends that left,
 * which a back-end may close later in another thread (dpdk-testpmd 22.11's fdset thread: up to 4 seen still
 * open at the end of 64 reconnects). One per iteration, the leak this finds, is 56 over the iterations apart.
 */
const FD_SLACK = 8;
/**
 * Resident memory: an iteration maps guest memory and touches a few pages of it (the ring: a 4 KiB page for
 * each part at most) and allocates per-ring state. A back-end keeping 128 KiB per set-up grows by 128 MiB over
 * a thousand of them (a VM rebooted, migrated or reconnected that often over the back-end's life), which is
 * what this bounds; below it is allocator and garbage-collector drift (the reference, on Node, drifts by up to
 * 40 KiB an iteration over 64 iterations on a loaded machine), which comparing low points (WINDOW) does not
 * take out altogether.
 */
const RSS_SLACK_PER_ITERATION_KB = 128;
const RING_SIZE = 64;

/** VmRSS of `pid` in KiB, from /proc/PID/status text. */
export function parseVmRss(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

interface Sample {
  fds: number;
  rssKb: number;
}

function sample(pid: number): Sample {
  const fds = openFds(pid);
  let rss: number | undefined;
  try {
    rss = parseVmRss(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    rss = undefined;
  }
  if (fds === undefined || rss === undefined)
    throw new BackendError(`the back-end (pid ${pid}) ended while its leaks were measured`);
  return { fds: fds.length, rssKb: rss };
}

/** Growth per iteration between the low points of the first and last WINDOW samples. */
export interface Growth {
  pattern: string;
  fdsBefore: number;
  fdsAfter: number;
  rssBeforeKb: number;
  rssAfterKb: number;
  /** Iterations between the two windows' middles. */
  span: number;
}

export function growthOf(pattern: string, samples: Sample[]): Growth {
  const first = samples.slice(0, WINDOW);
  const last = samples.slice(-WINDOW);
  const min = (xs: Sample[], key: keyof Sample) => Math.min(...xs.map((x) => x[key]));
  return {
    pattern,
    fdsBefore: min(first, 'fds'),
    fdsAfter: min(last, 'fds'),
    rssBeforeKb: min(first, 'rssKb'),
    rssAfterKb: min(last, 'rssKb'),
    span: samples.length - WINDOW,
  };
}

export function describeGrowth(g: Growth): string {
  const perFd = (g.fdsAfter - g.fdsBefore) / g.span;
  const perKb = (g.rssAfterKb - g.rssBeforeKb) / g.span;
  return (
    `${g.pattern}: fds ${g.fdsBefore} -> ${g.fdsAfter} (${perFd >= 0 ? '+' : ''}${perFd.toFixed(2)}/iteration), ` +
    `VmRSS ${g.rssBeforeKb} -> ${g.rssAfterKb} KiB (${perKb >= 0 ? '+' : ''}${perKb.toFixed(1)} KiB/iteration)`
  );
}

/** What breaks the bounds, if anything. */
export function leaksOf(g: Growth): string[] {
  const found: string[] = [];
  if (g.fdsAfter - g.fdsBefore > FD_SLACK)
    found.push(`${g.fdsAfter - g.fdsBefore} more fds open after ${g.span} more iterations of ${g.pattern}`);
  if ((g.rssAfterKb - g.rssBeforeKb) / g.span > RSS_SLACK_PER_ITERATION_KB)
    found.push(
      `VmRSS grew by ${((g.rssAfterKb - g.rssBeforeKb) / g.span).toFixed(1)} KiB per iteration of ${g.pattern} ` +
        `(bound ${RSS_SLACK_PER_ITERATION_KB} KiB)`,
    );
  return found;
}

/** Runs `iteration` WARM_UP + ITERATIONS times, sampling the back-end after each measured one. */
async function measure(
  pid: number,
  pattern: string,
  iteration: (i: number) => Promise<void>,
): Promise<Growth> {
  for (let i = 0; i < WARM_UP; i++) await iteration(i);
  const samples: Sample[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    await iteration(WARM_UP + i);
    samples.push(sample(pid));
  }
  return growthOf(pattern, samples);
}

/**
 * One set-up and tear-down: a new memory table (fresh memfds), vring 0 set up with fresh eventfds and
 * enabled, then stopped with GET_VRING_BASE; our side of it all is released at once.
 */
async function setUpAndTearDown(session: FrontendSession): Promise<void> {
  const scope = new Scope();
  let problems: string[] = [];
  try {
    const device = new FrontendDevice(session, scope);
    await device.setMemTable();
    await device.setUpRing(0, RING_SIZE);
    if (session.offersProtocolFeatures) await device.enable(0, true);
    await device.stopRing(0);
  } finally {
    problems = await scope.close();
  }
  if (problems.length) throw new Error(problems.join('; '));
}

/**
 * The fds of a ring replaced as QEMU replaces them: the kick fd after a stop (GET_VRING_BASE, then
 * SET_VRING_KICK, which starts the ring again), the call fd on the running ring (as when it masks the
 * ring's interrupt and unmasks it); each a new eventfd, ours closed once sent.
 */
async function replaceFds(device: FrontendDevice, session: FrontendSession): Promise<void> {
  await device.stopRing(0);
  for (const name of ['SET_VRING_KICK', 'SET_VRING_CALL', 'SET_VRING_CALL'] as const) {
    const event = new EventFd();
    try {
      await session.request(name, encodeVringFile({ index: 0, invalidFd: false }), { fds: [event.fd] });
    } finally {
      event.close();
    }
  }
}

/**
 * A new front-end's session, negotiated, when the back-end serves one within the deadline after its front-end
 * left; undefined when it ended or does not (whether it should is proto.lifecycle.reconnect's business).
 */
async function reconnects(
  ctx: CheckContext,
  socket: string,
  pid: number,
): Promise<FrontendSession | undefined> {
  const end = performance.now() + ctx.timeoutMs;
  while (performance.now() < end) {
    const stat = readStat(pid);
    if (!stat || stat.state === 'Z') return undefined;
    let fd: number | undefined;
    try {
      fd = connectUnix(socket);
    } catch {
      // Between connections, or gone: tried again, and its end is seen above.
    }
    if (fd !== undefined) {
      const left = Math.max(1, Math.round(end - performance.now()));
      const session = new FrontendSession(Connection.fromFd(fd, ctx.timeoutMs));
      try {
        await withDeadline(session.negotiate(), left, 'a new front-end to be served');
        return session;
      } catch {
        session.connection.close();
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

export const leakChecks = defineChecks(
  'robustness',
  [
    {
      id: 'robust.leaks',
      detail:
        'open fds (`/proc/PID/fd`) and `VmRSS` across 64 memory table and vring set-ups/tear-downs, 64 `SET_VRING_KICK`/`CALL` replacements (kick after a stop, call on the running ring) and 64 reconnects (when it serves new front-ends), after 16 unmeasured: at most 3 more fds, at most 128 KiB more per iteration; the figures per iteration in the message',
      // Three patterns of WARM_UP + ITERATIONS round trips each; a back-end that hangs fails at the first.
      budgetMs: (timeoutMs) => 3 * (WARM_UP + ITERATIONS) * 200 + 8 * timeoutMs + 5000,
      title: 'open fds and resident memory stay bounded across set-ups, fd replacements and reconnects',
      severity: 'SHOULD',
      interop: true,
      rule:
        'hardening, no sentence: vhost-user.rst (QEMU 7.2) says nothing of the fd a SET_VRING_KICK or ' +
        'SET_VRING_CALL replaces, nor of what a front-end that leaves or a torn-down table leaves behind; QEMU ' +
        "7.2 sends SET_VRING_CALL again whenever it masks or unmasks a ring's notifier (hw/virtio/vhost.c " +
        'vhost_virtqueue_mask), so a back-end that leaks them runs out of fds over a long-lived guest',
      spec: RobustSpec.frontendMessages,
      needs: [NEEDS_SOCKET],
      async run(ctx) {
        const subject = await freshSubject(ctx);
        const { pid, socket } = subject;
        if (pid === null || openFds(pid) === undefined)
          throw new SkipError(
            'the back-end process cannot be read in /proc (not found, or not ours to read)',
          );
        const session = subject.session;
        // The whole offer, without REPLY_ACK's defects (other checks' business).
        await session.negotiate();
        const growths: Growth[] = [];
        growths.push(
          await measure(pid, 'memory table and vring set-up/tear-down', () => setUpAndTearDown(session)),
        );
        // A ring set up and kept, whose fds are replaced over and over.
        const device = new FrontendDevice(session, ctx.scope);
        await device.setMemTable();
        await device.setUpRing(0, RING_SIZE);
        growths.push(
          await measure(pid, 'SET_VRING_KICK/CALL replacement', () => replaceFds(device, session)),
        );
        session.connection.close();
        let reconnected =
          'reconnects: not measured, it does not serve a new front-end once its own left (the spec lets it end)';
        const first = await reconnects(ctx, socket, pid);
        if (first) {
          let current: FrontendSession | undefined = first;
          growths.push(
            await measure(pid, 'reconnects (negotiation, set-up, leave)', async () => {
              const session = current ?? (await reconnects(ctx, socket, pid));
              current = undefined;
              if (!session)
                throw new BackendError('it stopped serving new front-ends while its reconnects were counted');
              await setUpAndTearDown(session);
              session.connection.close();
            }),
          );
          reconnected = '';
        }
        const facts = [...growths.map(describeGrowth), ...(reconnected ? [reconnected] : [])];
        const leaks = growths.flatMap(leaksOf);
        if (leaks.length) throw new BackendError(`it leaks: ${leaks.join('; ')} (${facts.join('; ')})`);
        return facts.join('; ');
      },
    },
  ],
  { destructive: true },
);
