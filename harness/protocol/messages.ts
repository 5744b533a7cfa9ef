/**
 * Typed payloads of the vhost-user spec's "Payload" section: one encoder (value -> bytes) and one decoder
 * (bytes -> value) per layout, pure functions over Buffers. The spec says native byte order; vhu-conform
 * supports little-endian hosts only, so every read and write here is explicitly little-endian.
 *
 * Encoders start from Buffer.alloc, so padding goes out as zeros; a value that does not fit its field is a
 * harness bug and throws a RangeError. Decoders check the size against the layout and throw a ProtocolError
 * naming the message and the byte count; they do not judge field values (that is for the checks).
 */
import { ProtocolError } from '../errors.js';
import {
  BackendRequest,
  DeviceStateReplyBits,
  PackedVringBaseBits,
  SplitVringBaseBits,
  VHOST_MEMORY_BASELINE_NREGIONS,
  VIRTIO_MAX_SHMEM_REGIONS,
  VringFileBits,
} from './spec.js';

export const U64_SIZE = 8;
export const VRING_STATE_SIZE = 8;
export const VRING_ADDRESS_SIZE = 40;
export const MEMORY_REGION_SIZE = 32;
/** With PROTOCOL_F_XEN_MMAP a region gains "xen mmap flags" and "domid" (u32 each). */
export const XEN_MEMORY_REGION_SIZE = 40;
/** "num regions" (u32) and "padding" (u32) before the regions. */
export const MEMORY_REGIONS_HEADER_SIZE = 8;
/** A 64-bit "padding" before the region. */
export const SINGLE_MEMORY_REGION_PADDING = 8;
export const LOG_DESCRIPTION_SIZE = 16;
/** struct vhost_iotlb_msg: 26 bytes of fields, then padding to 8-byte alignment (sizeof is 32). */
export const IOTLB_MESSAGE_SIZE = 32;
/** The spec's fields alone, without struct vhost_iotlb_msg's tail padding. */
export const IOTLB_MESSAGE_PACKED_SIZE = 26;
/** "offset", "size" and "flags" (u32 each) before the config bytes. */
export const DEVICE_CONFIG_HEADER_SIZE = 12;
export const VRING_AREA_SIZE = 24;
/** VhostUserInflight: 20 bytes of fields, then padding to 8-byte alignment (sizeof is 24). */
export const INFLIGHT_DESCRIPTION_SIZE = 24;
/** The spec's fields alone, without VhostUserInflight's tail padding. */
export const INFLIGHT_DESCRIPTION_PACKED_SIZE = 20;
export const SHARED_OBJECT_SIZE = 16;
export const DEVICE_STATE_TRANSFER_SIZE = 8;
/** shmid (u8), 7 bytes of padding, then four u64. */
export const MMAP_REQUEST_SIZE = 40;
export const SHMEM_CONFIG_SIZE = 8 + 8 * VIRTIO_MAX_SHMEM_REGIONS;

/** Options for memory region layouts. */
export interface RegionLayout {
  /** PROTOCOL_F_XEN_MMAP negotiated: each region carries "xen mmap flags" and "domid". */
  xenMmap?: boolean;
}

/** A vring state description; also the layout of SET_VRING_BASE / GET_VRING_BASE's descriptor indices. */
export interface VringState {
  index: number;
  num: number;
}

/** A vring address description. Addresses are IOVAs, guest-physical or user addresses, by features. */
export interface VringAddress {
  index: number;
  /** VHOST_VRING_F_LOG is bit 0. */
  flags: number;
  descriptor: bigint;
  used: bigint;
  available: bigint;
  log: bigint;
}

/** A memory region description. */
export interface MemoryRegion {
  guestAddress: bigint;
  size: bigint;
  userAddress: bigint;
  mmapOffset: bigint;
  /** Only with PROTOCOL_F_XEN_MMAP. */
  xenMmapFlags?: number;
  /** Only with PROTOCOL_F_XEN_MMAP. */
  domid?: number;
}

/** The multiple memory regions description of SET_MEM_TABLE (at most 8 regions). */
export interface MemoryRegions {
  regions: MemoryRegion[];
}

