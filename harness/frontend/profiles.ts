/**
 * Front-end profiles: the order in which a real front-end sends its messages at start-up, at ring start
 * and at ring stop, and the choices it makes (protocol features or not, need_reply or not). Back-ends break
 * depending on who drives them; a profile replays one front-end's order over a FrontendSession and a
 * FrontendDevice, so that the same traffic checks can run as QEMU, DPDK, cloud-hypervisor or crosvm would
 * start the device. The profiles are data; `initSession`, `startDevice` and `stopDevice` play them.
 *
 * What a front-end decides is the profile's: the protocol features it acknowledges (its own list, whatever
 * the back-end offers beyond it), the virtio features it lets through per device type, and what those change
 * on the wire (the device status, the inflight buffer, memory by ADD_MEM_REG). What the guest decides stays
 * the check's: the virtio features it acks among those, the rings it uses, the device-specific messages
 * between start-up and ring start (GET_CONFIG, GPU_SET_SOCKET).
 */

import { VirtioBlkFeature } from '../devices/blk.js';
import { VirtioNetFeature } from '../devices/net.js';
import { BackendError, SkipError, UsageError } from '../errors.js';
import type { Scope } from '../process/scope.js';
import { VirtioGpuFeature } from '../protocol/gpu-spec.js';
import type { SplitVringBase } from '../protocol/messages.js';
import { encodeInflightDescription, encodeU64, type InflightDescription } from '../protocol/messages.js';
import {
  DeviceStatus,
  type FrontendRequestName,
  hasBit,
  ProtocolFeature,
  protocolFeatureList,
  VirtioFeature,
} from '../protocol/spec.js';
import { closeFd, type Mapping, mmapShared } from '../sys/libc.js';
import type { FrontendSession } from '../transport/session.js';
import type { RingPlacement, SplitVirtqueue } from '../virtqueue/split.js';
import type { FrontendDevice } from './device.js';

/** The device types a profile may name (the vhost-user.json "type" of the devices the harness drives). */
export type DeviceType = 'block' | 'net' | 'fs' | 'gpu';

const bit = (n: number) => 1n << BigInt(n);
/** The set of `numbers`' bits. */
const bits = (...numbers: number[]) => numbers.reduce((acc, n) => acc | bit(n), 0n);

/** Names of the virtio feature bits set in `features`, the device type's own among them. */
export function virtioFeatureList(features: bigint, device: DeviceType | null): string[] {
  const own: Record<DeviceType, [string, Readonly<Record<string, number>>]> = {
    block: ['VIRTIO_BLK_F_', VirtioBlkFeature],
    net: ['VIRTIO_NET_F_', VirtioNetFeature],
    fs: ['VIRTIO_FS_F_', {}],
    gpu: ['VIRTIO_GPU_F_', VirtioGpuFeature],
  };
  const names = new Map<number, string>();
  if (device) {
    const [prefix, table] = own[device];
    for (const [name, n] of Object.entries(table)) names.set(n, prefix + name);
  }
  for (const [name, n] of Object.entries(VirtioFeature)) names.set(n, name);
  const list: string[] = [];
  for (let n = 0; n < 64; n++) if (hasBit(features, n)) list.push(names.get(n) ?? `bit ${n}`);
  return list;
}

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
  /**
   * SET_FEATURES; with STATUS negotiated and the profile's `status`, FEATURES_OK is added to the device
   * status right after it.
   */
  | 'SET_FEATURES'
  /**
   * GET_INFLIGHT_FD and SET_INFLIGHT_FD (the buffer handed back), when INFLIGHT_SHMFD was negotiated and the
   * profile keeps an inflight buffer for the device type.
   */
  | 'INFLIGHT'
  /** As INFLIGHT, after a SET_FEATURES of its own (QEMU's vhost_dev_prepare_inflight). */
  | 'PREPARE_INFLIGHT'
  /** SET_MEM_TABLE, or the check's own way of sharing memory (ADD_MEM_REG). */
  | 'MEMORY'
  /**
   * SET_VRING_CALL and SET_VRING_ERR ring by ring, as QEMU's vhost_virtqueue_init sends them when it connects
   * (sent with the rings' start, as the harness knows its rings only then; never again at a restart).
   */
  | 'VRING_INIT'
  /** SET_VRING_CALL for every ring. */
  | 'CALL_ALL'
  /** SET_VRING_NUM for every ring. */
  | 'NUM_ALL'
  /** The profile's `ring` steps, ring by ring. */
  | 'RINGS'
  /** SET_VRING_ENABLE 1 for every ring (only with bit 30 negotiated, and when the check enables). */
  | 'ENABLE_ALL'
  | 'SET_BACKEND_REQ_FD'
  /** ACKNOWLEDGE, DRIVER and DRIVER_OK set in the device status (STATUS negotiated, the profile's `status`). */
  | 'DRIVER_OK';

