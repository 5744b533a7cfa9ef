/**
 * Front-end profiles: the order in which a real front-end sends its messages at start-up, at ring start
 * and at ring stop, and the choices it makes (protocol features or not, need_reply or not). Back-ends break
 * depending on who drives them; a profile replays one front-end's order over a FrontendSession and a
 * FrontendDevice, so that the same traffic checks can run as QEMU, DPDK, cloud-hypervisor or crosvm would
 * start the device. The profiles are data, one file per front-end (frontend/profiles/, the model in
 * frontend/profile.ts); this file lists them and plays them: `initSession`, `startDevice` and `stopDevice`.
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
import type { SplitVringBase } from '../protocol/messages.js';
import { encodeInflightDescription, encodeU64, type InflightDescription } from '../protocol/messages.js';
import {
  DeviceStatus,
  hasBit,
  ProtocolFeature,
  protocolFeatureList,
  VirtioFeature,
} from '../protocol/spec.js';
import { closeFd, type Mapping, mmapShared } from '../sys/libc.js';
import type { FrontendSession } from '../transport/session.js';
import type { RingPlacement, SplitVirtqueue } from '../virtqueue/split.js';
import type { FrontendDevice } from './device.js';
import {
  bit,
  type DeviceOrder,
  type DeviceType,
  type FrontendProfile,
  type RingStep,
  type StartStep,
} from './profile.js';
import { CLOUD_HYPERVISOR } from './profiles/cloud-hypervisor.js';
import { CROSVM } from './profiles/crosvm.js';
import { DPDK } from './profiles/dpdk.js';
import { QEMU, QEMU_7_2, QEMU_LEGACY } from './profiles/qemu.js';

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

/** One ring as the check wants it. */
export interface RingPlan {
  index: number;
  size: number;
  packed?: boolean;
  eventIdx?: boolean;
  indirect?: boolean;
  /** VIRTIO_F_IN_ORDER negotiated. */
  inOrder?: boolean;
  /** The available index a split ring starts at. */
  base?: number;
  /** Where a split ring's parts go (default: allocated in the ring region). */
  placement?: RingPlacement;
  /** A split ring the guest already has (a migration destination's: see `VringOptions.queue`). */
  queue?: SplitVirtqueue<unknown>;
}

export interface StartPlan {
  /** The features to acknowledge with SET_FEATURES. */
  features: bigint;
  rings: readonly RingPlan[];
  /** Whether the rings are enabled (SET_VRING_ENABLE 1); only ever with bit 30 negotiated. */
  enable: boolean;
  /** How guest memory is shared (default SET_MEM_TABLE). */
  memory?: () => Promise<void>;
  /**
   * The inflight buffer of an earlier connection, handed back with SET_INFLIGHT_FD instead of a new one from
   * GET_INFLIGHT_FD (QEMU's vhost-user-blk keeps it across a reconnection: vhost_dev_prepare_inflight).
   */
  inflight?: Started['inflight'];
}

/**
 * The profile's device start: SET_FEATURES, the memory, and every ring of `plan` laid out and started in
 * its order. The rings are then `device.ring(index)`.
 */