/** The log description of SET_LOG_BASE. */
export interface LogDescription {
  size: bigint;
  offset: bigint;
}

/** struct vhost_iotlb_msg. */
export interface IotlbMessage {
  iova: bigint;
  size: bigint;
  userAddress: bigint;
  /** IotlbPermission. */
  permissions: number;
  /** IotlbType. */
  type: number;
}

/** Virtio device config space access of GET_CONFIG / SET_CONFIG. `size` is the length of `payload`. */
export interface DeviceConfig {
  offset: number;
  size: number;
  /** DeviceConfigFlag. */
  flags: number;
  payload: Buffer;
}

/** Vring area description of BACKEND_VRING_HOST_NOTIFIER_MSG. */
export interface VringArea {
  /** The spec's `u64` field: "a 64-bit integer contains vring index and flags". */
  indexAndFlags: bigint;
  size: bigint;
  offset: bigint;
}

/** Inflight description of GET_INFLIGHT_FD / SET_INFLIGHT_FD. */
export interface InflightDescription {
  mmapSize: bigint;
  mmapOffset: bigint;
  numQueues: number;
  queueSize: number;
}

/** VhostUserShared: a UUID in its canonical text form (8-4-4-4-12 lowercase hex digits). */
export interface SharedObject {
  uuid: string;
}

/** Device state transfer parameters of SET_DEVICE_STATE_FD. */
export interface DeviceStateTransfer {
  /** DeviceStateDirection. */
  direction: number;
  /** DeviceStatePhase. */
  phase: number;
}

/** SET_DEVICE_STATE_FD's u64 reply. */
export interface DeviceStateReply {
  /** Bits 0-7: 0 on success. */
  error: number;
  /** Bit 8: no fd comes with the reply. */
  invalidFd: boolean;
}

/** The u64 of SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR. */
export interface VringFile {
  /** Bits 0-7. */
  index: number;
  /** Bit 8: no fd in the ancillary data. */
  invalidFd: boolean;
}

/** A split virtqueue's "vring descriptor index". */
export interface SplitVringBase {
  index: number;
  /** Bits 0-15: next available ring descriptor the back-end will process (free-running). */
  availIndex: number;
  /** Bits 16-31, which the spec reserves and wants zero. */
  reserved: number;
}

/** A packed virtqueue's "vring descriptor indices". */
export interface PackedVringBase {
  index: number;
  /** Bits 0-14. */
  availIndex: number;
  /** Bit 15. */
  availWrapCounter: boolean;
  /** Bits 16-30. */
  usedIndex: number;
  /** Bit 31. */
  usedWrapCounter: boolean;
}

/** MMAP request of BACKEND_SHMEM_MAP / BACKEND_SHMEM_UNMAP. */
export interface MmapRequest {
  shmid: number;
  fdOffset: bigint;
  shmOffset: bigint;
  len: bigint;
  /** ShmemMapFlag. */
  flags: bigint;
}

/** VIRTIO Shared Memory Region configuration, GET_SHMEM_CONFIG's reply. */
export interface ShmemConfig {
  numRegions: number;
  /** The size of each region by shmid; encoders pad to 256 with zeros, decoders return all 256. */
  memSizes: bigint[];
}

/** Throws unless `payload` is exactly `expected` bytes (or one of them). */
function expectSize(
  payload: Buffer,
  expected: number | readonly number[],
  what: string,
  message?: string,
): void {
  const sizes = typeof expected === 'number' ? [expected] : expected;
  if (sizes.includes(payload.length)) return;
  throw new ProtocolError(
    `${message ?? what}: ${what} payload is ${payload.length} bytes, expected ${sizes.join(' or ')}`,
    payload,
  );
}

