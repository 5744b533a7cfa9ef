/**
 * The net device as generic checks drive it (see kind.ts): a test frame on transmitq0, whose buffer the
 * device uses with used.len 0; and, from a back-end that loops frames back (testpmd in io forwarding, the
 * fixture's net device), the frame coming back on receiveq0: a side effect the harness can see.
 */
import { fillGuardBytes, type GuestMemory } from '../../memory/guest-memory.js';
import type {
  DeviceKind,
  EffectTarget,
  EffectWatch,
  Sample,
  SampleOptions,
  SampleSource,
  WritableRequest,
} from '../kind.js';
import { SampleError, sampleAllocator } from '../kind.js';
import {
  encodeNetHdr,
  MAX_FRAME,
  NET_CONFIG,
  NET_HDR_SIZE,
  testFrame,
  testFrameTag,
  VirtioNetFeature,
} from './net.js';

/** The frames' length: short, and a size every back-end takes. */
const SAMPLE_FRAME = 128;
/** Receive buffers posted to watch for frames coming back. */
const WATCH_BUFFERS = 16;

/** The run id the sample frames carry: one per process, so a frame another run left is not ours. */
const RUN = (process.pid ^ 0x5a3e) >>> 0;

function netSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  let sequence = 0;
  return {
    needsOpening: false,
    next(): Sample {
      const n = sequence++;
      // In the writable buffers' region, though the device only reads it: the vring checks move that region.
      const gpa = options.place
        ? options.place('the transmit buffer (header and frame)', NET_HDR_SIZE + SAMPLE_FRAME, false)
        : memory.alloc(
            NET_HDR_SIZE + SAMPLE_FRAME,
            16,
            options.region === undefined ? {} : { region: options.region },
          );
      memory.write(gpa, encodeNetHdr({ numBuffers: 0 }));
      memory.write(gpa + BigInt(NET_HDR_SIZE), testFrame(RUN, n, SAMPLE_FRAME));
      return {
        what: `test frame ${n} (${SAMPLE_FRAME} bytes) on transmitq0`,
        effect: n,
        headerLen: NET_HDR_SIZE,
        chain: [{ gpa, len: NET_HDR_SIZE + SAMPLE_FRAME, write: false }],
        judge(usedLen) {
          // A transmit buffer has no device-writable part: "len" counts the bytes written, so 0.
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

/** Receive buffers on receiveq0 (vring 0), counting the sample frames that come back in them. */
function loopedFrames({ ring, memory }: EffectTarget): EffectWatch {
  const rx = ring(0);
  // Read through the memory at each look, not a view kept: a region may move (SET_MEM_TABLE) meanwhile.
  const buffers: bigint[] = [];
  /** The sequence numbers of the sample frames that came back intact. */
  const back = new Set<number>();
  /** Every receive buffer used, as far as its used.len goes. */
  const written: Array<{ what: string; ring: number; gpa: bigint; len: number }> = [];
  return {
    what: 'the frame coming back on receiveq0 (a back-end that loops frames back)',
    arm() {
      for (let i = 0; i < WATCH_BUFFERS; i++) {
        const len = NET_HDR_SIZE + MAX_FRAME;
        const gpa = memory.alloc(len, 16);
        fillGuardBytes(memory.gpaToBytes(gpa, len));
        buffers.push(gpa);
        rx.queue.addRequest([{ gpa, len, write: true }], { token: buffers.length - 1 });
      }
      rx.notify();
    },
    seen(sample) {
      for (const u of rx.takeUsed()) {
        const gpa = buffers[u.token as number];
        if (gpa !== undefined && u.len > 0)
          written.push({
            what: `receive buffer ${u.token as number} on receiveq0`,
            ring: 0,
            gpa,
            len: Math.min(u.len, NET_HDR_SIZE + MAX_FRAME),
          });
        if (gpa === undefined || u.len <= NET_HDR_SIZE || u.len > NET_HDR_SIZE + MAX_FRAME) continue;
        const frame = memory.read(gpa + BigInt(NET_HDR_SIZE), u.len - NET_HDR_SIZE);
        const tag = testFrameTag(frame);
        if (tag?.run === RUN && tag.length === frame.length && matches(frame, tag.sequence))
          back.add(tag.sequence);
      }
      return sample.effect !== undefined && back.has(sample.effect);
    },
    written() {
      return [...written];
    },
  };
}

/** Whether `frame` is sample frame `sequence` byte for byte (a frame read from a stale mapping is not). */
function matches(frame: Uint8Array, sequence: number): boolean {
  return Buffer.from(frame).equals(Buffer.from(testFrame(RUN, sequence, SAMPLE_FRAME)));
}

/**
 * A receive buffer on receiveq0 for one frame, and the sample frame on transmitq0 that a back-end looping
 * frames back fills it with (a back-end that does not loop leaves it unused).
 */
function receiveBuffer(memory: GuestMemory, options: SampleOptions = {}): WritableRequest {
  const len = NET_HDR_SIZE + MAX_FRAME;
  const gpa = sampleAllocator(memory, options)('the receive buffer', len, true);
  fillGuardBytes(memory.gpaToBytes(gpa, len));
  const request: Sample = {
    what: 'a receive buffer on receiveq0',
    chain: [{ gpa, len, write: true }],
    judge(usedLen) {
      if (usedLen <= NET_HDR_SIZE || usedLen > len)
        throw new SampleError(
          `${this.what}: used.len ${usedLen}, not a header and a frame of 1..${MAX_FRAME} bytes`,
        );
      return `a ${usedLen - NET_HDR_SIZE}-byte frame`;
    },
  };
  return { ring: 0, request, trigger: { ring: 1, request: netSamples(memory, options).next() } };
}

export const netKind: DeviceKind = {
  type: 'net',
  rings: [0, 1],
  sampleRing: 1,
  sampleRingName: 'transmitq0',
  features: { prefix: 'VIRTIO_NET_F_', bits: VirtioNetFeature },
  driverFeatures: 0n,
  modernOnly: true,
  config: NET_CONFIG,
  dataPath: 'net.loopback',
  samples: netSamples,
  writable: receiveBuffer,
  effect: loopedFrames,
};
