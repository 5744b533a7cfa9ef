/**
 * Front-end profiles: the order in which a real front-end sends its messages at start-up, at ring start
 * and at ring stop, and the choices it makes (protocol features or not, need_reply or not). Back-ends break
 * depending on who drives them; a profile replays one front-end's order over a FrontendSession and a
 * FrontendDevice, so that the same traffic checks can run as QEMU, DPDK, cloud-hypervisor or crosvm would
 * start the device. The profiles are data, one file per front-end (frontend/profiles/, the model in
 * frontend/profile.ts); this file lists them and plays the start-up, `initSession`; the device start, stop
 * and restart that follow are device-order.ts's (`startDevice`, `stopDevice`, `restartDevice`).
 *
 * What a front-end decides is the profile's: the protocol features it acknowledges (its own list, whatever
 * the back-end offers beyond it), the virtio features it lets through per device type, and what those change
 * on the wire (the device status, the inflight buffer, memory by ADD_MEM_REG). What the guest decides stays
 * the check's: the virtio features it acks among those, the rings it uses, the device-specific messages
 * between start-up and ring start (GET_CONFIG, GPU_SET_SOCKET).
 */

import { deviceKind } from '../devices/kinds.js';
import { BackendError, SkipError, UsageError } from '../errors.js';
import type { Scope } from '../process/scope.js';
import type { InflightDescription } from '../protocol/messages.js';
import { hasBit, ProtocolFeature, protocolFeatureList, VirtioFeature } from '../protocol/spec.js';
import type { FrontendSession } from '../transport/session.js';
import { backendChannel } from './device-order.js';
import { bit, type DeviceType, type FrontendProfile } from './profile.js';
import { CLOUD_HYPERVISOR } from './profiles/cloud-hypervisor.js';
import { CROSVM } from './profiles/crosvm.js';
import { DPDK } from './profiles/dpdk.js';
import { QEMU, QEMU_7_2, QEMU_LEGACY } from './profiles/qemu.js';

// The device start, stop and restart a profile plays live in device-order.ts; the checks, the load generator
// and the ABI probes take them from here, with the start-up they follow.
export {
  addMemoryRegions,
  type RingPlan,
  restartDevice,
  type StartPlan,
  startDevice,
  stopDevice,
} from './device-order.js';
export type { DeviceOrder, DeviceType, FrontendProfile, InitStep, RingStep, StartStep } from './profile.js';

/** Names of the virtio feature bits set in `features`, the device type's own among them (its kind's names). */
export function virtioFeatureList(features: bigint, device: DeviceType | null): string[] {
  const names = new Map<number, string>();
  const own = deviceKind(device)?.features;
  if (own) for (const [name, n] of Object.entries(own.bits)) names.set(n, own.prefix + name);
  for (const [name, n] of Object.entries(VirtioFeature)) names.set(n, name);
  const list: string[] = [];
  for (let n = 0; n < 64; n++) if (hasBit(features, n)) list.push(names.get(n) ?? `bit ${n}`);
  return list;
}

export const PROFILES: readonly FrontendProfile[] = [
  QEMU,
  QEMU_7_2,
  QEMU_LEGACY,
  DPDK,
  CLOUD_HYPERVISOR,
  CROSVM,
];

export const DEFAULT_PROFILE = 'qemu';

/** The profile named `name`; a usage error names the known ones. */
export function profileNamed(name: string): FrontendProfile {
  const found = PROFILES.find((p) => p.name === name);
  if (!found) {
    throw new UsageError(
      `--frontend ${name}: no such front-end profile (${PROFILES.map((p) => p.name).join(', ')}, or all)`,
    );
  }
  return found;
}

/** What start-up learnt. */
export interface Started {
  profile: FrontendProfile;
  /** The device type the session was started for (null: unknown). */
  device: DeviceType | null;
  /** GET_FEATURES. */
  offered: bigint;
  /** Whether bit 30 is part of the deal: offered, wanted by the check, and used by the profile. */
  protocol: boolean;
  /** GET_QUEUE_NUM, when MQ was negotiated and the profile asks. */
  queueNum?: number;
  /** GET_MAX_MEM_SLOTS, when CONFIGURE_MEM_SLOTS was negotiated and the profile asks. */
  maxMemSlots?: bigint;
  /** The features of the device start's SET_FEATURES, sent again at a restart. */
  features?: bigint;
  /** The inflight buffer of the device start, handed back at a restart (its fd is the scope's). */
  inflight?: { fd: number; description: InflightDescription };
}

/** What a check asks of a session's start-up. */
export interface SessionWants {
  /** Whether it starts with VHOST_USER_F_PROTOCOL_FEATURES when offered (false: the legacy start). */
  protocol: boolean;
  /** The device type (ctx.target.type): the profile's masks depend on it. */
  device: string | null;
  /**
   * Protocol features the check cannot go without when the back-end offers them: a SkipError names the
   * profile when it does not negotiate one. (Whether the back-end offers it stays the check's to ask.)
   */
  required?: bigint;
  /**
   * Protocol features the check negotiates on top of the profile's own when offered: the device-specific
   * ones it is about (CONFIG for a check of the config space a front-end would not read).
   */
  extra?: bigint;
}