function byteRange(value: number, field: string, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${field} ${value} does not fit its field (0..${max})`);
  }
  return value;
}

// ---- u64 ----

export function encodeU64(value: bigint): Buffer {
  const out = Buffer.alloc(U64_SIZE);
  out.writeBigUInt64LE(value, 0);
  return out;
}

export function decodeU64(payload: Buffer, message?: string): bigint {
  expectSize(payload, U64_SIZE, 'u64', message);
  return payload.readBigUInt64LE(0);
}

/** SET_VRING_KICK / CALL / ERR's u64: index in bits 0-7, bit 8 set when no fd is attached. */
export function packVringFile(file: VringFile): bigint {
  return (
    BigInt(byteRange(file.index, 'vring index', 0xff)) | (file.invalidFd ? VringFileBits.INVALID_FD : 0n)
  );
}

export function unpackVringFile(value: bigint): VringFile {
  return {
    index: Number(value & VringFileBits.INDEX_MASK),
    invalidFd: (value & VringFileBits.INVALID_FD) !== 0n,
  };
}

export function encodeVringFile(file: VringFile): Buffer {
  return encodeU64(packVringFile(file));
}

export function decodeVringFile(payload: Buffer, message?: string): VringFile {
  return unpackVringFile(decodeU64(payload, message));
}

export function encodeDeviceStateReply(reply: DeviceStateReply): Buffer {
  const error = BigInt(byteRange(reply.error, 'error', 0xff));
  return encodeU64(error | (reply.invalidFd ? DeviceStateReplyBits.INVALID_FD : 0n));
}

export function decodeDeviceStateReply(payload: Buffer, message?: string): DeviceStateReply {
  const value = decodeU64(payload, message);
  return {
    error: Number(value & DeviceStateReplyBits.ERROR_MASK),
    invalidFd: (value & DeviceStateReplyBits.INVALID_FD) !== 0n,
  };
}

// ---- vring state, descriptor index/indices ----

export function encodeVringState(state: VringState): Buffer {
  const out = Buffer.alloc(VRING_STATE_SIZE);
  out.writeUInt32LE(state.index, 0);
  out.writeUInt32LE(state.num, 4);
  return out;
}

export function decodeVringState(payload: Buffer, message?: string): VringState {
  expectSize(payload, VRING_STATE_SIZE, 'vring state', message);
  return { index: payload.readUInt32LE(0), num: payload.readUInt32LE(4) };
}

export function encodeSplitVringBase(base: { index: number; availIndex: number }): Buffer {
  return encodeVringState({ index: base.index, num: byteRange(base.availIndex, 'avail index', 0xffff) });
}

export function decodeSplitVringBase(payload: Buffer, message?: string): SplitVringBase {
  const { index, num } = decodeVringState(payload, message);
  return { index, availIndex: num & SplitVringBaseBits.AVAIL_INDEX_MASK, reserved: num >>> 16 };
}

export function encodePackedVringBase(base: PackedVringBase): Buffer {
  const num =
    byteRange(base.availIndex, 'avail index', PackedVringBaseBits.AVAIL_INDEX_MASK) |
    (base.availWrapCounter ? PackedVringBaseBits.AVAIL_WRAP_COUNTER : 0) |
    (byteRange(base.usedIndex, 'used index', PackedVringBaseBits.USED_INDEX_MASK) <<
      PackedVringBaseBits.USED_INDEX_SHIFT) |
    (base.usedWrapCounter ? PackedVringBaseBits.USED_WRAP_COUNTER : 0);
  return encodeVringState({ index: base.index, num: num >>> 0 });
}

export function decodePackedVringBase(payload: Buffer, message?: string): PackedVringBase {
  const { index, num } = decodeVringState(payload, message);
  return {
    index,
    availIndex: num & PackedVringBaseBits.AVAIL_INDEX_MASK,
    availWrapCounter: (num & PackedVringBaseBits.AVAIL_WRAP_COUNTER) !== 0,
    usedIndex: (num >>> PackedVringBaseBits.USED_INDEX_SHIFT) & PackedVringBaseBits.USED_INDEX_MASK,
    usedWrapCounter: (num & PackedVringBaseBits.USED_WRAP_COUNTER) !== 0,
  };
}

// ---- vring address ----

export function encodeVringAddress(address: VringAddress): Buffer {
  const out = Buffer.alloc(VRING_ADDRESS_SIZE);
  out.writeUInt32LE(address.index, 0);
  out.writeUInt32LE(address.flags, 4);
  out.writeBigUInt64LE(address.descriptor, 8);
  out.writeBigUInt64LE(address.used, 16);
  out.writeBigUInt64LE(address.available, 24);
  out.writeBigUInt64LE(address.log, 32);
  return out;
}

export function decodeVringAddress(payload: Buffer, message?: string): VringAddress {
  expectSize(payload, VRING_ADDRESS_SIZE, 'vring address', message);
  return {
    index: payload.readUInt32LE(0),
    flags: payload.readUInt32LE(4),
    descriptor: payload.readBigUInt64LE(8),
    used: payload.readBigUInt64LE(16),
    available: payload.readBigUInt64LE(24),
    log: payload.readBigUInt64LE(32),
  };
}

// ---- memory regions ----

function regionSize(layout: RegionLayout): number {
  return layout.xenMmap ? XEN_MEMORY_REGION_SIZE : MEMORY_REGION_SIZE;
}

function writeRegion(out: Buffer, offset: number, region: MemoryRegion, layout: RegionLayout): void {
  out.writeBigUInt64LE(region.guestAddress, offset);
  out.writeBigUInt64LE(region.size, offset + 8);
  out.writeBigUInt64LE(region.userAddress, offset + 16);
  out.writeBigUInt64LE(region.mmapOffset, offset + 24);
  if (layout.xenMmap) {
    out.writeUInt32LE(region.xenMmapFlags ?? 0, offset + 32);
    out.writeUInt32LE(region.domid ?? 0, offset + 36);
  }
}

function readRegion(payload: Buffer, offset: number, layout: RegionLayout): MemoryRegion {
  const region: MemoryRegion = {
    guestAddress: payload.readBigUInt64LE(offset),
    size: payload.readBigUInt64LE(offset + 8),
    userAddress: payload.readBigUInt64LE(offset + 16),
    mmapOffset: payload.readBigUInt64LE(offset + 24),
  };
  if (layout.xenMmap) {
    region.xenMmapFlags = payload.readUInt32LE(offset + 32);
    region.domid = payload.readUInt32LE(offset + 36);
  }
  return region;
}

/** SET_MEM_TABLE's payload, sized as QEMU sends it: the header and the regions present, not all 8 slots. */
export function encodeMemoryRegions(table: MemoryRegions, layout: RegionLayout = {}): Buffer {
  if (table.regions.length > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new RangeError(
      `${table.regions.length} memory regions do not fit the ${VHOST_MEMORY_BASELINE_NREGIONS} slots`,
    );
  }
  const size = regionSize(layout);
  const out = Buffer.alloc(MEMORY_REGIONS_HEADER_SIZE + size * table.regions.length);
  out.writeUInt32LE(table.regions.length, 0);
  table.regions.forEach((region, i) => {
    writeRegion(out, MEMORY_REGIONS_HEADER_SIZE + size * i, region, layout);
  });
  return out;
}

/**
 * Accepts the regions present ("num regions" of them, as QEMU sends) or all 8 slots (as the spec's table
 * draws it), and returns the first "num regions" regions.
 */
export function decodeMemoryRegions(
  payload: Buffer,
  message?: string,
  layout: RegionLayout = {},
): MemoryRegions {
  const what = 'memory regions';
  if (payload.length < MEMORY_REGIONS_HEADER_SIZE) {
    expectSize(payload, MEMORY_REGIONS_HEADER_SIZE, what, message);
  }
  const count = payload.readUInt32LE(0);
  if (count > VHOST_MEMORY_BASELINE_NREGIONS) {
    throw new ProtocolError(
      `${message ?? what}: ${what} payload announces ${count} regions, more than ${VHOST_MEMORY_BASELINE_NREGIONS}`,
      payload,
    );
  }
  const size = regionSize(layout);
  const present = MEMORY_REGIONS_HEADER_SIZE + size * count;
  const allSlots = MEMORY_REGIONS_HEADER_SIZE + size * VHOST_MEMORY_BASELINE_NREGIONS;
  expectSize(payload, present === allSlots ? present : [present, allSlots], what, message);
  const regions: MemoryRegion[] = [];
  for (let i = 0; i < count; i++)
    regions.push(readRegion(payload, MEMORY_REGIONS_HEADER_SIZE + size * i, layout));
  return { regions };
}

/** ADD_MEM_REG / REM_MEM_REG's payload: 64-bit padding, then one region. */
export function encodeSingleMemoryRegion(region: MemoryRegion, layout: RegionLayout = {}): Buffer {
  const out = Buffer.alloc(SINGLE_MEMORY_REGION_PADDING + regionSize(layout));
  writeRegion(out, SINGLE_MEMORY_REGION_PADDING, region, layout);
  return out;
}

export function decodeSingleMemoryRegion(
  payload: Buffer,
  message?: string,
  layout: RegionLayout = {},
): MemoryRegion {
  expectSize(payload, SINGLE_MEMORY_REGION_PADDING + regionSize(layout), 'single memory region', message);
  return readRegion(payload, SINGLE_MEMORY_REGION_PADDING, layout);
}

// ---- log ----

export function encodeLogDescription(log: LogDescription): Buffer {
  const out = Buffer.alloc(LOG_DESCRIPTION_SIZE);
  out.writeBigUInt64LE(log.size, 0);
  out.writeBigUInt64LE(log.offset, 8);
  return out;
}

export function decodeLogDescription(payload: Buffer, message?: string): LogDescription {
  expectSize(payload, LOG_DESCRIPTION_SIZE, 'log description', message);
  return { size: payload.readBigUInt64LE(0), offset: payload.readBigUInt64LE(8) };
}

// ---- IOTLB ----

/** 32 bytes, as struct vhost_iotlb_msg is sent by QEMU: the spec's 26 bytes of fields and 6 of padding. */
export function encodeIotlbMessage(iotlb: IotlbMessage): Buffer {
  const out = Buffer.alloc(IOTLB_MESSAGE_SIZE);
  out.writeBigUInt64LE(iotlb.iova, 0);
  out.writeBigUInt64LE(iotlb.size, 8);
  out.writeBigUInt64LE(iotlb.userAddress, 16);
  out.writeUInt8(iotlb.permissions, 24);
  out.writeUInt8(iotlb.type, 25);
  return out;
}

/** Accepts the C struct (32 bytes) and the spec's fields without tail padding (26 bytes). */
export function decodeIotlbMessage(payload: Buffer, message?: string): IotlbMessage {
  expectSize(payload, [IOTLB_MESSAGE_SIZE, IOTLB_MESSAGE_PACKED_SIZE], 'IOTLB message', message);
  return {
    iova: payload.readBigUInt64LE(0),
    size: payload.readBigUInt64LE(8),
    userAddress: payload.readBigUInt64LE(16),
    permissions: payload.readUInt8(24),
    type: payload.readUInt8(25),
  };
}

// ---- device config space ----

export function encodeDeviceConfig(config: DeviceConfig): Buffer {
  if (config.size !== config.payload.length) {
    throw new RangeError(
      `device config size ${config.size} is not its payload's ${config.payload.length} bytes`,
    );
  }
  const out = Buffer.alloc(DEVICE_CONFIG_HEADER_SIZE + config.payload.length);
  out.writeUInt32LE(config.offset, 0);
  out.writeUInt32LE(config.size, 4);
  out.writeUInt32LE(config.flags, 8);
  config.payload.copy(out, DEVICE_CONFIG_HEADER_SIZE);
  return out;
}

