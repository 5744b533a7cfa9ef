/**
 * A virtio-net driver (virtio spec, "Network Device") over one receive / transmit queue pair of a
 * FrontendDevice. Every buffer starts with a struct virtio_net_hdr (12 bytes with VIRTIO_F_VERSION_1); a
 * transmitted frame is the header then the frame, as one or two readable descriptors; a receive buffer is
 * one writable descriptor for the header and the largest frame, filled with guard bytes so that what the
 * device wrote and what it did not can be told apart.
 *
 * Frames the checks send are test frames: an Ethernet header from a locally administered address to
 * another, EtherType 0x88b5 (IEEE 802 local experimental), and a payload that names the frame (a run id and
 * a sequence number) and fills the rest with a pattern from both, so a frame coming back can be matched to
 * the one sent and checked byte for byte.
 */
import { BackendError } from '../errors.js';
import type { DriverQueue, VringPort } from '../frontend/device.js';
import { fillGuardBytes, type GuestMemory } from '../memory/guest-memory.js';

/** Device feature bits (VIRTIO_NET_F_*). */
export const VirtioNetFeature = {
  CSUM: 0,
  GUEST_CSUM: 1,
  CTRL_GUEST_OFFLOADS: 2,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  GUEST_TSO6: 8,
  GUEST_ECN: 9,
  GUEST_UFO: 10,
  HOST_TSO4: 11,
  HOST_TSO6: 12,
  HOST_ECN: 13,
  HOST_UFO: 14,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  CTRL_VLAN: 19,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
} as const;

/** virtio_net_hdr.flags bits. */
export const VirtioNetHdrFlag = {
  NEEDS_CSUM: 1,
  DATA_VALID: 2,
  RSC_INFO: 4,
} as const;

/** virtio_net_hdr.gso_type values. */
export const VirtioNetGso = {
  NONE: 0,
  TCPV4: 1,
  UDP: 3,
  TCPV6: 4,
  ECN: 0x80,
} as const;

/** struct virtio_net_hdr with num_buffers: the size with VIRTIO_F_VERSION_1 (or MRG_RXBUF). */
export const NET_HDR_SIZE = 12;
/** The largest frame without GSO: 1500 bytes of payload and a 14-byte Ethernet header. */
export const MAX_FRAME = 1514;
/** The smallest Ethernet frame without FCS. */
export const MIN_FRAME = 60;
/** EtherType of the test frames: IEEE 802 local experimental 1. */
export const TEST_ETHERTYPE = 0x88b5;
/** Test payload: run id (u32), sequence (u32), length (u16), then the pattern. */
const TAG_SIZE = 10;
const ETH_HEADER = 14;

export interface NetHdr {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
  /** Only meaningful on receive with MRG_RXBUF (or VERSION_1): how many buffers the packet took. */
  numBuffers: number;
}

export function encodeNetHdr(hdr: Partial<NetHdr> = {}): Uint8Array {
  const out = new Uint8Array(NET_HDR_SIZE);
  const view = new DataView(out.buffer);
  view.setUint8(0, hdr.flags ?? 0);
  view.setUint8(1, hdr.gsoType ?? VirtioNetGso.NONE);
  view.setUint16(2, hdr.hdrLen ?? 0, true);
  view.setUint16(4, hdr.gsoSize ?? 0, true);
  view.setUint16(6, hdr.csumStart ?? 0, true);
  view.setUint16(8, hdr.csumOffset ?? 0, true);
  view.setUint16(10, hdr.numBuffers ?? 0, true);
  return out;
}

