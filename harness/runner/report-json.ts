import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensureDir } from '../util/fs.js';
import type { CheckResult, RunResult } from './types.js';

/** The name of the report.json format, and its version: raised when a field changes meaning or goes. */
export const REPORT_FORMAT = 'vhu-conform-report';
export const REPORT_FORMAT_VERSION = 1;

/** What report.json holds: the format's name and version, then the run result (harness/schemas/report.schema.json). */
export interface JsonReport extends RunResult {
  format: typeof REPORT_FORMAT;
  formatVersion: typeof REPORT_FORMAT_VERSION;
}

/**
 * The JSON report: the format's name and version, then exactly the fields of the {@link RunResult},
 * pretty-printed with two spaces and a trailing newline. Fields are picked one by one so that nothing else a
 * caller hangs on the objects leaks into the file.
 */
export function toJson(result: RunResult): string {
  const { tool, startedAt, options, backend, summary } = result;
  const report: JsonReport = {
    format: REPORT_FORMAT,
    formatVersion: REPORT_FORMAT_VERSION,
    tool: { name: tool.name, version: tool.version },
    startedAt,
    options: {
      type: options.type,
      grep: options.grep,
      skip: options.skip,
      baseline: options.baseline,
      timeoutMs: options.timeoutMs,
      frontend: options.frontend,
      strict: options.strict,
      seed: options.seed,
      fuzzSeconds: options.fuzzSeconds,
      replay: options.replay,
      descriptorDirs: [...options.descriptorDirs],
      migrateTo:
        options.migrateTo === null || options.migrateTo === undefined
          ? null
          : 'connect' in options.migrateTo
            ? { connect: options.migrateTo.connect }
            : { binary: options.migrateTo.binary, extraArgs: [...options.migrateTo.extraArgs] },
      shard: options.shard ?? null,
      freshBackends: options.freshBackends ?? false,
    },
    interrupted: result.interrupted,
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
    ...(result.baseline === undefined
      ? {}
      : {
          baseline: {
            entries: result.baseline.entries,
            expectedFailures: result.baseline.expectedFailures,
            newFailures: [...result.baseline.newFailures],
            fixed: [...result.baseline.fixed],
            notRun: [...result.baseline.notRun],
          },
        }),
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
    ...(check.rule === undefined ? {} : { rule: check.rule }),
    ...(check.interop === undefined ? {} : { interop: check.interop }),
    verdict: check.verdict,
    message: check.message,
    durationMs: check.durationMs,
  };
  if (check.stderrTail !== undefined) out.stderrTail = check.stderrTail;
  if (check.frontend !== undefined) out.frontend = check.frontend;
  if (check.expected !== undefined) out.expected = { reason: check.expected.reason };
  if (check.files !== undefined) out.files = [...check.files];
  return out;
}

/** Writes {@link toJson} of `result` to `file`, creating its parent folders. */
export async function writeJsonReport(result: RunResult, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, toJson(result), 'utf8');
}
