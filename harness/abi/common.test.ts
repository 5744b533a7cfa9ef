import { expect } from 'chai';
import { UsageError } from '../errors.js';
import { VirtioFeature } from '../protocol/spec.js';
import { commonMode, formatCommonMode } from './common.js';
import { BLOCK_OFFER, blockAbi } from './testing.js';

const bit = (n: number) => 1n << BigInt(n);

describe('abi common mode', () => {
  const hosts = [
    { name: 'a.json', abi: blockAbi({ queues: 4 }) },
    {
      name: 'b.json',
      abi: blockAbi({ offer: BLOCK_OFFER & ~bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX), queues: 2 }),
    },
    { name: 'c.json', abi: blockAbi({ queues: 2, ring: 1024 }) },
  ];

  it('takes what every host supports, and names the host that limits each item', () => {
    const mode = commonMode(hosts, 'qemu');
    expect(mode.virtioFeatures.names).not.to.include('VIRTIO_RING_F_EVENT_IDX');
    expect(mode.virtioFeatures.names).to.include('VIRTIO_RING_F_INDIRECT_DESC');
    expect(mode.dropped).to.deep.equal([{ feature: 'VIRTIO_RING_F_EVENT_IDX', lackedBy: ['b.json'] }]);
    expect(mode.queueCount).to.deep.equal({ value: 2, limitedBy: ['b.json', 'c.json'], unknown: [] });
    expect(mode.ringSize).to.deep.equal({ value: 1024, limitedBy: ['c.json'], unknown: [] });
    expect(formatCommonMode(mode)).to.match(/without VIRTIO_RING_F_EVENT_IDX \(lacked by b\.json\)\n/);
    expect(formatCommonMode(mode)).to.match(/ring size: 1024 \(limited by c\.json\)\n/);
  });

  it('says which hosts do not report an item', () => {
    const unprobed = { name: 'd.json', abi: { ...blockAbi(), queueCount: null } };
    expect(commonMode([hosts[0]!, unprobed], 'qemu').queueCount).to.deep.equal({
      value: 4,
      limitedBy: ['a.json'],
      unknown: ['d.json'],
    });
  });

  it('bounds the ring size by the queues measured only (a receive queue found by use is null)', () => {
    const byRequest = {
      ...blockAbi({ queues: 2 }),
      ringSizes: {
        status: 'probed' as const,
        method: 'request' as const,
        measured: 'net',
        maxPerQueue: [null, 512],
      },
    };
    const unmeasured = {
      ...blockAbi({ queues: 2 }),
      ringSizes: { ...byRequest.ringSizes, maxPerQueue: [null, null] },
    };
    const mode = commonMode(
      [hosts[0]!, { name: 'r.json', abi: byRequest }, { name: 'u.json', abi: unmeasured }],
      'qemu',
    );
    expect(mode.ringSize).to.deep.equal({ value: 512, limitedBy: ['r.json'], unknown: ['u.json'] });
  });

  it('needs two hosts of one device type', () => {
    expect(() => commonMode([hosts[0]!], 'qemu')).to.throw(UsageError, /two ABI files or more/);
    expect(() =>
      commonMode([hosts[0]!, { name: 'g.json', abi: { ...blockAbi(), type: 'gpu' } }], 'qemu'),
    ).to.throw(UsageError, /different|no guest moves/);
  });
});
