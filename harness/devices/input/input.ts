/**
 * virtio-input wire formats (virtio spec, "Input Device"): the config space a driver queries by select and
 * subsel, the event both queues carry, and the evdev event (struct input_event) the event sources speak. No
 * I/O but the config query, which the device answers over vhost-user (SET_CONFIG, then GET_CONFIG): the
 * driver of the queues is driver.ts. Little-endian virtio fields.
 */
import { BackendError } from '../../errors.js';
import { encodeDeviceConfig } from '../../protocol/messages.js';
import { hasBit, ProtocolFeature } from '../../protocol/spec.js';
import type { FrontendSession } from '../../transport/session.js';

/** The virtqueues: events from the device, status (LEDs) to it. */
export const InputQueue = { EVENT: 0, STATUS: 1 } as const;

/** enum virtio_input_config_select. */
export const InputConfigSelect = {
  UNSET: 0x00,
  ID_NAME: 0x01,
  ID_SERIAL: 0x02,
  ID_DEVIDS: 0x03,
  PROP_BITS: 0x10,
  EV_BITS: 0x11,
  ABS_INFO: 0x12,
} as const;

/** struct virtio_input_config: select, subsel, size, reserved[5], then the 128-byte union. */
export const INPUT_CONFIG_SIZE = 136;
/** Where the union starts, and its size: the most a `size` can say. */
export const INPUT_CONFIG_UNION_OFFSET = 8;
export const INPUT_CONFIG_UNION_SIZE = 128;
/** struct virtio_input_absinfo (min, max, fuzz, flat, res) and struct virtio_input_devids. */
export const INPUT_ABSINFO_SIZE = 20;
export const INPUT_DEVIDS_SIZE = 8;
/** struct virtio_input_event: le16 type, le16 code, le32 value. */
export const INPUT_EVENT_SIZE = 8;
/** struct input_event of a 64-bit Linux (x86_64, aarch64): struct timeval, then type, code and value. */
export const EVDEV_EVENT_SIZE = 24;

/** Event types (linux/input-event-codes.h EV_*), as the config's EV_BITS subsel names them. */
export const EvType = {
  SYN: 0x00,
  KEY: 0x01,
  REL: 0x02,
  ABS: 0x03,
  MSC: 0x04,
  SW: 0x05,
  LED: 0x11,
  SND: 0x12,
  REP: 0x14,
  FF: 0x15,
  PWR: 0x16,
  FF_STATUS: 0x17,
} as const;
/** EV_MAX: the last event type number. */
export const EV_MAX = 0x1f;
export const SYN_REPORT = 0;
/** LED codes (LED_*). */
export const Led = { NUML: 0, CAPSL: 1, SCROLLL: 2 } as const;

/** An event as virtio_input_event carries it (and struct input_event, without its time). */
export interface InputEvent {
  type: number;
  code: number;
  value: number;
}

/** The config space as the device left it after a query. */
export interface InputConfig {
  select: number;
  subsel: number;
  /** How many bytes of the union hold the answer; 0: nothing for this select and subsel. */
  size: number;
  /** The 128-byte union, whatever size says. */
  union: Buffer;
}

const EV_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(EvType).map(([name, value]) => [value, `EV_${name}`]),
);
const SELECT_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(InputConfigSelect).map(([name, value]) => [value, `VIRTIO_INPUT_CFG_${name}`]),
);

/** An event type for messages: EV_KEY, or its number when it has no name. */
export function evTypeName(type: number): string {
  return EV_NAMES[type] ?? `event type 0x${type.toString(16)}`;
}

/** A select and subsel for messages: "VIRTIO_INPUT_CFG_EV_BITS/EV_KEY", "select 0x7f/0". */
export function describeSelect(select: number, subsel: number): string {
  const name = SELECT_NAMES[select] ?? `select 0x${select.toString(16)}`;
  const sub = select === InputConfigSelect.EV_BITS ? evTypeName(subsel) : `${subsel}`;
  return `${name}/${sub}`;
}

/** An event for messages: "EV_KEY 30 1", "EV_SYN SYN_REPORT". */
export function describeEvent(e: InputEvent): string {
  if (e.type === EvType.SYN && e.code === SYN_REPORT && e.value === 0) return 'EV_SYN SYN_REPORT';
  return `${evTypeName(e.type)} ${e.code} ${e.value}`;
}

export function isSynReport(e: InputEvent): boolean {
  return e.type === EvType.SYN && e.code === SYN_REPORT;
}

export function encodeInputEvent(e: InputEvent): Buffer {
  const out = Buffer.alloc(INPUT_EVENT_SIZE);
  out.writeUInt16LE(e.type, 0);
  out.writeUInt16LE(e.code, 2);
  out.writeInt32LE(e.value, 4);
  return out;
}

