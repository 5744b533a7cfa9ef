import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensureDir } from '../util/fs.js';
import type { CheckResult, RunResult } from './types.js';

/**
 * The JSON report: exactly the fields of the {@link RunResult}, pretty-printed with two spaces and a trailing
 * newline. Fields are picked one by one so that nothing else a caller hangs on the objects leaks into the file.
 */
export function toJson(result: RunResult): string {
  const { tool, startedAt, backend, summary } = result;
  const report: RunResult = {
    tool: { name: tool.name, version: tool.version },
    startedAt,
    backend: {
      binary: backend.binary,
      ...(backend.connect === undefined ? {} : { connect: backend.connect }),
      args: [...backend.args],
      type: backend.type,
      capabilities: backend.capabilities,
    },
    summary: {
      total: summary.total,
      passed: summary.passed,
      failed: summary.failed,
      timedOut: summary.timedOut,
      skipped: summary.skipped,
      errors: summary.errors,
      mustFailed: summary.mustFailed,
      shouldFailed: summary.shouldFailed,
      durationMs: summary.durationMs,
    },
    checks: result.checks.map(checkJson),
    ...(result.frontend === undefined ? {} : { frontend: result.frontend }),
    ...(result.matrix === undefined
      ? {}
      : { matrix: { profiles: [...result.matrix.profiles], checks: result.matrix.checks } }),
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}

function checkJson(check: CheckResult): CheckResult {
  const out: CheckResult = {
    id: check.id,
    title: check.title,
    severity: check.severity,
    spec: check.spec,
    area: check.area,
    verdict: check.verdict,
    message: check.message,
    durationMs: check.durationMs,
  };
  if (check.stderrTail !== undefined) out.stderrTail = check.stderrTail;
  if (check.frontend !== undefined) out.frontend = check.frontend;
  return out;
}

/** Writes {@link toJson} of `result` to `file`, creating its parent folders. */
export async function writeJsonReport(result: RunResult, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, toJson(result), 'utf8');
}
