/** The block device as generic checks drive it (see kind.ts): a one-sector read of a scratch sector. */
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  type DeviceKind,
  type Sample,
  SampleError,
  type SampleOptions,
  type SampleSource,
  sampleAllocator,
  writableSample,
} from '../kind.js';
import {
  BLK_CONFIG,
  BLK_DRIVER_FEATURES,
  BLK_HEADER_SIZE,
  encodeBlkHeader,
  SECTOR_SIZE,
  VirtioBlkFeature,
  VirtioBlkStatus,
  VirtioBlkType,
} from './blk.js';

/**
 * The sector the sample reads: the first of the scratch area the vring checks use (32 KiB in, past a GPT's
 * entries), which a read leaves as it is.
 */
export const BLK_SAMPLE_SECTOR = 64n;

function blkSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  const alloc = sampleAllocator(memory, options);
  return {
    needsOpening: false,
    next(): Sample {
      const header = alloc('the request header', BLK_HEADER_SIZE, false);
      memory.write(header, encodeBlkHeader(VirtioBlkType.IN, BLK_SAMPLE_SECTOR));
      const data = alloc('the data buffer of the request', SECTOR_SIZE, true);
      const status = alloc('the status byte of the request', 1, true, 1);
      memory.write(status, Uint8Array.of(0xff));
      return {
        what: `a one-sector read (IN) of sector ${BLK_SAMPLE_SECTOR}`,
        chain: [
          { gpa: header, len: BLK_HEADER_SIZE, write: false },
          { gpa: data, len: SECTOR_SIZE, write: true },
          { gpa: status, len: 1, write: true },
        ],
        judge(usedLen) {
          const got = memory.read(status, 1)[0]!;
          if (got !== VirtioBlkStatus.OK)
            throw new SampleError(`${this.what} completed with status ${got}, not VIRTIO_BLK_S_OK`);
          // "The device MUST write at least len bytes": the data and the status byte, no more.
          if (usedLen < 1 || usedLen > SECTOR_SIZE + 1)
            throw new SampleError(
              `${this.what} completed with used.len ${usedLen}: ${SECTOR_SIZE + 1} written at most`,
            );
          return 'status OK';
        },
      };
    },
  };
}

export const blockKind: DeviceKind = {
  type: 'block',
  rings: [0],
  sampleRing: 0,
  sampleRingName: 'requestq',
  features: { prefix: 'VIRTIO_BLK_F_', bits: VirtioBlkFeature },
  driverFeatures: BLK_DRIVER_FEATURES.reduce((acc, n) => acc | (1n << BigInt(n)), 0n),
  modernOnly: false,
  config: BLK_CONFIG,
  dataPath: 'vring.blk.read-write',
  samples: blkSamples,
  writable: writableSample(0, blkSamples),
};