/** One ring's start messages; ENABLE only with bit 30 negotiated and when the check enables. */
export type RingStep = 'NUM' | 'BASE' | 'ADDR' | 'KICK' | 'CALL' | 'ENABLE';

/** How a front-end starts, stops and restarts a device (of one type, or of every type it does not name). */
export interface DeviceOrder {
  start: readonly StartStep[];
  ring: readonly RingStep[];
  /**
   * How a device stops: 'all' sends SET_VRING_ENABLE 0 to every ring and then GET_VRING_BASE to every ring,
   * 'each' both for one ring before the next, 'bases' GET_VRING_BASE to every ring and no SET_VRING_ENABLE 0.
   * ENABLE 0 only with bit 30 negotiated.
   */
  stop: 'all' | 'each' | 'bases';
  /** SET_VRING_CALL for every ring once they are stopped (QEMU masking the guest notifiers again). */
  callAfterStop?: boolean;
  /**
   * Start, stop and restart played queue pair by queue pair (rings 2k and 2k+1), as QEMU's vhost-user-net
   * keeps a vhost_dev per pair: each pair's steps in turn, SET_FEATURES (and FEATURES_OK) for each, the
   * memory, the inflight buffer and VRING_INIT with the first, DRIVER_OK after the last; at stop, SET_STATUS 0
   * with the last pair (vhost_user_dev_start: "Set device status only for last queue pair"). Read in the
   * source, not recorded (iPXE drives one pair); one departure: QEMU 7.2 sends ADD_MEM_REG again for each
   * pair's vhost_dev (vhost_user_add_remove_regions diffs against a shadow table of its own), the profile
   * shares memory once.
   */
  perPair?: boolean;
  /**
   * The restart after a stop, played as `start` is but for what the front-end keeps from the first start:
   * no VRING_INIT, no GET_INFLIGHT_FD (the kept buffer goes back with SET_INFLIGHT_FD), no ADD_MEM_REG
   * (QEMU sends only the regions that changed: the check sends its own changes), no SET_BACKEND_REQ_FD;
   * SET_MEM_TABLE is sent again. Absent (a profile not checked against a recording): the ring steps of
   * `start`, with FEATURES_OK and DRIVER_OK as QEMU sets them.
   */
  restart?: readonly StartStep[];
}

