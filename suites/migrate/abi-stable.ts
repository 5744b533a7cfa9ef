/**
 * migrate.abi-stable: a back-end launched the same way shows the guest the same device every time. A
 * front-end that reconnects (to the same process, or to one restarted at the same socket) and a VM moved to
 * a back-end launched the same way keep what the guest already has. The guest-ABI fingerprint of
 * `vhu-conform abi` (harness/abi) is taken on a first connection, on a second connection to the same
 * back-end as QEMU's reconnection makes one, and on a second launch with the very same arguments, socket
 * path included; all must be equal.
 */
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { abiDifferences, type DiffNames } from '../../harness/abi/diff.js';
import type { AbiFingerprint } from '../../harness/abi/format.js';
import { takeFingerprint } from '../../harness/abi/probe.js';
import { BackendError, SkipError, VhuError } from '../../harness/errors.js';
import type { BackendProcess } from '../../harness/process/backend.js';
import { probeCapabilities } from '../../harness/process/capabilities.js';
import { describeExit, markAttachedGone, waitListening } from '../../harness/process/probes.js';
import { isListeningAt } from '../../harness/process/procfs.js';
import { Scope } from '../../harness/process/scope.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';

/** Where the virtio spec's device requirements on feature bits are. */
const FEATURE_BITS = 'virtio-spec#sec-basic-facilities-of-a-virtio-device-feature-bits';

/** The key of the run's one comparison (Target.backendMemo): the fingerprint depends on no front-end profile. */
const MEMO = 'migrate.abi-stable';

/**
 * The fingerprint over one connection to `socket`; the connection is closed once it is taken (the scope of
 * the check owns it too, should the check be cut short).
 */
async function fingerprintAt(ctx: CheckContext, socket: string, type: string): Promise<AbiFingerprint> {
  const scope = new Scope();
  ctx.scope.defer('fingerprint connection', async () => {
    await scope.close();
  });
  try {
    // Ring sizes by REPLY_ACK only: found by use (without it) they hang on deadlines, a launch's timing is
    // not its guest ABI, and a size per launch would outrun the check's budget.
    return await takeFingerprint(
      { connect: socket, type, timeoutMs: ctx.timeoutMs, ringProbe: 'reply-ack' },
      scope,
    );
  } finally {
    // What could not be released is the check's teardown failure, reported when its scope closes.
    for (const problem of await scope.close())
      ctx.scope.defer(`fingerprint connection: ${problem}`, () => {
        throw new Error(problem);
      });
  }
}

/** The first line of an error's message, for a note. */
function firstLine(err: Error): string {
  return err.message.split('\n')[0]!.split('; wire:')[0]!;
}

/**
 * The fingerprint over a second connection to the back-end at `socket`, made as soon as the first one is
 * closed, as QEMU reconnects; or why there is nothing to compare: a launched back-end that ended once its
 * front-end left (the spec lets it), or one that serves no second front-end (proto.lifecycle.reconnect's
 * finding, not this check's). In attach mode a back-end gone is recorded for the later checks.
 */
async function reconnect(
  ctx: CheckContext,
  socket: string,
  type: string,
  backend: BackendProcess | undefined,
): Promise<{ abi: AbiFingerprint } | { why: string }> {
  const leftAt = performance.now();
  try {
    return { abi: await fingerprintAt(ctx, socket, type) };
  } catch (err) {
    if (!(err instanceof VhuError) || err instanceof SkipError) throw err;
    if (backend) {
      // A back-end on its way out may still have taken the connection.
      const left = Math.max(0, leftAt + ctx.timeoutMs - performance.now());
      await Promise.race([backend.exited.catch(() => undefined), sleep(left, undefined, { ref: false })]);
      if (!backend.alive)
        return {
          why: `it ended once its front-end left (${describeExit(backend.exit)}): no reconnection to compare`,
        };
      return {
        why: `a second connection was not served (${firstLine(err)}): proto.lifecycle.reconnect's to judge`,
      };
    }
    if (!isListeningAt(socket)) {
      markAttachedGone(ctx, `it stopped listening at ${socket} once its front-end left`);
      throw new SkipError(
        `it no longer listens at ${socket} once its front-end left: it serves one front-end, and nothing restarts it in attach mode`,
      );
    }
    throw new SkipError(
      `a second connection was not served (${firstLine(err)}): proto.lifecycle.reconnect's to judge; nothing to compare`,
    );
  }
}

