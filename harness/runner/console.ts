import type { MatrixBackend } from './backend-matrix.js';
import {
  type BackendInfo,
  type BaselineSummary,
  broke,
  type CheckResult,
  checkKey,
  type FrontendMatrix,
  type RunResult,
  type Verdict,
} from './types.js';

/** C0 controls but \t and \n, DEL, and C1 controls (U+009B is a one-character CSI on some terminals). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * Makes text safe to print on a terminal: every control character other than \n and \t becomes a visible
 * `\xNN` escape, so output from a back-end cannot move the cursor, clear the screen or recolour the terminal.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * Whether the console reporter colours its output: never with --no-color (`flag` false); else as FORCE_COLOR
 * says when it is set (any value but `0` or `false`: colours even into a pipe), as Node's own output does,
 * over NO_COLOR; else none when NO_COLOR is set and not empty (https://no-color.org); else on a terminal only.
 */
export function colorWanted(
  flag: boolean,
  isTTY: boolean,
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  if (!flag) return false;
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force.toLowerCase() !== 'false';
  if (env.NO_COLOR) return false;
  return isTTY;
}

const SGR = {
  red: '31',
  green: '32',
  yellow: '33',
  blue: '34',
  magenta: '35',
  cyan: '36',
  bold: '1',
  dim: '2',
} as const;
type Style = keyof typeof SGR;

const TAGS: Record<Verdict, { tag: string; style: Style }> = {
  pass: { tag: 'PASS', style: 'green' },
  fail: { tag: 'FAIL', style: 'red' },
  timeout: { tag: 'TIME', style: 'magenta' },
  skip: { tag: 'SKIP', style: 'yellow' },
  error: { tag: 'ERR ', style: 'red' },
};
const INFO_TAG = { tag: 'INFO', style: 'cyan' } as const;

const INDENT = '      ';

export interface ConsoleReporterOptions {
  out: NodeJS.WritableStream;
  /** Colour with ANSI escapes; without it, the reporter writes no escape sequences at all. */
  color: boolean;
  /** Also print the messages of passed checks, and the back-end's stderr tail of every check. */
  verbose?: boolean;
  /**
   * `out` is a terminal: a check running longer than a second shows its elapsed time on a status line,
   * rewritten in place with carriage returns (no escape sequences) and wiped when its verdict comes.
   */
  live?: boolean;
}

/** How long a check runs before the status line shows it, and how often it is rewritten. */
const LIVE_AFTER_MS = 1000;

/**
 * Human-readable progress: a header, one line per check as it completes, then the totals. Every piece of text
 * that can come from the back-end goes through {@link printable}.
 */
export class ConsoleReporter {
  readonly #out: NodeJS.WritableStream;
  readonly #color: boolean;
  readonly #verbose: boolean;
  readonly #live: boolean;
  #total = 0;
  #done = 0;
  /** The status line of the check under way (live only): its timer, and the width it last wrote. */
  #status: { timer: NodeJS.Timeout; width: number } | undefined;

  constructor(options: ConsoleReporterOptions) {
    this.#out = options.out;
    this.#color = options.color;
    this.#verbose = options.verbose ?? false;
    this.#live = options.live ?? false;
  }

  start(backend: BackendInfo, checkCount: number): void {
    const command =
      backend.connect !== undefined
        ? `attached to ${shellWord(backend.connect)}`
        : [backend.binary ?? '', ...backend.args].map(shellWord).join(' ');
    const type = backend.type ?? 'unknown';
    const checks = `${checkCount} check${checkCount === 1 ? '' : 's'}`;
    // A run after another (--all) counts from 1 again, a blank line apart.
    if (this.#done > 0) this.#line('');
    this.#total = checkCount;
    this.#done = 0;
    this.#line(
      `${this.#paint('bold', 'vhu-conform')}: ${printable(command)} (type: ${printable(type)}), ${checks}`,
    );
  }

