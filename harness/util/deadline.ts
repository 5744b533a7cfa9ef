import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, TimeoutError } from '../errors.js';

/** Time spent waiting on back-ends through this module, for the benchmark's split of wall time. */
export const waitClock = { waits: 0, totalMs: 0 };

function clocked<T>(promise: Promise<T>): Promise<T> {
  const started = performance.now();
  waitClock.waits++;
  return promise.finally(() => {
    waitClock.totalMs += performance.now() - started;
  });
}

/**
 * Resolves with `promise`, or rejects with a TimeoutError naming `what` after `ms`. `clock: false` for
 * deadlines around work that is not a wait on the back-end (a whole check).
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string, clock = true): Promise<T> {
  const raced = raceDeadline(promise, ms, what);
  return clock ? clocked(raced) : raced;
}

async function raceDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Calls `probe` every `intervalMs` until it returns a value other than undefined, or the deadline passes.
 * The last error the probe threw, if any, is named in the timeout; a BackendError (the back-end is gone)
 * ends the wait at once. `starvedMs`, when given, says how long the peer waited for a CPU since the wait
 * began: the deadline moves that much later (by `ms` at most), so that a peer slowed by the machine's load
 * is not taken for one that does not answer.
 */
export function pollUntil<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
  intervalMs = 5,
  starvedMs?: () => number,
): Promise<T> {
  return clocked(poll(probe, ms, what, intervalMs, starvedMs));
}

async function poll<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
  intervalMs: number,
  starvedMs: () => number = () => 0,
): Promise<T> {
  const started = performance.now();
  let lastError: unknown;
  let grace = 0;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof BackendError) throw err;
      lastError = err;
    }
    // Asked again only once the deadline (moved so far) passed: what it reads may cost more than a probe.
    if (performance.now() >= started + ms + grace) grace = Math.min(ms, Math.max(grace, starvedMs()));
    const end = started + ms + grace;
    if (performance.now() >= end) {
      const details = [
        ...(grace >= 1 ? [`${Math.round(grace)} ms more, the time it waited for a CPU`] : []),
        ...(lastError instanceof Error ? [`last attempt: ${lastError.message}`] : []),
      ];
      throw new TimeoutError(what, ms, details.length ? details.join('; ') : undefined);
    }
    await sleep(Math.min(intervalMs, Math.max(0, end - performance.now())));
  }
}
