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
import { BackendError, ProtocolError } from '../../errors.js';
import { fillGuardBytes, type GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, VringPort } from '../../virtqueue/port.js';
import type { ConfigSpace } from '../config.js';

/**
 * struct virtio_net_config up to supported_hash_types: mac[6], le16 status, le16 max_virtqueue_pairs,
 * le16 mtu, le32 speed, u8 duplex, u8 rss_max_key_size, le16 rss_max_indirection_table_length, le32
 * supported_hash_types.
 */
export const NET_CONFIG_SIZE = 24;

export interface NetConfig {
  mac: string;
  status: number;
  maxVirtqueuePairs: number;
  mtu: number;
  speed: number;
  duplex: number;
}

export function decodeNetConfig(bytes: Buffer): NetConfig {
  if (bytes.length < 17)
    throw new ProtocolError(`virtio-net config of ${bytes.length} bytes is too short`, bytes);
  return {
    mac: [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
    status: bytes.readUInt16LE(6),
    maxVirtqueuePairs: bytes.readUInt16LE(8),
    mtu: bytes.readUInt16LE(10),
    speed: bytes.readUInt32LE(12),
    duplex: bytes.readUInt8(16),
  };
}

/** struct virtio_net_config as the harness reads it (see ../config.ts). */
export const NET_CONFIG: ConfigSpace = {
  struct: 'virtio_net_config',
  size: NET_CONFIG_SIZE,
  fields(bytes) {
    const c = decodeNetConfig(bytes);
    return {
      mac: c.mac,
      max_virtqueue_pairs: c.maxVirtqueuePairs,
      mtu: c.mtu,
      speed: c.speed,
      duplex: c.duplex,
    };
  },
};

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
  UDP_L4: 5,
  UDP_TUNNEL_IPV4: 0x20,
  UDP_TUNNEL_IPV6: 0x40,
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

/** The ones' complement sum of `bytes` as big-endian 16-bit words, folded to 16 bits (RFC 1071). */
function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The test hosts of the checksum frames: 192.0.2.1 -> 192.0.2.2 (TEST-NET-1). */
const TEST_IP_SRC = Uint8Array.of(192, 0, 2, 1);
const TEST_IP_DST = Uint8Array.of(192, 0, 2, 2);
const IPV4_HEADER = 20;

/**
 * An IPv4 UDP (protocol 17) or TCP (6) test frame of `length` bytes with a correct IP header checksum, and
 * the transport checksum two ways: `full`, computed, and `partial`, the same frame with the checksum field
 * holding the pseudo-header sum only, as a driver leaves it for VIRTIO_NET_HDR_F_NEEDS_CSUM; `csumStart`
 * and `csumOffset` are the header fields that go with it. The payload names the frame (run and sequence).
 */
export function checksumTestFrame(
  run: number,
  sequence: number,
  length: number,
  protocol: 'udp' | 'tcp',
): { full: Uint8Array; partial: Uint8Array; csumStart: number; csumOffset: number } {
  const l4Header = protocol === 'udp' ? 8 : 20;
  const min = ETH_HEADER + IPV4_HEADER + l4Header + 8;
  if (!Number.isInteger(length) || length < Math.max(min, MIN_FRAME) || length > MAX_FRAME) {
    throw new RangeError(
      `checksum test frame of ${length} bytes: must be ${Math.max(min, MIN_FRAME)}..${MAX_FRAME}`,
    );
  }
  const frame = new Uint8Array(length);
  const view = new DataView(frame.buffer);
  frame.set(TEST_MAC_DST, 0);
  frame.set(TEST_MAC_SRC, 6);
  view.setUint16(12, 0x0800, false);
  const ip = ETH_HEADER;
  const ipLength = length - ETH_HEADER;
  view.setUint8(ip, 0x45);
  view.setUint16(ip + 2, ipLength, false);
  view.setUint16(ip + 4, sequence & 0xffff, false);
  view.setUint8(ip + 8, 64);
  view.setUint8(ip + 9, protocol === 'udp' ? 17 : 6);
  frame.set(TEST_IP_SRC, ip + 12);
  frame.set(TEST_IP_DST, ip + 16);
  view.setUint16(ip + 10, ~onesComplementSum(frame.subarray(ip, ip + IPV4_HEADER)) & 0xffff, false);
  const l4 = ip + IPV4_HEADER;
  const l4Length = ipLength - IPV4_HEADER;
  const csumOffset = protocol === 'udp' ? 6 : 16;
  view.setUint16(l4, 0x5648, false); // source port "VH"
  view.setUint16(l4 + 2, 0x5543, false); // destination port "UC"
  if (protocol === 'udp') view.setUint16(l4 + 4, l4Length, false);
  else {
    view.setUint32(l4 + 4, sequence >>> 0, false);
    view.setUint8(l4 + 12, 5 << 4); // data offset: 5 words
    view.setUint8(l4 + 13, 0x18); // PSH, ACK
    view.setUint16(l4 + 14, 0xffff, false);
  }
  const payload = l4 + l4Header;
  view.setUint32(payload, run >>> 0, true);
  view.setUint32(payload + 4, sequence >>> 0, true);
  let x = (Math.imul(run ^ 0x27d4eb2d, 0x9e3779b1) ^ sequence) >>> 0 || 1;
  for (let i = payload + 8; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    frame[i] = x & 0xff;
  }
  const pseudo = new Uint8Array(12);
  pseudo.set(TEST_IP_SRC, 0);
  pseudo.set(TEST_IP_DST, 4);
  pseudo[9] = protocol === 'udp' ? 17 : 6;
  new DataView(pseudo.buffer).setUint16(10, l4Length, false);
  const pseudoSum = onesComplementSum(pseudo);
  const partial = frame.slice();
  new DataView(partial.buffer).setUint16(l4 + csumOffset, pseudoSum, false);
  let check = ~onesComplementSum(frame.subarray(l4), pseudoSum) & 0xffff;
  if (protocol === 'udp' && check === 0) check = 0xffff; // 0 means "no checksum" in UDP
  view.setUint16(l4 + csumOffset, check, false);
  return { full: frame, partial, csumStart: l4, csumOffset };
}

/**
 * Completes a partial checksum as VIRTIO_NET_HDR_F_NEEDS_CSUM asks: the ones' complement of the sum from
 * `start` to the end, stored at `start + offset`. Returns a copy; undefined when the offsets do not fit.
 */
export function completeChecksum(frame: Uint8Array, start: number, offset: number): Uint8Array | undefined {
  if (start + offset + 2 > frame.length) return undefined;
  const out = frame.slice();
  let check = ~onesComplementSum(out.subarray(start)) & 0xffff;
  // A UDP checksum that comes out 0 is sent as 0xffff; the same value in ones' complement.
  if (check === 0 && out[ETH_HEADER + 9] === 17) check = 0xffff;
  new DataView(out.buffer).setUint16(start + offset, check, false);
  return out;
}

/** A frame the device put in a receive buffer (or, with MRG_RXBUF, in several). */
export interface ReceivedFrame {
  hdr: NetHdr;
  frame: Uint8Array;
  /** used.len as the device wrote it: the sum over the buffers of a merged packet. */
  usedLen: number;
  /** used.len of each buffer the packet took, in order (one without MRG_RXBUF). */
  usedLens: number[];
  /** Whether a buffer of it had no used element of its own (IN_ORDER batch: its whole length assumed). */
  batched: boolean;
}

export interface NetDriverOptions {
  timeoutMs: number;
  /** Receive buffers kept posted (default 32). */
  rxBuffers?: number;
  /** Transmit slots (default 32). */
  txSlots?: number;
  /** Bytes of each receive buffer (default: the header and the largest frame). */
  rxBufferSize?: number;
  /** VIRTIO_NET_F_MRG_RXBUF negotiated: a packet may take num_buffers receive buffers. */
  mergeable?: boolean;
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

/** A receive buffer the device used, not yet part of a frame. */
interface UsedRx {
  index: number;
  len: number;
  batched: boolean;
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
  /** Transmit buffers used as part of an in-order batch (no used element of their own), so far. */
  batchedTx = 0;
  /** Receive buffers used as part of an in-order batch, so far. */
  batchedRx = 0;
  readonly #rx: VringPort<number, DriverQueue<number>>;
  readonly #tx: VringPort<number, DriverQueue<number>>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #rxSlots: RxSlot[] = [];
  readonly #txSlots: TxSlot[] = [];
  readonly #txFree: number[] = [];
  readonly #received: ReceivedFrame[] = [];
  readonly #usedRx: UsedRx[] = [];
  readonly #rxBufferSize: number;
  readonly #mergeable: boolean;

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
    this.#rxBufferSize = options.rxBufferSize ?? RX_BUFFER;
    this.#mergeable = options.mergeable ?? false;
    for (let i = 0; i < (options.rxBuffers ?? 32); i++) {
      const gpa = this.#memory.alloc(this.#rxBufferSize, 16);
      this.#rxSlots.push({ gpa, view: this.#memory.gpaToBytes(gpa, this.#rxBufferSize) });
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
      if (u.batched) this.batchedTx++;
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
    const end = performance.now() + timeoutMs;
    while (this.#received.length < count) {
      const { used } = await this.#rx.waitUsed(Math.max(1, end - performance.now()), 1);
      this.#takeRx(used);
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
    // With MRG_RXBUF a frame may take several buffers: as many frames out as the largest would fit.
    const perFrame = this.#mergeable ? Math.ceil((NET_HDR_SIZE + MAX_FRAME) / this.#rxBufferSize) : 1;
    const step = Math.max(1, Math.floor(this.#rxSlots.length / perFrame));
    for (let at = 0; at < frames.length; at += step) {
      const batch = frames.slice(at, at + step);
      await this.send(batch, options);
      out.push(...(await this.receive(batch.length)));
    }
    return out;
  }

  /**
   * Frames that came in, without waiting, their receive buffers posted again and the device notified of
   * them: for a caller that watches several queue pairs at once.
   */
  poll(): ReceivedFrame[] {
    const used = this.#rx.takeUsed();
    this.#takeRx(used);
    if (used.length) this.#rx.notify();
    return this.#received.splice(0);
  }

  /** Frames that came in and were not yet taken by `receive`, without waiting. */
  receivedNow(): ReceivedFrame[] {
    this.#takeRx(this.#rx.takeUsed());
    return this.#received.splice(0);
  }

  #postRx(index: number): void {
    const slot = this.#rxSlots[index]!;
    fillGuardBytes(slot.view);
    this.#rx.queue.addRequest([{ gpa: slot.gpa, len: this.#rxBufferSize, write: true }], { token: index });
  }

  /**
   * Turns used receive buffers into frames: one buffer a packet, or with MRG_RXBUF the num_buffers its
   * header names (a packet whose buffers are not all used yet waits for them). Each buffer is copied out
   * and posted again.
   */
  #takeRx(used: ReadonlyArray<{ token?: number | undefined; len: number; batched?: boolean }>): void {
    for (const u of used) {
      if (u.batched) this.batchedRx++;
      this.#usedRx.push({ index: u.token!, len: u.len, batched: u.batched ?? false });
    }
    while (this.#usedRx.length) {
      const first = this.#usedRx[0]!;
      const slot = this.#rxSlots[first.index]!;
      if (first.len < NET_HDR_SIZE || first.len > this.#rxBufferSize) {
        throw new BackendError(
          `receiveq buffer ${first.index} came back with used.len ${first.len}: a packet starts with the ` +
            `${NET_HDR_SIZE}-byte header, in a ${this.#rxBufferSize}-byte buffer`,
        );
      }
      const hdr = decodeNetHdr(slot.view);
      const buffers = this.#mergeable ? hdr.numBuffers : 1;
      if (buffers < 1 || buffers > this.#rxSlots.length) {
        throw new BackendError(
          `receiveq buffer ${first.index}: num_buffers ${hdr.numBuffers} with MRG_RXBUF, but ${this.#rxSlots.length} ` +
            'buffers are posted',
        );
      }
      if (this.#usedRx.length < buffers) return;
      const taken = this.#usedRx.splice(0, buffers);
      const parts: Uint8Array[] = [];
      for (const [k, u] of taken.entries()) {
        if (u.len > this.#rxBufferSize) {
          throw new BackendError(
            `receiveq buffer ${u.index} (${k + 1} of ${buffers}) came back with used.len ${u.len}, more than its ${this.#rxBufferSize} bytes`,
          );
        }
        parts.push(this.#rxSlots[u.index]!.view.slice(k === 0 ? NET_HDR_SIZE : 0, u.len));
        this.#postRx(u.index);
      }
      const usedLens = taken.map((u) => u.len);
      const frame = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      const tag = testFrameTag(frame);
      if (this.#mergeable && tag && tag.length > frame.length) {
        // The rest of the packet is in buffers num_buffers did not count: what follows would be read as
        // packets of their own.
        throw new BackendError(
          `a received packet's header says num_buffers ${hdr.numBuffers} (used.len ${usedLens.join(' + ')}), ` +
            `but the frame it starts is test frame ${tag.sequence} of ${tag.length} bytes: ${NET_HDR_SIZE + tag.length} ` +
            `bytes do not fit in ${buffers} buffer${buffers === 1 ? '' : 's'} of ${this.#rxBufferSize}`,
        );
      }
      this.#received.push({
        hdr,
        frame,
        usedLen: usedLens.reduce((a, b) => a + b, 0),
        usedLens,
        batched: taken.some((u) => u.batched),
      });
    }
  }
}
