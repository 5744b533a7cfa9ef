/** The exit statuses of vhu-conform (README, "Exit status"); interrupted and terminated are 128 + the signal. */
export const EXIT = { ok: 0, mustFailed: 1, usageOrHarness: 2, interrupted: 130, terminated: 143 } as const;
