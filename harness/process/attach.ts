/** Attach mode's precondition: a back-end someone else started listens at the socket named by --connect. */
import { realpathSync, type Stats, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { isListeningAt } from './procfs.js';

/** How long the fallback connect may take: a listening socket answers a connect at once. */
const CONNECT_PROBE_MS = 2000;

/**
 * Resolves when a process listens at `socket`; otherwise throws a usage error naming the cause (no such path,
 * not a socket, nothing listening), so that a run against nothing stops before its first check. The listening
 * socket is found in /proc/net/unix, without connecting: a back-end that serves one front-end would take a
 * probe's connection for it. Only when /proc shows none under this name (the back-end bound it under another
 * spelling of the path, or in another network namespace) does it connect, which fails at once when nothing
 * listens.
 */
export async function expectListening(socket: string, option = '--connect'): Promise<void> {
  const resolved = path.resolve(socket);
  let stat: Stats;
  try {
    stat = statSync(resolved);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      `${option} ${socket}: ${code === 'ENOENT' ? 'no such file' : `cannot reach it (${code})`}; give the socket path a running back-end listens at`,
    );
  }
  if (!stat.isSocket())
    throw new UsageError(
      `${option} ${socket}: not a socket but a ${kindOf(stat)}; give the socket path a running back-end listens at`,
    );
  const names = new Set([socket, resolved, realpathSync(resolved)]);
  if ([...names].some(isListeningAt)) return;
  const refused = await connectFails(resolved);
  if (refused)
    throw new UsageError(
      `${option} ${socket}: nothing listens at this socket (connect: ${refused}); start the back-end first, or name its binary for vhu-conform to launch${option === '--connect' ? '' : ` (${option.replace(/-connect$/, '')} <binary>)`}`,
    );
}

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'directory';
  if (stat.isFile()) return 'regular file';
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isCharacterDevice()) return 'character device';
  if (stat.isBlockDevice()) return 'block device';
  return 'file of another kind';
}

/** Connects to `socket` and closes at once: the error code when that fails, undefined when it connects. */
function connectFails(socket: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const conn = createConnection({ path: socket });
    const timer = setTimeout(() => {
      conn.destroy();
      resolve(`no answer to a connect within ${CONNECT_PROBE_MS} ms`);
    }, CONNECT_PROBE_MS);
    conn.once('connect', () => {
      clearTimeout(timer);
      conn.destroy();
      resolve(undefined);
    });
    conn.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}
