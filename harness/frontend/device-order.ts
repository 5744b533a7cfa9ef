/**
 * What a front-end profile plays once its session is started (profiles.ts `initSession`): the device start
 * (SET_FEATURES and the device status, the memory, the inflight buffer, the rings, SET_VRING_ENABLE), the
 * stop and the restart, each in the order of the profile's DeviceOrder for the device type.
 */

import { BackendError, SkipError } from '../errors.js';
import type { Scope } from '../process/scope.js';
import type { SplitVringBase } from '../protocol/messages.js';
import { encodeInflightDescription, encodeU64 } from '../protocol/messages.js';
import { DeviceStatus, hasBit, ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { closeFd, type Mapping, mmapShared } from '../sys/libc.js';
import type { FrontendSession } from '../transport/session.js';
import type { FrontendDevice, VringOptions } from './device.js';
import type { DeviceOrder, FrontendProfile, RingStep, StartStep } from './profile.js';
import type { Started } from './profiles.js';

/** One ring as the check wants it. */
/** A ring to start: its index and size, packed or split, and the split ring's options (device.ts). */
export interface RingPlan extends VringOptions {
  index: number;
  size: number;
  packed?: boolean;
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
      device.preparePackedRing(ring.index, ring.size, {
        ...options,
        inOrder: ring.inOrder ?? false,
        ...(ring.base === undefined ? {} : { base: ring.base }),
        ...(ring.queue ? { queue: ring.queue } : {}),
      });
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

/** SET_BACKEND_REQ_FD when BACKEND_REQ was negotiated; the channel lives until the scope closes. */
export async function backendChannel(session: FrontendSession, scope: Scope): Promise<void> {
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.BACKEND_REQ)) return;
  const { channel, ack } = await session.setUpBackendChannel();
  scope.defer('back-end request channel', () => channel.close());
  if (ack !== undefined && ack !== 0n)
    throw new BackendError(`SET_BACKEND_REQ_FD was refused: REPLY_ACK ${ack}`);
}