/** The fingerprint in a few words, for the message of a pass. */
function summary(abi: AbiFingerprint): string {
  const sizes = abi.ringSizes.status === 'probed' ? abi.ringSizes.maxPerQueue : [];
  const rings =
    abi.ringSizes.status !== 'probed'
      ? 'not probed'
      : new Set(sizes).size === 1 && sizes.length > 1
        ? `${sizes[0]} on each of ${sizes.length} queues`
        : sizes.join('/');
  const config = abi.config.status === 'read' ? `${abi.config.size} bytes` : 'not read';
  return (
    `features ${abi.virtioFeatures.hex}, protocol features ${abi.protocolFeatures?.hex ?? '-'}, ` +
    `queues ${abi.queueCount ?? '-'}, ring sizes ${rings}, config space ${config}`
  );
}

/** `what differs: line; line`, or nothing when the two are equal. */
function differences(what: string, a: AbiFingerprint, b: AbiFingerprint, names: DiffNames): string[] {
  const lines = abiDifferences(a, b, names);
  return lines.length ? [`${what}: ${lines.join('; ')}`] : [];
}

/** Attach mode: the back-end someone else started, over two connections. */
async function compareReconnect(ctx: CheckContext, socket: string, type: string): Promise<string> {
  let first: AbiFingerprint;
  try {
    first = await fingerprintAt(ctx, socket, type);
  } catch (err) {
    if (err instanceof VhuError && !isListeningAt(socket)) {
      markAttachedGone(ctx, `nothing listens at ${socket} any more`);
      throw new SkipError(
        `the attached back-end is gone (nothing listens at ${socket}); nothing restarts it`,
      );
    }
    throw err;
  }
  const again = await reconnect(ctx, socket, type, undefined);
  if (!('abi' in again)) throw new SkipError(again.why);
  const found = differences('a second connection differs from the first', first, again.abi, {
    first: 'connection 1',
    second: 'connection 2',
  });
  if (found.length) throw new BackendError(found.join('; '));
  return `two connections gave the same fingerprint (${summary(first)}); attach mode: the launches are not compared (nothing is launched)`;
}

/** Launch mode: a launch compared with itself reconnected, and with a second launch at the same socket. */
async function compareLaunches(ctx: CheckContext, type: string): Promise<string> {
  const socket = `${await ctx.scope.tempDir('vhu-abi-stable-')}/backend.sock`;
  const launchAt = async () => {
    const backend = ctx.launch([`--socket-path=${socket}`]);
    await waitListening(ctx, backend, socket);
    return backend;
  };
  const one = await launchAt();
  const first = await fingerprintAt(ctx, socket, type);
  const again = await reconnect(ctx, socket, type, one);
  await one.terminate(ctx.timeoutMs);
  // A socket file left behind is conv.sigterm.socket-removed's finding; cleared as a launcher would.
  await rm(socket, { force: true });
  const two = await launchAt();
  const second = await fingerprintAt(ctx, socket, type);
  await two.terminate(ctx.timeoutMs);
  // The run took launch 1's --print-capabilities already; launch 2's is asked again.
  const capabilities = await probeCapabilities(
    ctx.scope,
    ctx.target.binary,
    ctx.target.extraArgs,
    ctx.timeoutMs,
  );

  const found = [
    ...('abi' in again
      ? differences('a second connection to launch 1 differs from the first', first, again.abi, {
          first: 'connection 1',
          second: 'connection 2',
        })
      : []),
    ...differences(
      'launch 2 (the same arguments, the same socket path) differs from launch 1',
      { ...first, capabilities: ctx.target.capabilities },
      { ...second, capabilities: capabilities.document ?? null },
      { first: 'launch 1', second: 'launch 2' },
    ),
  ];
  if (found.length) throw new BackendError(found.join('; '));
  const reconnected = 'abi' in again ? 'a second connection to launch 1 gave it too' : again.why;
  return `two launches with the same arguments and socket path gave the same fingerprint (${summary(first)}) and the same --print-capabilities; ${reconnected}`;
}

