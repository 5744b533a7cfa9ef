/** What the protocol checks share: a launched back-end with a front-end session, and what it offers. */
import type { ConfigSpace } from '../../harness/devices/config.js';
import { deviceKind } from '../../harness/devices/kinds.js';
import { SkipError } from '../../harness/errors.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { encodeU64 } from '../../harness/protocol/messages.js';
import type { CheckContext } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';

export const ProtocolSpec = {
  communication: 'vhost-user.rst#communication',
  protocolFeatures: 'vhost-user.rst#protocol-features',
  replyAck: 'vhost-user.rst#vhost-user-protocol-f-reply-ack',
  multiQueue: 'vhost-user.rst#multiple-queue-support',
  messages: 'vhost-user.rst#front-end-message-types',
} as const;

/** Every protocol check starts a back-end of its own over --socket-path, as the conventions checks do. */
export const NEEDS_SOCKET = 'conv.socket-path.reply';

export async function openSession(ctx: CheckContext): Promise<FrontendSession> {
  return new FrontendSession(await frontendConnection(ctx));
}

/** GET_FEATURES of a fresh back-end (memoized). */
export function offeredFeatures(ctx: CheckContext): Promise<bigint> {
  return ctx.memo('protocol-features-offer', async () => {
    const session = await openSession(ctx);
    const features = await session.getFeatures();
    // Closed at once: a back-end may serve one front-end at a time (attach mode).
    session.connection.close();
    return features;
  });
}

/**
 * GET_PROTOCOL_FEATURES of a fresh back-end (memoized), asked after SET_FEATURES as every front-end may;
 * undefined when bit 30 is not offered.
 */
export function offeredProtocolFeatures(ctx: CheckContext): Promise<bigint | undefined> {
  return ctx.memo('protocol-offer', async () => {
    const session = await openSession(ctx);
    await session.getFeatures();
    let bits: bigint | undefined;
    if (session.offersProtocolFeatures) {
      await session.expectAck('SET_FEATURES', encodeU64(session.features!));
      bits = await session.getProtocolFeatures();
    }
    session.connection.close();
    return bits;
  });
}

/**
 * A session that negotiated protocol feature `bit` alone, or a skip saying the back-end does not offer it; on
 * `connection` when given (a back-end the check launched with options of its own), else a fresh one.
 */
export async function sessionWith(
  ctx: CheckContext,
  bit: number,
  name: string,
  connection?: Connection,
): Promise<FrontendSession> {
  const session = connection ? new FrontendSession(connection) : await openSession(ctx);
  await session.getFeatures();
  if (!session.offersProtocolFeatures) throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
  await session.getProtocolFeatures();
  if (!session.offers(bit)) throw new SkipError(`VHOST_USER_PROTOCOL_F_${name} is not offered`);
  await session.setProtocolFeatures(1n << BigInt(bit));
  return session;
}

/** Queues a device type has at least (virtio spec, each device's "Virtqueues" section). */
export const MIN_QUEUES: Readonly<Record<string, number>> = {
  block: 1,
  net: 2,
  gpu: 2,
  fs: 2,
  input: 2,
  rng: 1,
  scsi: 3,
  vsock: 3,
  console: 2,
};

/** The device type's config space, as its kind knows it (harness/devices/<type>/); undefined when none does. */
export function configSpaceOf(ctx: CheckContext): ConfigSpace | undefined {
  return deviceKind(ctx.target.type)?.config;
}