export interface FrontendProfile extends DeviceOrder {
  name: string;
  /** The front-end it replays. */
  frontend: string;
  /** Where its order was read (repository and path). */
  source: string;
  /** Whether it negotiates VHOST_USER_F_PROTOCOL_FEATURES when offered. */
  protocolFeatures: boolean;
  /**
   * Which requests without a reply of their own it sends with need_reply once REPLY_ACK is negotiated: all,
   * none, or those named. The harness follows the others with a GET_FEATURES round trip of its own.
   */
  needReply: boolean | readonly FrontendRequestName[];
  /**
   * The protocol features it acknowledges when the back-end offers them: its own list, whatever the check
   * would like. What they change on the wire follows (GET_QUEUE_NUM, SET_BACKEND_REQ_FD, the status, the
   * inflight buffer, ADD_MEM_REG); the others change nothing at start-up.
   */
  protocolMask: bigint;
  /** The device types it keeps CONFIG for (QEMU drops it for a device without config space handling). */
  config: readonly DeviceType[];
  /**
   * Per device type, the virtio features it passes on to SET_FEATURES: the guest driver (here the check)
   * chooses among them, the rest never reach the back-end. Bit 30 is the front-end's own. A type not listed
   * is one the front-end has no vhost-user device for; the check's own choice then stands.
   */
  virtioMask: Readonly<Partial<Record<DeviceType, bigint>>>;
  /** With CONFIGURE_MEM_SLOTS negotiated: memory shared by ADD_MEM_REG, region by region, not SET_MEM_TABLE. */
  memorySlots: boolean;
  /** The device types it keeps an inflight buffer for (GET_INFLIGHT_FD, SET_INFLIGHT_FD) with INFLIGHT_SHMFD. */
  inflight: readonly DeviceType[];
  /**
   * How it drives the device status with STATUS negotiated. 'qemu': after each SET_FEATURES, GET_STATUS and
   * (FEATURES_OK not set yet) SET_STATUS with it added; once the rings run, GET_STATUS and SET_STATUS with
   * ACKNOWLEDGE|DRIVER|DRIVER_OK added; at stop, SET_STATUS 0 after the last GET_VRING_BASE. 'dpdk': after
   * SET_FEATURES, SET_STATUS ACKNOWLEDGE|DRIVER|FEATURES_OK and GET_STATUS twice (read back, then read again
   * before DRIVER_OK); once the rings run, SET_STATUS with DRIVER_OK too; nothing at stop. 'none': no status.
   */
  status: 'qemu' | 'dpdk' | 'none';
  /** With the 'qemu' status: SET_STATUS 0 first at stop, before the rings stop (QEMU before 8.1). */
  statusResetFirst?: boolean;
  init: readonly InitStep[];
  /** Device types it starts, stops or restarts in an order of their own (the profile's order is the rest's). */
  devices?: Readonly<Partial<Record<DeviceType, DeviceOrder>>>;
  /** The order it sets rings up in (default: by index). */
  ringOrder?: (indices: readonly number[]) => number[];
}

/** Device-specific virtio feature bits 0-23 and 50-63 (crosvm's VIRTIO_DEVICE_TYPE_SPECIFIC_FEATURES_MASK). */
const DEVICE_SPECIFIC = 0xfffc_0000_00ff_ffffn;
const F = VirtioFeature;
const NOTIFICATION_DATA = 38;
const RING_RESET = 40;
const ORDER_PLATFORM = 36;
const ANY_LAYOUT = 27;
const NET_GSO = 6;
const NET_GUEST_USO4 = 54;
const NET_GUEST_USO6 = 55;
const NET_HOST_USO = 56;
const NET_HASH_REPORT = 57;
const NET_RSS = 60;
const NET_RSC_EXT = 61;
const N = VirtioNetFeature;
const B = VirtioBlkFeature;
const P = ProtocolFeature;

/** The blk feature bits every front-end here lets through. */
const BLK_BITS = bits(
  B.SIZE_MAX,
  B.SEG_MAX,
  B.GEOMETRY,
  B.RO,
  B.BLK_SIZE,
  B.FLUSH,
  B.TOPOLOGY,
  B.CONFIG_WCE,
  B.DISCARD,
  B.WRITE_ZEROES,
);
/** The net offloads QEMU and cloud-hypervisor let through. */
const NET_OFFLOADS = bits(
  N.CSUM,
  N.GUEST_CSUM,
  N.GUEST_TSO4,
  N.GUEST_TSO6,
  N.GUEST_ECN,
  N.GUEST_UFO,
  N.HOST_TSO4,
  N.HOST_TSO6,
  N.HOST_ECN,
  N.HOST_UFO,
  N.MRG_RXBUF,
);
/** The transport bits of QEMU's user_feature_bits lists (hw/net/vhost_net.c, hw/virtio/vhost-user-fs.c). */
const QEMU_TRANSPORT = bits(
  F.VIRTIO_F_NOTIFY_ON_EMPTY,
  F.VIRTIO_RING_F_INDIRECT_DESC,
  F.VIRTIO_RING_F_EVENT_IDX,
  F.VIRTIO_F_VERSION_1,
  F.VIRTIO_F_ACCESS_PLATFORM,
  F.VIRTIO_F_RING_PACKED,
  F.VIRTIO_F_IN_ORDER,
  RING_RESET,
);

