import { expect } from 'chai';
import { VirtioFeature } from '../protocol/spec.js';
import { abiDifferences } from './diff.js';
import { BLOCK_OFFER, blockAbi } from './testing.js';

const bit = (n: number) => 1n << BigInt(n);
const names = { first: 'launch 1', second: 'launch 2' };

describe('abi differences', () => {
  it('none between a fingerprint and its copy', () => {
    expect(abiDifferences(blockAbi(), structuredClone(blockAbi()), names)).to.deep.equal([]);
  });

  it('a feature bit offered on one side: both sets, and the bit named with its side', () => {
    const more = blockAbi({ offer: BLOCK_OFFER | bit(VirtioFeature.VIRTIO_F_NOTIFY_ON_EMPTY) });
    expect(abiDifferences(blockAbi(), more, names)).to.deep.equal([
      'virtioFeatures: launch 1 0x0000000174000240, launch 2 0x0000000175000240 (VIRTIO_F_NOTIFY_ON_EMPTY offered on launch 2 only)',
    ]);
  });

  it('a config field names the field with both values, not the bytes; the derived profiles are not repeated', () => {
    const lines = abiDifferences(blockAbi(), blockAbi({ sectors: 4096n }), names);
    expect(lines).to.deep.equal(['config.fields.capacity: launch 1 "2048", launch 2 "4096"']);
  });

  it('the config bytes when no decoded field differs', () => {
    const other = blockAbi();
    if (other.config.status !== 'read') throw new Error('the fixture fingerprint reads its config');
    other.config.hex = `${other.config.hex.slice(0, -2)}ff`;
    const [line, ...rest] = abiDifferences(blockAbi(), other, names);
    expect(rest).to.deep.equal([]);
    expect(line).to.match(/^config\.hex: launch 1 "0008.*00", launch 2 "0008.*ff"$/);
  });

  it('queue count, ring sizes per queue, and a protocol feature set that went missing', () => {
    const lines = abiDifferences(blockAbi(), blockAbi({ queues: 2, ring: 256, protocol: null }), names);
    expect(lines).to.deep.equal([
      'protocolFeatures: launch 1 {"hex":"0x000000000000920b","names":["MQ","LOG_SHMFD","REPLY_ACK","CONFIG","INFLIGHT_SHMFD","CONFIGURE_MEM_SLOTS"]}, launch 2 null',
      'queueCount: launch 1 1, launch 2 2',
      'ringSizes.maxPerQueue: launch 1 [32768], launch 2 [256,256]',
    ]);
  });
});