export function decodeDeviceConfig(payload: Buffer, message?: string): DeviceConfig {
  const what = 'device config';
  if (payload.length < DEVICE_CONFIG_HEADER_SIZE) {
    expectSize(payload, DEVICE_CONFIG_HEADER_SIZE, what, message);
  }
  const size = payload.readUInt32LE(4);
  expectSize(payload, DEVICE_CONFIG_HEADER_SIZE + size, what, message);
  return {
    offset: payload.readUInt32LE(0),
    size,
    flags: payload.readUInt32LE(8),
    payload: Buffer.from(payload.subarray(DEVICE_CONFIG_HEADER_SIZE)),
  };
}

/** GET_CONFIG's reply: `undefined` for the zero-length payload by which the back-end reports an error. */
export function decodeConfigReply(payload: Buffer, message?: string): DeviceConfig | undefined {
  return payload.length === 0 ? undefined : decodeDeviceConfig(payload, message);
}

// ---- vring area ----

export function encodeVringArea(area: VringArea): Buffer {
  const out = Buffer.alloc(VRING_AREA_SIZE);
  out.writeBigUInt64LE(area.indexAndFlags, 0);
  out.writeBigUInt64LE(area.size, 8);
  out.writeBigUInt64LE(area.offset, 16);
  return out;
}

