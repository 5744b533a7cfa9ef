/**
 * Takes a back-end's guest-ABI fingerprint: launches it (--print-capabilities, then --socket-path) or attaches
 * to its socket, and asks what a front-end would: GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 * GET_MAX_MEM_SLOTS, GET_CONFIG, and SET_VRING_NUM with need_reply for the largest ring each queue takes
 * (without REPLY_ACK, rings.ts finds it by moving a request through each size).
 * Every wait has the deadline given; everything launched or made is the scope's.
 */
import { deviceKind } from '../devices/kinds.js';
import { ProtocolError, SkipError, UsageError } from '../errors.js';
import { expectListening } from '../process/attach.js';
import { probeCapabilities } from '../process/capabilities.js';
import { frontendConnection } from '../process/probes.js';
import type { Scope } from '../process/scope.js';
import { encodeVringState } from '../protocol/messages.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { makeContext, type Target } from '../runner/check.js';
import { resolveBinary } from '../runner/run.js';
import { FrontendSession } from '../transport/session.js';
import { profileNegotiations, protocolFeatureSet, virtioFeatureSet } from './features.js';
import {
  ABI_FORMAT,
  ABI_FORMAT_VERSION,
  type AbiFingerprint,
  type ConfigSpace,
  MAX_RING_SIZE,
  type RingSizes,
} from './format.js';
import { probeRingSizesByRequest } from './rings.js';

export interface AbiTarget {
  /** The binary to launch, or `connect`. */
  binary?: string;
  /** The socket of a back-end someone else started. */
  connect?: string;
  extraArgs?: string[];
  /** Device type; by default what --print-capabilities reports (required with `connect`). */
  type?: string;
  timeoutMs: number;
  /** Aborted to stop between requests (SIGINT): the probe of ring sizes by use starts no launch after it. */
  signal?: AbortSignal;
  /**
   * How ring sizes are found: `auto` (default) by REPLY_ACK where it is offered, by use (rings.ts) elsewhere;
   * `request` by use even where REPLY_ACK is offered (an acked size need not be one the back-end serves);
   * `reply-ack` by REPLY_ACK only (not probed without it: no launch per size, nothing timed).
   */
  ringProbe?: RingProbe;
}

export { MAX_RING_SIZE } from './format.js';

/** AbiTarget.ringProbe's choices. */
export const RING_PROBES = ['auto', 'request', 'reply-ack'] as const;
export type RingProbe = (typeof RING_PROBES)[number];
/** Past this many queues the rings are not probed (up to 16 requests each): a bound on a run's length. */
export const MAX_PROBED_QUEUES = 256;

/** The protocol features the probe acknowledges when offered: those the questions need. */
const PROBE_PROTOCOL =
  (1n << BigInt(ProtocolFeature.MQ)) |
  (1n << BigInt(ProtocolFeature.REPLY_ACK)) |
  (1n << BigInt(ProtocolFeature.CONFIG)) |
  (1n << BigInt(ProtocolFeature.CONFIGURE_MEM_SLOTS));