/**
 * Current QEMU (9.1 on): hw/virtio/vhost-user.c vhost_user_backend_init (GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM with MQ, GET_MAX_MEM_SLOTS with CONFIGURE_MEM_SLOTS,
 * SET_BACKEND_REQ_FD with BACKEND_REQ), then hw/virtio/vhost.c vhost_dev_init (SET_OWNER, GET_FEATURES
 * again; vhost_virtqueue_init sends SET_VRING_CALL for every ring, before any SET_FEATURES), for a block
 * device hw/block/vhost-user-blk.c vhost_user_blk_start (vhost_dev_prepare_inflight: SET_FEATURES, then
 * GET_INFLIGHT_FD for num-queues rings of queue-size entries and SET_INFLIGHT_FD), vhost_dev_start
 * (SET_FEATURES; vhost_user_set_features adds FEATURES_OK to the status; the memory: ADD_MEM_REG per region
 * with CONFIGURE_MEM_SLOTS, else SET_MEM_TABLE; vhost_virtqueue_start per ring: NUM, BASE, ADDR, KICK; the
 * call fd again when the guest notifier is unmasked; ENABLE 1 for every ring; vhost_user_dev_start adds
 * ACKNOWLEDGE|DRIVER|DRIVER_OK) and vhost_dev_stop (ENABLE 0 for every ring, GET_VRING_BASE per ring, then
 * vhost_user_reset_status: SET_STATUS 0, since QEMU 8.1). QEMU's init call fd is a masked notifier; here it
 * is the ring's call eventfd both times.
 *
 * Protocol features: VHOST_USER_PROTOCOL_FEATURE_MASK, every bit QEMU defines up to DEVICE_STATE (19), with
 * CONFIG dropped for a device without config handling (net, fs). Master's bits 20-23 change what ring
 * addresses and GET_VRING_BASE mean, which the harness does not model: they are left out. Virtio features:
 * the user_feature_bits lists of hw/net/vhost_net.c, hw/block/vhost-user-blk.c and hw/virtio/vhost-user-fs.c;
 * vhost-user-gpu has none (it passes the guest's features on), so a gpu check's choice stands. need_reply:
 * on the memory messages (vhost_user_set_mem_table, vhost_user_add_remove_regions), SET_BACKEND_REQ_FD,
 * NET_SET_MTU, SET_CONFIG and (since 8.2, "call VHOST_USER_SET_VRING_ENABLE synchronously") SET_VRING_ENABLE.
 */
const QEMU_NEED_REPLY: readonly FrontendRequestName[] = [
  'SET_MEM_TABLE',
  'ADD_MEM_REG',
  'REM_MEM_REG',
  'SET_BACKEND_REQ_FD',
  'NET_SET_MTU',
  'SET_CONFIG',
];
const QEMU: FrontendProfile = {
  name: 'qemu',
  frontend: 'QEMU (hw/virtio/vhost-user.c, vhost.c)',
  source: 'qemu/qemu hw/virtio/vhost-user.c, hw/virtio/vhost.c',
  protocolFeatures: true,
  needReply: [...QEMU_NEED_REPLY, 'SET_VRING_ENABLE'],
  protocolMask: (1n << 20n) - 1n,
  config: ['block', 'gpu'],
  virtioMask: {
    net:
      QEMU_TRANSPORT |
      NET_OFFLOADS |
      bits(
        ANY_LAYOUT,
        NOTIFICATION_DATA,
        NET_GSO,
        N.MTU,
        N.GUEST_ANNOUNCE,
        N.MQ,
        NET_RSS,
        NET_RSC_EXT,
        NET_HASH_REPORT,
        NET_GUEST_USO4,
        NET_GUEST_USO6,
        NET_HOST_USO,
      ),
    block: QEMU_TRANSPORT | BLK_BITS | bit(B.MQ),
    fs: QEMU_TRANSPORT | bit(NOTIFICATION_DATA),
  },
  memorySlots: true,
  inflight: ['block'],
  status: 'qemu',
  init: [
    'GET_FEATURES',
    'PROTOCOL_FEATURES',
    'GET_QUEUE_NUM',
    'GET_MAX_MEM_SLOTS',
    'SET_BACKEND_REQ_FD',
    'SET_OWNER',
    'GET_FEATURES',
  ],
  start: ['CALL_ALL', 'PREPARE_INFLIGHT', 'SET_FEATURES', 'MEMORY', 'RINGS', 'ENABLE_ALL', 'DRIVER_OK'],
  ring: ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL'],
  stop: 'all',
};

