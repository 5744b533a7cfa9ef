/**
 * `--wire-log`: the wire log of each check that failed, timed out or hit a harness error, one pair of files a
 * check: `<dir>/<check key>.txt` for a person, `<dir>/<check key>.jsonl` for a program (a first line naming
 * the check, its verdict and how many messages were cut, then one record a line, as WireRecord holds it). Passing and skipped checks are left out: their logs say nothing a person
 * chasing a failure needs, and a whole run's would be megabytes. The HTML report shows the same logs.
 */
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatWireLog } from '../transport/wire-log.js';
import { ensureDir } from '../util/fs.js';
import { type CheckResult, checkKey, type RunResult } from './types.js';

/** Whether a report shows the check's wire log: it failed, timed out or hit a harness error. */
export function showsWireLog(check: CheckResult): boolean {
  return check.verdict === 'fail' || check.verdict === 'timeout' || check.verdict === 'error';
}

/** The file name of a check's log: its key (`id`, `id@profile`), anything but a safe character as `_`. */
export function wireLogFileName(check: CheckResult): string {
  return `${checkKey(check).replace(/[^A-Za-z0-9._@-]/g, '_')}.txt`;
}

/** A check's log as JSON lines: the check and its verdict, then each record (WireRecord), cut noted in the first. */
export function wireLogJsonLines(check: CheckResult): string {
  const head = {
    check: checkKey(check),
    severity: check.severity,
    verdict: check.verdict,
    message: check.message,
    records: check.wire?.records.length ?? 0,
    cut: check.wire?.cut ?? 0,
    cutAfter: check.wire?.head ?? 0,
  };
  const lines = [head, ...(check.wire?.records ?? [])].map((line) => JSON.stringify(line));
  return `${lines.join('\n')}\n`;
}

/** A check's log as a text file: what the check is and its verdict, then one message a line. */
export function wireLogText(check: CheckResult): string {
  const head = [
    `# ${checkKey(check)} (${check.severity}, ${check.spec}): ${check.verdict}`,
    ...check.message.split('\n').map((line) => `# ${line}`),
    '# columns: time since the check started, connection (#n: the nth socket the check opened; the back-end request channel carries the BACKEND_* messages, a gpu display socket the GPU_* ones), direction (-> to the back-end), request, [flags], size, fds, fields',
  ];
  const lines = check.wire ? formatWireLog(check.wire) : ['(no message on the back-end socket)'];
  return `${[...head, ...lines].join('\n')}\n`;
}

/** The name of a wire log file: a check id (an area, a dot, more), maybe `@profile`, then .txt or .jsonl. */
const WIRE_LOG_NAME = /^[a-z]+(\.[A-Za-z0-9_-]+)+(@[A-Za-z0-9._-]+)?\.(txt|jsonl)$/;

/**
 * Writes the logs of every check that shows one into `dir`, after removing the logs an earlier run left
 * there (a check that passes now must not seem to fail); only files named as wire logs are removed, since
 * `dir` may be a folder the user named. Returns the files written.
 */
export async function writeWireLogs(result: RunResult, dir: string): Promise<string[]> {
  await ensureDir(dir);
  for (const name of await readdir(dir))
    if (WIRE_LOG_NAME.test(name)) await rm(path.join(dir, name), { force: true });
  const written: string[] = [];
  for (const check of result.checks.filter(showsWireLog)) {
    const file = path.join(dir, wireLogFileName(check));
    await writeFile(file, wireLogText(check), 'utf8');
    const jsonl = file.replace(/\.txt$/, '.jsonl');
    await writeFile(jsonl, wireLogJsonLines(check), 'utf8');
    written.push(file, jsonl);
  }
  return written;
}
