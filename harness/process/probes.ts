/**
 * Convention probes: the ways a management layer hands a back-end its socket, and the first exchange a
 * front-end makes. Checks compose these; each wait has the check's deadline.
 */
import { lstatSync } from 'node:fs';
import path from 'node:path';
import { BackendError, errnoName, SkipError, SysError } from '../errors.js';
import { closeFd, connectUnix, listenUnix, socketpair } from '../sys/libc.js';
import { Connection } from '../transport/connection.js';
import { pollUntil } from '../util/deadline.js';
import { type BackendProcess, YIELD_AFTER_CPU_MS } from './backend.js';
import type { BackendContext, Program } from './context.js';
import { describeExit, endAfterClose, endWords, lastStderrLine } from './crash.js';
import { cpuWaitSince, isListeningAt } from './procfs.js';

export { describeExit };

/** First line of stderr, for messages, or a note that there was none. */
export function stderrLine(backend: BackendProcess): string {
  const line = backend.stderrTail.trim().split('\n')[0]?.slice(0, 200);
  return line ? `stderr: "${line}"` : 'nothing on stderr';
}

/**
 * The CPU a back-end that is still running has used, for a message on a hang: a busy loop and an idle wait
 * are different bugs to look for.
 */
export function cpuLine(backend: BackendProcess): string {
  const ms = backend.cpuMs();
  if (ms === undefined) return 'its CPU time is not known';
  const yielded = backend.yielded
    ? `; busy: after ${YIELD_AFTER_CPU_MS} ms of it in the wait, it ran at the lowest priority (nice 19)`
    : '';
  return `${Math.round(ms)} ms of CPU used since its launch${yielded}`;
}

/** A socket path in a fresh temp folder owned by the check. */
export async function socketPath(ctx: BackendContext, name = 'backend.sock'): Promise<string> {
  return path.join(await ctx.scope.tempDir('vhu-sock-'), name);
}

/** The ending of a back-end that is gone, for messages: its status or signal and the last line of its stderr. */
function gone(backend: BackendProcess): string {
  return `${describeExit(backend.exit)}; ${lastStderrLine(backend.stderrTail)}`;
}

/** Whether a socket file is at `socket` (a listening socket bound there may have been unlinked since). */
function socketFileAt(socket: string): boolean {
  try {
    return lstatSync(socket).isSocket();
  } catch {
    return false;
  }
}

/**
 * Waits until `backend` listens at `socket`: a listening socket bound there (seen in /proc/net/unix, without
 * connecting) and its file in place (a back-end that gives up removes it, and may still hold the socket for a
 * moment). A back-end that exits first is a BackendError naming its status and the end of its stderr.
 */
export async function waitListening(
  ctx: BackendContext,
  backend: BackendProcess,
  socket: string,
): Promise<number> {
  await pollUntil(
    () => {
      if (isListeningAt(socket) && socketFileAt(socket)) return true;
      if (!backend.alive) {
        throw new BackendError(`the back-end ended (${gone(backend)}) before listening at ${socket}`);
      }
      return undefined;
    },
    ctx.timeoutMs,
    `a listening socket at ${socket}`,
    undefined,
    cpuWaitSince(backend.pid),
  );
  return Math.round(performance.now() - backend.startedAt);
}

/**
 * A connection to `backend` listening at `socket`, retried within the deadline; a back-end that ends first is a
 * BackendError naming how. The connection says how the back-end went if it ends on its side.
 */
async function connectTo(ctx: BackendContext, backend: BackendProcess, socket: string) {
  const fd = await pollUntil(
    () => {
      try {
        return connectUnix(socket);
      } catch (err) {
        if (!backend.alive)
          throw new BackendError(
            `the back-end ended (${gone(backend)}) before it took a connection at ${socket}`,
          );
        throw err;
      }
    },
    ctx.timeoutMs,
    `a listening socket at ${socket}`,
    undefined,
    cpuWaitSince(backend.pid),
  );
  const connection = Connection.fromFd(fd, ctx.timeoutMs);
  explainEnd(connection, backend);
  return { connection, fd };
}

/**
 * A new connection to `backend`, which served one at `socket` already: one connect, not retried (a refused one
 * throws the SysError, for the caller to read as "it takes no second front-end"). Like the first connection,
 * it says how the back-end went if it ends on its side. Not owned by a scope: the caller closes it.
 */
export function connectAgain(
  ctx: BackendContext,
  backend: BackendProcess | null,
  socket: string,
): Connection {
  const connection = Connection.fromFd(connectUnix(socket), ctx.timeoutMs);
  if (backend) explainEnd(connection, backend);
  return connection;
}

/** Makes `connection` say how `backend` went when it closes on its side while the process ends. */
function explainEnd(connection: Connection, backend: BackendProcess): void {
  connection.explainEndWith(async () => {
    const end = await endAfterClose(backend);
    return end && endWords(end);
  });
}

/** The memo key under which attach mode records that the back-end under test is gone, and why. */
const ATTACHED_GONE = 'attached-backend-gone';

/** connect(2) errors that mean nothing listens at the path any more. */
const NOTHING_LISTENS = new Set(['ECONNREFUSED', 'ENOENT', 'ENOTSOCK']);

/**
 * Attach mode: records that the back-end no longer serves (a check saw it end), so that every later check
 * that needs a connection, under every front-end profile, is skipped, saying why, instead of failing for a
 * defect reported once already.
 */
