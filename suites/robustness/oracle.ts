/**
 * The crash and hang oracle of the robustness checks (issue 5): after each bad input, a back-end must either
 * close the connection cleanly or answer the next valid request within the deadline. vhost-user.rst
 * (Communication): "If *back-end* detects some error such as incompatible features, it may also close the
 * connection." Closing is allowed; dying of the input is not closing the connection: a death by signal (an abort
 * included), or an exit with a crash signature on stderr in any language (harness/process/crash.ts: a Python
 * traceback, a Go or Rust panic, an uncaught C++, Java or JavaScript exception, a sanitizer report, a failed
 * assertion...), is a crash. Neither answering nor closing is a hang. A non-zero exit with no crash signature is
 * an exit after closing, allowed and reported: many back-ends end, with an error status, when their only
 * front-end is gone. Which of the clean choices it made is reported, never judged.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, ProtocolError, SkipError, SysError, TimeoutError } from '../../harness/errors.js';
import type { BackendProcess } from '../../harness/process/backend.js';
import { crashSignature, judgeEnd } from '../../harness/process/crash.js';
import { frontendConnection, markAttachedGone, serveOnSocketPath } from '../../harness/process/probes.js';
import { isListeningAt, readStat, socketOwner } from '../../harness/process/procfs.js';
import { FrontendRequest, HeaderFlag } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { ClosedError } from '../../harness/sys/fd-waiter.js';
import { closeFd, peerCred } from '../../harness/sys/libc.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { withDeadline } from '../../harness/util/deadline.js';

/**
 * A back-end under test for bad inputs: launched with --socket-path (fresh, or kept from earlier inputs on new
 * connections: kept.ts), or, in attach mode, a new connection; with its process when we have one (attach mode:
 * found as the owner of the socket in /proc, or null).
 */
export interface Subject {
  session: FrontendSession;
  backend: BackendProcess | null;
  pid: number | null;
  /** The socket it listens at (attach mode: the one given). */
  socket: string;
}

/**
 * The rule the crash and hang oracle stands for. No sentence makes it a MUST: neither vhost-user.rst nor the
 * virtio spec says a back-end must not crash or hang on input a front-end must not send. So the checks that
 * judge by it are hardening checks (interop, SHOULD), and say so.
 */
export const HARDENING_RULE =
  'hardening, no sentence: neither vhost-user.rst (QEMU 7.2) nor the virtio spec says a back-end must not crash ' +
  'or hang on input a front-end must not send; the one reaction to an error vhost-user.rst names is allowed ' +
  'here (Communication: "If *back-end* detects some error such as incompatible features, it may also close the ' +
  'connection."), and a crash or a hang takes the device from a front-end and its guest';

/** What the back-end chose after a bad input. */
export type Outcome = 'answered' | 'closed';

/** How long a back-end that closed the connection is watched for dying (a crash closes it on the way out). */
const EXIT_WATCH_MS = 200;
const EXIT_WATCH_STEP_MS = 20;

/**
 * A crash signature on `stderr` that is a crash even while the process lives (a sanitizer report, a failed
 * assertion, a Rust panic: see CrashSignature.alone), if any: what it is and its line, quoted.
 */
export function crashReport(stderr: string): string | undefined {
  return crashSignature(stderr, false);
}

export async function freshSubject(ctx: CheckContext): Promise<Subject> {
  if (ctx.target.connect !== null) {
    const connection = await frontendConnection(ctx);
    return {
      session: new FrontendSession(connection),
      backend: null,
      pid: socketOwner(ctx.target.connect) ?? null,
      socket: ctx.target.connect,
    };
  }
  const served = await serveOnSocketPath(ctx);
  let pid = served.backend.pid;
  try {
    // The process that listens may be a child of the one launched (conv.no-daemon allows it).
    const cred = peerCred(served.fd);
    if (cred.pid > 0) pid = cred.pid;
  } catch {
    // Not a reason to give up: the launched process is the next best.
  }
  return {
    session: new FrontendSession(served.connection),
    backend: served.backend,
    pid,
    socket: served.socket,
  };
}

/**
 * Ends a subject at once (its connection closed, its process terminated), so that a check trying many inputs
 * does not keep a back-end per input running until it ends. The check's scope would end them anyway.
 */
