/**
 * The gpu device's sample requests (see kind.ts): GET_DISPLAY_INFO on the control queue, answered from the
 * display's modes (or commands of a watch's own: effect.ts), each judged by its response's size and type.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { type Sample, SampleError, type SampleOptions, type SampleSource, sampleAllocator } from '../kind.js';
import { decodeCtrlHdr, encodeGetDisplayInfo } from './gpu.js';
import { ctrlTypeName, VirtioGpuCtrlType, VirtioGpuSize } from './spec.js';

/** What a command's response must be: its struct (named as in the spec), its size and its type. */
export interface Response {
  struct: string;
  size: number;
  type: keyof typeof VirtioGpuCtrlType;
}

/** One command on the control queue and its response buffer: `response` must come back. */
export function commandSample(
  memory: GuestMemory,
  options: SampleOptions,
  what: string,
  command: Buffer,
  { struct, size, type }: Response,
): Sample {
  const alloc = sampleAllocator(memory, options);
  const gpa = alloc(`the command (${what})`, command.length, false);
  memory.write(gpa, command);
  const response = alloc('the response buffer of the command', size, true);
  return {
    what: `${what} on the control queue`,
    chain: [
      { gpa, len: command.length, write: false },
      { gpa: response, len: size, write: true },
    ],
    judge(usedLen) {
      if (usedLen !== size)
        throw new SampleError(`${this.what}: used.len ${usedLen}, not the ${size} bytes of ${struct}`);
      const got = decodeCtrlHdr(memory.read(response, VirtioGpuSize.CTRL_HDR)).type;
      if (got !== VirtioGpuCtrlType[type])
        throw new SampleError(`${this.what}: answered ${ctrlTypeName(got)}, not ${type}`);
      return type;
    },
  };
}

export function gpuSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  return {
    needsOpening: false,
    next: () =>
      commandSample(memory, options, 'GET_DISPLAY_INFO', encodeGetDisplayInfo(), {
        struct: 'virtio_gpu_resp_display_info',
        size: VirtioGpuSize.RESP_DISPLAY_INFO,
        type: 'RESP_OK_DISPLAY_INFO',
      }),
  };
}
