/** Parsers of option values the commands share (commander calls them; a bad value is its usage error). */
import { InvalidArgumentError } from 'commander';
import { TIMEOUT_BOUNDS_MS } from '../runner/run.js';

/** `--timeout <ms>`: a whole number of milliseconds within the bounds Node's timers and a run allow. */
export function timeoutMs(value: string): number {
  const n = Number(value);
  const { min, max } = TIMEOUT_BOUNDS_MS;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`expected a whole number of milliseconds from ${min} to ${max}`);
  return n;
}
