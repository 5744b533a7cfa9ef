import { expect } from 'chai';
import { UsageError } from '../errors.js';
import { ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { compareAbi, featuresLacking } from './compat.js';
import { BLOCK_OFFER, BLOCK_PROTOCOL, blockAbi } from './testing.js';

const bit = (n: number) => 1n << BigInt(n);

describe('abi compat', () => {
  it('a back-end is compatible with itself', () => {
    const result = compareAbi(blockAbi(), blockAbi(), 'qemu');
    expect(result).to.deep.equal({ compatible: true, frontend: 'qemu', reasons: [], notes: [] });
  });

  it('names each negotiated virtio feature the destination lacks', () => {
    const without = blockAbi({ offer: BLOCK_OFFER & ~bit(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC) });
    const result = compareAbi(blockAbi(), without, 'qemu');
    expect(result.compatible).to.equal(false);
    expect(result.reasons).to.deep.equal([
      'virtio feature VIRTIO_RING_F_INDIRECT_DESC: negotiated on the source, not offered by the destination',
    ]);
    // The other way round the guest never had it: fine.
    expect(compareAbi(without, blockAbi(), 'qemu').compatible).to.equal(true);
  });

  it('judges under the front-end profile: a feature the profile never passes on does not count', () => {
    // crosvm passes no INDIRECT_DESC on: its guest never had it.
    const without = blockAbi({ offer: BLOCK_OFFER & ~bit(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC) });
    expect(compareAbi(blockAbi(), without, 'crosvm').reasons.join('\n')).not.to.match(/INDIRECT_DESC/);
  });

  it('names each differing config field, queue count and ring size', () => {
    const other = blockAbi({ sectors: 4096n, blkSize: 4096, queues: 1, ring: 256 });
    expect(compareAbi(blockAbi(), other, 'qemu').reasons).to.deep.equal([
      'ring size of queue 0: the source accepts 32768 entries, the destination at most 256',
      'config field blk_size: source 512, destination 4096',
      'config field capacity: source "2048", destination "4096"',
    ]);
    expect(compareAbi(blockAbi({ queues: 4 }), blockAbi({ queues: 2 }), 'qemu').reasons).to.include(
      'queue count: the source has 4, the destination 2',
    );
  });

  it('asks for the protocol features the move needs', () => {
    const noInflight = blockAbi({ protocol: BLOCK_PROTOCOL & ~bit(ProtocolFeature.INFLIGHT_SHMFD) });
    expect(compareAbi(blockAbi(), noInflight, 'qemu').reasons).to.deep.equal([
      'protocol feature INFLIGHT_SHMFD: the source keeps an inflight buffer, the destination does not offer it',
    ]);
    const noLog = blockAbi({ protocol: BLOCK_PROTOCOL & ~bit(ProtocolFeature.LOG_SHMFD) });
    expect(compareAbi(noLog, blockAbi(), 'qemu').reasons.join('\n')).to.match(
      /LOG_SHMFD: not negotiated on the source/,
    );
    const legacy = blockAbi({
      offer: BLOCK_OFFER & ~bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES),
      protocol: null,
    });
    expect(compareAbi(blockAbi(), legacy, 'qemu').reasons).to.include.members([
      'virtio feature VHOST_USER_F_PROTOCOL_FEATURES: negotiated on the source, not offered by the destination',
      'protocol feature MQ: negotiated on the source, not offered by the destination',
      'protocol feature CONFIG: negotiated on the source, not offered by the destination',
    ]);
  });

  it('featuresLacking: what a live negotiation has that an offer lacks, guest-visible protocol features only', () => {
    const negotiated = {
      virtio: bit(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC) | bit(VirtioFeature.VIRTIO_F_VERSION_1),
      protocol: bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.REPLY_ACK),
    };
    expect(featuresLacking(negotiated, negotiated, 'block')).to.deep.equal([]);
    // More offered is no harm; a lacking REPLY_ACK is the destination front-end's to do without.
    expect(
      featuresLacking(
        negotiated,
        { virtio: bit(VirtioFeature.VIRTIO_F_VERSION_1) | bit(0), protocol: 0n },
        'block',
      ),
    ).to.deep.equal([
      'virtio feature VIRTIO_RING_F_INDIRECT_DESC: negotiated on the source, not offered by the destination',
      'protocol feature CONFIG: negotiated on the source, not offered by the destination',
    ]);
  });

  it('notes what could not be probed instead of guessing', () => {
    const unprobed = {
      ...blockAbi(),
      ringSizes: { status: 'not-probed' as const, reason: 'REPLY_ACK not offered' },
    };
    const result = compareAbi(blockAbi(), unprobed, 'qemu');
    expect(result.compatible).to.equal(true);
    expect(result.notes).to.deep.equal(['ring sizes of the destination not probed: REPLY_ACK not offered']);
  });

  it('ring sizes found by use: compared where both sides measured the queue, the method noted when they differ', () => {
    const byRequest = (maxPerQueue: Array<number | null>) => ({
      ...blockAbi({ queues: 2 }),
      ringSizes: { status: 'probed' as const, method: 'request' as const, measured: 'net', maxPerQueue },
    });
    expect(compareAbi(byRequest([null, 256]), byRequest([null, 128]), 'qemu')).to.deep.include({
      compatible: false,
      reasons: ['ring size of queue 1: the source accepts 256 entries, the destination at most 128'],
      notes: [],
    });
    // Acked by REPLY_ACK on the source, served by request on the destination.
    const result = compareAbi(blockAbi({ queues: 2, ring: 256 }), byRequest([null, 256]), 'qemu');
    expect(result).to.deep.include({ compatible: true, reasons: [] });
    expect(result.notes).to.deep.equal([
      'ring sizes of the source found by SET_VRING_NUM acknowledged with REPLY_ACK, of the destination by a request moved through the ring: a size acknowledged need not be one the back-end serves',
      "ring size of queue 0: the source accepts 256 entries, the destination's was not measured",
    ]);
    // A queue the source did not measure asks nothing of the destination.
    expect(
      compareAbi(byRequest([null, 256]), blockAbi({ queues: 2, ring: 64 }), 'qemu').reasons,
    ).to.deep.equal(['ring size of queue 1: the source accepts 256 entries, the destination at most 64']);
  });

  it('refuses two device types and an unknown profile as usage errors', () => {
    const gpu = { ...blockAbi(), type: 'gpu' };
    expect(() => compareAbi(blockAbi(), gpu, 'qemu')).to.throw(UsageError, /a block device .* a gpu device/);
    expect(() => compareAbi(blockAbi(), blockAbi(), 'bhyve')).to.throw(
      UsageError,
      /no such front-end profile/,
    );
  });
});