export async function startDevice(
  started: Started,
  session: FrontendSession,
  device: FrontendDevice,
  scope: Scope,
  plan: StartPlan,
): Promise<void> {
  const enable = plan.enable && hasBit(plan.features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
  for (const ring of plan.rings) {
    const options = {
      eventIdx: ring.eventIdx ?? false,
      indirect: ring.indirect ?? false,
    };
    if (ring.packed)
      device.preparePackedRing(ring.index, ring.size, { ...options, inOrder: ring.inOrder ?? false });
    else
      device.prepareRing(ring.index, ring.size, {
        ...options,
        inOrder: ring.inOrder ?? false,
        ...(ring.base === undefined ? {} : { base: ring.base }),
        ...(ring.placement ? { placement: ring.placement } : {}),
        ...(ring.queue ? { queue: ring.queue } : {}),
      });
  }
  started.features = plan.features;
  await playStart(started, session, device, orderFor(started).start, {
    enable,
    scope,
    rings: plan.rings.map((r) => r.index),
    queueSize: plan.rings[0]?.size ?? 0,
    ...(plan.memory ? { memory: plan.memory } : {}),
    ...(plan.inflight ? { inflight: plan.inflight } : {}),
  });
}

/** The order `started`'s profile starts, stops and restarts its device type in. */
function orderFor(started: Started): DeviceOrder {
  return (started.device && started.profile.devices?.[started.device]) || started.profile;
}

/** How `playStart` plays: at the device start (with the scope) or at a restart (with the rings' bases). */
interface StartPlay {
  rings: readonly number[];
  enable: boolean;
  /** The device start's: what the inflight buffer and the back-end request channel live in. */
  scope?: Scope;
  queueSize?: number;
  memory?: () => Promise<void>;
  /** A restart's: where each ring starts again. */
  bases?: ReadonlyMap<number, number>;
  /** The device start's: an inflight buffer kept from an earlier connection, handed back. */
  inflight?: Started['inflight'];
}

/** `steps` of a device start (or, with `play.bases`, of a restart) for `started`'s device. */
async function playStart(
  started: Started,
  session: FrontendSession,
  device: FrontendDevice,
  steps: readonly StartStep[],
  play: StartPlay,
): Promise<void> {
  const { profile } = started;
  const restart = play.bases !== undefined;
  const order = ringsInOrder(profile, play.rings);
  const status = statusStyle(started, session);
  const features = started.features ?? 0n;
  const keepsInflight =
    started.device !== null &&
    profile.inflight.includes(started.device) &&
    hasBit(session.ackedProtocolFeatures, ProtocolFeature.INFLIGHT_SHMFD);
  // At a restart the buffer of the first start goes back (QEMU keeps it: no GET_INFLIGHT_FD again).
  const inflight = async (): Promise<void> => {
    if (restart) await setInflight(session, started.inflight);
    else if (play.inflight) {
      started.inflight = play.inflight;
      await setInflight(session, play.inflight);
    } else started.inflight = await inflightBuffer(session, play.scope!, order.length, play.queueSize ?? 0);
  };
  const groups = orderFor(started).perPair ? byPair(order) : [order];
  for (const [k, group] of groups.entries()) {
    await playGroup(k === 0, k === groups.length - 1, group);
  }

  async function playGroup(first: boolean, last: boolean, group: readonly number[]): Promise<void> {
    const rings = (step: StartStep) =>
      playRings({ ...orderFor(started), start: [step] }, device, group, play.enable, play.bases);
    for (const step of steps) {
      // What the device has once (memory, inflight buffer, channel, connect-time calls) goes with the first
      // pair, DRIVER_OK with the last.
      const once: StartStep[] = [
        'MEMORY',
        'PREPARE_INFLIGHT',
        'INFLIGHT',
        'VRING_INIT',
        'SET_BACKEND_REQ_FD',
      ];
      if ((once.includes(step) && !first) || (step === 'DRIVER_OK' && !last)) continue;
      await playStep(step, rings);
    }
  }

  async function playStep(step: StartStep, rings: (step: StartStep) => Promise<void>): Promise<void> {
    switch (step) {
      case 'SET_FEATURES':
        await setFeatures(session, features, status);
        break;
      case 'PREPARE_INFLIGHT':
        if (keepsInflight) {
          await setFeatures(session, features, status);
          await inflight();
        }
        break;
      case 'INFLIGHT':
        if (keepsInflight) await inflight();
        break;
      case 'MEMORY':
        // A restart sends ADD_MEM_REG only for what changed (the check's), SET_MEM_TABLE whole again.
        if (!restart) await (play.memory ?? (() => shareMemory(started, session, device)))();
        else if (!usesMemorySlots(started, session)) await device.setMemTable();
        break;
      case 'VRING_INIT':
        if (!restart) {
          for (const i of order) {
            await device.setVringCall(i);
            await device.setVringErr(i);
          }
        }
        break;
      case 'CALL_ALL':
      case 'NUM_ALL':
      case 'RINGS':
      case 'ENABLE_ALL':
        await rings(step);
        break;
      case 'SET_BACKEND_REQ_FD':
        if (!restart) await backendChannel(session, play.scope!);
        break;
      case 'DRIVER_OK':
        await driverOk(session, status);
        break;
    }
  }
}

/** `order` in queue pairs: rings 2k and 2k+1 together, pairs in the order their first ring comes. */
function byPair(order: readonly number[]): number[][] {
  const pairs = new Map<number, number[]>();
  for (const i of order) pairs.set(i >> 1, [...(pairs.get(i >> 1) ?? []), i]);
  return [...pairs.values()];
}

/** ACKNOWLEDGE, DRIVER and DRIVER_OK: the status of a device that runs. */
const RUNNING = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK;

/** How the profile drives the device status on this session: its `status`, or 'none' without STATUS. */
function statusStyle(started: Started, session: FrontendSession): FrontendProfile['status'] {
  return hasBit(session.ackedProtocolFeatures, ProtocolFeature.STATUS) ? started.profile.status : 'none';
}

/** SET_FEATURES, and FEATURES_OK in the status as the profile sets it. */
async function setFeatures(
  session: FrontendSession,
  features: bigint,
  status: FrontendProfile['status'],
): Promise<void> {
  await session.expectAck('SET_FEATURES', encodeU64(features));
  if (status === 'qemu') await addStatus(session, DeviceStatus.FEATURES_OK);
  if (status === 'dpdk') {
    await session.expectAck(
      'SET_STATUS',
      encodeU64(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK),
    );
    await session.connection.requestU64('GET_STATUS');
    await session.connection.requestU64('GET_STATUS');
  }
}

/** DRIVER_OK in the status as the profile sets it, once the rings run. */
async function driverOk(session: FrontendSession, status: FrontendProfile['status']): Promise<void> {
  if (status === 'qemu') await addStatus(session, RUNNING);
  if (status === 'dpdk') await session.expectAck('SET_STATUS', encodeU64(RUNNING | DeviceStatus.FEATURES_OK));
}

/** GET_STATUS, then SET_STATUS with `bits` added unless they are all there already (QEMU's way). */
async function addStatus(session: FrontendSession, bits: bigint): Promise<void> {
  const status = await session.connection.requestU64('GET_STATUS');
  if ((status & bits) === bits) return;
  await session.expectAck('SET_STATUS', encodeU64(status | bits));
}

/**
 * The memory as the profile shares it: ADD_MEM_REG for each region when it uses memory slots and
 * CONFIGURE_MEM_SLOTS was negotiated (a SkipError when GET_MAX_MEM_SLOTS allows fewer regions than guest
 * memory has: the front-end would not start the device), SET_MEM_TABLE otherwise.
 */
async function shareMemory(
  started: Started,
  session: FrontendSession,
  device: FrontendDevice,
): Promise<void> {
  if (!usesMemorySlots(started, session)) {
    await device.setMemTable();
    return;
  }
  await addMemoryRegions(device, started.maxMemSlots);
}

/** Whether the profile shares memory by ADD_MEM_REG on this session (CONFIGURE_MEM_SLOTS negotiated). */
function usesMemorySlots(started: Started, session: FrontendSession): boolean {
  return (
    started.profile.memorySlots && hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIGURE_MEM_SLOTS)
  );
}

