/**
 * The fs device as generic checks drive it (see kind.ts): FUSE_INIT then GETATTR of the root on the first
 * request queue (samples.ts), which change nothing; where the folder it serves is known, MKDIR of names of
 * the watch's own, seen there (effect.ts).
 */
import { type DeviceKind, writableSample } from '../kind.js';
import { madeDirectories } from './effect.js';
import { FIRST_REQUEST_QUEUE } from './fs.js';
import { FS_CONFIG } from './fuse.js';
import { fsSamples } from './samples.js';

export const fsKind: DeviceKind = {
  type: 'fs',
  rings: [0, FIRST_REQUEST_QUEUE],
  sampleRing: FIRST_REQUEST_QUEUE,
  sampleRingName: 'the first request queue',
  // VIRTIO_FS_F_NOTIFICATION (bit 0) came after the virtio 1.2 spec the driver follows: none named.
  features: { prefix: 'VIRTIO_FS_F_', bits: {} },
  driverFeatures: 0n,
  modernOnly: true,
  config: FS_CONFIG,
  dataPath: 'fs.getattr',
  samples: fsSamples,
  writable: writableSample(FIRST_REQUEST_QUEUE, fsSamples),
  effect: madeDirectories,
};
