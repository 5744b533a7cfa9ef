/**
 * The net device as generic checks drive it (see kind.ts): a test frame on transmitq0, whose buffer the
 * device uses with used.len 0; and, from a back-end that loops frames back (testpmd in io forwarding, the
 * fixture's net device), the frame coming back on receiveq0: a side effect the harness can see.
 */
import { fillGuardBytes, type GuestMemory } from '../../memory/guest-memory.js';
import type { VringPort } from '../../virtqueue/port.js';
import type { DeviceKind, EffectWatch, Sample, SampleSource } from '../kind.js';
import { SampleError } from '../kind.js';
import { encodeNetHdr, MAX_FRAME, NET_HDR_SIZE, testFrame, testFrameTag } from './net.js';

/** The frames' length: short, and a size every back-end takes. */
const SAMPLE_FRAME = 128;
/** Receive buffers posted to watch for frames coming back. */
const WATCH_BUFFERS = 16;

/** The run id the sample frames carry: one per process, so a frame another run left is not ours. */
const RUN = (process.pid ^ 0x5a3e) >>> 0;

function netSamples(memory: GuestMemory, options: { region?: bigint } = {}): SampleSource {
  const at = options.region === undefined ? {} : { region: options.region };
  let sequence = 0;
  return {
    needsOpening: false,
    next(): Sample {
      const n = sequence++;
      const gpa = memory.alloc(NET_HDR_SIZE + SAMPLE_FRAME, 16, at);
      memory.write(gpa, encodeNetHdr({ numBuffers: 0 }));
      memory.write(gpa + BigInt(NET_HDR_SIZE), testFrame(RUN, n, SAMPLE_FRAME));
      return {
        what: `test frame ${n} (${SAMPLE_FRAME} bytes) on transmitq0`,
        effect: n,
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
function loopedFrames(ring: (index: number) => VringPort<unknown>, memory: GuestMemory): EffectWatch {
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

export const netKind: DeviceKind = {
  type: 'net',
  rings: [0, 1],
  sampleRing: 1,
  sampleRingName: 'transmitq0',
  driverFeatures: 0n,
  modernOnly: true,
  dataPath: 'net.loopback',
  samples: netSamples,
  effect: loopedFrames,
};
