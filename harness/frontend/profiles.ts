/**
 * Front-end profiles: the order in which a real front-end sends its messages at start-up, at ring start
 * and at ring stop, and the choices it makes (protocol features or not, need_reply or not). Back-ends break
 * depending on who drives them; a profile replays one front-end's order over a FrontendSession and a
 * FrontendDevice, so that the same traffic checks can run as QEMU, DPDK, cloud-hypervisor or crosvm would
 * start the device. The profiles are data; `initSession`, `startDevice` and `stopDevice` play them.
 *
 * What a check asks for stays the check's: the features and protocol features it needs, the rings it uses,
 * the device-specific messages between start-up and ring start (GET_CONFIG, GPU_SET_SOCKET). A profile
 * decides the order and the choices listed here, nothing else.
 */
import { BackendError, SkipError, UsageError } from '../errors.js';
import type { Scope } from '../process/scope.js';
import type { SplitVringBase } from '../protocol/messages.js';
import { encodeU64 } from '../protocol/messages.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import type { FrontendSession } from '../transport/session.js';
import type { RingPlacement } from '../virtqueue/split.js';
import type { FrontendDevice } from './device.js';

/** Start-up messages, sent once on a fresh connection. */
export type InitStep =
  | 'SET_OWNER'
  | 'GET_FEATURES'
  /** GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES, when bit 30 is offered and the profile uses it. */
  | 'PROTOCOL_FEATURES'
  /** When VHOST_USER_PROTOCOL_F_MQ was negotiated. */
  | 'GET_QUEUE_NUM'
  /** When VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS was negotiated. */
  | 'GET_MAX_MEM_SLOTS'
  /** When VHOST_USER_PROTOCOL_F_BACKEND_REQ was negotiated. */
  | 'SET_BACKEND_REQ_FD';

/** Device start: what is sent once for the device, and RINGS, the per-ring messages of every ring. */
export type StartStep =
  | 'SET_FEATURES'
  /** SET_MEM_TABLE, or the check's own way of sharing memory (ADD_MEM_REG). */
  | 'MEMORY'
  /** SET_VRING_CALL for every ring. */
  | 'CALL_ALL'
  /** SET_VRING_NUM for every ring. */
  | 'NUM_ALL'
  /** The profile's `ring` steps, ring by ring. */
  | 'RINGS'
  /** SET_VRING_ENABLE 1 for every ring (only with bit 30 negotiated, and when the check enables). */
  | 'ENABLE_ALL'
  | 'SET_BACKEND_REQ_FD';

/** One ring's start messages; ENABLE only with bit 30 negotiated and when the check enables. */
export type RingStep = 'NUM' | 'BASE' | 'ADDR' | 'KICK' | 'CALL' | 'ENABLE';

export interface FrontendProfile {
  name: string;
  /** The front-end it replays. */
  frontend: string;
  /** Where its order was read (repository and path). */
  source: string;
  /** Whether it negotiates VHOST_USER_F_PROTOCOL_FEATURES when offered. */
  protocolFeatures: boolean;
  /** Whether it sets need_reply once REPLY_ACK is negotiated. */
  needReply: boolean;
  init: readonly InitStep[];
  start: readonly StartStep[];
  ring: readonly RingStep[];
  /**
   * How a device stops: 'all' sends SET_VRING_ENABLE 0 to every ring and then GET_VRING_BASE to every ring,
   * 'each' both for one ring before the next. ENABLE 0 only with bit 30 negotiated.
   */
  stop: 'all' | 'each';
  /** The order it sets rings up in (default: by index). */
  ringOrder?: (indices: readonly number[]) => number[];
}

/**
 * QEMU 7.2 to 9.x: hw/virtio/vhost-user.c vhost_user_backend_init (GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM with MQ, GET_MAX_MEM_SLOTS with CONFIGURE_MEM_SLOTS, SET_BACKEND_REQ_FD with BACKEND_REQ),
 * then hw/virtio/vhost.c vhost_dev_init (SET_OWNER, GET_FEATURES again; vhost_virtqueue_init sends SET_VRING_CALL for every
 * ring, before any SET_FEATURES), vhost_dev_start (SET_FEATURES, SET_MEM_TABLE, vhost_virtqueue_start per
 * ring: NUM, BASE, ADDR, KICK; the call fd again when the guest notifier is unmasked; then
 * vhost_dev_set_vring_enable: ENABLE 1 for every ring) and vhost_dev_stop (ENABLE 0 for every ring, then
 * vhost_virtqueue_stop: GET_VRING_BASE per ring). QEMU's init call fd is a masked notifier; here it is the
 * ring's call eventfd both times.
 */
