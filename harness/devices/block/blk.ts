/**
 * virtio-blk's wire formats (virtio spec, "Block Device"), its config space and the sector patterns the checks
 * write. Each request is a chain of a 16-byte header {type le32, reserved le32, sector le64} the device reads,
 * the data (read by the device for OUT, written for IN and GET_ID), and one status byte the device writes,
 * last. The driver is driver.ts.
 */
import { BackendError, ProtocolError } from '../../errors.js';
import { GUARD_PATTERN } from '../../memory/guest-memory.js';
import type { FrontendSession } from '../../transport/session.js';
import type { BufferElement } from '../../virtqueue/split.js';
import { type ConfigSpace, readConfigSpace } from '../config.js';

/** Request types (VIRTIO_BLK_T_*). */
export const VirtioBlkType = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  GET_LIFETIME: 10,
  DISCARD: 11,
  WRITE_ZEROES: 13,
  SECURE_ERASE: 14,
} as const;
export type VirtioBlkTypeName = keyof typeof VirtioBlkType;

/** The status byte (VIRTIO_BLK_S_*). */
export const VirtioBlkStatus = {
  OK: 0,
  IOERR: 1, // "device or driver error"
  UNSUPP: 2, // "a request unsupported by device"
} as const;

/** Device feature bits (VIRTIO_BLK_F_*). */
export const VirtioBlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  GEOMETRY: 4,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  TOPOLOGY: 10,
  CONFIG_WCE: 11,
  MQ: 12,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

/** Sectors are 512 bytes on the wire whatever blk_size says. */
export const SECTOR_SIZE = 512;
/** The GET_ID buffer: "a NUL-padded ASCII string up to 20 bytes long". */
export const VIRTIO_BLK_ID_BYTES = 20;
/** struct virtio_blk_req up to the data: type, reserved, sector. */
export const BLK_HEADER_SIZE = 16;

/** Offsets in struct virtio_blk_config. */
export const BlkConfigOffset = {
  CAPACITY: 0, // le64, in 512-byte sectors, always present
  SIZE_MAX: 8, // le32, with SIZE_MAX
  SEG_MAX: 12, // le32, with SEG_MAX
  GEOMETRY: 16, // le16 cylinders, u8 heads, u8 sectors
  BLK_SIZE: 20, // le32, with BLK_SIZE
  NUM_QUEUES: 34, // le16, with MQ
} as const;
/** struct virtio_blk_config up to write_zeroes_may_unmap and its padding, as every back-end has it. */
export const BLK_CONFIG_SIZE = 60;

/** The device features this driver understands and may accept; ring features are chosen per check. */
export const BLK_DRIVER_FEATURES: readonly number[] = [
  VirtioBlkFeature.SIZE_MAX,
  VirtioBlkFeature.SEG_MAX,
  VirtioBlkFeature.GEOMETRY,
  VirtioBlkFeature.RO,
  VirtioBlkFeature.BLK_SIZE,
  VirtioBlkFeature.FLUSH,
  VirtioBlkFeature.TOPOLOGY,
];

export type BlkRequest =
  | { type: 'IN'; sector: bigint; count: number }
  | { type: 'OUT'; sector: bigint; data: Uint8Array }
  | { type: 'FLUSH' }
  | { type: 'GET_ID' };

/** Where one request's parts are, in guest addresses. */
export interface BlkRequestLayout {
  header: bigint;
  /** The data segments, in order; their lengths add up to the request's data length. */
  data: ReadonlyArray<{ gpa: bigint; len: number }>;
  status: bigint;
}

export const BlkErrorCode = {
  /** The status byte is not what the request called for. */
  STATUS: 'VHU_ERR_BLK_STATUS',
  /** used.len counts more than the device wrote: beyond the writable bytes, or bytes it never wrote. */
  USED_LEN: 'VHU_ERR_BLK_USED_LEN',
  /** The device wrote into a device-readable part of the chain. */
  READONLY_WRITTEN: 'VHU_ERR_BLK_READONLY_WRITTEN',
  /** The data an IN returned is not what the caller knows the disk holds. */
  DATA: 'VHU_ERR_BLK_DATA',
} as const;
export type BlkErrorCode = (typeof BlkErrorCode)[keyof typeof BlkErrorCode];

