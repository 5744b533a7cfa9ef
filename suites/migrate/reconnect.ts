/**
 * A second front-end connection to a back-end, as QEMU makes one after the first went away: to the same
 * process while it still listens, else to the back-end launched again at the same socket (one that ends with
 * its front-end, as the spec lets it); in attach mode to the attached one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SkipError, VhuError } from '../../harness/errors.js';
import { initTargetSession, type Started } from '../../harness/frontend/profiles.js';
import { frontendConnection, serveOnSocketPathAt } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { connectUnix } from '../../harness/sys/libc.js';
import { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { hex, quietMs } from '../vring/common.js';

/** A new front-end connection to the back-end: the same process if it still serves, else a launch again. */
export async function reconnect(
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

/**
 * The start-up on the new connection, as the first one's (its protocol features, INFLIGHT_SHMFD required): a
 * skip when the connection is not served (proto.lifecycle.reconnect's to judge) or offers other features
 * (migrate.abi-stable's), either way with nothing to hand the buffer back to.
 */
export async function startReconnected(
  ctx: CheckContext,
  again: { connection: Connection; relaunched: boolean },
  first: { started: Started; features: bigint },
): Promise<{ session: FrontendSession; started: Started }> {
  const session = new FrontendSession(again.connection);
  const started = await initTargetSession(ctx, session, {
    protocol: first.started.protocol,
    required: 1n << BigInt(ProtocolFeature.INFLIGHT_SHMFD),
  }).catch((err: unknown) => {
    // A back-end that took the connection and serves it not: proto.lifecycle.reconnect's finding.
    if (!again.relaunched && err instanceof VhuError && !(err instanceof SkipError))
      throw new SkipError(
        `a second connection was not served (${err.message.split('\n')[0]}): proto.lifecycle.reconnect's to ` +
          'judge; no connection to hand the buffer back to',
      );
    throw err;
  });
  const missing = first.features & ~started.offered;
  const inflight = hasBit(session.ackedProtocolFeatures, ProtocolFeature.INFLIGHT_SHMFD);
  if (missing !== 0n || !inflight)
    throw new SkipError(
      `the second connection offers other features (${hex(started.offered)}, lacking ${hex(missing)}; ` +
        `INFLIGHT_SHMFD ${inflight ? 'negotiated' : 'not negotiated'}): migrate.abi-stable judges that; nothing ` +
        'to hand the buffer back to',
    );
  return { session, started };
}