export async function releaseSubject(subject: Subject): Promise<void> {
  subject.session.connection.close();
  if (subject.backend) await subject.backend.terminate();
}

/**
 * GET_FEATURES, answered: frames before its reply (an answer to the bad input itself, say) are passed over,
 * their fds closed. Resolves to the features offered (the payload's first 8 bytes; 0 when it is shorter: a
 * reply is what the oracle asks for, not its form).
 */
export async function answersGetFeatures(connection: Connection, timeoutMs: number): Promise<bigint> {
  await connection.send('GET_FEATURES');
  const reply = async () => {
    for (;;) {
      const frame = await connection.nextFrame('the reply to GET_FEATURES');
      for (const fd of frame.fds) closeFd(fd);
      if (frame.request === FrontendRequest.GET_FEATURES && frame.flags & HeaderFlag.REPLY)
        return frame.payload.length >= 8 ? frame.payload.readBigUInt64LE(0) : 0n;
    }
  };
  return withDeadline(reply(), timeoutMs, 'the reply to GET_FEATURES');
}

/** Whether a probe's error says the connection is gone (closed by the back-end, reset, refused). */
export function connectionGone(err: unknown): boolean {
  return err instanceof BackendError || err instanceof ClosedError || err instanceof SysError;
}

/** Whether `pid` has ended (gone, or a zombie). */
function ended(pid: number): boolean {
  const stat = readStat(pid);
  return stat === undefined || stat.state === 'Z';
}

/**
 * After `input` (a short description for messages) was sent: waits until the back-end either answers a valid
 * request (GET_FEATURES, or `probe` if given) within ctx.timeoutMs, or closes the connection. Throws, naming
 * the input, a BackendError (FAIL) when it crashed (died of a signal, SIGABRT included, or with a crash
 * signature on stderr: see checkAlive; in attach mode: the daemon ended), or a TimeoutError when it hung
 * (neither within the deadline).
 */
export async function outcomeAfter(
  ctx: CheckContext,
  subject: Subject,
  input: string,
  probe?: () => Promise<unknown>,
): Promise<Outcome> {
  const ask = probe ?? (() => answersGetFeatures(subject.session.connection, ctx.timeoutMs));
  let outcome: Outcome;
  try {
    await withDeadline(Promise.resolve().then(ask), ctx.timeoutMs, 'an answer after the bad input');
    outcome = 'answered';
  } catch (err) {
    if (err instanceof TimeoutError) {
      await checkAlive(ctx, subject, input);
      throw new TimeoutError(
        `GET_FEATURES to be answered or the connection closed after ${input}`,
        ctx.timeoutMs,
        `it hung: neither happened, the back-end ${subject.pid === null ? 'still listening' : `pid ${subject.pid} still running`}; ` +
          `wire: ${subject.session.connection.recent(4).join(' | ')}`,
      );
    }
    if (err instanceof ProtocolError)
      throw new ProtocolError(`after ${input}, the back-end broke the framing: ${err.message}`);
    if (!connectionGone(err)) throw err;
    outcome = 'closed';
    await watchExit(subject);
  }
  await checkAlive(ctx, subject, input);
  return outcome;
}

/** A back-end that closed the connection may be dying: waits briefly, and for its status when it is. */
async function watchExit(subject: Subject): Promise<void> {
  if (subject.pid === null) return;
  const { backend } = subject;
  if (backend && backend.pid === subject.pid) {
    // The process we launched: its exit is an event, seen as it comes (a poll's step was a wait each close).
    let timer: NodeJS.Timeout | undefined;
    const watched = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, EXIT_WATCH_MS);
    });
    const exited = backend.exited.then(
      () => undefined,
      () => undefined,
    );
    await Promise.race([exited, watched]).finally(() => clearTimeout(timer));
    // Ended, its status not yet in (a child of its own may hold its stderr open): as below.
    if (!backend.exit && ended(subject.pid)) await backend.waitExit(2000).catch(() => undefined);
    return;
  }
  for (let waited = 0; waited < EXIT_WATCH_MS; waited += EXIT_WATCH_STEP_MS) {
    if (ended(subject.pid)) break;
    await sleep(EXIT_WATCH_STEP_MS);
  }
  // Its status follows its exit closely; bounded all the same.
  if (subject.backend && ended(subject.pid)) await subject.backend.waitExit(2000).catch(() => undefined);
}

