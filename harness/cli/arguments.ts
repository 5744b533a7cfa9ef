/** Parsers of option values the commands share (commander calls them; a bad value is its usage error). */
import { type Command, InvalidArgumentError } from 'commander';
import { TIMEOUT_BOUNDS_MS } from '../runner/run.js';

/** `--timeout <ms>`: a whole number of milliseconds within the bounds Node's timers and a run allow. */
export function timeoutMs(value: string): number {
  const n = Number(value);
  const { min, max } = TIMEOUT_BOUNDS_MS;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`expected a whole number of milliseconds from ${min} to ${max}`);
  return n;
}

/**
 * A subcommand's options: its own, and those given to the program before the subcommand's name
 * (`vhu-conform --strict replay case.json`), where the subcommand took only the default. `named`: whether
 * the user gave the option, to either.
 */
export function optionsOf<T extends object>(cmd: Command): { opts: T; named: (key: keyof T) => boolean } {
  const own = cmd.opts<T>();
  const parent = cmd.parent;
  const given = (c: Command, key: string) => {
    const source = c.getOptionValueSource(key);
    return source !== undefined && source !== 'default';
  };
  if (!parent) return { opts: own, named: (key) => given(cmd, key as string) };
  const merged: Record<string, unknown> = { ...(own as Record<string, unknown>) };
  for (const [key, value] of Object.entries(parent.opts())) {
    if (given(parent, key) && !given(cmd, key)) merged[key] = value;
  }
  return {
    opts: merged as unknown as T,
    named: (key) => given(cmd, key as string) || given(parent, key as string),
  };
}
