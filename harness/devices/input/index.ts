/**
 * The input device as generic checks drive it (see kind.ts): a status event (EV_LED, LED_NUML on or off, as
 * Linux's virtio_input sends a keyboard LED) on the statusq, in one device-readable buffer of 8 bytes. Its
 * completion is the buffer coming back used, with used.len 0: "len" is "the number of bytes written into
 * the device writable portion of the buffer", and this one has none. What the device does with the LED
 * (contrib/vhost-user-input writes it to its evdev device) the harness cannot see: no `effect`. The eventq
 * is set up and left without buffers (an event the source might send waits).
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  type DeviceKind,
  type Sample,
  SampleError,
  type SampleOptions,
  type SampleSource,
  sampleAllocator,
} from '../kind.js';
import { EvType, encodeInputEvent, INPUT_EVENT_SIZE, InputQueue, Led } from './input.js';

function inputSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  const alloc = sampleAllocator(memory, options);
  let n = 0;
  return {
    needsOpening: false,
    next(): Sample {
      const value = n++ % 2;
      const gpa = alloc('the status event', INPUT_EVENT_SIZE, false, INPUT_EVENT_SIZE);
      memory.write(gpa, encodeInputEvent({ type: EvType.LED, code: Led.NUML, value }));
      return {
        what: `status event EV_LED LED_NUML ${value} on the statusq`,
        chain: [{ gpa, len: INPUT_EVENT_SIZE, write: false }],
        judge(usedLen) {
          if (usedLen !== 0)
            throw new SampleError(
              `${this.what} came back with used.len ${usedLen}: it has no device-writable part, so 0`,
            );
          return 'used.len 0';
        },
      };
    },
  };
}

export const inputKind: DeviceKind = {
  type: 'input',
  rings: [InputQueue.EVENT, InputQueue.STATUS],
  sampleRing: InputQueue.STATUS,
  sampleRingName: 'statusq',
  // "Feature bits: None."
  features: { prefix: 'VIRTIO_INPUT_F_', bits: {} },
  driverFeatures: 0n,
  // virtio-input came with virtio 1.0 and has no legacy interface.
  modernOnly: true,
  dataPath: 'input.status',
  samples: inputSamples,
};