  /** A line the user should read before the checks run (what the run cannot do, and how to change that). */
  note(text: string): void {
    this.#line(`${this.#paint('yellow', 'note:')} ${printable(text)}`);
  }

  /** `--all`: one line per back-end of the matrix, how its run ended or why it did not run. */
  backends(list: MatrixBackend[]): void {
    for (const b of list) {
      const how = b.problems
        ? this.#paint('red', 'not run (descriptor problems)')
        : `exit ${b.exitStatus}: ${b.summary!.passed} passed, ${b.summary!.failed} failed, ${b.summary!.timedOut} timed out`;
      this.#line(
        `${printable(b.name)}: ${printable(b.binary ?? '?')} (type ${printable(b.type ?? '?')}): ${how}`,
      );
    }
  }

  /** A check starts: on a terminal, its elapsed time shows once it has run a second. */
  running(key: string): void {
    this.#wipe();
    if (!this.#live) return;
    const started = performance.now();
    const timer = setInterval(() => {
      const text = `${INDENT}running ${printable(key)} (${Math.round((performance.now() - started) / 1000)} s)`;
      const pad = ' '.repeat(Math.max(0, (this.#status?.width ?? 0) - text.length));
      this.#out.write(`\r${text}${pad}`);
      if (this.#status) this.#status.width = text.length;
    }, LIVE_AFTER_MS);
    timer.unref();
    this.#status = { timer, width: 0 };
  }

  check(result: CheckResult): void {
    this.#wipe();
    this.#done++;
    const info = result.verdict === 'pass' && result.severity === 'INFO';
    const { tag, style } = info ? INFO_TAG : TAGS[result.verdict];
    const duration = this.#paint('dim', `(${Math.round(result.durationMs)} ms)`);
    this.#line(
      `${this.#paint(style, tag)}  ${result.severity.padEnd(6)}  ${printable(checkKey(result))}  ${printable(result.title)} ${duration} ${this.#counter()}`,
    );
    const message = result.message.trimEnd();
    if (message !== '' && (result.verdict !== 'pass' || info || this.#verbose)) {
      this.#block(message);
    }
    if (result.expected && broke(result))
      this.#block(`expected failure, in the baseline: ${result.expected.reason}`);
    else if (result.expected && result.verdict === 'pass')
      this.#block(`fixed: the baseline expected a failure (${result.expected.reason}); it passes now`);
    if (this.#verbose && result.stderrTail?.trim()) {
      this.#line(`${INDENT}${this.#paint('dim', 'stderr:')}`);
      this.#block(result.stderrTail.trimEnd(), `${INDENT}| `);
    }
  }

  summary(result: RunResult, files: string[]): void {
    this.#wipe();
    const s = result.summary;
    const count = (n: number, text: string, style: Style) => (n > 0 ? this.#paint(style, text) : text);
    const checks = `${s.total} check${s.total === 1 ? '' : 's'}`;
    this.#line('');
    this.#line(
      `${checks}: ${count(s.passed, `${s.passed} passed`, 'green')}, ` +
        `${count(s.failed, `${s.failed} failed`, 'red')}, ` +
        `${count(s.timedOut, `${s.timedOut} timed out`, 'magenta')}, ` +
        `${count(s.skipped, `${s.skipped} skipped`, 'yellow')}, ` +
        `${count(s.errors, `${s.errors} errors`, 'red')} ` +
        `in ${(s.durationMs / 1000).toFixed(2)} s`,
    );
    this.#line(
      `${count(s.mustFailed, `MUST failures: ${s.mustFailed}`, 'red')}, SHOULD failures: ${s.shouldFailed}`,
    );
    if (result.baseline) this.#baseline(result.baseline);
    if (result.matrix) this.#matrix(result.matrix);
    for (const file of files) this.wrote('report', file);
  }

  /** Names a file the run wrote: `what: file`. */
  wrote(what: string, file: string): void {
    this.#line(`${what}: ${printable(file)}`);
  }

  /** The run against its baseline: the counts, then each new failure and each entry to remove. */
  #baseline(b: BaselineSummary): void {
    const news = b.newFailures.length;
    const notRun = b.notRun.length ? `, ${b.notRun.length} not run (filtered or skipped)` : '';
    this.#line(
      `baseline: ${b.expectedFailures} expected failure${b.expectedFailures === 1 ? '' : 's'}, ` +
        `${news > 0 ? this.#paint('red', `${news} new`) : '0 new'}, ` +
        `${b.fixed.length > 0 ? this.#paint('green', `${b.fixed.length} fixed`) : '0 fixed'}${notRun}`,
    );
    for (const key of b.newFailures) this.#line(`${this.#paint('red', 'new failure:')} ${printable(key)}`);
    for (const id of b.fixed)
      this.#line(
        `${this.#paint('green', 'fixed:')} remove ${printable(id)} from the baseline (it passes now)`,
      );
  }

  /** The profile x check table of `--frontend all`: one column per profile. */
  #matrix(matrix: FrontendMatrix): void {
    this.table(matrix.profiles, matrix.checks, 'profile');
  }

  /**
   * A check x column table (the profiles of `--frontend all`, the back-ends of `--all`): one row per check. A
   * check skipped in every column (another device type's traffic, most often) tells nothing about the
   * columns: counted in one line, not shown (the JSON report keeps its row).
   */
  table(columns: string[], checks: Record<string, Record<string, Verdict>>, what: string): void {
    const all = Object.keys(checks);
    const skippedEverywhere = (id: string) => columns.every((c) => (checks[id]![c] ?? 'skip') === 'skip');
    const ids = all.filter((id) => !skippedEverywhere(id));
    const hidden = all.length - ids.length;
    if (!all.length) return;
    if (!ids.length) {
      this.#line('');
      this.#line(`${what} table: all ${hidden} checks skipped under every ${what}`);
      return;
    }
    const width = Math.max(5, ...ids.map((id) => id.length));
    const widths = columns.map((c) => Math.max(c.length, 7));
    this.#line('');
    this.#line(['check'.padEnd(width), ...columns.map((c, i) => printable(c).padEnd(widths[i]!))].join('  '));
    for (const id of ids) {
      const cells = columns.map((c, i) => {
        const verdict = checks[id]![c];
        const text = (verdict ?? '-').padEnd(widths[i]!);
        return verdict ? this.#paint(TAGS[verdict].style, text) : text;
      });
      this.#line([printable(id).padEnd(width), ...cells].join('  '));
    }
    if (hidden)
      this.#line(
        `(${hidden} more ${hidden === 1 ? 'check' : 'checks'} skipped under every ${what}, not shown)`,
      );
  }

  /** `[  n/total]`, the checks reported so far (pytest's place for its progress: line ends stay free to parse). */
  #counter(): string {
    const width = String(Math.max(this.#total, this.#done)).length;
    return this.#paint('dim', `[${String(this.#done).padStart(width)}/${Math.max(this.#total, this.#done)}]`);
  }

  /** Ends the status line: its timer stopped and what it wrote blanked, the cursor back at the line's start. */
  #wipe(): void {
    if (!this.#status) return;
    clearInterval(this.#status.timer);
    if (this.#status.width > 0) this.#out.write(`\r${' '.repeat(this.#status.width)}\r`);
    this.#status = undefined;
  }

  #block(text: string, prefix = INDENT): void {
    for (const line of printable(text).split('\n')) this.#line(`${prefix}${line}`);
  }

  #paint(style: Style, text: string): string {
    return this.#color ? `\x1b[${SGR[style]}m${text}\x1b[0m` : text;
  }

  #line(text: string): void {
    this.#out.write(`${text}\n`);
  }
}

/** Quotes an argument the way a POSIX shell would need it, so the header can be copied to a prompt. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