export function decodeNetHdr(bytes: Uint8Array): NetHdr {
  if (bytes.length < NET_HDR_SIZE) throw new BackendError(`virtio_net_hdr of ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, NET_HDR_SIZE);
  return {
    flags: view.getUint8(0),
    gsoType: view.getUint8(1),
    hdrLen: view.getUint16(2, true),
    gsoSize: view.getUint16(4, true),
    csumStart: view.getUint16(6, true),
    csumOffset: view.getUint16(8, true),
    numBuffers: view.getUint16(10, true),
  };
}

/** The source and destination of test frames: locally administered unicast addresses ("VHU" in them). */
export const TEST_MAC_SRC = Uint8Array.of(0x02, 0x56, 0x48, 0x55, 0x00, 0x01);
export const TEST_MAC_DST = Uint8Array.of(0x02, 0x56, 0x48, 0x55, 0x00, 0x02);

/** A test frame of `length` bytes (MIN_FRAME..MAX_FRAME): Ethernet header, tag, pattern. */
export function testFrame(run: number, sequence: number, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < ETH_HEADER + TAG_SIZE || length > MAX_FRAME) {
    throw new RangeError(`test frame of ${length} bytes: must be ${ETH_HEADER + TAG_SIZE}..${MAX_FRAME}`);
  }
  const frame = new Uint8Array(length);
  frame.set(TEST_MAC_DST, 0);
  frame.set(TEST_MAC_SRC, 6);
  const view = new DataView(frame.buffer);
  view.setUint16(12, TEST_ETHERTYPE, false);
  view.setUint32(ETH_HEADER, run >>> 0, true);
  view.setUint32(ETH_HEADER + 4, sequence >>> 0, true);
  view.setUint16(ETH_HEADER + 8, length, true);
  let x = (Math.imul(run ^ 0x5bd1e995, 0x9e3779b1) ^ sequence) >>> 0 || 1;
  for (let i = ETH_HEADER + TAG_SIZE; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    frame[i] = x & 0xff;
  }
  return frame;
}

/** The run id and sequence a test frame names, or undefined for a frame that is not one of ours. */
export function testFrameTag(
  frame: Uint8Array,
): { run: number; sequence: number; length: number } | undefined {
  if (frame.length < ETH_HEADER + TAG_SIZE) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint16(12, false) !== TEST_ETHERTYPE) return undefined;
  return {
    run: view.getUint32(ETH_HEADER, true),
    sequence: view.getUint32(ETH_HEADER + 4, true),
    length: view.getUint16(ETH_HEADER + 8, true),
  };
}

/** A frame the device put in a receive buffer. */
export interface ReceivedFrame {
  hdr: NetHdr;
  frame: Uint8Array;
  /** used.len as the device wrote it. */
  usedLen: number;
}

export interface NetDriverOptions {
  timeoutMs: number;
  /** Receive buffers kept posted (default 32). */
  rxBuffers?: number;
  /** Transmit slots (default 32). */
  txSlots?: number;
}

export interface SendOptions {
  /** The virtio_net_hdr fields of every packet (default all 0: no offload asked). */
  hdr?: Partial<NetHdr>;
  /** Put the header and the frame in separate descriptors (default: one descriptor for both). */
  splitHeader?: boolean;
}

interface RxSlot {
  gpa: bigint;
  view: Uint8Array;
}

interface TxSlot {
  gpa: bigint;
  view: Uint8Array;
}

/** Each receive buffer holds the header and the largest frame: no packet needs two (num_buffers is 1). */
const RX_BUFFER = NET_HDR_SIZE + MAX_FRAME;

/**
 * The virtio-net driver of one queue pair: `rx` is receiveq N (vring 2N), `tx` transmitq N (vring 2N+1).
 * `send` transmits frames, `receive` waits for frames; receive buffers are posted at once and re-posted as
 * they come back.
 */
export class NetDriver {
  readonly #rx: VringPort<number, DriverQueue<number>>;
  readonly #tx: VringPort<number, DriverQueue<number>>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #rxSlots: RxSlot[] = [];
  readonly #txSlots: TxSlot[] = [];
  readonly #txFree: number[] = [];
  readonly #received: ReceivedFrame[] = [];

  /** `rx` and `tx` are split or packed rings (VIRTIO_F_RING_PACKED). */
  constructor(
    rx: VringPort<unknown, DriverQueue<unknown>>,
    tx: VringPort<unknown, DriverQueue<unknown>>,
    options: NetDriverOptions,
  ) {
    this.#rx = rx as VringPort<number, DriverQueue<number>>;
    this.#tx = tx as VringPort<number, DriverQueue<number>>;
    this.#memory = rx.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    for (let i = 0; i < (options.rxBuffers ?? 32); i++) {
      const gpa = this.#memory.alloc(RX_BUFFER, 16);
      this.#rxSlots.push({ gpa, view: this.#memory.gpaToBytes(gpa, RX_BUFFER) });
    }
    for (let i = 0; i < (options.txSlots ?? 32); i++) {
      const gpa = this.#memory.alloc(NET_HDR_SIZE + MAX_FRAME, 16);
      this.#txSlots.push({ gpa, view: this.#memory.gpaToBytes(gpa, NET_HDR_SIZE + MAX_FRAME) });
      this.#txFree.push(i);
    }
  }

  /** Posts every receive buffer and notifies the device. */
  fillRx(): void {
    for (let i = 0; i < this.#rxSlots.length; i++) this.#postRx(i);
    this.#rx.notify();
  }

  /**
   * Transmits `frames` in order, as many in flight as there are slots, and returns once the device used
   * every transmit buffer; a transmit buffer's used.len must be 0 (it has nothing device-writable).
   */
  async send(
    frames: readonly Uint8Array[],
    options: SendOptions = {},
    timeoutMs = this.#timeoutMs,
  ): Promise<void> {
    for (const frame of frames) {
      while (!this.#txFree.length) {
        this.#tx.notify();
        await this.#collectTx(timeoutMs);
      }
      const slotIndex = this.#txFree.pop()!;
      const slot = this.#txSlots[slotIndex]!;
      slot.view.set(encodeNetHdr({ ...options.hdr, numBuffers: 0 }), 0);
      slot.view.set(frame, NET_HDR_SIZE);
      const chain = options.splitHeader
        ? [
            { gpa: slot.gpa, len: NET_HDR_SIZE, write: false },
            { gpa: slot.gpa + BigInt(NET_HDR_SIZE), len: frame.length, write: false },
          ]
        : [{ gpa: slot.gpa, len: NET_HDR_SIZE + frame.length, write: false }];
      this.#tx.queue.addRequest(chain, { token: slotIndex });
    }
    this.#tx.notify();
    while (this.#txFree.length < this.#txSlots.length) await this.#collectTx(timeoutMs);
  }

  async #collectTx(timeoutMs: number): Promise<void> {
    const { used } = await this.#tx.waitUsed(timeoutMs, 1);
    for (const u of used) {
      this.#txFree.push(u.token!);
      if (u.len !== 0) {
        throw new BackendError(
          `transmitq buffer ${u.id} came back with used.len ${u.len}: it has no device-writable part, so 0`,
        );
      }
    }
  }

  /** Waits until `count` frames came in (in arrival order), re-posting each receive buffer it takes. */
  async receive(count: number, timeoutMs = this.#timeoutMs): Promise<ReceivedFrame[]> {
    while (this.#received.length < count) {
      const { used } = await this.#rx.waitUsed(timeoutMs, 1);
      for (const u of used) this.#received.push(this.#takeRx(u.token!, u.len));
      this.#rx.notify();
    }
    return this.#received.splice(0, count);
  }

  /**
   * Sends `frames` to a back-end that loops them back (testpmd in io forwarding, the fixture's net device)
   * and returns what came in. Never more frames are out than receive buffers posted: a device with no
   * buffer to put a frame in drops it, and the counts must be exact.
   */
  async roundTrip(frames: readonly Uint8Array[], options: SendOptions = {}): Promise<ReceivedFrame[]> {
    const out: ReceivedFrame[] = [];
    const step = this.#rxSlots.length;
    for (let at = 0; at < frames.length; at += step) {
      const batch = frames.slice(at, at + step);
      await this.send(batch, options);
      out.push(...(await this.receive(batch.length)));
    }
    return out;
  }

  /** Frames that came in and were not yet taken by `receive`, without waiting. */
  receivedNow(): ReceivedFrame[] {
    for (const u of this.#rx.takeUsed()) this.#received.push(this.#takeRx(u.token!, u.len));
    return this.#received.splice(0);
  }

  #postRx(index: number): void {
    const slot = this.#rxSlots[index]!;
    fillGuardBytes(slot.view);
    this.#rx.queue.addRequest([{ gpa: slot.gpa, len: RX_BUFFER, write: true }], { token: index });
  }

  #takeRx(index: number, usedLen: number): ReceivedFrame {
    const slot = this.#rxSlots[index]!;
    if (usedLen < NET_HDR_SIZE || usedLen > RX_BUFFER) {
      throw new BackendError(
        `receiveq buffer ${index} came back with used.len ${usedLen}: a packet is the ${NET_HDR_SIZE}-byte ` +
          `header and a frame, in a ${RX_BUFFER}-byte buffer`,
      );
    }
    const hdr = decodeNetHdr(slot.view);
    const frame = slot.view.slice(NET_HDR_SIZE, usedLen);
    this.#postRx(index);
    return { hdr, frame, usedLen };
  }
}
