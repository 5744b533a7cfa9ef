/**
 * How a back-end ended, in every language back-ends are written in: the crash signatures a dying process
 * leaves on stderr (one table), and the judgement of an exit (a signal, or a status with what stderr says).
 * The robustness oracle and every message that says a back-end went away judge through here.
 */
import type { BackendProcess, ExitInfo } from './backend.js';

/** What a crash leaves on stderr. */
export interface CrashSignature {
  /** For messages: "a Python traceback". */
  what: string;
  /** Where it starts; a first capture group, when it matches, is the line that says why (the exception). */
  pattern: RegExp;
  /**
   * A crash whatever the exit: only a dying (or fatally broken) process prints it (a sanitizer report, a failed
   * assert(), a Rust panic). Without it the process must also have exited non-zero: a program that catches an
   * exception may log the very same traceback and live on, which is not a crash.
   */
  alone: boolean;
}

/** Every signature known, most specific first: the first one found is the one reported. */
export const CRASH_SIGNATURES: readonly CrashSignature[] = [
  // C and C++: sanitizers, then what glibc and libstdc++ print before they abort.
  {
    what: 'a sanitizer report',
    pattern: /ERROR: (?:Address|HWAddress|Memory|Thread|Leak)Sanitizer/,
    alone: true,
  },
  // UBSan: "vq.c:7:3: runtime error: ..." (Go says "panic: runtime error:", which is no sanitizer).
  {
    what: 'an UndefinedBehaviorSanitizer report',
    pattern: /^[^\n]*:\d+:\d+: runtime error: |UndefinedBehaviorSanitizer/m,
    alone: true,
  },
  // glibc: "prog: file.c:12: func: Assertion `x' failed."; musl: "Assertion failed: x (file.c: func: 12)".
  { what: 'a failed assertion', pattern: /: Assertion `.*' failed\.|^Assertion failed: /m, alone: true },
  {
    what: "glibc's stack protector",
    pattern: /\*\*\* (?:stack smashing|buffer overflow) detected \*\*\*/,
    alone: true,
  },
  {
    what: "glibc's heap checks",
    pattern:
      /^(?:free|malloc|realloc|munmap_chunk|malloc_consolidate)\(\): [^\n]+|^double free or corruption|^corrupted (?:size vs\. prev_size|double-linked list)/m,
    alone: true,
  },
  {
    what: 'an uncaught C++ exception',
    pattern:
      /terminate called (?:after throwing an instance of '[^'\n]*'|without an active exception|recursively)(?:\n\s+what\(\):\s+([^\n]+))?/,
    alone: true,
  },
  // Rust: "thread 'main' panicked at src/main.rs:7:5:\nmessage" (1.73 on), "... at 'message', src/main.rs:7:5" before.
  { what: 'a Rust panic', pattern: /thread '[^'\n]*' panicked at [^\n]*?(?::\n([^\n]+)|$)/m, alone: true },
  { what: 'a fatal Python error', pattern: /^Fatal Python error: [^\n]*/m, alone: true },
  {
    what: 'a fatal JVM error',
    pattern: /^# A fatal error has been detected by the Java Runtime Environment/m,
    alone: true,
  },
  // The rest need a non-zero exit too.
  {
    what: 'a Python traceback',
    pattern: /^Traceback \(most recent call last\):\n(?:[ \t][^\n]*\n|\n)*([^\s][^\n]*)/m,
    alone: false,
  },
  // Go: "panic: ..." or "fatal error: ...", then the goroutine's trace (or the signal it turned into).
  {
    what: 'a Go panic',
    pattern: /^(?:panic: |fatal error: )[^\n]*(?:\n[^\n]*){0,6}?\n(?:goroutine \d+ \[|\[signal )/m,
    alone: false,
  },
  { what: 'an uncaught Java exception', pattern: /^Exception in thread "[^"\n]*" [^\n]*/m, alone: false },
  { what: 'an unhandled .NET exception', pattern: /^Unhandled exception\. [^\n]*/m, alone: false },
  // Node: the error's line, then V8's frames ("    at fn (file.js:3:9)"); or a rejection nobody handled.
  {
    what: 'an uncaught JavaScript exception',
    pattern:
      /^Uncaught [^\n]*|^\[UnhandledPromiseRejection: [^\n]*|^(\S[^\n]*)\n {4}at [^\n]*(?::\d+:\d+\)?|\(native\))$/m,
    alone: false,
  },
  {
    what: 'an uncaught Ruby exception',
    pattern: /^[^\n]+:\d+:in [`'][^\n]*': [^\n]* \(\w+(?:::\w+)*\)$/m,
    alone: false,
  },
  // A shell between the launcher and the program says how the program died ("Aborted (core dumped)").
  {
    what: 'a death by signal reported by a shell',
    pattern:
      /^(?:[^\n]*: line \d+: +\d+ )?(?:Aborted|Segmentation fault|Bus error|Illegal instruction|Floating point exception)(?: +\(core dumped\))?(?: [^\n]*)?$/m,
    alone: false,
  },
];

