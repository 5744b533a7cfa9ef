import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, TimeoutError } from '../errors.js';

/** Resolves with `promise`, or rejects with a TimeoutError naming `what` after `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
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
 * ends the wait at once.
 */
export async function pollUntil<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  ms: number,
  what: string,
  intervalMs = 5,
): Promise<T> {
  const end = performance.now() + ms;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof BackendError) throw err;
      lastError = err;
    }
    if (performance.now() >= end) {
      const detail = lastError instanceof Error ? `last attempt: ${lastError.message}` : undefined;
      throw new TimeoutError(what, ms, detail);
    }
    await sleep(Math.min(intervalMs, Math.max(0, end - performance.now())));
  }
}