/**
 * ADD_MEM_REG for every region of guest memory, after GET_MAX_MEM_SLOTS (`slots`, when start-up asked it
 * already): a SkipError when it allows fewer regions than there are.
 */
export async function addMemoryRegions(device: FrontendDevice, slots?: bigint): Promise<void> {
  const { regions } = device.memory;
  const allowed = slots ?? (await device.session.connection.requestU64('GET_MAX_MEM_SLOTS'));
  if (allowed < BigInt(regions.length)) {
    throw new SkipError(
      `GET_MAX_MEM_SLOTS allows ${allowed} regions: fewer than the ${regions.length} the checks use`,
    );
  }
  for (const region of regions) await device.addMemoryRegion(region.guestAddress);
}

/**
 * GET_INFLIGHT_FD for `numQueues` rings of `queueSize`, the buffer mapped as the front-end maps it (until
 * the scope closes), and handed back with SET_INFLIGHT_FD (with REPLY_ACK, refused is a BackendError).
 */
async function inflightBuffer(
  session: FrontendSession,
  scope: Scope,
  numQueues: number,
  queueSize: number,
): Promise<Started['inflight']> {
  const { reply, fd } = await session.getInflightFd(numQueues, queueSize);
  // mmap_size 0: no buffer to track requests in; QEMU sends no SET_INFLIGHT_FD then.
  if (fd === undefined) return undefined;
  scope.defer(`inflight buffer fd ${fd}`, () => closeFd(fd));
  let mapping: Mapping;
  try {
    mapping = mmapShared(fd, Number(reply.mmapSize), Number(reply.mmapOffset));
  } catch (err) {
    throw new BackendError(
      `the inflight buffer of GET_INFLIGHT_FD (${reply.mmapSize} bytes at offset ${reply.mmapOffset}) cannot ` +
        `be mapped: ${(err as Error).message}`,
      { cause: err },
    );
  }
  scope.defer('inflight buffer mapping', () => mapping.unmap());
  const kept = { fd, description: { ...reply, numQueues, queueSize } };
  await setInflight(session, kept);
  return kept;
}

/** SET_INFLIGHT_FD handing `inflight` back (nothing without one); with REPLY_ACK, refused is a BackendError. */
async function setInflight(session: FrontendSession, inflight: Started['inflight']): Promise<void> {
  if (!inflight) return;
  const ack = await session.request('SET_INFLIGHT_FD', encodeInflightDescription(inflight.description), {
    fds: [inflight.fd],
  });
  if (ack !== undefined && ack !== 0n)
    throw new BackendError(`SET_INFLIGHT_FD was refused: REPLY_ACK ${ack}`);
}