export function decodeVringArea(payload: Buffer, message?: string): VringArea {
  expectSize(payload, VRING_AREA_SIZE, 'vring area', message);
  return {
    indexAndFlags: payload.readBigUInt64LE(0),
    size: payload.readBigUInt64LE(8),
    offset: payload.readBigUInt64LE(16),
  };
}

// ---- inflight ----

/** 24 bytes, as VhostUserInflight is sent by QEMU and checked by libvhost-user: 20 of fields, 4 of padding. */
export function encodeInflightDescription(inflight: InflightDescription): Buffer {
  const out = Buffer.alloc(INFLIGHT_DESCRIPTION_SIZE);
  out.writeBigUInt64LE(inflight.mmapSize, 0);
  out.writeBigUInt64LE(inflight.mmapOffset, 8);
  out.writeUInt16LE(inflight.numQueues, 16);
  out.writeUInt16LE(inflight.queueSize, 18);
  return out;
}

/** Accepts the C struct (24 bytes) and the spec's fields without tail padding (20 bytes). */
export function decodeInflightDescription(payload: Buffer, message?: string): InflightDescription {
  expectSize(
    payload,
    [INFLIGHT_DESCRIPTION_SIZE, INFLIGHT_DESCRIPTION_PACKED_SIZE],
    'inflight description',
    message,
  );
  return {
    mmapSize: payload.readBigUInt64LE(0),
    mmapOffset: payload.readBigUInt64LE(8),
    numQueues: payload.readUInt16LE(16),
    queueSize: payload.readUInt16LE(18),
  };
}