const QEMU: FrontendProfile = {
  name: 'qemu',
  frontend: 'QEMU (hw/virtio/vhost-user.c, vhost.c)',
  source: 'qemu/qemu hw/virtio/vhost-user.c, hw/virtio/vhost.c',
  protocolFeatures: true,
  needReply: true,
  init: [
    'GET_FEATURES',
    'PROTOCOL_FEATURES',
    'GET_QUEUE_NUM',
    'GET_MAX_MEM_SLOTS',
    'SET_BACKEND_REQ_FD',
    'SET_OWNER',
    'GET_FEATURES',
  ],
  start: ['CALL_ALL', 'SET_FEATURES', 'MEMORY', 'RINGS', 'ENABLE_ALL'],
  ring: ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL'],
  stop: 'all',
};

/**
 * QEMU's order with a front-end that never acknowledges VHOST_USER_F_PROTOCOL_FEATURES, as QEMU before 2.4
 * (and any QEMU facing a back-end without bit 30): no GET/SET_PROTOCOL_FEATURES, no SET_VRING_ENABLE; the
 * rings run from SET_VRING_KICK on. Same source as `qemu`.
 */
const QEMU_LEGACY: FrontendProfile = {
  ...QEMU,
  name: 'qemu-legacy',
  frontend: 'QEMU without protocol features',
  protocolFeatures: false,
};

/**
 * DPDK's virtio-user front-end: drivers/net/virtio/virtio_user/virtio_user_dev.c virtio_user_dev_init
 * (SET_OWNER first, then vhost_user.c's GET_FEATURES and GET/SET_PROTOCOL_FEATURES), virtio_user_start_device
 * ("Step 0": virtio_user_create_queue, SET_VRING_CALL for every queue; SET_FEATURES; SET_MEM_TABLE;
 * virtio_user_kick_queue per queue: NUM, BASE, ADDR and KICK last, "because vhost depends on this msg to
 * judge if virtio is ready"; enable_qp: ENABLE 1 per queue pair), rx queues before tx queues
 * (virtio_user_queue_setup), and virtio_user_stop_device (ENABLE 0 for every pair, then GET_VRING_BASE for
 * every queue). It sends no SET_VRING_CALL after the memory table.
 */
const DPDK: FrontendProfile = {
  name: 'dpdk',
  frontend: "DPDK virtio-user (net_virtio_user's vhost-user back-end ops)",
  source: 'DPDK/dpdk drivers/net/virtio/virtio_user/virtio_user_dev.c, vhost_user.c',
  protocolFeatures: true,
  needReply: true,
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'GET_QUEUE_NUM'],
  start: ['CALL_ALL', 'SET_FEATURES', 'MEMORY', 'RINGS', 'ENABLE_ALL'],
  ring: ['NUM', 'BASE', 'ADDR', 'KICK'],
  stop: 'all',
  ringOrder: (indices) => [...indices.filter((i) => i % 2 === 0), ...indices.filter((i) => i % 2 === 1)],
};

/**
 * cloud-hypervisor: virtio-devices/src/vhost_user/vu_common_ctrl.rs negotiate_features_vhost_user (SET_OWNER,
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES; need_reply on every request once REPLY_ACK is acked) and
 * setup_vhost_user (SET_FEATURES, SET_MEM_TABLE, SET_VRING_NUM for every queue first, then per queue ADDR,
 * BASE, CALL, KICK; ENABLE 1 for every queue; SET_BACKEND_REQ_FD last). It stops (reset/pause) with ENABLE 0
 * for every queue and sends no GET_VRING_BASE; the harness still asks for the bases after it, since the
 * checks need them.
 */
const CLOUD_HYPERVISOR: FrontendProfile = {
  name: 'cloud-hypervisor',
  frontend: 'cloud-hypervisor (vu_common_ctrl.rs)',
  source: 'cloud-hypervisor/cloud-hypervisor virtio-devices/src/vhost_user/vu_common_ctrl.rs',
  protocolFeatures: true,
  needReply: true,
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES'],
  start: ['SET_FEATURES', 'MEMORY', 'NUM_ALL', 'RINGS', 'ENABLE_ALL', 'SET_BACKEND_REQ_FD'],
  ring: ['ADDR', 'BASE', 'CALL', 'KICK'],
  stop: 'all',
};

/**
 * crosvm: devices/src/virtio/vhost_user_frontend/mod.rs VhostUserFrontend::new (SET_OWNER, GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, SET_BACKEND_REQ_FD with BACKEND_REQ, GET_QUEUE_NUM with MQ; REPLY_ACK is
 * negotiated but need_reply never set), ack_features (SET_FEATURES), activate (SET_MEM_TABLE, then
 * activate_vring per queue: NUM, ADDR, BASE, CALL, KICK, ENABLE 1) and deactivate_vring per queue (ENABLE 0,
 * GET_VRING_BASE).
 */