/**
 * QEMU 7.2, the one Debian 12 ships, as recorded (test/data/frontends/qemu-7.2-*.json, through the recording
 * relay of test/frontends: qemu-system-x86_64 7.2 TCG against the reference fixtures, SeaBIOS driving a
 * vhost-user-blk disk, iPXE a vhost-user-net device; QMP stop, cont, quit) and read in the v7.2.0 tree.
 * Start-up as `qemu`. Its lists: VHOST_USER_PROTOCOL_FEATURE_MASK ends at STATUS (bit 16); user_feature_bits
 * have no IN_ORDER (added in 9.1), nor net's USO, NOTIFICATION_DATA and RSC_EXT (later still; the 7.2 net list
 * is rebuilt from the patches that added bits since); SET_VRING_ENABLE goes without need_reply.
 *
 * What the recordings showed, unlike `qemu`'s order (which was this profile's until then):
 * - hw/virtio/vhost.c vhost_virtqueue_init sends SET_VRING_CALL and SET_VRING_ERR ring by ring when QEMU
 *   connects (VRING_INIT), for every device type; these are the only calls before the device start of a net
 *   device.
 * - vhost_virtqueue_start sends no SET_VRING_CALL after SET_VRING_KICK when the device masks its guest
 *   notifiers (use_guest_notifier_mask: block, fs, gpu); its calls come from the unmasking loop instead:
 *   vhost_user_blk_start before vhost_dev_start, after the inflight buffer; vuf_start and
 *   vhost_user_backend_start (gpu) after it, once DRIVER_OK is set. vhost_net_start clears
 *   use_guest_notifier_mask for vhost-user: a net ring gets its call right after its kick.
 * - vhost_net_start enables each pair's rings (SET_VRING_ENABLE 1, "restore vring enable state") before
 *   vhost_dev_start, which it calls with vrings false: no SET_VRING_ENABLE after the rings, none at stop
 *   (vhost_dev_stop with vrings false: SET_STATUS 0, then GET_VRING_BASE per ring).
 * - A restart (QMP cont) is a start again without what QEMU keeps: vhost_user_blk_start sends SET_FEATURES
 *   and SET_INFLIGHT_FD with the buffer it has, no GET_INFLIGHT_FD; vhost_dev_start sends SET_FEATURES
 *   again and ADD_MEM_REG only for regions that changed (none).
 * - At stop, vhost_user_dev_start(false) sends SET_STATUS 0 first (8.1 moved it after GET_VRING_BASE,
 *   "vhost-user: send SET_STATUS 0 after GET_VRING_BASE"); no masked SET_VRING_CALL follows for block (7.2's
 *   vhost-user-blk has no guest_notifier_mask) nor net (no use_guest_notifier_mask). vhost-user-fs and
 *   vhost-user-gpu do have one: virtio_pci_set_guest_notifiers masks every ring again after vhost_dev_stop
 *   (callAfterStop), and unmasks them before vhost_dev_start too (CALL_ALL first). The fs and gpu orders are
 *   read in the source only: the firmware has no driver for them, so their recording ends before the start.
 * GET_CONFIG (vhost-user-blk reads its config space at realize) is the check's, as for every profile.
 */
