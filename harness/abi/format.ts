/**
 * The guest-ABI fingerprint of a back-end (`vhu-conform abi`): its shape, its byte-stable JSON form, and
 * reading one back from a file. The JSON Schema is harness/schemas/abi.schema.json.
 */
import { UsageError } from '../errors.js';
import { validateAbi } from '../schemas/validate.js';

export const ABI_FORMAT = 'vhu-conform-abi';
export const ABI_FORMAT_VERSION = 2;

/** The largest ring size probed: the virtio spec's maximum queue size. */
export const MAX_RING_SIZE = 32768;

/** A feature set as a 64-bit hex number and the names of its bits. */
export interface FeatureSet {
  hex: string;
  names: string[];
}

/**
 * The largest ring size each queue accepted, or why none was probed. `reply-ack`: SET_VRING_NUM with
 * need_reply acked 0 (0 when no size was). `request`: without REPLY_ACK, the largest size at which a request
 * moved through the started ring; `measured` says which request, and null stands for a queue not measured.
 * The two can differ for one back-end (an acked size need not be one it runs), so compat names the method.
 */
export type RingSizes =
  | { status: 'probed'; method: 'reply-ack'; maxPerQueue: number[] }
  | { status: 'probed'; method: 'request'; measured: string; maxPerQueue: Array<number | null> }
  | { status: 'not-probed'; reason: string };

/** How ring sizes were probed (see RingSizes). */
export type RingProbeMethod = Extract<RingSizes, { status: 'probed' }>['method'];

/** The config space as GET_CONFIG gave it, or why it was not read. */
export type ConfigSpace =
  | { status: 'read'; size: number; hex: string; fields: Record<string, number | string> }
  | { status: 'not-read'; reason: string };

/** What a front-end profile negotiates with this back-end. */
export interface ProfileNegotiation {
  virtioFeatures: FeatureSet;
  protocolFeatures: FeatureSet;
}

export interface AbiFingerprint {
  format: typeof ABI_FORMAT;
  formatVersion: typeof ABI_FORMAT_VERSION;
  /** What the fingerprint was taken from: the binary and its arguments, or the socket attached to. */
  backend: { binary: string; args: string[] } | { connect: string };
  type: string;
  /** The --print-capabilities document (null in attach mode, where nothing is launched). */
  capabilities: unknown;
  virtioFeatures: FeatureSet;
  /** Null when VHOST_USER_F_PROTOCOL_FEATURES is not offered. */
  protocolFeatures: FeatureSet | null;
  /** GET_QUEUE_NUM (with MQ); null when MQ is not offered. */
  queueCount: number | null;
  ringSizes: RingSizes;
  /** GET_MAX_MEM_SLOTS (with CONFIGURE_MEM_SLOTS); null when not offered. */
  maxMemSlots: number | null;
  config: ConfigSpace;
  /** Per front-end profile (harness/frontend/profiles.ts), by name. */
  profiles: Record<string, ProfileNegotiation>;
}

/** A 64-bit feature set as 0x and 16 hex digits. */
export function featureHex(bits: bigint): string {
  return `0x${bits.toString(16).padStart(16, '0')}`;
}

export function parseFeatureHex(hex: string): bigint {
  return BigInt(hex);
}

/** JSON with every object's keys sorted and a final newline: the same fingerprint, the same bytes. */
export function stableJson(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** Reads a fingerprint from `text` (the contents of `file`); a usage error names what is wrong. */
export function parseAbi(text: string, file: string): AbiFingerprint {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file}: not an ABI file: not JSON (${(err as Error).message})`);
  }
  const head = doc as { format?: unknown; formatVersion?: unknown } | null;
  if (head === null || typeof head !== 'object' || head.format !== ABI_FORMAT)
    throw new UsageError(
      `${file}: not an ABI file: format is not "${ABI_FORMAT}" (write one with vhu-conform abi)`,
    );
  if (head.formatVersion !== ABI_FORMAT_VERSION)
    throw new UsageError(
      `${file}: ABI format version ${String(head.formatVersion)}, this vhu-conform reads version ${ABI_FORMAT_VERSION}`,
    );
  const errors = validateAbi(doc);
  if (errors.length) throw new UsageError(`${file}: not a valid ABI file: ${errors.slice(0, 3).join('; ')}`);
  return doc as AbiFingerprint;
}