const CROSVM: FrontendProfile = {
  name: 'crosvm',
  frontend: 'crosvm (vhost_user_frontend)',
  source: 'google/crosvm devices/src/virtio/vhost_user_frontend/mod.rs',
  protocolFeatures: true,
  needReply: false,
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'SET_BACKEND_REQ_FD', 'GET_QUEUE_NUM'],
  start: ['SET_FEATURES', 'MEMORY', 'RINGS'],
  ring: ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK', 'ENABLE'],
  stop: 'each',
};

export const PROFILES: readonly FrontendProfile[] = [QEMU, QEMU_LEGACY, DPDK, CLOUD_HYPERVISOR, CROSVM];

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
  /** GET_FEATURES. */
  offered: bigint;
  /** Whether bit 30 is part of the deal: offered, wanted by the check, and used by the profile. */
  protocol: boolean;
  /** GET_QUEUE_NUM, when MQ was negotiated and the profile asks. */
  queueNum?: number;
  /** GET_MAX_MEM_SLOTS, when CONFIGURE_MEM_SLOTS was negotiated and the profile asks. */
  maxMemSlots?: bigint;
}

/**
 * The profile's start-up on a fresh session: `protocolFeatures` are those the check wants (undefined: none,
 * the legacy start); the ones offered are acknowledged. A check that needs bit 30 under a profile that does
 * not use it learns so from `protocol`.
 */
export async function initSession(
  profile: FrontendProfile,
  session: FrontendSession,
  scope: Scope,
  want: { protocolFeatures?: bigint } = {},
): Promise<Started> {
  session.needReply = profile.needReply;
  const started: Started = { profile, offered: 0n, protocol: false };
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
          want.protocolFeatures !== undefined &&
          hasBit(started.offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
        break;
      case 'PROTOCOL_FEATURES':
        if (started.protocol) {
          const offered = await session.getProtocolFeatures();
          const ack = await session.setProtocolFeatures(offered & (want.protocolFeatures ?? 0n));
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
}

export interface StartPlan {
  /** The features to acknowledge with SET_FEATURES. */
  features: bigint;
  rings: readonly RingPlan[];
  /** Whether the rings are enabled (SET_VRING_ENABLE 1); only ever with bit 30 negotiated. */
  enable: boolean;
  /** How guest memory is shared (default SET_MEM_TABLE). */
  memory?: () => Promise<void>;
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
  const { profile } = started;
  const enable = plan.enable && hasBit(plan.features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
  const order = ringsInOrder(
    profile,
    plan.rings.map((r) => r.index),
  );
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
      });
  }
  for (const step of profile.start) {
    switch (step) {
      case 'SET_FEATURES':
        await session.expectAck('SET_FEATURES', encodeU64(plan.features));
        break;
      case 'MEMORY':
        await (plan.memory ?? (() => device.setMemTable()))();
        break;
      case 'CALL_ALL':
      case 'NUM_ALL':
      case 'RINGS':
      case 'ENABLE_ALL':
        await playRings({ ...profile, start: [step] }, device, order, enable);
        break;
      case 'SET_BACKEND_REQ_FD':
        await backendChannel(session, scope);
        break;
    }
  }
}

/**
 * The profile's ring start again for rings already laid out, each at its base in `bases` (what
 * GET_VRING_BASE returned), as after a stop: its SET_VRING_CALL, SET_VRING_NUM, per-ring and
 * SET_VRING_ENABLE steps, without SET_FEATURES or the memory (the caller's to send when they change).
 */
export async function restartDevice(
  started: Started,
  device: FrontendDevice,
  bases: ReadonlyMap<number, number>,
  enable: boolean,
): Promise<void> {
  const { profile } = started;
  const on = enable && started.protocol;
  const order = ringsInOrder(profile, [...bases.keys()]);
  await playRings(profile, device, order, on, bases);
}

/** The ring steps of `profile.start` for rings `order`; with `bases`, each SET_VRING_BASE carries its own. */
async function playRings(
  profile: FrontendProfile,
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
 * GET_VRING_BASE, all rings at once or ring by ring. Returns each ring's base.
 */
export async function stopDevice(
  profile: FrontendProfile,
  device: FrontendDevice,
  indices: readonly number[],
  protocol: boolean,
): Promise<Map<number, SplitVringBase>> {
  const bases = new Map<number, SplitVringBase>();
  const order = ringsInOrder(profile, indices);
  if (profile.stop === 'all') {
    if (protocol) for (const i of order) await device.enable(i, false);
    for (const i of order) bases.set(i, await device.stopRing(i));
  } else {
    for (const i of order) {
      if (protocol) await device.enable(i, false);
      bases.set(i, await device.stopRing(i));
    }
  }
  return bases;
}

/** `indices` in the order the profile sets rings up (default: as given). */
function ringsInOrder(profile: FrontendProfile, indices: readonly number[]): number[] {
  return profile.ringOrder ? profile.ringOrder(indices) : [...indices];
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
