/**
 * virtio-scsi wire formats (virtio spec, "SCSI Host Device"): the request header and response of the request
 * queues, the config space, the CDBs the checks send (SPC-4, SBC-3) and fixed-format sense data. No I/O: the
 * driver is driver.ts. Little-endian virtio fields; CDB fields are big-endian, as SCSI has them.
 */
import { ProtocolError } from '../../errors.js';
import type { ConfigSpace } from '../config.js';

/** The virtqueues: controlq, eventq, then the request queues. */
export const ScsiQueue = { CONTROL: 0, EVENT: 1, REQUEST: 2 } as const;

/** Device feature bits (VIRTIO_SCSI_F_*). */
export const VirtioScsiFeature = { INOUT: 0, HOTPLUG: 1, CHANGE: 2, T10_PI: 3 } as const;

/** The response byte (VIRTIO_SCSI_S_*). */
export const VirtioScsiResponse = {
  OK: 0,
  OVERRUN: 1,
  ABORTED: 2,
  BAD_TARGET: 3,
  RESET: 4,
  BUSY: 5,
  TRANSPORT_FAILURE: 6,
  TARGET_FAILURE: 7,
  NEXUS_FAILURE: 8,
  FAILURE: 9,
} as const;

/** SCSI status codes (SAM-5, 5.3.1). */
export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  ACA_ACTIVE: 0x30,
  TASK_ABORTED: 0x40,
} as const;

/** Sense keys (SPC-4, 4.5.6). */
export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  BLANK_CHECK: 0x8,
  VENDOR_SPECIFIC: 0x9,
  COPY_ABORTED: 0xa,
  ABORTED_COMMAND: 0xb,
  VOLUME_OVERFLOW: 0xd,
  MISCOMPARE: 0xe,
} as const;

/** The additional sense codes the checks name (ASC << 8 | ASCQ, SPC-4 Table D.1). */
export const AdditionalSense = {
  INVALID_COMMAND_OPERATION_CODE: 0x2000,
  LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE: 0x2100,
  INVALID_FIELD_IN_CDB: 0x2400,
  LOGICAL_UNIT_NOT_SUPPORTED: 0x2500,
  POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED: 0x2900,
  REPORTED_LUNS_DATA_HAS_CHANGED: 0x3f0e,
} as const;

/** Operation codes of the commands the checks send. */
export const ScsiOpcode = {
  TEST_UNIT_READY: 0x00,
  INQUIRY: 0x12,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  /** SERVICE ACTION IN(16); READ CAPACITY(16) is its service action 10h. */
  SERVICE_ACTION_IN_16: 0x9e,
  REPORT_LUNS: 0xa0,
} as const;
export const READ_CAPACITY_16_SERVICE_ACTION = 0x10;

/** controlq request types (VIRTIO_SCSI_T_*) and task management functions (VIRTIO_SCSI_T_TMF_*). */
export const VirtioScsiControl = { TMF: 0, AN_QUERY: 1, AN_SUBSCRIBE: 2 } as const;
export const VirtioScsiTmf = {
  ABORT_TASK: 0,
  ABORT_TASK_SET: 1,
  CLEAR_ACA: 2,
  CLEAR_TASK_SET: 3,
  I_T_NEXUS_RESET: 4,
  LOGICAL_UNIT_RESET: 5,
  QUERY_TASK: 6,
  QUERY_TASK_SET: 7,
} as const;
/** A TMF's response byte: the command-specific values, and those valid for every controlq command. */
export const VirtioScsiTmfResponse = {
  FUNCTION_COMPLETE: 0,
  BAD_TARGET: 3,
  BUSY: 5,
  TRANSPORT_FAILURE: 6,
  TARGET_FAILURE: 7,
  NEXUS_FAILURE: 8,
  FAILURE: 9,
  FUNCTION_SUCCEEDED: 10,
  FUNCTION_REJECTED: 11,
  INCORRECT_LUN: 12,
} as const;
/** struct virtio_scsi_ctrl_tmf up to the response: type, subtype, lun, id. */
export const TMF_REQ_SIZE = 24;

/** struct virtio_scsi_ctrl_tmf's device-readable part. */
export function encodeTmfReq(subtype: number, address: ScsiAddress, id = 0n): Buffer {
  const out = Buffer.alloc(TMF_REQ_SIZE);
  out.writeUInt32LE(VirtioScsiControl.TMF, 0);
  out.writeUInt32LE(subtype, 4);
  encodeLun(address).copy(out, 8);
  out.writeBigUInt64LE(id, 16);
  return out;
}

export function tmfResponseName(response: number): string {
  const name = nameIn(VirtioScsiTmfResponse, response);
  return name ? `${response} (VIRTIO_SCSI_S_${name})` : `${response} (not a TMF response value)`;
}