/**
 * Throws when the back-end crashed (or, in attach mode, ended) after `input`: died of a signal, ended with a
 * crash signature on stderr, or (still running) printed one of those that are crashes alone.
 */
async function checkAlive(ctx: CheckContext, subject: Subject, input: string): Promise<void> {
  const { backend } = subject;
  if (backend) {
    if (backend.exit) {
      const end = judgeEnd(backend.exit, backend.stderrTail);
      if (end.crashed) throw new BackendError(`it crashed after ${input}: ${end.how}`);
      return;
    }
    const report = crashReport(backend.stderrTail);
    if (report) throw new BackendError(`it crashed after ${input}: ${report}`);
    return;
  }
  const socket = ctx.target.connect!;
  const gone = subject.pid !== null ? ended(subject.pid) : !isListeningAt(socket);
  if (!gone) return;
  const who = subject.pid !== null ? `pid ${subject.pid}` : `listening at ${socket}`;
  markAttachedGone(ctx, `it ended after ${input}`);
  throw new BackendError(
    `the attached back-end (${who}) ended after ${input}: one front-end's message took down a daemon that ` +
      'serves every front-end (its exit status cannot be seen in attach mode)',
  );
}

/**
 * A subject's process that ended, after closing, with a non-zero status and no crash signature: allowed (see
 * the top of this file), yet worth a word in the fact: "it then ended: exit status 1; stderr: "..."".
 */
export function exitNote(subject: Subject): string | undefined {
  const exit = subject.backend?.exit;
  if (!exit || exit.code === 0) return undefined;
  const end = judgeEnd(exit, subject.backend!.stderrTail);
  return end.crashed ? undefined : `it then ended: ${end.how}, no crash on stderr`;
}

/** One line for the check's fact: how many inputs were answered, and which ones closed the connection. */
export function summarize(outcomes: Array<{ input: string; outcome: Outcome }>): string {
  const closed = outcomes.filter((o) => o.outcome === 'closed').map((o) => o.input);
  const answered = outcomes.length - closed.length;
  const head = `${answered} of ${outcomes.length} inputs answered`;
  return closed.length ? `${head}; closed the connection after: ${closed.join(', ')}` : head;
}

/**
 * A bad input as most checks send it: delivered on a subject of its own (a fresh back-end, or a new connection
 * to one kept from earlier inputs: kept.ts), then the oracle's valid request.
 */
export interface BadInput {
  /** A short description for messages. */
  input: string;
  /** Delivers it (a send the back-end refuses by closing is not an error: the oracle sees the close). */
  send: (subject: Subject) => Promise<void>;
  /** The valid request that must be answered after it (default GET_FEATURES). */
  probe?: (subject: Subject) => Promise<unknown>;
}

/** One input tried to its end: what the back-end chose, and a line for the fact saying what it did. */
export interface Tried {
  outcome: Outcome;
  line?: string;
  /**
   * A back-end kept from earlier inputs failed on it and a fresh one given it alone did not (kept.ts): `line`
   * says so, and is kept in the message of a check that fails on other inputs too.
   */
  notCounted?: boolean;
}

export interface TryOptions<I> {
  /** Inputs tried at once: input i in lane i mod `parallel` (attach mode: one at a time, one daemon). */
  parallel?: number;
  /**
   * How one input is tried (default: `send` on a fresh subject, then the oracle), in `lane`: throws a
   * BackendError, TimeoutError or ProtocolError for what the back-end did wrong, a SkipError when no subject can
   * be had. The lane's inputs come one after the other, in their order, whatever the timing: an attempt that
   * keeps a back-end for its lane (kept.ts) sees the same inputs before each one every run.
   */
  attempt?: (input: I, lane: number) => Promise<Tried>;
}

/**
 * Runs each input (`parallel` at once, in lanes), each to its end, so that one report names every input that
 * crashed or hung (in attach mode, until the daemon is gone: the inputs after are not tried). Returns the
 * check's fact (the summary, then each input's line when attempts give one), or throws the failures: a
 * BackendError when any input crashed it, else a TimeoutError; the lines of the inputs that did not fail
 * follow the summary there too when some say what a failure seen only after earlier inputs was (kept.ts).
 */
