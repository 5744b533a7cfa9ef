/**
 * Known failures (`--baseline`, `--write-baseline`): a file naming the checks a back-end is known to fail,
 * each with the reason that is accepted, so that a CI job can gate on "no new failure". The file format is
 * harness/schemas/baseline.schema.json; a former report.json serves too (its failures become the entries).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UsageError } from '../errors.js';
import { PROFILES } from '../frontend/profiles.js';
import { validateBaseline, validateReport } from '../schemas/validate.js';
import { ensureDir } from '../util/fs.js';
import { REPORT_FORMAT } from './report-json.js';
import {
  type BaselineSummary,
  broke,
  type CheckResult,
  checkKey,
  failsRun,
  type RunResult,
} from './types.js';

/** The name of the baseline format, and its version: raised when a field changes meaning or goes. */
export const BASELINE_FORMAT = 'vhu-conform-baseline';
export const BASELINE_FORMAT_VERSION = 1;

/** A known failure: a check id (every profile), or `id@profile` (that profile of `--frontend all`). */
export interface Expectation {
  id: string;
  reason: string;
}

/** A loaded baseline: where it came from, and its entries. */
export interface Baseline {
  file: string;
  expected: Expectation[];
}

/** What a baseline file holds (harness/schemas/baseline.schema.json). */
export interface BaselineDocument {
  format: typeof BASELINE_FORMAT;
  formatVersion: typeof BASELINE_FORMAT_VERSION;
  note?: string;
  expected: Expectation[];
}

const NOTE =
  'Known failures for vhu-conform --baseline: the run fails only on a failure or timeout not listed here, ' +
  'and names the entries whose checks pass now. One entry per check id (id@profile: under that ' +
  '--frontend all profile only). Each reason was written from the check message: replace it with why the ' +
  'failure is accepted (a bug report, a planned fix).';

/** Reads a baseline file, or a report.json, and checks it names only known checks and profiles. */
export async function loadBaseline(file: string, checkIds: readonly string[]): Promise<Baseline> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--baseline ${file}: cannot read it: ${(err as Error).message}`);
  }
  return parseBaseline(text, file, checkIds);
}

/**
 * The entries of a baseline file's text; a report.json's become its failed and timed-out checks, each with
 * its message as the reason. Anything else, or a file that breaks its schema, names duplicate entries,
 * unknown checks or unknown profiles, is a usage error naming the problem.
 */
export function parseBaseline(text: string, file: string, checkIds: readonly string[]): Baseline {
  const bad = (problem: string) => new UsageError(`--baseline ${file}: ${problem}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  const format = (doc as { format?: unknown } | null)?.format;
  let expected: Expectation[];
  if (format === BASELINE_FORMAT) {
    const errors = validateBaseline(doc);
    if (errors.length) throw bad(`not a valid ${BASELINE_FORMAT} file: ${errors.join('; ')}`);
    expected = (doc as BaselineDocument).expected.map(({ id, reason }) => ({ id, reason }));
  } else if (format === REPORT_FORMAT) {
    const errors = validateReport(doc);
    if (errors.length) throw bad(`not a valid ${REPORT_FORMAT} report: ${errors.join('; ')}`);
    expected = (doc as RunResult).checks
      .filter(broke)
      .map((c) => ({ id: checkKey(c), reason: c.expected?.reason ?? reasonFrom(c) }));
  } else {
    throw bad(
      `neither a baseline (format "${BASELINE_FORMAT}") nor a report.json (format "${REPORT_FORMAT}"); ` +
        `its format is ${JSON.stringify(format ?? null)}`,
    );
  }
  const known = new Set(checkIds);
  const profiles = new Set(PROFILES.map((p) => p.name));
  const seen = new Set<string>();
  for (const { id } of expected) {
    if (seen.has(id)) throw bad(`${id} is listed twice`);
    seen.add(id);
    const [check, profile] = id.split('@') as [string, string | undefined];
    if (!known.has(check)) throw bad(`${id}: no such check (see --list)`);
    if (profile !== undefined && !profiles.has(profile))
      throw bad(`${id}: no front-end profile ${profile} (${[...profiles].join(', ')})`);
  }
  return { file, expected };
}

/** The entry that names `check`: its `id@profile` entry first, else its id's. */
export function expectationFor(baseline: Baseline, check: CheckResult): Expectation | undefined {
  const key = checkKey(check);
  return (
    baseline.expected.find((e) => e.id === key) ??
    (key === check.id ? undefined : baseline.expected.find((e) => e.id === check.id))
  );
}

/** How the results (annotated with `expected` by the runner) compare with the baseline. */
export function compareWithBaseline(
  baseline: Baseline,
  checks: readonly CheckResult[],
  strict: boolean,
): BaselineSummary {
  const fixed: string[] = [];
  const notRun: string[] = [];
  for (const entry of baseline.expected) {
    const decided = checks.filter(
      (c) => expectationFor(baseline, c) === entry && (c.verdict === 'pass' || broke(c)),
    );
    if (!decided.length) notRun.push(entry.id);
    else if (decided.every((c) => c.verdict === 'pass')) fixed.push(entry.id);
  }
  return {
    entries: baseline.expected.length,
    expectedFailures: checks.filter((c) => c.expected !== undefined && broke(c)).length,
    newFailures: checks.filter((c) => failsRun(c, strict)).map(checkKey),
    fixed,
    notRun,
  };
}

/** A reason to start from: the first clause of the check's message (without the run's times and paths after it). */
function reasonFrom(check: CheckResult): string {
  const first = (check.message.split('\n')[0] ?? '').split('; ')[0]!.trim();
  const text = first || `${check.severity} check ${check.verdict === 'timeout' ? 'timed out' : 'failed'}`;
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/**
 * The baseline that makes this very run pass: every check that failed or timed out (any severity, so that
 * the same file serves with and without --strict), sorted by id, each with the reason the baseline given to
 * the run had for it, else the first clause of its message. Nothing in it depends on the time or the process.
 */
export function baselineOf(result: RunResult): BaselineDocument {
  const expected = result.checks
    .filter(broke)
    .map((c) => ({ id: checkKey(c), reason: c.expected?.reason ?? reasonFrom(c) }))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { format: BASELINE_FORMAT, formatVersion: BASELINE_FORMAT_VERSION, note: NOTE, expected };
}

/** Writes {@link baselineOf} `result` to `file` (two-space JSON, trailing newline), creating its folders. */
export async function writeBaseline(result: RunResult, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, `${JSON.stringify(baselineOf(result), null, 2)}\n`, 'utf8');
}
