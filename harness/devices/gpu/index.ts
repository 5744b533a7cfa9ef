/**
 * The gpu device as generic checks drive it (see kind.ts): GET_DISPLAY_INFO on the control queue
 * (samples.ts), once a display is attached (VHOST_USER_GPU_SET_SOCKET: a gpu back-end serves its control
 * queue only then); a scanout set on that display by SET_SCANOUT, the side effect a watch sees (effect.ts).
 */
import { type DeviceKind, writableSample } from '../kind.js';
import { attachGpuDisplay } from './display.js';
import { scanoutsSet } from './effect.js';
import { GPU_CONFIG } from './gpu.js';
import { gpuSamples } from './samples.js';
import { GpuQueue, VirtioGpuFeature } from './spec.js';

export const gpuKind: DeviceKind = {
  type: 'gpu',
  rings: [GpuQueue.CONTROL, GpuQueue.CURSOR],
  sampleRing: GpuQueue.CONTROL,
  sampleRingName: 'controlq',
  features: { prefix: 'VIRTIO_GPU_F_', bits: VirtioGpuFeature },
  driverFeatures: 0n,
  modernOnly: true,
  config: GPU_CONFIG,
  dataPath: 'gpu.display-info',
  prepare: attachGpuDisplay,
  samples: gpuSamples,
  writable: writableSample(GpuQueue.CONTROL, gpuSamples),
  effect: scanoutsSet,
};
