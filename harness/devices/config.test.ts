import { expect } from 'chai';
import { BLK_CONFIG } from './block/blk.js';
import { encodeVirtioFsConfig, FS_CONFIG } from './fs/fuse.js';
import { GPU_CONFIG } from './gpu/gpu.js';
import { NET_CONFIG } from './net/net.js';

describe("devices/config: each type's config space", () => {
  it('decodes the guest-visible fields of each device type, leaving out those the device changes', () => {
    const gpu = Buffer.alloc(16);
    gpu.writeUInt32LE(1, 0); // events_read: changes at run time
    gpu.writeUInt32LE(2, 8);
    expect(GPU_CONFIG.fields(gpu)).to.deep.equal({ num_scanouts: 2, num_capsets: 0 });

    expect(FS_CONFIG.fields(encodeVirtioFsConfig('share', 1))).to.deep.equal({
      tag: 'share',
      num_request_queues: 1,
    });

    const net = Buffer.alloc(NET_CONFIG.size);
    Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]).copy(net);
    net.writeUInt16LE(1, 6); // status: link up, changes at run time
    net.writeUInt16LE(4, 8);
    net.writeUInt16LE(1500, 10);
    expect(NET_CONFIG.fields(net)).to.deep.equal({
      mac: '52:54:00:12:34:56',
      max_virtqueue_pairs: 4,
      mtu: 1500,
      speed: 0,
      duplex: 0,
    });

    const blk = Buffer.alloc(BLK_CONFIG.size);
    blk.writeBigUInt64LE(0x1_0000_0000_0000n, 0);
    blk.writeUInt16LE(1000, 16);
    blk.writeUInt8(16, 18);
    blk.writeUInt8(63, 19);
    blk.writeUInt32LE(4096, 20);
    blk.writeUInt16LE(2, 34);
    expect(BLK_CONFIG.fields(blk)).to.deep.equal({
      capacity: '281474976710656',
      size_max: 0,
      seg_max: 0,
      'geometry.cylinders': 1000,
      'geometry.heads': 16,
      'geometry.sectors': 63,
      blk_size: 4096,
      num_queues: 2,
    });
  });
});
