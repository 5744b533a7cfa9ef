import { failsRun, type RunResult } from '../runner/types.js';

/** The exit statuses of vhu-conform (README, "Exit status"); interrupted and terminated are 128 + the signal. */
export const EXIT = { ok: 0, mustFailed: 1, usageOrHarness: 2, interrupted: 130, terminated: 143 } as const;

/** A run's exit status: a harness fault first, then a failure that fails the run (`failsRun`). */
export function exitCodeFor(result: RunResult, strict: boolean): number {
  if (result.summary.errors > 0) return EXIT.usageOrHarness;
  if (result.checks.some((c) => failsRun(c, strict))) return EXIT.mustFailed;
  return EXIT.ok;
}