/** The defaults the device writes, and must restore on reset ("Device configuration layout"). */
export const DEFAULT_CDB_SIZE = 32;
export const DEFAULT_SENSE_SIZE = 96;
/** lun, id, task_attr, prio, crn: the header before the CDB. */
export const CMD_HEADER_SIZE = 19;
/** sense_len, residual, status_qualifier, status, response: the response before the sense bytes. */
export const RESP_HEADER_SIZE = 12;
/** struct virtio_scsi_config. */
export const SCSI_CONFIG_SIZE = 36;

/** Where a logical unit is: its target (0-255) and LUN (0-16383). */
export interface ScsiAddress {
  target: number;
  lun: number;
}

/**
 * The 8-byte lun field: "first byte set to 1, second byte set to target, third and fourth byte representing
 * a single level LUN structure, followed by four zero bytes" (the flat space format, SAM-5 4.7.7: 01b in the
 * top two bits, the LUN in the 14 below).
 */
export function encodeLun(address: ScsiAddress): Buffer {
  const out = Buffer.alloc(8);
  out[0] = 1;
  out[1] = address.target;
  out.writeUInt16BE(0x4000 | (address.lun & 0x3fff), 2);
  return out;
}

/** The LUNs of REPORT LUNS' list, read as single level LUN structures (peripheral or flat space). */
export function decodeReportedLun(entry: Uint8Array): number {
  const word = ((entry[0] ?? 0) << 8) | (entry[1] ?? 0);
  return word & 0x3fff;
}

export interface ScsiCmdReq {
  address: ScsiAddress;
  /** The command identifier (tag). */
  id: bigint;
  cdb: Uint8Array;
  /** The cdb field's size (cdb_size); the CDB is zero-padded to it. */
  cdbSize: number;
}

/** struct virtio_scsi_req_cmd up to the data: lun, id, task_attr 0 (SIMPLE), prio 0, crn 0, cdb. */
export function encodeCmdReq(req: ScsiCmdReq): Buffer {
  if (req.cdb.length > req.cdbSize)
    throw new Error(`a CDB of ${req.cdb.length} bytes in cdb_size ${req.cdbSize}`);
  const out = Buffer.alloc(CMD_HEADER_SIZE + req.cdbSize);
  encodeLun(req.address).copy(out, 0);
  out.writeBigUInt64LE(req.id, 8);
  out.set(req.cdb, CMD_HEADER_SIZE);
  return out;
}

export interface ScsiCmdResp {
  senseLen: number;
  residual: number;
  statusQualifier: number;
  status: number;
  response: number;
  /** The sense bytes as the device left them, sense_size of them. */
  sense: Buffer;
}

export function decodeCmdResp(bytes: Uint8Array): ScsiCmdResp {
  if (bytes.length < RESP_HEADER_SIZE)
    throw new ProtocolError(`a virtio-scsi response of ${bytes.length} bytes`, Buffer.from(bytes));
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    senseLen: b.readUInt32LE(0),
    residual: b.readUInt32LE(4),
    statusQualifier: b.readUInt16LE(8),
    status: b[10]!,
    response: b[11]!,
    sense: Buffer.from(b.subarray(RESP_HEADER_SIZE)),
  };
}

export interface ScsiConfig {
  numQueues: number;
  segMax: number;
  maxSectors: number;
  cmdPerLun: number;
  eventInfoSize: number;
  senseSize: number;
  cdbSize: number;
  maxChannel: number;
  maxTarget: number;
  maxLun: number;
}

export function decodeScsiConfig(bytes: Buffer): ScsiConfig {
  if (bytes.length < SCSI_CONFIG_SIZE) {
    throw new ProtocolError(`virtio-scsi config of ${bytes.length} bytes is too short`, bytes);
  }
  return {
    numQueues: bytes.readUInt32LE(0),
    segMax: bytes.readUInt32LE(4),
    maxSectors: bytes.readUInt32LE(8),
    cmdPerLun: bytes.readUInt32LE(12),
    eventInfoSize: bytes.readUInt32LE(16),
    senseSize: bytes.readUInt32LE(20),
    cdbSize: bytes.readUInt32LE(24),
    maxChannel: bytes.readUInt16LE(28),
    maxTarget: bytes.readUInt16LE(30),
    maxLun: bytes.readUInt32LE(32),
  };
}

/** struct virtio_scsi_config as the harness reads it (see ../config.ts). */
export const SCSI_CONFIG: ConfigSpace = {
  struct: 'virtio_scsi_config',
  size: SCSI_CONFIG_SIZE,
  fields(bytes) {
    const c = decodeScsiConfig(bytes);
    return {
      num_queues: c.numQueues,
      seg_max: c.segMax,
      max_sectors: c.maxSectors,
      cmd_per_lun: c.cmdPerLun,
      max_channel: c.maxChannel,
      max_target: c.maxTarget,
      max_lun: c.maxLun,
    };
  },
};

