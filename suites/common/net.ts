/**
 * virtio-net queue pairs started as the run's front-end profile starts them (`openNet`, `openNetPairs`):
 * what the net checks and the net bench drive.
 */

import { NetDriver, VirtioNetFeature } from '../../harness/devices/net/net.js';
import { SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from './device.js';
import { requireOffered, ringFeatures, type WantedFeature } from './ring-features.js';

/** Ring size: testpmd and the fixture take it, and 32 receive buffers fit many times. */
const QUEUE_SIZE = 256;
/**
 * Packed ring size: small and not a power of two (packed rings need not be), so that the frames of a check
 * go round it many times and both wrap counters flip again and again.
 */
export const PACKED_SIZE = 48;

/**
 * Queue pair 0 of a fresh connection, set up as the run's front-end profile does, receive buffers posted;
 * with `packed`, in the packed layout (skip when VIRTIO_F_RING_PACKED is not offered).
 */
export async function openNet(ctx: CheckContext, options: NetOpenOptions = {}): Promise<NetDriver> {
  return (await openNetPairs(ctx, { ...options, allPairs: false })).nets[0]!;
}

export interface NetOpenOptions {
  packed?: boolean;
  /** Feature bits the check needs, negotiated (skip when one is not offered), with their names. */
  want?: readonly WantedFeature[];
  /** Receive buffers: how many, and their size (default 32 of the header and the largest frame). */
  rx?: { buffers: number; bufferSize: number };
}

/** The most queue pairs a check drives at once. */
export const MAX_PAIRS = 4;

/** Queue pairs set up on one connection, and how to enable more of them. */
export interface NetPairs {
  nets: NetDriver[];
  /** SET_VRING_ENABLE 1 for both rings of `pair`, as the front-end does when the driver uses it. */
  enable(pair: number): Promise<void>;
}

/**
 * Queue pairs of a fresh connection: pair 0 only, or with `allPairs` every pair GET_QUEUE_NUM announces
 * (VIRTIO_NET_F_MQ negotiated; up to MAX_PAIRS), skip when that is fewer than two; with `firstPairOnly`,
 * only the first pair's rings are enabled. Receive buffers posted on each.
 */
export async function openNetPairs(
  ctx: CheckContext,
  options: NetOpenOptions & { allPairs: boolean; firstPairOnly?: boolean },
): Promise<NetPairs> {
  requireDevice(ctx, 'net');
  const session = new FrontendSession(await frontendConnection(ctx));
  const started = await initTargetSession(ctx, session, {
    protocol: true,
    required: options.allPairs ? 1n << BigInt(ProtocolFeature.MQ) : 0n,
  });
  const offered = started.offered;
  if (!hasBit(offered, VirtioFeature.VIRTIO_F_VERSION_1)) {
    throw new SkipError('VIRTIO_F_VERSION_1 is not offered: the legacy 10-byte header is not driven');
  }
  requireOffered(offered, ringFeatures({ packed: options.packed ?? false }));
  const wanted = requireOffered(offered, options.want ?? []);
  let pairs = 1;
  if (options.allPairs) {
    // "If VIRTIO_NET_F_MQ feature bit is negotiated, N=max_virtqueue_pairs, otherwise identify N=1"
    // (virtio 1.3, 5.1.5 Device Initialization): GET_QUEUE_NUM alone (libvhost-user answers it for every
    // device type) gives no more pairs.
    if (!hasBit(offered, VirtioNetFeature.MQ)) {
      throw new SkipError(
        'VIRTIO_NET_F_MQ is not offered: the device has one queue pair (transmitq1 and receiveq1), whatever GET_QUEUE_NUM says',
      );
    }
    if (started.queueNum === undefined) {
      throw new SkipError(
        `no GET_QUEUE_NUM answer (MQ not offered, or the ${started.profile.name} front-end does not ask): one queue pair`,
      );
    }
    pairs = Math.min(Math.floor(started.queueNum / 2), MAX_PAIRS);
    if (pairs < 2) throw new SkipError(`GET_QUEUE_NUM is ${started.queueNum}: one queue pair`);
  }
  const required =
    (1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1)) |
    (options.packed ? 1n << BigInt(VirtioFeature.VIRTIO_F_RING_PACKED) : 0n) |
    (options.allPairs ? 1n << BigInt(VirtioNetFeature.MQ) : 0n) |
    wanted;
  // A driver of several pairs acks VIRTIO_NET_F_MQ where offered: a front-end that enables the rings before
  // SET_FEATURES (QEMU 7.2's vhost-user-net) would see a back-end drop every pair but the first without it
  // (DPDK's vhost library does, as it may). Whether a device without it may serve several is item 3's.
  const mq = options.allPairs ? 1n << BigInt(VirtioNetFeature.MQ) : 0n;
  const features = ackFeatures(started, required | mq, required);
  const device = new FrontendDevice(session, ctx.scope);
  const size = options.packed ? PACKED_SIZE : QUEUE_SIZE;
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: Array.from({ length: 2 * pairs }, (_, index) => ({
      index,
      size,
      packed: options.packed ?? false,
      inOrder: hasBit(features, VirtioFeature.VIRTIO_F_IN_ORDER),
    })),
    enable: !options.firstPairOnly,
  });
  const protocol = hasBit(features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
  const enable = async (pair: number): Promise<void> => {
    if (!protocol) return;
    await device.enable(2 * pair, true);
    await device.enable(2 * pair + 1, true);
  };
  if (options.firstPairOnly) {
    // Without bit 30 every ring runs at once: there is no state with the first pair alone.
    if (!protocol)
      throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not negotiated: every ring is enabled at once');
    await enable(0);
  }
  const nets = Array.from({ length: pairs }, (_, pair) => {
    const net = new NetDriver(device.ring(2 * pair), device.ring(2 * pair + 1), {
      timeoutMs: ctx.timeoutMs,
      mergeable: hasBit(features, VirtioNetFeature.MRG_RXBUF),
      ...(options.rx ? { rxBuffers: options.rx.buffers, rxBufferSize: options.rx.bufferSize } : {}),
    });
    net.fillRx();
    return net;
  });
  return { nets, enable };
}