const QEMU_7_2_START: readonly StartStep[] = [
  'VRING_INIT',
  'CALL_ALL',
  'SET_FEATURES',
  'MEMORY',
  'RINGS',
  'ENABLE_ALL',
  'DRIVER_OK',
  'CALL_ALL',
];
const QEMU_7_2_BLOCK_START: readonly StartStep[] = [
  'VRING_INIT',
  'PREPARE_INFLIGHT',
  'CALL_ALL',
  'SET_FEATURES',
  'MEMORY',
  'RINGS',
  'ENABLE_ALL',
  'DRIVER_OK',
];
const QEMU_7_2_NET_START: readonly StartStep[] = [
  'VRING_INIT',
  'ENABLE_ALL',
  'SET_FEATURES',
  'MEMORY',
  'RINGS',
  'DRIVER_OK',
];
/** A start without VRING_INIT: QEMU's restart of a stopped device. */
const again = (start: readonly StartStep[]) => start.filter((step) => step !== 'VRING_INIT');
const QEMU_7_2: FrontendProfile = {
  ...QEMU,
  name: 'qemu-7.2',
  frontend: 'QEMU 7.2 (Debian 12)',
  source: 'qemu/qemu v7.2.0 hw/virtio/vhost-user.c, hw/virtio/vhost.c',
  protocolMask: (1n << BigInt(P.STATUS + 1)) - 1n,
  virtioMask: {
    net:
      (QEMU_TRANSPORT & ~bit(F.VIRTIO_F_IN_ORDER)) |
      NET_OFFLOADS |
      bits(ANY_LAYOUT, NET_GSO, N.MTU, N.GUEST_ANNOUNCE, N.MQ, NET_RSS, NET_HASH_REPORT),
    block: (QEMU_TRANSPORT & ~bit(F.VIRTIO_F_IN_ORDER)) | BLK_BITS | bit(B.MQ),
    fs: QEMU_TRANSPORT & ~bit(F.VIRTIO_F_IN_ORDER),
  },
  needReply: QEMU_NEED_REPLY,
  statusResetFirst: true,
  // fs and gpu (vuf_start, vhost_user_backend_start); block and net below.
  start: QEMU_7_2_START,
  ring: ['NUM', 'BASE', 'ADDR', 'KICK'],
  stop: 'all',
  callAfterStop: true,
  restart: again(QEMU_7_2_START),
  devices: {
    block: {
      start: QEMU_7_2_BLOCK_START,
      ring: ['NUM', 'BASE', 'ADDR', 'KICK'],
      stop: 'all',
      restart: again(QEMU_7_2_BLOCK_START),
    },
    net: {
      start: QEMU_7_2_NET_START,
      ring: ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL'],
      stop: 'bases',
      perPair: true,
      restart: again(QEMU_7_2_NET_START),
    },
  },
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
 * DPDK's virtio-user front-end (22.11): drivers/net/virtio/virtio_user/virtio_user_dev.c virtio_user_dev_init
 * (SET_OWNER first, then vhost_user.c's GET_FEATURES and GET/SET_PROTOCOL_FEATURES; no GET_QUEUE_NUM, the
 * queue count comes from its devargs), virtio_user_dev_set_features on the driver's FEATURES_OK ("Step 0":
 * SET_VRING_CALL for every queue; SET_FEATURES; then SET_STATUS 0x0b and the driver reads it back),
 * virtio_user_start_device on DRIVER_OK (GET_STATUS first; SET_MEM_TABLE; virtio_user_kick_queue per queue:
 * NUM, BASE, ADDR and KICK last, "because vhost depends on this msg to judge if virtio is ready"; enable_qp:
 * ENABLE 1; then SET_STATUS 0x0f), rx queues before tx queues (virtio_user_queue_setup), and
 * virtio_user_stop_device (ENABLE 0 for every pair, then GET_VRING_BASE for every queue; no status 0, as its
 * cached status no longer has FEATURES_OK). It sends no SET_VRING_CALL after the memory table. Its restart is
 * a reset (virtio_dev_configure, when a port starts again with other features: "reinit the device"):
 * virtio_user_reset stops the device, and the start is played again whole, SET_FEATURES, the status and
 * SET_MEM_TABLE included (recorded: test/data/frontends/dpdk-net.json; `port stop` alone sends nothing). Its
 * rings then start from 0 again; the profile restarts each at its base, which the checks need.
 *
 * Protocol features: VHOST_USER_SUPPORTED_PROTOCOL_FEATURES (MQ, REPLY_ACK, STATUS). Virtio features:
 * VIRTIO_USER_SUPPORTED_FEATURES less what SET_FEATURES strips (MAC, CTRL_VQ, STATUS): no EVENT_IDX. It is a
 * net front-end only; for other device types a check's choice stands. need_reply: on SET_MEM_TABLE and
 * SET_STATUS only.
 */
