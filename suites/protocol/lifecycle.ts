/**
 * A front-end that leaves mid-session and one that comes back at once (vhost-user.rst, Communication: a
 * front-end closes the connection when a message fails, and "an optional reconnection mechanism can be
 * implemented"). The spec lets a back-end either end with its front-end or serve the next one, and binds it to
 * neither: doing one of them cleanly is an interoperability check (SHOULD), since a back-end that crashes, hangs,
 * or stays alive refusing the next front-end strands a management layer that restarts or reconnects it.
 */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import type { BackendProcess } from '../../harness/process/backend.js';
import {
  describeExit,
  markAttachedGone,
  serveOnSocketPath,
  stderrLine,
} from '../../harness/process/probes.js';
import { isListeningAt } from '../../harness/process/procfs.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { connectUnix } from '../../harness/sys/libc.js';
import { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { openBlock, QUEUE_SIZE } from '../common/block.js';
import { NEEDS_DATA_PATH } from '../vring/common.js';
import { NEEDS_SOCKET, ProtocolSpec } from './common.js';

/** How often the socket is tried while the back-end decides. */
const RETRY_MS = 10;

/**
 * A session as a front-end runs one: negotiation, memory table, vring 0 set up and enabled, and for a block
 * device four reads through it (the only driver yet). Says what ran.
 */
async function runSession(ctx: CheckContext, connection: Connection): Promise<string> {
  if (ctx.target.type === 'block') {
    const { blk, scratch } = await openBlock(ctx, { connection });
    await blk.runAll(
      [0, 1, 2, 3].map((i) => ({ type: 'IN', sector: scratch + BigInt(i * 4), count: 4 }) as const),
    );
    return 'negotiated, vring 0 set up, 4 reads done';
  }
  const session = new FrontendSession(connection);
  await session.negotiate({ protocolFeatures: 1n << BigInt(ProtocolFeature.REPLY_ACK) });
  const device = new FrontendDevice(session, ctx.scope);
  await device.setMemTable();
  await device.setUpRing(0, QUEUE_SIZE);
  if (hasBit(session.features ?? 0n, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES))
    await device.enable(0, true);
  return `negotiated, vring 0 set up (no ${ctx.target.type ?? 'unknown-type'} driver: no requests)`;
}

/** The verdict on a launched back-end that ended after its front-end left. */
function judgeExit(backend: BackendProcess, socket: string, leftAt: number): string {
  const exit = backend.exit!;
  const after = Math.round((backend.exitedAt ?? performance.now()) - leftAt);
  if (exit.code !== 0) {
    throw new BackendError(
      `it ended ${after} ms after its front-end left, ${describeExit(exit)}: not a clean exit; ${stderrLine(backend)}`,
    );
  }
  const file = existsSync(socket) ? `its socket file ${socket} was left behind` : 'its socket file removed';
  return `chose to exit: status 0 ${after} ms after its front-end left (${file})`;
}

/**
 * Connects again at once and runs a session. Resolves with what the back-end chose; throws when it chose
 * neither cleanly within the deadline.
 */
async function reconnect(
  ctx: CheckContext,
  socket: string,
  backend: BackendProcess | undefined,
  leftAt: number,
): Promise<string> {
  const end = leftAt + ctx.timeoutMs;
  let refused = 'nothing tried';
  for (;;) {
    if (backend && !backend.alive) return judgeExit(backend, socket, leftAt);
    let fd: number | undefined;
    try {
      fd = connectUnix(socket);
    } catch (err) {
      refused = (err as Error).message;
    }
    if (fd !== undefined) {
      const connection = Connection.fromFd(fd, Math.max(1, Math.round(end - performance.now())));
      ctx.scope.defer('second front-end connection', () => connection.close());
      try {
        const ran = await runSession(ctx, connection);
        const after = Math.round(performance.now() - leftAt);
        return `chose to serve a new front-end: connected again ${after} ms after the first left; ${ran}`;
      } catch (err) {
        if (!(err instanceof BackendError || err instanceof TimeoutError)) throw err;
        connection.close();
        // A back-end that is exiting may still have its listener open: a connection then dies with it.
        if (backend) {
          const left = Math.max(0, end - performance.now());
          await Promise.race([backend.exited.catch(() => undefined), sleep(left)]);
          if (!backend.alive) return judgeExit(backend, socket, leftAt);
        }
        throw new BackendError(
          `after its front-end left, a new front-end connected to ${socket}, but ${err.message}; ` +
            (backend ? `the back-end is still running (pid ${backend.pid})` : 'the back-end still listens'),
          { cause: err },
        );
      }
    }
    if (!backend && !isListeningAt(socket)) {
      // Attach mode: the process is not ours, its exit status unseen.
      markAttachedGone(ctx, `it stopped listening at ${socket} once its front-end left`);
      throw new SkipError(
        `it no longer listens at ${socket} after its front-end left: it ended (or closed its listener), and ` +
          'whether cleanly cannot be seen in attach mode',
      );
    }
    if (performance.now() >= end) break;
    await sleep(RETRY_MS);
  }
  throw new TimeoutError(
    'the back-end to exit or to serve a new front-end after its front-end left',
    ctx.timeoutMs,
    `${backend ? `still running (pid ${backend.pid})` : 'still listening'}; connecting to ${socket}: ${refused}`,
  );
}

export const protocolLifecycleChecks = defineChecks(
  'protocol',
  [
    {
      id: 'proto.lifecycle.reconnect',
      detail:
        'its front-end closes the connection after rings and traffic, and one connects again at once: it exits with status 0, or serves the new one (negotiation, vring 0, requests); the message says which',
      title: 'once its front-end leaves mid-session, it exits cleanly or serves a new front-end at once',
      severity: 'SHOULD',
      spec: ProtocolSpec.communication,
      rule: 'interoperability (vhost-user.rst (QEMU 7.2), Communication: "If *front-end* is unable to send the full message or receives a wrong reply it will close the connection. An optional reconnection mechanism can be implemented."; no sentence binds the back-end): a management layer restarts a back-end that exits, and a front-end with reconnection connects again; one that crashes, hangs, or lives on refusing the next front-end strands both',
      interop: true,
      needs: [NEEDS_SOCKET, NEEDS_DATA_PATH],
      async run(ctx) {
        let backend: BackendProcess | undefined;
        let socket: string;
        let first: Connection;
        if (ctx.target.connect !== null) {
          socket = ctx.target.connect;
          first = (await Connection.connect(socket, ctx.timeoutMs)).connection;
          ctx.scope.defer('front-end connection', () => first.close());
        } else {
          const served = await serveOnSocketPath(ctx);
          ({ backend, socket } = served);
          first = served.connection;
        }
        const ran = await runSession(ctx, first);
        first.close();
        const leftAt = performance.now();
        const chose = await reconnect(ctx, socket, backend, leftAt);
        return `first front-end: ${ran}, then closed; ${chose}`;
      },
    },
  ],
  { destructive: true },
);