// ---- CDBs ----

/** TEST UNIT READY (SPC-4 6.47). */
export function testUnitReadyCdb(): Buffer {
  return Buffer.alloc(6);
}

/** INQUIRY of the standard data (SPC-4 6.6), `allocation` bytes at most. */
export function inquiryCdb(allocation: number): Buffer {
  const cdb = Buffer.alloc(6);
  cdb[0] = ScsiOpcode.INQUIRY;
  cdb.writeUInt16BE(allocation, 3);
  return cdb;
}

/** REPORT LUNS (SPC-4 6.33), select report 0, `allocation` bytes at most. */
export function reportLunsCdb(allocation: number): Buffer {
  const cdb = Buffer.alloc(12);
  cdb[0] = ScsiOpcode.REPORT_LUNS;
  cdb.writeUInt32BE(allocation, 6);
  return cdb;
}

/** READ CAPACITY(16) (SBC-3 5.16), `allocation` bytes at most. */
export function readCapacity16Cdb(allocation = 32): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = ScsiOpcode.SERVICE_ACTION_IN_16;
  cdb[1] = READ_CAPACITY_16_SERVICE_ACTION;
  cdb.writeUInt32BE(allocation, 10);
  return cdb;
}

/** READ(10) / WRITE(10) (SBC-3 5.11, 5.35): a 32-bit LBA and a 16-bit block count. */
export function rw10Cdb(write: boolean, lba: number, blocks: number): Buffer {
  const cdb = Buffer.alloc(10);
  cdb[0] = write ? ScsiOpcode.WRITE_10 : ScsiOpcode.READ_10;
  cdb.writeUInt32BE(lba, 2);
  cdb.writeUInt16BE(blocks, 7);
  return cdb;
}

/** READ(16) / WRITE(16) (SBC-3 5.13, 5.37): a 64-bit LBA and a 32-bit block count. */
export function rw16Cdb(write: boolean, lba: bigint, blocks: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = write ? ScsiOpcode.WRITE_16 : ScsiOpcode.READ_16;
  cdb.writeBigUInt64BE(lba, 2);
  cdb.writeUInt32BE(blocks, 10);
  return cdb;
}

// ---- data-in of the commands ----

export interface InquiryData {
  peripheralQualifier: number;
  peripheralDeviceType: number;
  version: number;
  responseDataFormat: number;
  additionalLength: number;
  vendor: string;
  product: string;
  revision: string;
}

/** The standard INQUIRY data (SPC-4 6.6.2), at least its first 36 bytes. */
export function decodeInquiry(bytes: Uint8Array): InquiryData {
  if (bytes.length < 36) throw new ProtocolError(`INQUIRY data of ${bytes.length} bytes`, Buffer.from(bytes));
  const ascii = (from: number, to: number) =>
    Buffer.from(bytes.subarray(from, to)).toString('latin1').trimEnd();
  return {
    peripheralQualifier: bytes[0]! >> 5,
    peripheralDeviceType: bytes[0]! & 0x1f,
    version: bytes[2]!,
    responseDataFormat: bytes[3]! & 0xf,
    additionalLength: bytes[4]!,
    vendor: ascii(8, 16),
    product: ascii(16, 32),
    revision: ascii(32, 36),
  };
}

/** REPORT LUNS parameter data (SPC-4 6.33.2): the list length and the LUNs of the entries returned. */
export function decodeReportLuns(bytes: Uint8Array): { listLength: number; luns: number[] } {
  if (bytes.length < 8)
    throw new ProtocolError(`REPORT LUNS data of ${bytes.length} bytes`, Buffer.from(bytes));
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const listLength = b.readUInt32BE(0);
  const luns: number[] = [];
  for (let at = 8; at + 8 <= Math.min(b.length, 8 + listLength); at += 8)
    luns.push(decodeReportedLun(b.subarray(at, at + 8)));
  return { listLength, luns };
}

/** READ CAPACITY(16) parameter data (SBC-3 5.16.2): the last LBA and the block length in bytes. */
export function decodeCapacity16(bytes: Uint8Array): { lastLba: bigint; blockLength: number } {
  if (bytes.length < 12)
    throw new ProtocolError(`READ CAPACITY(16) data of ${bytes.length} bytes`, Buffer.from(bytes));
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return { lastLba: b.readBigUInt64BE(0), blockLength: b.readUInt32BE(8) };
}

// ---- sense data ----

export interface SenseData {
  /** 0x70 or 0x71 (fixed format), 0x72 or 0x73 (descriptor format). */
  responseCode: number;
  senseKey: number;
  asc: number;
  ascq: number;
}

