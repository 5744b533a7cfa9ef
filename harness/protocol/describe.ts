/**
 * Messages described for people (the wire log of a report): the request's name, the header flags in words
 * and the payload's fields, decoded with the codec's own decoders by the layout the spec gives each request.
 * A payload that does not fit its layout is shown as bytes, never an error: malformed messages are logged too.
 */
import type { GpuMessage } from './gpu-messages.js';
import {
  decodeBackendRequest,
  decodeDeviceConfig,
  decodeDeviceStateTransfer,
  decodeInflightDescription,
  decodeIotlbMessage,
  decodeLogDescription,
  decodeMemoryRegions,
  decodeMmapRequest,
  decodeSharedObject,
  decodeShmemConfig,
  decodeSingleMemoryRegion,
  decodeU64,
  decodeVringAddress,
  decodeVringArea,
  decodeVringState,
  unpackVringFile,
} from './messages.js';
import {
  backendRequestName,
  FrontendRequest,
  type FrontendRequestName,
  frontendRequestName,
  HeaderFlag,
  type PayloadKind,
  protocolFeatureList,
  REQUEST_INFO,
} from './spec.js';

/** Bytes of an undecodable payload (or of a config window) shown in hex; the rest is counted. */
const HEX_SHOWN = 32;
/** How long one message's fields may be: a wire log line stays readable. */
const FIELDS_SHOWN = 400;

/** The header flags in words: `v1 need_reply`, `v1 reply`, with any undefined bit as `0x..`. */
export function describeFlags(flags: number): string {
  const words = [`v${flags & HeaderFlag.VERSION_MASK}`];
  if (flags & HeaderFlag.REPLY) words.push('reply');
  if (flags & HeaderFlag.NEED_REPLY) words.push('need_reply');
  const other = (flags & ~(HeaderFlag.VERSION_MASK | HeaderFlag.REPLY | HeaderFlag.NEED_REPLY)) >>> 0;
  if (other) words.push(`0x${other.toString(16)}`);
  return words.join(' ');
}

/** The first bytes of `bytes` in hex, and how many more there are. */
export function hexExcerpt(bytes: Buffer, shown = HEX_SHOWN): string {
  const more = bytes.length > shown ? ` (+${bytes.length - shown} bytes)` : '';
  return `${bytes.subarray(0, shown).toString('hex')}${more}`;
}