/** At most this much of a stderr line is quoted. */
const QUOTE_CHARS = 200;

/** A stderr line for messages: trimmed, bounded, quoted and escaped (it is the back-end's data). */
export function quoteLine(line: string): string {
  const trimmed = line.trim();
  return JSON.stringify(trimmed.length > QUOTE_CHARS ? `${trimmed.slice(0, QUOTE_CHARS)}...` : trimmed);
}

function lineAt(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index - 1) + 1;
  const end = text.indexOf('\n', index);
  return text.slice(start, end < 0 ? undefined : end);
}

/**
 * The first crash signature in `stderr`: "a Python traceback on stderr: "Traceback ..." ... "ValueError: x"".
 * `diedNonZero`: the process ended with a non-zero status (or a signal), so the signatures that are not
 * crashes `alone` count too.
 */
export function crashSignature(stderr: string, diedNonZero: boolean): string | undefined {
  for (const { what, pattern, alone } of CRASH_SIGNATURES) {
    if (!alone && !diedNonZero) continue;
    const match = pattern.exec(stderr);
    if (!match) continue;
    const first = lineAt(stderr, match.index);
    const why =
      match[1] !== undefined && match[1].trim() !== first.trim() ? ` ... ${quoteLine(match[1])}` : '';
    return `${what} on stderr: ${quoteLine(first)}${why}`;
  }
  return undefined;
}

export function describeExit(exit: ExitInfo | undefined | null): string {
  if (!exit) return 'still running';
  return exit.signal ? `killed by ${exit.signal}` : `exit status ${exit.code}`;
}

/** The last line of stderr worth quoting, or a note that there was none. */
export function lastStderrLine(stderr: string): string {
  const line = stderr.trimEnd().split('\n').at(-1);
  return line?.trim() ? `stderr: ${quoteLine(line)}` : 'nothing on stderr';
}

/** How a process ended, judged. */
export interface End {
  /** It died of it: a signal, or a crash signature on stderr (see CrashSignature.alone). */
  crashed: boolean;
  /** "killed by SIGABRT; stderr: ..." / "a Python traceback on stderr: ...; exit status 1" */
  how: string;
}

/**
 * The judgement of an ended process. A signal is a crash (an abort included); so is a non-zero status with a
 * crash signature on stderr, or any signature that is a crash alone. A non-zero status with nothing of the
 * kind is an exit, not a crash: a back-end may well end with an error status once its one front-end is gone.
 */
export function judgeEnd(exit: ExitInfo, stderr: string): End {
  const nonZero = exit.signal !== null || exit.code !== 0;
  const signature = crashSignature(stderr, nonZero);
  if (exit.signal)
    return { crashed: true, how: `killed by ${exit.signal}; ${signature ?? lastStderrLine(stderr)}` };
  if (signature) return { crashed: true, how: `${signature}; exit status ${exit.code}` };
  return {
    crashed: false,
    how: nonZero ? `exit status ${exit.code}; ${lastStderrLine(stderr)}` : 'exit status 0',
  };
}

/** How long a process whose connection just closed is given to be seen ending (a crash closes it on the way out). */
export const END_AFTER_CLOSE_MS = 60;

/**
 * After `backend`'s connection closed: its end, judged, when it ends within `ms` (a process dying closes its
 * sockets as it goes); undefined when it lives on (it closed the connection and goes on serving).
 */
export async function endAfterClose(
  backend: BackendProcess,
  ms = END_AFTER_CLOSE_MS,
): Promise<End | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const exit = await Promise.race([backend.exited, late]);
    return exit ? judgeEnd(exit, backend.stderrTail) : undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** "it died (killed by SIGABRT; stderr: ...)" or "it exited (exit status 1; ...)": how it went, in a line. */
export function endWords(end: End): string {
  return `it ${end.crashed ? 'died' : 'exited'} (${end.how})`;
}
