/**
 * A second front-end connection to a back-end, as QEMU makes one after the first went away: to the same
 * process while it still listens, else to the back-end launched again at the same socket (one that ends with
 * its front-end, as the spec lets it); in attach mode to the attached one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { frontendConnection, serveOnSocketPathAt } from '../../harness/process/probes.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { connectUnix } from '../../harness/sys/libc.js';
import { Connection } from '../../harness/transport/connection.js';
import { quietMs } from '../vring/common.js';

export /** A new front-end connection to the back-end: the same process if it still serves, else a launch again. */
async function reconnect(
  ctx: CheckContext,
  first: { socket: string; alive: () => boolean; exited: Promise<unknown> } | null,
  args: string[],
): Promise<{ connection: Connection; how: string; relaunched: boolean }> {
  if (first === null)
    return {
      connection: await frontendConnection(ctx),
      how: 'reconnected to the back-end',
      relaunched: false,
    };
  // A back-end that ends once its front-end leaves (the spec lets it) is given the time to end.
  await Promise.race([first.exited.catch(() => undefined), sleep(quietMs(ctx))]);
  if (first.alive()) {
    try {
      const connection = Connection.fromFd(connectUnix(first.socket), ctx.timeoutMs);
      ctx.scope.defer('front-end connection (reconnected)', () => connection.close());
      return { connection, how: 'reconnected to the same process', relaunched: false };
    } catch {
      // Not listening any more: it is launched again below, as QEMU reconnects to a restarted back-end.
    }
  }
  const served = await serveOnSocketPathAt(ctx, first.socket, args);
  return {
    connection: served.connection,
    how: 'the back-end launched again at the same socket and disk (it ended with its first front-end)',
    relaunched: true,
  };
}