/** `key=value` pairs of a decoded layout: bigints in hex, buffers as hex excerpts, nested values in braces. */
export function formatFields(value: unknown): string {
  if (typeof value === 'bigint') return `0x${value.toString(16)}`;
  if (Buffer.isBuffer(value)) return hexExcerpt(value);
  if (Array.isArray(value)) return `[${value.map(formatFields).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const pairs = Object.entries(value).map(([k, v]) =>
      v !== null && typeof v === 'object' && !Buffer.isBuffer(v) && !Array.isArray(v)
        ? `${k}={${formatFields(v)}}`
        : `${k}=${formatFields(v)}`,
    );
    return pairs.join(' ');
  }
  return String(value);
}

/** Decoders of the spec's payload layouts, for display (the checks use messages.ts directly). */
const DECODERS: Readonly<
  Record<Exclude<PayloadKind, 'none' | 'u64' | 'cryptoSession'>, (p: Buffer) => unknown>
> = {
  vringState: (p) => decodeVringState(p),
  vringBase: (p) => decodeVringState(p),
  vringAddress: (p) => decodeVringAddress(p),
  memoryRegions: (p) => decodeMemoryRegions(p),
  singleMemoryRegion: (p) => decodeSingleMemoryRegion(p),
  log: (p) => decodeLogDescription(p),
  iotlb: (p) => decodeIotlbMessage(p),
  deviceConfig: (p) => decodeDeviceConfig(p),
  vringArea: (p) => decodeVringArea(p),
  inflight: (p) => decodeInflightDescription(p),
  sharedObject: (p) => decodeSharedObject(p),
  deviceStateTransfer: (p) => decodeDeviceStateTransfer(p),
  mmap: (p) => decodeMmapRequest(p),
  shmemConfig: (p) => {
    const config = decodeShmemConfig(p);
    return { numRegions: config.numRegions, memSizes: config.memSizes.slice(0, config.numRegions) };
  },
};

/** A u64 payload in the words its request gives it. */
function describeU64(name: string, payload: Buffer): string {
  const value = decodeU64(payload, name);
  switch (name) {
    case 'GET_PROTOCOL_FEATURES':
    case 'SET_PROTOCOL_FEATURES':
      return `0x${value.toString(16)} [${protocolFeatureList(value).join(' ')}]`;
    case 'SET_VRING_KICK':
    case 'SET_VRING_CALL':
    case 'SET_VRING_ERR':
      return formatFields(unpackVringFile(value));
    default:
      return `0x${value.toString(16)}`;
  }
}

/** The payload's fields by its layout; undefined when it does not fit that layout. */
function decodeFields(name: string, kind: PayloadKind, payload: Buffer): string | undefined {
  if (kind === 'none') return payload.length ? undefined : '';
  try {
    if (kind === 'u64') return describeU64(name, payload);
    if (kind === 'cryptoSession') return hexExcerpt(payload);
    return formatFields(DECODERS[kind](payload));
  } catch {
    return undefined;
  }
}

/** The fields, or the bytes of a payload that is not the request's layout (a robustness input, a broken reply). */
function describePayload(name: string, kind: PayloadKind, payload: Buffer): string {
  return decodeFields(name, kind, payload) ?? `undecodable ${hexExcerpt(payload)}`;
}

/** A message as the wire log shows it: its request's name and its payload's fields. */
export interface MessageDescription {
  /** The front-end request's name, `UNKNOWN(n)` when the spec has none. */
  name: string;
  /** The payload's fields (`index=0 num=256`), or its bytes when it does not fit its layout; empty if none. */
  fields: string;
}

/**
 * A message on the front-end's connection: a request the front-end sent, or what the back-end sent on it (a
 * reply to the request of that id, whatever its flags say: its reply payload, or the u64 of REPLY_ACK).
 */
export function describeMessage(
  request: number,
  flags: number,
  payload: Buffer,
  fromBackend = (flags & HeaderFlag.REPLY) !== 0,
): MessageDescription {
  const name = frontendRequestName(request);
  const info = name in FrontendRequest ? REQUEST_INFO[name as FrontendRequestName] : undefined;
  let fields: string;
  if (!info) fields = payload.length ? hexExcerpt(payload) : '';
  else if (!fromBackend) fields = describePayload(name, info.payload, payload);
  else {
    const kind = info.reply.when === 'never' ? 'none' : info.reply.payload;
    const own = decodeFields(name, kind, payload);
    // A reply whose own layout does not fit (or that has none) yet is 8 bytes long is REPLY_ACK's u64.
    fields =
      own ?? (payload.length === 8 ? `ack=${decodeU64(payload)}` : describePayload(name, kind, payload));
  }
  return { name, fields: fields.length > FIELDS_SHOWN ? `${fields.slice(0, FIELDS_SHOWN)}...` : fields };
}

/**
 * A message on the back-end request channel (SET_BACKEND_REQ_FD): a back-end request, named `BACKEND_...` as
 * the spec names them, or the front-end's u64 reply to it.
 */
export function describeBackendChannelMessage(
  request: number,
  payload: Buffer,
  fromBackend: boolean,
): MessageDescription {
  const name = `BACKEND_${backendRequestName(request)}`;
  if (!fromBackend)
    return { name, fields: payload.length === 8 ? `ack=${decodeU64(payload)}` : hexExcerpt(payload) };
  try {
    const { name: _, ...fields } = decodeBackendRequest(request, payload);
    return { name, fields: formatFields(fields) };
  } catch {
    return { name, fields: payload.length ? `undecodable ${hexExcerpt(payload)}` : '' };
  }
}

/**
 * A vhost-user-gpu message on the display socket (vhost-user-gpu.rst), as the wire log names it: `GPU_` and
 * the request, and its fields (pixels counted, not shown).
 */
export function describeGpuMessage(message: GpuMessage): { name: string; fields: string } {
  const name = `GPU_${message.request}`;
  switch (message.request) {
    case 'SET_PROTOCOL_FEATURES':
      return { name, fields: `features=0x${message.features.toString(16)}` };
    case 'CURSOR_POS':
    case 'CURSOR_POS_HIDE': {
      const { scanoutId, x, y } = message.pos;
      return { name, fields: `scanout=${scanoutId} x=${x} y=${y}` };
    }
    case 'CURSOR_UPDATE': {
      const { pos, hotX, hotY } = message.cursor;
      return { name, fields: `scanout=${pos.scanoutId} x=${pos.x} y=${pos.y} hot=${hotX},${hotY}` };
    }
    case 'SCANOUT': {
      const { scanoutId, width, height } = message.scanout;
      return { name, fields: `scanout=${scanoutId} ${width}x${height}` };
    }
    case 'UPDATE':
    case 'DMABUF_UPDATE': {
      const { scanoutId, x, y, width, height, data } = message.update;
      return {
        name,
        fields: `scanout=${scanoutId} ${width}x${height} at (${x},${y})${data.length ? ` ${data.length} pixel bytes` : ''}`,
      };
    }
    case 'DMABUF_SCANOUT':
    case 'DMABUF_SCANOUT2': {
      const s = message.scanout;
      const modifier = s.modifier === undefined ? '' : ` modifier=0x${s.modifier.toString(16)}`;
      return {
        name,
        fields: `scanout=${s.scanoutId} ${s.width}x${s.height} at (${s.x},${s.y}) fd ${s.fdWidth}x${s.fdHeight} stride=${s.fdStride} fourcc=0x${s.fourcc.toString(16)}${modifier}`,
      };
    }
    case 'GET_EDID':
      return { name, fields: `scanout=${message.scanoutId}` };
    default:
      return { name, fields: '' };
  }
}
