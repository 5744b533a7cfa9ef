/**
 * The gpu device as generic checks drive it (see kind.ts): GET_DISPLAY_INFO on the control queue, answered
 * from the display's modes, once a display is attached (VHOST_USER_GPU_SET_SOCKET: a gpu back-end serves its
 * control queue only then). The request has no side effect the harness can see.
 */
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
import { attachGpuDisplay } from './display.js';
import { decodeCtrlHdr, encodeGetDisplayInfo, GPU_CONFIG } from './gpu.js';
import { ctrlTypeName, GpuQueue, VirtioGpuCtrlType, VirtioGpuFeature, VirtioGpuSize } from './spec.js';

function gpuSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  const alloc = sampleAllocator(memory, options);
  return {
    needsOpening: false,
    next(): Sample {
      const command = encodeGetDisplayInfo();
      const gpa = alloc('the command (GET_DISPLAY_INFO)', command.length, false);
      memory.write(gpa, command);
      const size = VirtioGpuSize.RESP_DISPLAY_INFO;
      const response = alloc('the response buffer of the command', size, true);
      return {
        what: 'GET_DISPLAY_INFO on the control queue',
        chain: [
          { gpa, len: command.length, write: false },
          { gpa: response, len: size, write: true },
        ],
        judge(usedLen) {
          if (usedLen !== size)
            throw new SampleError(
              `${this.what}: used.len ${usedLen}, not the ${size} bytes of virtio_gpu_resp_display_info`,
            );
          const { type } = decodeCtrlHdr(memory.read(response, VirtioGpuSize.CTRL_HDR));
          if (type !== VirtioGpuCtrlType.RESP_OK_DISPLAY_INFO)
            throw new SampleError(`${this.what}: answered ${ctrlTypeName(type)}, not RESP_OK_DISPLAY_INFO`);
          return 'RESP_OK_DISPLAY_INFO';
        },
      };
    },
  };
}

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
  async prepare(session, scope) {
    await attachGpuDisplay(session, scope);
  },
  samples: gpuSamples,
  writable: writableSample(GpuQueue.CONTROL, gpuSamples),
};