export function tryInputs(
  ctx: CheckContext,
  inputs: readonly BadInput[],
  options?: Omit<TryOptions<BadInput>, 'attempt'>,
): Promise<string>;
export function tryInputs<I extends { input: string }>(
  ctx: CheckContext,
  inputs: readonly I[],
  options: TryOptions<I> & { attempt: (input: I, lane: number) => Promise<Tried> },
): Promise<string>;
export async function tryInputs<I extends { input: string }>(
  ctx: CheckContext,
  inputs: readonly I[],
  options: TryOptions<I> = {},
): Promise<string> {
  // The overloads let inputs go without an attempt only when they are BadInputs.
  const attempt = options.attempt ?? ((input: I) => sendAndJudge(ctx, input as unknown as BadInput));
  type Result = ({ input: string } & Tried) | { input: string; error: Error };
  const results: Array<Result | undefined> = [];
  let stop = false;
  const parallel = Math.min(
    ctx.target.connect === null ? Math.max(1, options.parallel ?? 1) : 1,
    Math.max(1, inputs.length),
  );
  const lane = async (at: number) => {
    for (; at < inputs.length && !stop; at += parallel) {
      const { input } = inputs[at]!;
      try {
        results[at] = { input, ...(await attempt(inputs[at]!, at % parallel)) };
      } catch (err) {
        // Attach mode: the daemon an earlier input took down is not restarted.
        if (err instanceof SkipError && results.some((r) => r && 'error' in r)) {
          stop = true;
          return;
        }
        if (!(err instanceof BackendError || err instanceof TimeoutError || err instanceof ProtocolError)) {
          stop = true;
          throw err;
        }
        results[at] = { input, error: err };
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, (_, i) => lane(i)));
  const tried = results.filter((r): r is Result => r !== undefined);
  const outcomes = tried.flatMap((r) => ('outcome' in r ? [{ input: r.input, outcome: r.outcome }] : []));
  const failures = tried.flatMap((r) => ('error' in r ? [r.error] : []));
  const summary = summarize(outcomes);
  const lines = tried.flatMap((r) => ('line' in r && r.line !== undefined ? [r.line] : []));
  if (failures.length) {
    // A failure seen only after earlier inputs is said beside the ones that count, not dropped with the facts.
    const unconfirmed = tried.flatMap((r) => ('notCounted' in r && r.notCounted ? [r.line] : []));
    throwInputFailures(failures, unconfirmed.length ? `${summary}; ${unconfirmed.join('; ')}` : summary);
  }
  return lines.length ? `${summary}. ${lines.join('; ')}` : summary;
}

/**
 * `send` on `subject`, then the oracle: what the back-end chose, with a line when it ended after closing.
 * Throws what the oracle throws (a crash, a hang, a framing break). The subject is left as it is.
 */
export async function judgeInput(
  ctx: CheckContext,
  subject: Subject,
  { input, send, probe }: BadInput,
): Promise<Tried> {
  try {
    await send(subject);
  } catch (err) {
    if (!(err instanceof TimeoutError) && !connectionGone(err)) throw err;
    // A back-end that stopped reading or closed shows it to the oracle below.
  }
  const outcome = await outcomeAfter(ctx, subject, input, probe ? () => probe(subject) : undefined);
  const note = exitNote(subject);
  return note ? { outcome, line: `${input}: ${note}` } : { outcome };
}

/** The default attempt: `send` on a fresh subject, then the oracle; the subject is ended either way. */
async function sendAndJudge(ctx: CheckContext, input: BadInput): Promise<Tried> {
  const subject = await freshSubject(ctx);
  try {
    return await judgeInput(ctx, subject, input);
  } finally {
    await releaseSubject(subject);
  }
}

/**
 * The verdict of inputs some of which crashed or hung: one error naming every one, then `summary`; a
 * timeout when all of them hung, so that the report says so.
 */
export function throwInputFailures(failures: Error[], summary: string): never {
  const message = `${failures.map((f) => f.message).join('; ')} (${summary})`;
  if (failures.every((f) => f instanceof TimeoutError)) {
    const first = failures[0] as TimeoutError;
    const timeout = new TimeoutError(first.waitingFor, first.afterMs);
    timeout.message = message;
    throw timeout;
  }
  throw new BackendError(message);
}