const DPDK_START: readonly StartStep[] = [
  'CALL_ALL',
  'SET_FEATURES',
  'MEMORY',
  'RINGS',
  'ENABLE_ALL',
  'DRIVER_OK',
];
const DPDK: FrontendProfile = {
  name: 'dpdk',
  frontend: "DPDK virtio-user (net_virtio_user's vhost-user back-end ops)",
  source: 'DPDK/dpdk drivers/net/virtio/virtio_user/virtio_user_dev.c, vhost_user.c',
  protocolFeatures: true,
  needReply: ['SET_MEM_TABLE', 'SET_STATUS'],
  protocolMask: bits(P.MQ, P.REPLY_ACK, P.STATUS),
  config: [],
  virtioMask: {
    net: bits(
      N.CSUM,
      N.GUEST_CSUM,
      N.GUEST_TSO4,
      N.GUEST_TSO6,
      N.HOST_TSO4,
      N.HOST_TSO6,
      N.MRG_RXBUF,
      N.CTRL_RX,
      N.CTRL_VLAN,
      N.MQ,
      N.CTRL_MAC_ADDR,
      F.VIRTIO_RING_F_INDIRECT_DESC,
      F.VIRTIO_F_VERSION_1,
      F.VIRTIO_F_RING_PACKED,
      F.VIRTIO_F_IN_ORDER,
    ),
  },
  memorySlots: false,
  inflight: [],
  status: 'dpdk',
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES'],
  start: DPDK_START,
  ring: ['NUM', 'BASE', 'ADDR', 'KICK'],
  stop: 'all',
  restart: DPDK_START,
  ringOrder: (indices) => [...indices.filter((i) => i % 2 === 0), ...indices.filter((i) => i % 2 === 1)],
};

/** cloud-hypervisor's DEFAULT_VIRTIO_FEATURES (virtio-devices/src/vhost_user/mod.rs). */
const CLOUD_HYPERVISOR_DEFAULT = bits(
  F.VIRTIO_RING_F_INDIRECT_DESC,
  F.VIRTIO_RING_F_EVENT_IDX,
  F.VIRTIO_F_VERSION_1,
  F.VIRTIO_F_IN_ORDER,
  ORDER_PLATFORM,
  NOTIFICATION_DATA,
);

/**
 * cloud-hypervisor: virtio-devices/src/vhost_user/vu_common_ctrl.rs negotiate_features_vhost_user (SET_OWNER,
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES; need_reply on every request once REPLY_ACK is acked; GET_QUEUE_NUM
 * with MQ) and setup_vhost_user (SET_FEATURES, SET_MEM_TABLE even with CONFIGURE_MEM_SLOTS, which it keeps
 * for memory hot-plug; SET_VRING_NUM for every queue first; with INFLIGHT_SHMFD, GET_INFLIGHT_FD and
 * SET_INFLIGHT_FD for every device type; then per queue ADDR, BASE, CALL, KICK; ENABLE 1 for every queue;
 * SET_BACKEND_REQ_FD last, which no device of these negotiates). It stops (reset/pause) with ENABLE 0 for
 * every queue and sends no GET_VRING_BASE; the harness still asks for the bases after it, since the checks
 * need them. No STATUS.
 *
 * Protocol features: blk.rs, fs.rs and net.rs avail_protocol_features (CONFIG for blk only). Virtio
 * features: DEFAULT_VIRTIO_FEATURES with blk.rs's blk bits; net.rs's offloads, MRG_RXBUF, MTU and MQ (the
 * net.rs read is older, without the default set; the default set is assumed as for blk and fs). No packed
 * rings.
 */