/** The protocol features `profile` acknowledges for a device of type `device`. */
export function protocolMaskFor(profile: FrontendProfile, device: DeviceType | null): bigint {
  if (!profile.protocolFeatures) return 0n;
  const config = device !== null && profile.config.includes(device);
  return config ? profile.protocolMask : profile.protocolMask & ~bit(ProtocolFeature.CONFIG);
}

/**
 * The profile's start-up on a fresh session. With `want.protocol` and bit 30 offered, the protocol features
 * acknowledged are the offered ones the profile's front-end knows (`protocolFeatures`), not the check's
 * choice; a check that needs one the profile leaves out is skipped, naming the profile.
 */
export async function initSession(
  profile: FrontendProfile,
  session: FrontendSession,
  scope: Scope,
  want: SessionWants,
): Promise<Started> {
  session.needReply = typeof profile.needReply === 'boolean' ? profile.needReply : new Set(profile.needReply);
  const device = want.device;
  const started: Started = { profile, device, offered: 0n, protocol: false };
  for (const [k, step] of profile.init.entries()) {
    const acked = (bit: number) => hasBit(session.ackedProtocolFeatures, bit);
    switch (step) {
      case 'SET_OWNER': {
        // Followed by GET_FEATURES, the front-end's own round trip proves it was read: no extra one.
        const ack = await session.request('SET_OWNER', undefined, {
          sync: profile.init[k + 1] !== 'GET_FEATURES',
        });
        if (ack !== undefined && ack !== 0n)
          throw new BackendError(`SET_OWNER was refused: REPLY_ACK ${ack}`);
        break;
      }
      case 'GET_FEATURES':
        started.offered = await session.getFeatures();
        started.protocol ||=
          profile.protocolFeatures &&
          want.protocol &&
          hasBit(started.offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
        break;
      case 'PROTOCOL_FEATURES':
        if (started.protocol) {
          const offered = await session.getProtocolFeatures();
          const mask = protocolMaskFor(profile, device) | (want.extra ?? 0n);
          const cut = offered & (want.required ?? 0n) & ~mask;
          if (cut !== 0n) {
            throw new SkipError(
              `the ${profile.name} front-end profile does not negotiate ${protocolFeatureList(cut).join(', ')}` +
                `${device ? ` for a ${device} device` : ''} (${profile.source}): the check needs it`,
            );
          }
          const ack = await session.setProtocolFeatures(offered & mask);
          if (ack !== undefined && ack !== 0n)
            throw new BackendError(`SET_PROTOCOL_FEATURES was acked with ${ack}`);
        }
        break;
      case 'GET_QUEUE_NUM':
        if (acked(ProtocolFeature.MQ))
          started.queueNum = Number(await session.connection.requestU64('GET_QUEUE_NUM'));
        break;
      case 'GET_MAX_MEM_SLOTS':
        if (acked(ProtocolFeature.CONFIGURE_MEM_SLOTS))
          started.maxMemSlots = await session.connection.requestU64('GET_MAX_MEM_SLOTS');
        break;
      case 'SET_BACKEND_REQ_FD':
        await backendChannel(session, scope);
        break;
    }
  }
  return started;
}

/**
 * The virtio features to acknowledge: those of `wanted` that are offered and that the profile's front-end
 * passes on for the device type, with bit 30 when negotiated. A SkipError names the profile when it leaves
 * out one of `required` that the back-end offers (one not offered is the check's to report).
 */
export function ackFeatures(started: Started, wanted: bigint, required = 0n): bigint {
  const { profile, device, offered } = started;
  const mask = (device === null ? undefined : profile.virtioMask[device]) ?? ~0n;
  const cut = offered & required & ~mask & ~bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
  if (cut !== 0n) {
    throw new SkipError(
      `the ${profile.name} front-end profile does not pass ${virtioFeatureList(cut, device).join(', ')} on to ` +
        `a ${device} device (${profile.source}): the check needs it`,
    );
  }
  const protocol = started.protocol ? bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES) : 0n;
  return (wanted & offered & mask & ~bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)) | protocol;
}

/** What `initTargetSession` needs of a check (runner/check.ts CheckContext is one). */
export interface ProfileContext {
  scope: Scope;
  target: {
    /** The front-end profile the run starts devices with (`--frontend`; default qemu). */
    frontend?: string;
    type: string | null;
  };
}

/** `initSession` under the run's front-end profile (`--frontend`), for the run's device type. */
export function initTargetSession(
  ctx: ProfileContext,
  session: FrontendSession,
  want: Omit<SessionWants, 'device'>,
): Promise<Started> {
  const profile = profileNamed(ctx.target.frontend ?? DEFAULT_PROFILE);
  return initSession(profile, session, ctx.scope, { ...want, device: ctx.target.type });
}

/** A SkipError when the check needs bit 30 and the profile or the back-end leaves it out. */
export function requireProtocol(started: Started, what: string): void {
  if (started.protocol) return;
  throw new SkipError(
    started.profile.protocolFeatures
      ? `VHOST_USER_F_PROTOCOL_FEATURES is not offered: ${what}`
      : `the ${started.profile.name} front-end profile negotiates no protocol features: ${what}`,
  );
}