/** The device completed a virtio-blk request wrongly: a FAIL. */
export class BlkError extends BackendError {
  override readonly code: BlkErrorCode;
  constructor(code: BlkErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The 16 header bytes: type, reserved 0, sector (0 for requests without one). */
export function encodeBlkHeader(type: number, sector = 0n): Buffer {
  const out = Buffer.alloc(BLK_HEADER_SIZE);
  out.writeUInt32LE(type, 0);
  out.writeBigUInt64LE(sector, 8);
  return out;
}

export function blkTypeOf(request: BlkRequest): number {
  return VirtioBlkType[request.type];
}

/** Bytes of data the request carries (to the device for OUT, from it for IN and GET_ID). */
export function blkDataLength(request: BlkRequest): number {
  switch (request.type) {
    case 'IN':
      return request.count * SECTOR_SIZE;
    case 'OUT':
      return request.data.length;
    case 'FLUSH':
      return 0;
    case 'GET_ID':
      return VIRTIO_BLK_ID_BYTES;
  }
}

/** Whether the device writes the data (IN, GET_ID) rather than reads it (OUT). */
export function blkDeviceWritesData(request: BlkRequest): boolean {
  return request.type === 'IN' || request.type === 'GET_ID';
}

/**
 * used.len of a successful request that counts exactly what the device wrote: data then status (the status
 * byte is the last writable byte). The virtio spec lets it be less ("len is permitted to be an
 * underestimate"), never more.
 */
export function blkExpectedUsedLen(request: BlkRequest): number {
  return (blkDeviceWritesData(request) ? blkDataLength(request) : 0) + 1;
}

/** The request's chain: header (readable), data segments, status byte (writable, last). */
export function blkChain(request: BlkRequest, layout: BlkRequestLayout): BufferElement[] {
  return blkChainOf(layout, blkDeviceWritesData(request));
}

/** `blkChain` for data the device writes (`write`) or reads. */
export function blkChainOf(layout: BlkRequestLayout, write: boolean): BufferElement[] {
  return [
    { gpa: layout.header, len: BLK_HEADER_SIZE, write: false },
    ...layout.data.filter((s) => s.len > 0).map((s) => ({ gpa: s.gpa, len: s.len, write })),
    { gpa: layout.status, len: 1, write: true },
  ];
}

export function describeBlkRequest(request: BlkRequest): string {
  switch (request.type) {
    case 'IN':
      return `IN sector ${request.sector} x${request.count}`;
    case 'OUT':
      return `OUT sector ${request.sector} x${request.data.length / SECTOR_SIZE}`;
    default:
      return request.type;
  }
}

export function blkStatusName(status: number): string {
  const name = Object.entries(VirtioBlkStatus).find(([, v]) => v === status)?.[0];
  return name ? `${status} (${name})` : `${status} (not a VIRTIO_BLK_S_* value)`;
}

export interface BlkConfig {
  capacity: bigint;
  sizeMax: number;
  segMax: number;
  blkSize: number;
  /** Geometry: cylinders, heads, sectors. */
  geometry: { cylinders: number; heads: number; sectors: number };
  /** num_queues, when the config is long enough to hold it. */
  numQueues?: number;
}

export function decodeBlkConfig(bytes: Buffer): BlkConfig {
  if (bytes.length < BlkConfigOffset.BLK_SIZE + 4) {
    throw new ProtocolError(`virtio-blk config of ${bytes.length} bytes is too short`, bytes);
  }
  return {
    capacity: bytes.readBigUInt64LE(BlkConfigOffset.CAPACITY),
    sizeMax: bytes.readUInt32LE(BlkConfigOffset.SIZE_MAX),
    segMax: bytes.readUInt32LE(BlkConfigOffset.SEG_MAX),
    blkSize: bytes.readUInt32LE(BlkConfigOffset.BLK_SIZE),
    geometry: {
      cylinders: bytes.readUInt16LE(BlkConfigOffset.GEOMETRY),
      heads: bytes.readUInt8(BlkConfigOffset.GEOMETRY + 2),
      sectors: bytes.readUInt8(BlkConfigOffset.GEOMETRY + 3),
    },
    ...(bytes.length >= BlkConfigOffset.NUM_QUEUES + 2
      ? { numQueues: bytes.readUInt16LE(BlkConfigOffset.NUM_QUEUES) }
      : {}),
  };
}

/** struct virtio_blk_config as the harness reads it (see ../config.ts). */
export const BLK_CONFIG: ConfigSpace = {
  struct: 'virtio_blk_config',
  size: BLK_CONFIG_SIZE,
  // le32 blk_size after capacity, size_max, seg_max and geometry.
  field: { name: 'blk_size', offset: BlkConfigOffset.BLK_SIZE, size: 4 },
  // Only writeback (with VIRTIO_BLK_F_CONFIG_WCE) is the driver's to write.
  readOnly: { name: 'capacity', offset: BlkConfigOffset.CAPACITY, size: 8 },
  fields(bytes) {
    const c = decodeBlkConfig(bytes);
    return {
      capacity: c.capacity.toString(),
      size_max: c.sizeMax,
      seg_max: c.segMax,
      'geometry.cylinders': c.geometry.cylinders,
      'geometry.heads': c.geometry.heads,
      'geometry.sectors': c.geometry.sectors,
      blk_size: c.blkSize,
      ...(c.numQueues === undefined ? {} : { num_queues: c.numQueues }),
    };
  },
};

/** GET_CONFIG of the virtio-blk config space; needs PROTOCOL_F_CONFIG negotiated. */
export async function readBlkConfig(session: FrontendSession): Promise<BlkConfig> {
  return decodeBlkConfig(await readConfigSpace(session, BLK_CONFIG));
}

// ---- data patterns ----

/** Bytes 0-7 of each pattern sector hold its sector number, 8-11 the seed, the rest depends on both. */
const PATTERN_TAG_SIZE = 12;

/**
 * `count` sectors from `sector` as the checks write them. Every sector differs from every other and from
 * the same sector under another seed, and names itself, so a misplaced sector can be told apart.
 */
export function sectorPattern(sector: bigint, count: number, seed: number): Uint8Array {
  const out = new Uint8Array(count * SECTOR_SIZE);
  const view = new DataView(out.buffer);
  for (let s = 0; s < count; s++) {
    const at = s * SECTOR_SIZE;
    const number = sector + BigInt(s);
    view.setBigUint64(at, number, true);
    view.setUint32(at + 8, seed >>> 0, true);
    let x = (Number(number & 0xffff_ffffn) ^ Math.imul(seed, 0x9e37_79b1)) >>> 0 || 1;
    for (let i = PATTERN_TAG_SIZE; i < SECTOR_SIZE; i++) {
      // xorshift32: cheap, and no byte value repeats in a way a stuck pattern would hide
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out[at + i] = x & 0xff;
    }
  }
  return out;
}

/**
 * Undefined when `actual` equals `expected`; else which sector of the range starting at `sector` differs
 * first, how many bytes differ in all, and what the sector holds instead when that can be told (another
 * pattern sector, the guard bytes the driver left there, zeros).
 */
export function describeSectorDiff(
  expected: Uint8Array,
  actual: Uint8Array,
  sector: bigint,
): string | undefined {
  if (actual.length !== expected.length) return `${actual.length} bytes, expected ${expected.length}`;
  if (sameBytes(actual, expected)) return undefined;
  let differing = 0;
  let first = -1;
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] !== actual[i]) {
      differing++;
      if (first < 0) first = i;
    }
  }
  if (first < 0) return undefined;
  const index = Math.floor(first / SECTOR_SIZE);
  const got = actual.subarray(index * SECTOR_SIZE, (index + 1) * SECTOR_SIZE);
  const view = new DataView(got.buffer, got.byteOffset, got.byteLength);
  let holds: string;
  if (got.every((b, i) => b === GUARD_PATTERN[i % GUARD_PATTERN.length])) {
    holds = 'it was not written: it still holds the guard bytes the driver put there';
  } else if (got.every((b) => b === 0)) {
    holds = 'it holds zeros';
  } else if (
    got.length === SECTOR_SIZE &&
    sameBytes(got, sectorPattern(view.getBigUint64(0, true), 1, view.getUint32(8, true)))
  ) {
    holds = `it holds the pattern of sector ${view.getBigUint64(0, true)} (seed ${view.getUint32(8, true)})`;
  } else {
    holds = `first differing byte at offset ${first % SECTOR_SIZE}: 0x${(actual[first] ?? 0).toString(16)}, expected 0x${(expected[first] ?? 0).toString(16)}`;
  }
  return `sector ${sector + BigInt(index)} differs (${differing} of ${expected.length} bytes differ in all): ${holds}`;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