// ---- shared object ----

const UUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The spec stores the UUID's first three components big-endian, which is the order of its text form: the
 * 16 bytes are the hex digits in order.
 */
export function encodeSharedObject(object: SharedObject): Buffer {
  if (!UUID_TEXT.test(object.uuid)) throw new RangeError(`${object.uuid} is not a UUID`);
  return Buffer.from(object.uuid.replaceAll('-', ''), 'hex');
}

export function decodeSharedObject(payload: Buffer, message?: string): SharedObject {
  expectSize(payload, SHARED_OBJECT_SIZE, 'shared object', message);
  const hex = payload.toString('hex');
  return {
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

// ---- device state transfer ----

export function encodeDeviceStateTransfer(transfer: DeviceStateTransfer): Buffer {
  const out = Buffer.alloc(DEVICE_STATE_TRANSFER_SIZE);
  out.writeUInt32LE(transfer.direction, 0);
  out.writeUInt32LE(transfer.phase, 4);
  return out;
}

export function decodeDeviceStateTransfer(payload: Buffer, message?: string): DeviceStateTransfer {
  expectSize(payload, DEVICE_STATE_TRANSFER_SIZE, 'device state transfer', message);
  return { direction: payload.readUInt32LE(0), phase: payload.readUInt32LE(4) };
}

// ---- shared memory (back-end channel SHMEM_MAP / SHMEM_UNMAP, GET_SHMEM_CONFIG) ----

export function encodeMmapRequest(request: MmapRequest): Buffer {
  const out = Buffer.alloc(MMAP_REQUEST_SIZE);
  out.writeUInt8(request.shmid, 0);
  out.writeBigUInt64LE(request.fdOffset, 8);
  out.writeBigUInt64LE(request.shmOffset, 16);
  out.writeBigUInt64LE(request.len, 24);
  out.writeBigUInt64LE(request.flags, 32);
  return out;
}

export function decodeMmapRequest(payload: Buffer, message?: string): MmapRequest {
  expectSize(payload, MMAP_REQUEST_SIZE, 'MMAP request', message);
  return {
    shmid: payload.readUInt8(0),
    fdOffset: payload.readBigUInt64LE(8),
    shmOffset: payload.readBigUInt64LE(16),
    len: payload.readBigUInt64LE(24),
    flags: payload.readBigUInt64LE(32),
  };
}

export function encodeShmemConfig(config: ShmemConfig): Buffer {
  if (config.memSizes.length > VIRTIO_MAX_SHMEM_REGIONS) {
    throw new RangeError(
      `${config.memSizes.length} shared memory sizes do not fit ${VIRTIO_MAX_SHMEM_REGIONS}`,
    );
  }
  const out = Buffer.alloc(SHMEM_CONFIG_SIZE);
  out.writeUInt32LE(config.numRegions, 0);
  config.memSizes.forEach((size, shmid) => {
    out.writeBigUInt64LE(size, 8 + 8 * shmid);
  });
  return out;
}

export function decodeShmemConfig(payload: Buffer, message?: string): ShmemConfig {
  expectSize(payload, SHMEM_CONFIG_SIZE, 'shared memory config', message);
  const memSizes: bigint[] = [];
  for (let shmid = 0; shmid < VIRTIO_MAX_SHMEM_REGIONS; shmid++) {
    memSizes.push(payload.readBigUInt64LE(8 + 8 * shmid));
  }
  return { numRegions: payload.readUInt32LE(0), memSizes };
}

// ---- the back-end channel ----

/** A back-end request decoded by its type. */
export type BackendMessage =
  | { name: 'IOTLB_MSG'; iotlb: IotlbMessage }
  | { name: 'CONFIG_CHANGE_MSG' }
  | { name: 'VRING_HOST_NOTIFIER_MSG'; area: VringArea }
  | { name: 'VRING_CALL' | 'VRING_ERR'; state: VringState }
  | { name: 'SHARED_OBJECT_ADD' | 'SHARED_OBJECT_REMOVE' | 'SHARED_OBJECT_LOOKUP'; object: SharedObject }
  | { name: 'SHMEM_MAP' | 'SHMEM_UNMAP'; mmap: MmapRequest };

/** Decodes the payload of a back-end request by its request id; an unknown id is a ProtocolError. */
export function decodeBackendRequest(request: number, payload: Buffer): BackendMessage {
  switch (request) {
    case BackendRequest.IOTLB_MSG:
      return { name: 'IOTLB_MSG', iotlb: decodeIotlbMessage(payload, 'BACKEND_IOTLB_MSG') };
    case BackendRequest.CONFIG_CHANGE_MSG:
      expectSize(payload, 0, 'empty', 'BACKEND_CONFIG_CHANGE_MSG');
      return { name: 'CONFIG_CHANGE_MSG' };
    case BackendRequest.VRING_HOST_NOTIFIER_MSG:
      return {
        name: 'VRING_HOST_NOTIFIER_MSG',
        area: decodeVringArea(payload, 'BACKEND_VRING_HOST_NOTIFIER_MSG'),
      };
    case BackendRequest.VRING_CALL:
      return { name: 'VRING_CALL', state: decodeVringState(payload, 'BACKEND_VRING_CALL') };
    case BackendRequest.VRING_ERR:
      return { name: 'VRING_ERR', state: decodeVringState(payload, 'BACKEND_VRING_ERR') };
    case BackendRequest.SHARED_OBJECT_ADD:
      return { name: 'SHARED_OBJECT_ADD', object: decodeSharedObject(payload, 'BACKEND_SHARED_OBJECT_ADD') };
    case BackendRequest.SHARED_OBJECT_REMOVE:
      return {
        name: 'SHARED_OBJECT_REMOVE',
        object: decodeSharedObject(payload, 'BACKEND_SHARED_OBJECT_REMOVE'),
      };
    case BackendRequest.SHARED_OBJECT_LOOKUP:
      return {
        name: 'SHARED_OBJECT_LOOKUP',
        object: decodeSharedObject(payload, 'BACKEND_SHARED_OBJECT_LOOKUP'),
      };
    case BackendRequest.SHMEM_MAP:
      return { name: 'SHMEM_MAP', mmap: decodeMmapRequest(payload, 'BACKEND_SHMEM_MAP') };
    case BackendRequest.SHMEM_UNMAP:
      return { name: 'SHMEM_UNMAP', mmap: decodeMmapRequest(payload, 'BACKEND_SHMEM_UNMAP') };
    default:
      throw new ProtocolError(
        `back-end request ${request} is not a back-end message type of the spec`,
        payload,
      );
  }
}