export function markAttachedGone(ctx: BackendContext, why: string): void {
  ctx.target.backendMemo.set(ATTACHED_GONE, Promise.resolve(why));
}

/**
 * A front-end connection to the back-end under test: in attach mode to the socket given, else to a fresh
 * launch with --socket-path.
 */
export async function frontendConnection(ctx: BackendContext, socket?: string): Promise<Connection> {
  if (ctx.target.connect !== null) {
    const connection = await attachedConnection(ctx, ctx.target.connect);
    ctx.scope.defer('front-end connection', () => connection.close());
    return connection;
  }
  const served = socket === undefined ? await serveOnSocketPath(ctx) : await serveOnSocketPathAt(ctx, socket);
  return served.connection;
}

/**
 * Attach mode: a connection to the running back-end at `socket`. It was listening when the run began, so
 * a refused connection means it is gone: recorded, and a SkipError for this check and every later one
 * (one deadline each would say nothing more). A full backlog is waited out.
 */
async function attachedConnection(ctx: BackendContext, socket: string): Promise<Connection> {
  const gone = ctx.target.backendMemo.get(ATTACHED_GONE);
  if (gone) throw new SkipError(`the attached back-end is gone (${await gone}); nothing restarts it`);
  let fd: number;
  try {
    fd = connectUnix(socket);
  } catch (err) {
    if (!(err instanceof SysError) || !NOTHING_LISTENS.has(errnoName(err.errno))) throw err;
    const why = `nothing listens at ${socket} any more: connect failed with ${errnoName(err.errno)}`;
    markAttachedGone(ctx, why);
    throw new SkipError(`the attached back-end is gone (${why}); nothing restarts it`);
  }
  return Connection.fromFd(fd, ctx.timeoutMs);
}

/**
 * A front-end connection to a back-end someone else started at `socket` that is not the one under test (the
 * destination of a move, --migrate-to-connect), owned by the check's scope. It listened when the run began:
 * nothing listening now is a SkipError naming `what`.
 */
export async function attachedTo(ctx: BackendContext, socket: string, what: string): Promise<Connection> {
  let fd: number;
  try {
    fd = connectUnix(socket);
  } catch (err) {
    if (!(err instanceof SysError) || !NOTHING_LISTENS.has(errnoName(err.errno))) throw err;
    throw new SkipError(
      `${what} at ${socket} is gone: connect failed with ${errnoName(err.errno)}; nothing restarts it`,
    );
  }
  const connection = Connection.fromFd(fd, ctx.timeoutMs);
  ctx.scope.defer('front-end connection', () => connection.close());
  return connection;
}

export interface Served {
  backend: BackendProcess;
  socket: string;
  connection: Connection;
  /** Our end's fd (owned by the connection). */
  fd: number;
  listenedAfterMs: number;
}

/**
 * Launches with `--socket-path`, waits for it to listen, and connects as the front-end; `program` launches
 * another binary than the one under test (the destination of a move).
 */
export async function serveOnSocketPath(
  ctx: BackendContext,
  args: string[] = [],
  program?: Program,
): Promise<Served> {
  return serveOnSocketPathAt(ctx, await socketPath(ctx), args, program);
}

/** `serveOnSocketPath` at a given path (to launch twice with the very same options). */
export async function serveOnSocketPathAt(
  ctx: BackendContext,
  socket: string,
  args: string[] = [],
  program?: Program,
): Promise<Served> {
  const backend = ctx.launch([`--socket-path=${socket}`, ...args], program ? { program } : {});
  const listenedAfterMs = await waitListening(ctx, backend, socket);
  const { connection, fd } = await connectTo(ctx, backend, socket);
  ctx.scope.defer('front-end connection', () => connection.close());
  return { backend, socket, connection, fd, listenedAfterMs };
}

export type FdForm = 'connected' | 'listening';

export interface FdProbe {
  form: FdForm;
  fdNumber: number;
  ok: boolean;
  /** The offered features on success; the reason otherwise. */
  detail: string;
}

/**
 * Launches with `--fd=N`, the socket inherited as fd N: one end of a socketpair (`connected`, as libvirt
 * does for vhost-user-gpu) or a listening socket (`listening`, as for virtiofsd); then asks GET_FEATURES.
 */
export async function probeFd(ctx: BackendContext, form: FdForm, fdNumber: number): Promise<FdProbe> {
  let connection: Connection;
  let backend: BackendProcess;
  if (form === 'connected') {
    const [ours, theirs] = socketpair();
    try {
      backend = ctx.launch([`--fd=${fdNumber}`], { fds: { [fdNumber]: theirs } });
    } finally {
      closeFd(theirs);
    }
    connection = Connection.fromFd(ours, ctx.timeoutMs);
    explainEnd(connection, backend);
  } else {
    const socket = await socketPath(ctx);
    const listener = listenUnix(socket);
    try {
      backend = ctx.launch([`--fd=${fdNumber}`], { fds: { [fdNumber]: listener } });
    } finally {
      closeFd(listener);
    }
    connection = (await connectTo(ctx, backend, socket)).connection;
  }
  ctx.scope.defer('front-end connection', () => connection.close());
  try {
    const features = await connection.requestU64('GET_FEATURES');
    return { form, fdNumber, ok: true, detail: `features 0x${features.toString(16)}` };
  } catch (err) {
    const status = backend.alive ? '' : ` (back-end ${describeExit(backend.exit)}; ${stderrLine(backend)})`;
    return { form, fdNumber, ok: false, detail: `${(err as Error).message}${status}` };
  }
}
