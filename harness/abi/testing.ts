/** Fingerprints for the unit tests, built with the same functions the probe uses. */
import { BLK_CONFIG, BLK_CONFIG_SIZE } from '../devices/block/blk.js';
import { ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { profileNegotiations, protocolFeatureSet, virtioFeatureSet } from './features.js';
import { ABI_FORMAT, ABI_FORMAT_VERSION, type AbiFingerprint } from './format.js';

const bit = (n: number) => 1n << BigInt(n);

/** What the reference block fixture offers: BLK_SIZE, FLUSH, LOG_ALL, INDIRECT_DESC, EVENT_IDX, bit 30, VERSION_1. */
export const BLOCK_OFFER =
  bit(6) |
  bit(9) |
  bit(VirtioFeature.VHOST_F_LOG_ALL) |
  bit(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC) |
  bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX) |
  bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES) |
  bit(VirtioFeature.VIRTIO_F_VERSION_1);

export const BLOCK_PROTOCOL = [
  ProtocolFeature.MQ,
  ProtocolFeature.LOG_SHMFD,
  ProtocolFeature.REPLY_ACK,
  ProtocolFeature.CONFIG,
  ProtocolFeature.INFLIGHT_SHMFD,
  ProtocolFeature.CONFIGURE_MEM_SLOTS,
].reduce((acc, n) => acc | bit(n), 0n);

/** A block device of `sectors` 512-byte sectors and `blkSize`, with the reference's features. */
export function blockAbi(
  options: {
    offer?: bigint;
    protocol?: bigint | null;
    sectors?: bigint;
    blkSize?: number;
    queues?: number;
    ring?: number;
  } = {},
): AbiFingerprint {
  const offer = options.offer ?? BLOCK_OFFER;
  const protocol = options.protocol === undefined ? BLOCK_PROTOCOL : options.protocol;
  const config = Buffer.alloc(BLK_CONFIG_SIZE);
  config.writeBigUInt64LE(options.sectors ?? 2048n, 0);
  config.writeUInt32LE(options.blkSize ?? 512, 20);
  const queues = options.queues ?? 1;
  return {
    format: ABI_FORMAT,
    formatVersion: ABI_FORMAT_VERSION,
    backend: { binary: '/usr/bin/example-blk', args: [] },
    type: 'block',
    capabilities: { type: 'block' },
    virtioFeatures: virtioFeatureSet(offer, 'block'),
    protocolFeatures: protocol === null ? null : protocolFeatureSet(protocol),
    queueCount: queues,
    ringSizes: {
      status: 'probed',
      method: 'reply-ack',
      maxPerQueue: Array(queues).fill(options.ring ?? 32768),
    },
    maxMemSlots: 32,
    config: {
      status: 'read',
      size: BLK_CONFIG_SIZE,
      hex: config.toString('hex'),
      fields: BLK_CONFIG.fields(config),
    },
    profiles: profileNegotiations(offer, protocol, 'block'),
  };
}
