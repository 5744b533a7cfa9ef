/**
 * `vhu-conform merge`: the report.json files of the shards of one run (`--shard i/n`, runner/shard.ts), made
 * on several machines, joined into the report one run would have written: every check once, in run order,
 * the totals, the front-end matrix and the baseline comparison worked out again. Only reports that can be
 * joined are: the n shards of the same n, each once, of the same vhu-conform version, back-end and settings.
 */
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import { validateReport } from '../schemas/validate.js';
import { REPORT_FORMAT } from './report-json.js';
import { parseShard } from './shard.js';
import {
  type BaselineSummary,
  broke,
  type CheckResult,
  checkKey,
  failsRun,
  frontendMatrix,
  type RunResult,
  summarize,
} from './types.js';

/** A shard's report and the file it came from. */
export interface ShardReport {
  file: string;
  result: RunResult;
}

/** Reads and validates a report.json, as `merge` takes it; any problem is a usage error naming the file. */
export async function readShardReport(file: string): Promise<ShardReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`merge: ${file}: cannot read it: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`merge: ${file}: not JSON: ${(err as Error).message}`);
  }
  const format = (doc as { format?: unknown } | null)?.format;
  if (format !== REPORT_FORMAT)
    throw new UsageError(
      `merge: ${file}: not a report.json of vhu-conform (format "${REPORT_FORMAT}"); its format is ${JSON.stringify(format ?? null)}`,
    );
  const errors = validateReport(doc);
  if (errors.length)
    throw new UsageError(`merge: ${file}: not a valid ${REPORT_FORMAT} report: ${errors.join('; ')}`);
  return { file, result: doc as RunResult };
}

export interface MergeOptions {
  /** Every check id in run order: the merged report lists the checks in it. */
  order: readonly string[];
  /** The check that runs generated sequences: the seed its shard drew is the merged run's. */
  fuzzCheck: string;
}

/** The settings every shard must share: all but the shard and the seed (each shard draws one). */
function sharedSettings(result: RunResult): string {
  const { shard: _shard, seed: _seed, ...rest } = result.options;
  return JSON.stringify({
    tool: result.tool,
    backend: result.backend,
    options: rest,
    frontend: result.frontend,
  });
}

/**
 * The run the shards make together. Usage errors: a report of no shard, shards of different counts, one
 * shard twice or missing, reports of different versions, back-ends or settings (each named), a check in two.
 */
export function mergeShards(reports: readonly ShardReport[], options: MergeOptions): RunResult {
  if (!reports.length) throw new UsageError('merge: name the report.json of every shard');
  const shards = reports.map(({ file, result }) => {
    if (!result.options.shard)
      throw new UsageError(`merge: ${file}: not the report of a shard (a run without --shard i/n)`);
    return { file, result, shard: parseShard(result.options.shard) };
  });
  const count = shards[0]!.shard.count;
  const byIndex = new Map<number, string>();
  for (const { file, shard } of shards) {
    if (shard.count !== count)
      throw new UsageError(
        `merge: ${file} is shard ${shard.index}/${shard.count}, ${shards[0]!.file} one of ${count}: shards of one run share n`,
      );
    const other = byIndex.get(shard.index);
    if (other !== undefined)
      throw new UsageError(`merge: ${file} and ${other} are both shard ${shard.index}/${count}`);
    byIndex.set(shard.index, file);
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !byIndex.has(i));
  if (missing.length)
    throw new UsageError(
      `merge: shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')} missing: a merged report holds every shard`,
    );
  const first = shards[0]!;
  const settings = sharedSettings(first.result);
  for (const { file, result } of shards.slice(1)) {
    if (sharedSettings(result) !== settings)
      throw new UsageError(
        `merge: ${file} and ${first.file} ${differenceOf(first.result, result)}: not shards of one run`,
      );
  }

  const seen = new Map<string, string>();
  for (const { file, result } of shards) {
    for (const check of result.checks) {
      const key = checkKey(check);
      const other = seen.get(key);
      if (other !== undefined) throw new UsageError(`merge: ${key} is in both ${other} and ${file}`);
      seen.set(key, file);
    }
  }
  const rank = new Map(options.order.map((id, i) => [id, i]));
  const profiles = first.result.matrix?.profiles ?? [];
  const profileRank = (c: CheckResult) => (c.frontend === undefined ? -1 : profiles.indexOf(c.frontend));
  // Run order: every check under the first profile, then the traffic checks under each other one.
  const checks = shards
    .flatMap((s) => s.result.checks)
    .sort(
      (a, b) =>
        Math.max(profileRank(a), 0) - Math.max(profileRank(b), 0) ||
        (rank.get(a.id) ?? Number.MAX_SAFE_INTEGER) - (rank.get(b.id) ?? Number.MAX_SAFE_INTEGER) ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
  const fuzzed = shards.find((s) => s.result.checks.some((c) => c.id === options.fuzzCheck)) ?? first;
  const startedAt = shards.map((s) => s.result.startedAt).sort()[0]!;
  const strict = first.result.options.strict;
  // The shards ran side by side: the run took as long as the longest of them.
  const durationMs = Math.max(...shards.map((s) => s.result.summary.durationMs));
  const baselines = shards.map((s) => s.result.baseline);
  return {
    tool: first.result.tool,
    startedAt,
    options: { ...first.result.options, seed: fuzzed.result.options.seed, shard: null },
    interrupted: shards.some((s) => s.result.interrupted),
    backend: first.result.backend,
    summary: summarize(checks, durationMs),
    checks,
    ...(first.result.frontend === undefined ? {} : { frontend: first.result.frontend }),
    ...(first.result.matrix ? { matrix: frontendMatrix(profiles, checks) } : {}),
    ...(baselines.every((b) => b !== undefined)
      ? { baseline: mergeBaselines(baselines, checks, strict) }
      : {}),
  };
}

/** What differs between two reports that must be shards of one run, for the usage error. */
function differenceOf(a: RunResult, b: RunResult): string {
  if (a.tool.version !== b.tool.version)
    return `were written by vhu-conform ${a.tool.version} and ${b.tool.version}`;
  if (JSON.stringify(a.backend) !== JSON.stringify(b.backend)) return 'checked different back-ends';
  const keys = new Set([...Object.keys(a.options), ...Object.keys(b.options)]);
  const differ = [...keys].filter(
    (k) =>
      k !== 'shard' &&
      k !== 'seed' &&
      JSON.stringify((a.options as unknown as Record<string, unknown>)[k]) !==
        JSON.stringify((b.options as unknown as Record<string, unknown>)[k]),
  );
  return differ.length
    ? `were run with different settings (${differ.join(', ')})`
    : 'differ in their front-end';
}

/**
 * The shards' baseline comparisons as one: an entry is fixed when its checks pass in every shard that ran
 * them to a verdict (and some did), not run when no shard did.
 */
function mergeBaselines(
  summaries: readonly BaselineSummary[],
  checks: readonly CheckResult[],
  strict: boolean,
): BaselineSummary {
  const notRunEverywhere = summaries[0]!.notRun.filter((id) => summaries.every((s) => s.notRun.includes(id)));
  const fixed = [...new Set(summaries.flatMap((s) => s.fixed))].filter((id) =>
    summaries.every((s) => s.fixed.includes(id) || s.notRun.includes(id)),
  );
  return {
    entries: summaries[0]!.entries,
    expectedFailures: checks.filter((c) => c.expected !== undefined && broke(c)).length,
    newFailures: checks.filter((c) => failsRun(c, strict)).map(checkKey),
    fixed,
    notRun: notRunEverywhere,
  };
}