export function decodeInputEvent(bytes: Uint8Array): InputEvent {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < INPUT_EVENT_SIZE) throw new RangeError(`a ${b.length}-byte virtio_input_event`);
  return { type: b.readUInt16LE(0), code: b.readUInt16LE(2), value: b.readInt32LE(4) };
}

/** struct input_event as a 64-bit Linux lays it out (host byte order, little-endian here), time zero. */
export function encodeEvdevEvent(e: InputEvent): Buffer {
  const out = Buffer.alloc(EVDEV_EVENT_SIZE);
  out.writeUInt16LE(e.type, 16);
  out.writeUInt16LE(e.code, 18);
  out.writeInt32LE(e.value, 20);
  return out;
}

export function decodeEvdevEvent(bytes: Uint8Array): InputEvent {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < EVDEV_EVENT_SIZE) throw new RangeError(`a ${b.length}-byte struct input_event`);
  return { type: b.readUInt16LE(16), code: b.readUInt16LE(18), value: b.readInt32LE(20) };
}

export function decodeInputConfig(bytes: Uint8Array): InputConfig {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < INPUT_CONFIG_SIZE) throw new RangeError(`a ${b.length}-byte virtio_input_config`);
  return {
    select: b[0]!,
    subsel: b[1]!,
    size: b[2]!,
    union: Buffer.from(b.subarray(INPUT_CONFIG_UNION_OFFSET, INPUT_CONFIG_SIZE)),
  };
}

/** The answer's bytes: the first `size` of the union (at most all 128). */
export function answerBytes(config: InputConfig): Buffer {
  return config.union.subarray(0, Math.min(config.size, INPUT_CONFIG_UNION_SIZE));
}

/** The codes a bitmap answer names: bit n of byte n/8, within `size` bytes. */
export function bitmapCodes(config: InputConfig): number[] {
  const codes: number[] = [];
  answerBytes(config).forEach((byte, i) => {
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) codes.push(i * 8 + bit);
  });
  return codes;
}

/** struct virtio_input_absinfo. */
export interface AbsInfo {
  min: number;
  max: number;
  fuzz: number;
  flat: number;
  res: number;
}

export function decodeAbsInfo(config: InputConfig): AbsInfo {
  const u = config.union;
  return {
    min: u.readInt32LE(0),
    max: u.readInt32LE(4),
    fuzz: u.readInt32LE(8),
    flat: u.readInt32LE(12),
    res: u.readInt32LE(16),
  };
}

/** struct virtio_input_devids. */
export interface DevIds {
  bustype: number;
  vendor: number;
  product: number;
  version: number;
}

export function decodeDevIds(config: InputConfig): DevIds {
  const u = config.union;
  return {
    bustype: u.readUInt16LE(0),
    vendor: u.readUInt16LE(2),
    product: u.readUInt16LE(4),
    version: u.readUInt16LE(6),
  };
}

/**
 * The SET_CONFIG payload of a query: select and subsel, at offset 0, and nothing else ("A driver MUST NOT
 * write to configuration fields other than select and subsel"), flags 0 (a driver's write).
 */
export function encodeSelect(select: number, subsel: number): Buffer {
  return encodeDeviceConfig({ offset: 0, size: 2, flags: 0, payload: Buffer.of(select, subsel) });
}

/**
 * One config query, as the virtio spec has a driver make it ("To query a specific piece of information the
 * driver sets select and subsel accordingly, then checks size"): SET_CONFIG of select and subsel, then
 * GET_CONFIG of the whole 136-byte config (as QEMU's vhost-user-input reads it). Needs PROTOCOL_F_CONFIG
 * negotiated; a refused SET_CONFIG or an empty GET_CONFIG reply is a BackendError.
 */
export async function queryInputConfig(
  session: FrontendSession,
  select: number,
  subsel: number,
): Promise<InputConfig> {
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG))
    throw new Error('queryInputConfig needs VHOST_USER_PROTOCOL_F_CONFIG negotiated');
  const what = describeSelect(select, subsel);
  const ack = await session.request('SET_CONFIG', encodeSelect(select, subsel));
  if (ack !== undefined && ack !== 0n)
    throw new BackendError(`SET_CONFIG of select and subsel (${what}) was refused: REPLY_ACK ${ack}`);
  const bytes = await session.getConfig(
    INPUT_CONFIG_SIZE,
    0,
    `the ${INPUT_CONFIG_SIZE}-byte virtio_input_config`,
  );
  if (!bytes)
    throw new BackendError(
      `GET_CONFIG of the ${INPUT_CONFIG_SIZE}-byte virtio_input_config after selecting ${what} answered an error`,
    );
  return decodeInputConfig(bytes);
}