export async function takeFingerprint(target: AbiTarget, scope: Scope): Promise<AbiFingerprint> {
  const extraArgs = target.extraArgs ?? [];
  let binary = '';
  let capabilities: unknown = null;
  let type = target.type ?? null;
  if (target.connect !== undefined) {
    if (type === null)
      throw new UsageError('--connect needs --type <device>: nothing reports the type in attach mode');
    await expectListening(target.connect);
  } else {
    if (target.binary === undefined) throw new UsageError('name a back-end binary or --connect to a socket');
    binary = resolveBinary(target.binary);
    const probe = await probeCapabilities(scope, binary, extraArgs, target.timeoutMs);
    capabilities = probe.document ?? null;
    type ??= probe.type;
    if (type === null && probe.timedOut)
      throw new UsageError(
        `${binary} --print-capabilities did not exit within ${target.timeoutMs} ms, so no device type; name it with --type <device>, or give it more --timeout`,
      );
    if (type === null)
      throw new UsageError(
        `${binary} --print-capabilities reported no device type (${probe.parseError ?? 'no "type" member'}); name it with --type <device>`,
      );
  }

  const ctxTarget: Target = {
    binary,
    connect: target.connect ?? null,
    extraArgs,
    type,
    capabilities,
    descriptorDirs: [],
    memo: new Map(),
    backendMemo: new Map(),
  };
  const ctx = makeContext(ctxTarget, target.timeoutMs, scope);
  const connection = await frontendConnection(ctx).catch((err: unknown) => {
    throw err instanceof SkipError ? new UsageError(`--connect ${target.connect}: ${err.message}`) : err;
  });
  const session = new FrontendSession(connection);

  const offered = await session.getFeatures();
  let protocolOffered: bigint | null = null;
  if (hasBit(offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) {
    protocolOffered = await session.getProtocolFeatures();
    await session.setProtocolFeatures(protocolOffered & PROBE_PROTOCOL);
  }
  await session.expectAck('SET_OWNER');
  const acked = (bit: number) => hasBit(session.ackedProtocolFeatures, bit);
  const queueCount = acked(ProtocolFeature.MQ) ? Number(await connection.requestU64('GET_QUEUE_NUM')) : null;
  const maxMemSlots = acked(ProtocolFeature.CONFIGURE_MEM_SLOTS)
    ? Number(await connection.requestU64('GET_MAX_MEM_SLOTS'))
    : null;
  const config = await readConfig(session, type);
  // Without GET_QUEUE_NUM: the queues the device type has at least, those its driver sets up.
  const queues = queueCount ?? deviceKind(type)?.rings.length ?? 1;
  let ringSizes: RingSizes;
  if (acked(ProtocolFeature.REPLY_ACK) && target.ringProbe !== 'request')
    ringSizes = await probeRingSizes(session, queues);
  else if (target.ringProbe === 'reply-ack')
    ringSizes = {
      status: 'not-probed',
      reason: 'protocol feature REPLY_ACK not offered, and ring sizes by use not asked for',
    };
  else {
    // Each size is tried on a device of its own; a back-end may serve one front-end at a time.
    connection.close();
    ringSizes = await probeRingSizesByRequest(ctxTarget, queues, {
      timeoutMs: target.timeoutMs,
      signal: target.signal,
      why: acked(ProtocolFeature.REPLY_ACK)
        ? 'REPLY_ACK offered but not asked (ring sizes by use asked for)'
        : 'protocol feature REPLY_ACK not offered',
    });
  }

  return {
    format: ABI_FORMAT,
    formatVersion: ABI_FORMAT_VERSION,
    backend: target.connect !== undefined ? { connect: target.connect } : { binary, args: extraArgs },
    type,
    capabilities,
    virtioFeatures: virtioFeatureSet(offered, type),
    protocolFeatures: protocolOffered === null ? null : protocolFeatureSet(protocolOffered),
    queueCount,
    ringSizes,
    maxMemSlots,
    config,
    profiles: profileNegotiations(offered, protocolOffered, type),
  };
}

async function readConfig(session: FrontendSession, type: string): Promise<ConfigSpace> {
  const layout = deviceKind(type)?.config;
  if (!layout) return { status: 'not-read', reason: `no config layout is known for device type ${type}` };
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG))
    return { status: 'not-read', reason: 'protocol feature CONFIG not offered' };
  let bytes: Buffer | undefined;
  try {
    bytes = await session.getConfig(layout.size);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return { status: 'not-read', reason: err.message.split('; wire:')[0]! };
  }
  if (bytes === undefined)
    return {
      status: 'not-read',
      reason: `GET_CONFIG of ${layout.size} bytes answered an error (an empty reply)`,
    };
  if (bytes.length !== layout.size)
    return {
      status: 'not-read',
      reason: `GET_CONFIG of ${layout.size} bytes answered ${bytes.length} bytes`,
    };
  return { status: 'read', size: layout.size, hex: bytes.toString('hex'), fields: layout.fields(bytes) };
}

/**
 * For each queue, SET_VRING_NUM with need_reply from 32768 down by powers of two: the first size acked 0 is
 * the largest it accepts (0 when none is). Without REPLY_ACK a back-end cannot say no: rings.ts tries each
 * size by use instead.
 */
async function probeRingSizes(session: FrontendSession, queues: number): Promise<RingSizes> {
  const maxPerQueue: number[] = [];
  for (let index = 0; index < queues; index++) {
    let accepted = 0;
    for (let num = MAX_RING_SIZE; num >= 1; num /= 2) {
      const ack = await session.request('SET_VRING_NUM', encodeVringState({ index, num }));
      if (ack === 0n) {
        accepted = num;
        break;
      }
    }
    maxPerQueue.push(accepted);
  }
  return { status: 'probed', method: 'reply-ack', maxPerQueue };
}
