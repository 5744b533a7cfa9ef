/**
 * The destination of a move, as the migrate checks that move a guest (migrate.resume, migrate.device-state)
 * start it: a second launch of the binary under test, the --migrate-to binary, or the back-end listening at
 * --migrate-to-connect; its session started as the run's front-end profile starts one, with the features the
 * guest has.
 *
 * A destination that lacks a feature the guest has is a SKIP naming it, not a FAIL: no sentence of
 * vhost-user.rst or of the virtio spec asks a back-end to offer what another one offers, and no front-end
 * moves such a guest (it does not renegotiate: QEMU's virtio_load refuses the incoming state, "Features ...
 * unsupported"), so there is no move to judge and no rule either back-end broke. Whether the pair can take
 * the guest is `vhu-conform compat`'s question, which answers it with exit 1 and the same reasons.
 */
import { featuresLacking } from '../../harness/abi/compat.js';
import { SkipError } from '../../harness/errors.js';
import { initTargetSession, type Started } from '../../harness/frontend/profiles.js';
import { attachedTo, serveOnSocketPath } from '../../harness/process/probes.js';
import type { CheckContext, MigrationDestination } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';

const hex = (v: bigint): string => `0x${v.toString(16).padStart(16, '0')}`;

/** The destination of the run (--migrate-to, --migrate-to-connect), null for a second launch. */
export function moveTarget(ctx: CheckContext): MigrationDestination | null {
  return ctx.target.destination ?? null;
}

/** The destination of the move in messages. */
export function destinationName(destination: MigrationDestination | null): string {
  if (destination === null) return 'a second launch of the same binary';
  return 'connect' in destination
    ? `the back-end at ${destination.connect} (--migrate-to-connect)`
    : `${destination.binary} (--migrate-to)`;
}

/** The guest as the source has it: what the destination must take without renegotiating. */
export interface Guest {
  /** The virtio features the source's SET_FEATURES acknowledged. */
  features: bigint;
  /** The source's session, with its acknowledged protocol features. */
  session: FrontendSession;
  started: Started;
}

/**
 * The destination's session, started as the run's profile starts one (`required` protocol features skip
 * where the profile leaves them out): `args` are what a launch adds to its own arguments (the disk or the
 * directory both sides share). A destination that cannot take the guest is a SkipError naming each bit.
 */
export async function startDestination(
  ctx: CheckContext,
  guest: Guest,
  args: readonly string[],
  required?: bigint,
): Promise<{ session: FrontendSession; started: Started }> {
  const target = moveTarget(ctx);
  const connection: Connection =
    target !== null && 'connect' in target
      ? await attachedTo(ctx, target.connect, 'the destination back-end (--migrate-to-connect)')
      : (await serveOnSocketPath(ctx, [...args], target ?? undefined)).connection;
  const session = new FrontendSession(connection);
  const started = await initTargetSession(ctx, session, {
    protocol: guest.started.protocol,
    ...(required === undefined ? {} : { required }),
  });
  if (target !== null) {
    const lacking = featuresLacking(
      { virtio: guest.features, protocol: guest.session.ackedProtocolFeatures },
      { virtio: started.offered, protocol: session.protocolFeatures ?? 0n },
      ctx.target.type ?? 'unknown',
    );
    if (lacking.length)
      throw new SkipError(
        `the destination, ${destinationName(target)}, cannot take this guest from the source, ` +
          `${ctx.target.binary}: ${lacking.join('; ')}; no front-end moves a guest there (it does not ` +
          'renegotiate), and no rule asks a back-end to offer what another offers: vhu-conform compat ' +
          'judges the pair',
      );
  }
  const missing = guest.features & ~started.offered;
  if (missing !== 0n || started.protocol !== guest.started.protocol) {
    throw new SkipError(
      `the second launch offers other features than the first (${hex(started.offered)} against ` +
        `${hex(guest.started.offered)}; lacking ${hex(missing)}): ` +
        'proto.negotiation.stable judges that; nothing to move to',
    );
  }
  return { session, started };
}
