/**
 * The config space of each device type as the fingerprint records it: the size GET_CONFIG asks for, and the
 * guest-visible fields a move must keep, decoded by the device's own decoder (harness/devices/*). Fields the
 * device changes at run time (events_read, net status, blk writeback) are left out: they differ between two
 * hosts without a guest noticing.
 */
import { BLK_CONFIG_SIZE, decodeBlkConfig } from '../devices/block/blk.js';
import { decodeVirtioFsConfig, VIRTIO_FS_CONFIG_SIZE } from '../devices/fs/fuse.js';
import { decodeGpuConfig } from '../devices/gpu/gpu.js';
import { decodeNetConfig, NET_CONFIG_SIZE } from '../devices/net/net.js';
import { VirtioGpuSize } from '../protocol/gpu-spec.js';

export interface ConfigLayout {
  /** The bytes GET_CONFIG asks for. */
  size: number;
  /** Queues the device has at least: the rings probed when GET_QUEUE_NUM does not say. */
  minQueues: number;
  /** The guest-visible fields, by the virtio spec's names; 64-bit values as decimal strings. */
  fields(bytes: Buffer): Record<string, number | string>;
}

export const CONFIG_LAYOUTS: Readonly<Record<string, ConfigLayout>> = {
  block: {
    size: BLK_CONFIG_SIZE,
    minQueues: 1,
    fields(bytes) {
      const c = decodeBlkConfig(bytes);
      return {
        capacity: c.capacity.toString(),
        size_max: c.sizeMax,
        seg_max: c.segMax,
        'geometry.cylinders': c.geometry.cylinders,
        'geometry.heads': c.geometry.heads,
        'geometry.sectors': c.geometry.sectors,
        blk_size: c.blkSize,
        ...(c.numQueues === undefined ? {} : { num_queues: c.numQueues }),
      };
    },
  },
  net: {
    size: NET_CONFIG_SIZE,
    minQueues: 2,
    fields(bytes) {
      const c = decodeNetConfig(bytes);
      return {
        mac: c.mac,
        max_virtqueue_pairs: c.maxVirtqueuePairs,
        mtu: c.mtu,
        speed: c.speed,
        duplex: c.duplex,
      };
    },
  },
  fs: {
    size: VIRTIO_FS_CONFIG_SIZE,
    minQueues: 2,
    fields(bytes) {
      const c = decodeVirtioFsConfig(bytes);
      const nul = c.tag.indexOf(0);
      return {
        tag: Buffer.from(c.tag.subarray(0, nul < 0 ? c.tag.length : nul)).toString('utf8'),
        num_request_queues: c.numRequestQueues,
      };
    },
  },
  gpu: {
    size: VirtioGpuSize.CONFIG,
    minQueues: 2,
    fields(bytes) {
      const c = decodeGpuConfig(bytes);
      return { num_scanouts: c.numScanouts, num_capsets: c.numCapsets };
    },
  },
};