const CLOUD_HYPERVISOR: FrontendProfile = {
  name: 'cloud-hypervisor',
  frontend: 'cloud-hypervisor (vu_common_ctrl.rs)',
  source: 'cloud-hypervisor/cloud-hypervisor virtio-devices/src/vhost_user/vu_common_ctrl.rs',
  protocolFeatures: true,
  needReply: true,
  protocolMask: bits(P.CONFIG, P.MQ, P.CONFIGURE_MEM_SLOTS, P.REPLY_ACK, P.INFLIGHT_SHMFD, P.LOG_SHMFD),
  config: ['block'],
  virtioMask: {
    block: CLOUD_HYPERVISOR_DEFAULT | BLK_BITS | bit(B.MQ),
    fs: CLOUD_HYPERVISOR_DEFAULT,
    net: CLOUD_HYPERVISOR_DEFAULT | NET_OFFLOADS | bits(N.MTU, N.MQ),
  },
  memorySlots: false,
  inflight: ['block', 'fs', 'net'],
  status: 'none',
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'GET_QUEUE_NUM'],
  start: ['SET_FEATURES', 'MEMORY', 'NUM_ALL', 'INFLIGHT', 'RINGS', 'ENABLE_ALL', 'SET_BACKEND_REQ_FD'],
  ring: ['ADDR', 'BASE', 'CALL', 'KICK'],
  stop: 'all',
};

/**
 * crosvm: devices/src/virtio/vhost_user_frontend/mod.rs VhostUserFrontend::new (SET_OWNER, GET_FEATURES,
 * GET/SET_PROTOCOL_FEATURES, SET_BACKEND_REQ_FD with BACKEND_REQ, GET_QUEUE_NUM with MQ; REPLY_ACK is
 * negotiated but need_reply never set), ack_features (SET_FEATURES), activate (SET_MEM_TABLE, then
 * activate_vring per queue: NUM, ADDR, BASE, CALL, KICK, ENABLE 1) and deactivate_vring per queue (ENABLE 0,
 * GET_VRING_BASE). No STATUS, no inflight buffer, no memory slots.
 *
 * Protocol features: allow_protocol_features (CONFIG, MQ, BACKEND_REQ, DEVICE_STATE, REPLY_ACK, and its own
 * SHMEM_MAP, whose bit number was not found and is left out). Virtio features: every device-specific bit
 * (0-23, 50-63), VERSION_1 and EVENT_IDX (virtio::base_features); no INDIRECT_DESC, no IN_ORDER, packed rings
 * removed. It reads the config space with GET_CONFIG on every guest read, for every device type.
 */
const CROSVM_FEATURES = DEVICE_SPECIFIC | bits(F.VIRTIO_F_VERSION_1, F.VIRTIO_RING_F_EVENT_IDX);
const CROSVM: FrontendProfile = {
  name: 'crosvm',
  frontend: 'crosvm (vhost_user_frontend)',
  source: 'google/crosvm devices/src/virtio/vhost_user_frontend/mod.rs',
  protocolFeatures: true,
  needReply: false,
  protocolMask: bits(P.CONFIG, P.MQ, P.BACKEND_REQ, P.DEVICE_STATE, P.REPLY_ACK),
  config: ['block', 'net', 'fs', 'gpu'],
  virtioMask: { block: CROSVM_FEATURES, net: CROSVM_FEATURES, fs: CROSVM_FEATURES, gpu: CROSVM_FEATURES },
  memorySlots: false,
  inflight: [],
  status: 'none',
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'SET_BACKEND_REQ_FD', 'GET_QUEUE_NUM'],
  start: ['SET_FEATURES', 'MEMORY', 'RINGS'],
  ring: ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK', 'ENABLE'],
  stop: 'each',
};

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

/** The device types the profiles know; another type gets the transport's choices only. */
function deviceType(type: string | null): DeviceType | null {
  return type === 'block' || type === 'net' || type === 'fs' || type === 'gpu' ? type : null;
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
  const device = deviceType(want.device);
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
  const mask = (device && profile.virtioMask[device]) ?? ~0n;
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
