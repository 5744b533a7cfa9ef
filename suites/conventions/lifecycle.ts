/**
 * The back-end as a process: it must not daemonize, must run with fds 0-2 on /dev/null, and must end on
 * SIGTERM (vhost-user.rst, Backend program conventions).
 */
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { SkipError, TimeoutError } from '../../harness/errors.js';
import type { BackendProcess } from '../../harness/process/backend.js';
import { describeExit, serveOnSocketPath, socketPath, waitListening } from '../../harness/process/probes.js';
import { isSelfOrDescendant, readStat } from '../../harness/process/procfs.js';
import { type CheckContext, defineChecks, Spec } from '../../harness/runner/check.js';
import { peerCred } from '../../harness/sys/libc.js';
import { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { pollUntil } from '../../harness/util/deadline.js';

/** Asserts that `backend` still runs in the session it was started in, and that `server` is it or its child. */
function expectNotDaemonized(backend: BackendProcess, server: number, when: string): void {
  const session = readStat(process.pid)?.session;
  expect(
    backend.alive,
    `${when}, the launched process had exited (${describeExit(backend.exit)}): it went to the background`,
  ).to.equal(true);
  const stat = readStat(backend.pid);
  expect(stat?.session, `${when}, the launched process left its session (setsid)`).to.equal(session);
  expect(
    isSelfOrDescendant(server, backend.pid),
    `${when}, the connection is served by pid ${server}, which is not the launched process ${backend.pid} nor its descendant`,
  ).to.equal(true);
  expect(
    readStat(server)?.session,
    `${when}, the serving process ${server} left the session (setsid)`,
  ).to.equal(session);
}

/** SIGTERM, then the time it took and how it ended; a deadline miss is a TIMEOUT (SIGKILL then ends it). */
async function terminate(ctx: CheckContext, backend: BackendProcess, state: string): Promise<string> {
  const ended = await backend.terminate(ctx.timeoutMs);
  if (ended.killed)
    throw new TimeoutError(
      `the back-end to end after SIGTERM (${state})`,
      ctx.timeoutMs,
      'SIGKILL was needed',
    );
  return `ended ${Math.round(ended.afterMs)} ms after SIGTERM with ${describeExit(ended.exit)}`;
}

export const lifecycleChecks = defineChecks('conventions', [
  {
    id: 'conv.no-daemon',
    detail:
      'the launched process stays alive in its session, and it (or its child, by `SO_PEERCRED`) serves the connection, before and after negotiation',
    needs: ['conv.socket-path.reply'],
    title: 'the launched process stays in the foreground and serves the connection itself',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "The back-end program must not daemonize itself, but it may be daemonized by the management layer."',
    async run(ctx) {
      const { backend, connection, fd } = await serveOnSocketPath(ctx);
      const server = peerCred(fd).pid;
      expectNotDaemonized(backend, server, 'once listening');
      await new FrontendSession(connection).negotiate();
      expectNotDaemonized(backend, server, 'after negotiation');
      return `pid ${backend.pid} serves the connection${server === backend.pid ? '' : ` through its child ${server}`}`;
    },
  },
  {
    id: 'conv.no-survivors',
    detail: 'after it ends on SIGTERM, no process it started is still running',
    needs: ['conv.socket-path.reply'],
    title: 'no process the back-end started outlives it',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "The back-end program must end (as quickly and cleanly as possible) when the SIGTERM signal is received."; and "The back-end program must not daemonize itself"',
    async run(ctx) {
      const { backend, connection } = await serveOnSocketPath(ctx);
      await new FrontendSession(connection).negotiate();
      const children = backend.noteDescendants();
      const ended = await backend.terminate(ctx.timeoutMs);
      const survivors = await pollUntil(
        () => {
          const left = backend.survivors();
          return left.length ? undefined : left;
        },
        ctx.timeoutMs,
        'the processes it started to end',
      ).catch((err) => {
        if (!(err instanceof TimeoutError)) throw err;
        return backend.survivors();
      });
      expect(
        survivors.map((s) => `pid ${s.pid} (${s.comm})`),
        `still running ${ctx.timeoutMs} ms after the back-end ended (${describeExit(ended.exit)})`,
      ).to.deep.equal([]);
      return children.length ? `${children.length} child process(es), all ended` : 'started no process';
    },
  },
  {
    id: 'conv.stdio-devnull',
    detail: 'with fds 0, 1 and 2 on /dev/null it starts and serves',
    needs: ['conv.socket-path.reply'],
    title: 'starts and serves with fds 0, 1 and 2 on /dev/null',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "File descriptors 0, 1 and 2 will exist, and have regular stdin/stdout/stderr usage (they may have been redirected to /dev/null by the management layer, or to a log handler)."; and (of --socket-path) "They are mandatory, unless explicitly said differently"',
    async run(ctx) {
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`], { stdio: 'devnull' });
      await waitListening(ctx, backend, socket);
      const { connection } = await Connection.connect(socket, ctx.timeoutMs);
      ctx.scope.defer('front-end connection', () => connection.close());
      await connection.requestU64('GET_FEATURES');
      return 'served GET_FEATURES';
    },
  },
  {
    id: 'conv.sigterm.idle',
    detail: 'SIGTERM with no front-end connected ends it within the deadline (time and exit reported)',
    needs: ['conv.socket-path.listen'],
    title: 'ends promptly on SIGTERM while no front-end is connected',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "The back-end program must end (as quickly and cleanly as possible) when the SIGTERM signal is received."',
    async run(ctx) {
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`]);
      await waitListening(ctx, backend, socket);
      return terminate(ctx, backend, 'idle');
    },
  },
  {
    id: 'conv.sigterm.connected',
    detail: 'SIGTERM after a front-end connected and negotiated ends it within the deadline',
    needs: ['conv.socket-path.reply'],
    title: 'ends promptly on SIGTERM while a front-end is connected',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "The back-end program must end (as quickly and cleanly as possible) when the SIGTERM signal is received."',
    async run(ctx) {
      const { backend, connection } = await serveOnSocketPath(ctx);
      await new FrontendSession(connection).negotiate();
      return terminate(ctx, backend, 'connected');
    },
  },
  {
    id: 'conv.sigterm.socket-removed',
    detail: 'the socket file is gone once it ended on SIGTERM',
    needs: ['conv.socket-path.listen'],
    title: 'removes its socket file when it ends on SIGTERM',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'interoperability (no sentence names the socket file; the nearest, vhost-user.rst (QEMU 7.2), Backend program conventions: "The back-end program must end (as quickly and cleanly as possible) when the SIGTERM signal is received."): a launcher that starts a back-end again at the same --socket-path, or checks for it, finds a file nobody listens at',
    interop: true,
    async run(ctx) {
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`]);
      await waitListening(ctx, backend, socket);
      const ended = await backend.terminate(ctx.timeoutMs);
      if (ended.killed) throw new SkipError('it did not end on SIGTERM (see conv.sigterm.idle)');
      expect(existsSync(socket), `${socket} was left behind (${describeExit(ended.exit)})`).to.equal(false);
      return `socket removed; ${describeExit(ended.exit)}`;
    },
  },
]);