/** Fixed-format (SPC-4 4.5.3) or descriptor-format (4.5.2) sense data; undefined when neither. */
export function decodeSense(bytes: Uint8Array): SenseData | undefined {
  const responseCode = (bytes[0] ?? 0) & 0x7f;
  if ((responseCode === 0x70 || responseCode === 0x71) && bytes.length >= 14) {
    return { responseCode, senseKey: bytes[2]! & 0xf, asc: bytes[12]!, ascq: bytes[13]! };
  }
  if ((responseCode === 0x72 || responseCode === 0x73) && bytes.length >= 4) {
    return { responseCode, senseKey: bytes[1]! & 0xf, asc: bytes[2]!, ascq: bytes[3]! };
  }
  return undefined;
}

/** Fixed-format sense data of 18 bytes: current error, `key`, `asc`/`ascq`. */
export function encodeFixedSense(key: number, asc: number, ascq: number): Buffer {
  const out = Buffer.alloc(18);
  out[0] = 0x70;
  out[2] = key;
  out[7] = 10; // additional sense length: bytes 8-17
  out[12] = asc;
  out[13] = ascq;
  return out;
}

function nameIn(table: Readonly<Record<string, number>>, value: number): string | undefined {
  return Object.entries(table).find(([, v]) => v === value)?.[0];
}

export function responseName(response: number): string {
  const name = nameIn(VirtioScsiResponse, response);
  return name ? `${response} (VIRTIO_SCSI_S_${name})` : `${response} (not a VIRTIO_SCSI_S_* value)`;
}

export function statusName(status: number): string {
  const name = nameIn(ScsiStatus, status);
  return `0x${status.toString(16).padStart(2, '0')} (${name ? name.replaceAll('_', ' ') : 'not a SAM status code'})`;
}

/** "ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h)". */
export function describeSense(sense: SenseData): string {
  const key = nameIn(SenseKey, sense.senseKey)?.replaceAll('_', ' ') ?? `sense key ${sense.senseKey}`;
  const code = nameIn(AdditionalSense, (sense.asc << 8) | sense.ascq)?.replaceAll('_', ' ');
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return `${key}, ${code ? `${code} ` : ''}(${hex(sense.asc)}h/${hex(sense.ascq)}h)`;
}

/** struct virtio_scsi_event's size: le32 event, u8 lun[8], le32 reason. */
export const EVENT_SIZE = 16;
/** Bit 31 of `event`: events were lost for want of buffers on the eventq. */
export const VIRTIO_SCSI_T_EVENTS_MISSED = 0x8000_0000;
/** The event types (`event` without bit 31). */
export const VirtioScsiEventType = {
  NO_EVENT: 0,
  TRANSPORT_RESET: 1,
  ASYNC_NOTIFY: 2,
  PARAM_CHANGE: 3,
} as const;
/** The reasons of a VIRTIO_SCSI_T_TRANSPORT_RESET event. */
export const VirtioScsiResetReason = { HARD: 0, RESCAN: 1, REMOVED: 2 } as const;

export interface ScsiEvent {
  /** The event type, bit 31 cleared. */
  type: number;
  /** Bit 31 of `event` was set: events were lost. */
  missed: boolean;
  lun: Buffer;
  reason: number;
}

/** A struct virtio_scsi_event the device wrote into an eventq buffer. */
export function decodeEvent(bytes: Uint8Array): ScsiEvent {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < EVENT_SIZE) throw new RangeError(`a ${b.length}-byte virtio_scsi_event, not ${EVENT_SIZE}`);
  const event = b.readUInt32LE(0);
  return {
    type: (event & ~VIRTIO_SCSI_T_EVENTS_MISSED) >>> 0,
    missed: (event & VIRTIO_SCSI_T_EVENTS_MISSED) !== 0,
    lun: Buffer.from(b.subarray(4, 12)),
    reason: b.readUInt32LE(12),
  };
}

const EVENT_NAMES = Object.fromEntries(
  Object.entries(VirtioScsiEventType).map(([name, value]) => [value, `VIRTIO_SCSI_T_${name}`]),
);
const RESET_REASONS = Object.fromEntries(
  Object.entries(VirtioScsiResetReason).map(([name, value]) => [value, `VIRTIO_SCSI_EVT_RESET_${name}`]),
);

/** An event for messages: its type, bit 31, the lun field and the reason. */
export function describeEvent(e: ScsiEvent): string {
  const type = EVENT_NAMES[e.type] ?? `unknown type ${e.type}`;
  const reason =
    e.type === VirtioScsiEventType.TRANSPORT_RESET
      ? (RESET_REASONS[e.reason] ?? `reason ${e.reason}`)
      : `reason 0x${e.reason.toString(16)}`;
  return `${type}${e.missed ? ' | VIRTIO_SCSI_T_EVENTS_MISSED' : ''}, lun ${e.lun.toString('hex')}, ${reason}`;
}