export const abiStableChecks = defineChecks('migrate', [
  {
    id: 'migrate.abi-stable',
    title: 'the guest ABI is the same across a reconnection and across two launches with the same arguments',
    detail:
      'the `abi` fingerprint (virtio and protocol features offered, `GET_QUEUE_NUM`, the largest ring size each queue accepts, `GET_MAX_MEM_SLOTS`, the config space of `GET_CONFIG`) on a first connection, on a second connection to the same back-end made as soon as the first is closed (as QEMU reconnects), and on a second launch with the very same arguments and socket path, with `--print-capabilities` again: all equal, each differing field named with both values; a back-end that ends when its front-end leaves has its launches compared only; in attach mode only the two connections; taken once a run, whatever the front-end profile (the fingerprint depends on none)',
    severity: 'SHOULD',
    spec: FEATURE_BITS,
    rule:
      'interoperability (no sentence asks a back-end for the same offer across launches or connections; the ' +
      'nearest, virtio spec (1.1 and later), Device Requirements: Feature Bits: "If a device has successfully ' +
      'negotiated a set of features at least once (by accepting the FEATURES_OK device status bit during ' +
      'device initialization), then it SHOULD NOT fail re-negotiation of the same set of features after a ' +
      'device or system reset."; vhost-user.rst (QEMU 7.2), Communication: "An optional reconnection ' +
      'mechanism can be implemented."): QEMU 7.2 reconnects to a back-end, restarted or not, under a running ' +
      'guest: vhost_user_blk_connect (hw/block/vhost-user-blk.c) runs vhost_dev_init again, whose ' +
      'vhost_user_backend_init (hw/virtio/vhost-user.c) fails the device when CONFIG is no longer offered or ' +
      'GET_QUEUE_NUM is below its queues, then restarts the rings with the features the guest acked before ' +
      '(vhost_user_blk_start: acked_features = vdev->guest_features), keeping the config space it read at ' +
      'realize; a migration lands the guest on a back-end launched the same way with the same expectations',
    interop: true,
    // The offer across launches is proto.negotiation.stable's: one defect, one failure.
    needs: ['proto.negotiation.stable'],
    // Two launches, three fingerprints (each a handful of requests, up to 16 per queue), two stops.
    budgetMs: (timeoutMs) => 16 * timeoutMs + 5000,
    async run(ctx) {
      const type = ctx.target.type;
      if (type === null)
        throw new SkipError(
          'no device type (--print-capabilities reported none, or attach mode without --type): the fingerprint reads the config space of a known type',
        );
      // Every profile's run of the check gets the one comparison: nothing in it depends on the profile.
      const profile = ctx.target.frontend ?? 'qemu';
      let memo = ctx.target.backendMemo.get(MEMO) as
        | Promise<{ profile: string; message: string }>
        | undefined;
      if (!memo) {
        const message =
          ctx.target.connect !== null
            ? compareReconnect(ctx, ctx.target.connect, type)
            : compareLaunches(ctx, type);
        memo = message.then((m) => ({ profile, message: m }));
        ctx.target.backendMemo.set(MEMO, memo);
      }
      const done = await memo;
      return done.profile === profile
        ? done.message
        : `${done.message} (compared under the ${done.profile} profile: the fingerprint depends on none)`;
    },
  },
]);