/**
 * The profile's restart of rings already laid out, each at its base in `bases` (what GET_VRING_BASE
 * returned), as after a stop: its `restart` steps (see DeviceOrder), or, for a profile without them, its
 * SET_VRING_CALL, SET_VRING_NUM, per-ring and SET_VRING_ENABLE steps with the status as QEMU sets it again,
 * without SET_FEATURES or the memory (the caller's to send when they change).
 */
export async function restartDevice(
  started: Started,
  device: FrontendDevice,
  bases: ReadonlyMap<number, number>,
  enable: boolean,
): Promise<void> {
  const { profile } = started;
  const on = enable && started.protocol;
  const order = orderFor(started);
  if (order.restart) {
    await playStart(started, device.session, device, order.restart, {
      rings: [...bases.keys()],
      enable: on,
      bases,
    });
    return;
  }
  const status = statusStyle(started, device.session);
  // QEMU starts a device again from SET_FEATURES on, FEATURES_OK with it; DPDK never took DRIVER_OK away.
  if (status === 'qemu') await addStatus(device.session, DeviceStatus.FEATURES_OK);
  await playRings(order, device, ringsInOrder(profile, [...bases.keys()]), on, bases);
  if (status === 'qemu') await driverOk(device.session, status);
}

/** The ring steps of `profile.start` for rings `order`; with `bases`, each SET_VRING_BASE carries its own. */
async function playRings(
  profile: DeviceOrder,
  device: FrontendDevice,
  order: readonly number[],
  enable: boolean,
  bases?: ReadonlyMap<number, number>,
): Promise<void> {
  const ringStep: Record<RingStep, (index: number) => Promise<void>> = {
    NUM: (i) => device.setVringNum(i),
    BASE: (i) => device.setVringBase(i, bases?.get(i)),
    ADDR: (i) => device.setVringAddr(i),
    KICK: (i) => device.setVringKick(i),
    CALL: (i) => device.setVringCall(i),
    ENABLE: async (i) => {
      if (enable) await device.enable(i, true);
    },
  };
  for (const step of profile.start) {
    if (step === 'CALL_ALL') for (const i of order) await device.setVringCall(i);
    if (step === 'NUM_ALL') for (const i of order) await device.setVringNum(i);
    if (step === 'RINGS') for (const i of order) for (const s of profile.ring) await ringStep[s](i);
    if (step === 'ENABLE_ALL' && enable) for (const i of order) await device.enable(i, true);
  }
}

/**
 * The profile's device stop for rings `indices`: SET_VRING_ENABLE 0 (with bit 30 negotiated) and
 * GET_VRING_BASE, all rings at once or ring by ring, with the status set to 0 as QEMU does (after, or
 * before for QEMU before 8.1). Returns each ring's base.
 */
export async function stopDevice(
  started: Started,
  device: FrontendDevice,
  indices: readonly number[],
): Promise<Map<number, SplitVringBase>> {
  const { profile, protocol } = started;
  const bases = new Map<number, SplitVringBase>();
  const order = ringsInOrder(profile, indices);
  const resetStatus = async (first: boolean): Promise<void> => {
    if (statusStyle(started, device.session) === 'qemu' && (profile.statusResetFirst ?? false) === first) {
      await device.session.expectAck('SET_STATUS', encodeU64(0n));
    }
  };
  const { stop, callAfterStop, perPair } = orderFor(started);
  const groups = perPair ? byPair(order) : [order];
  for (const [k, group] of groups.entries()) {
    const last = k === groups.length - 1;
    if (last) await resetStatus(true);
    if (stop === 'each') {
      for (const i of group) {
        if (protocol) await device.enable(i, false);
        bases.set(i, await device.stopRing(i));
      }
    } else {
      if (protocol && stop === 'all') for (const i of group) await device.enable(i, false);
      for (const i of group) bases.set(i, await device.stopRing(i));
    }
    if (last) await resetStatus(false);
  }
  if (callAfterStop) for (const i of order) await device.setVringCall(i);
  return bases;
}

/** `indices` in the order the profile sets rings up (default: as given). */
function ringsInOrder(profile: FrontendProfile, indices: readonly number[]): number[] {
  return profile.ringOrder ? profile.ringOrder(indices) : [...indices];
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

/** SET_BACKEND_REQ_FD when BACKEND_REQ was negotiated; the channel lives until the scope closes. */
async function backendChannel(session: FrontendSession, scope: Scope): Promise<void> {
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.BACKEND_REQ)) return;
  const { channel, ack } = await session.setUpBackendChannel();
  scope.defer('back-end request channel', () => channel.close());
  if (ack !== undefined && ack !== 0n)
    throw new BackendError(`SET_BACKEND_REQ_FD was refused: REPLY_ACK ${ack}`);
}
