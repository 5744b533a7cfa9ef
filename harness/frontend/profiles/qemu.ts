/** QEMU's profiles: current QEMU, QEMU 7.2 as recorded, and QEMU without protocol features. */
import { type FrontendRequestName, ProtocolFeature } from '../../protocol/spec.js';
import { bit, bits, type FrontendProfile, type StartStep } from '../profile.js';
import {
  ANY_LAYOUT,
  B,
  BLK_BITS,
  F,
  N,
  NET_GSO,
  NET_GUEST_USO4,
  NET_GUEST_USO6,
  NET_HASH_REPORT,
  NET_HOST_USO,
  NET_OFFLOADS,
  NET_RSC_EXT,
  NET_RSS,
  NOTIFICATION_DATA,
  QEMU_TRANSPORT,
} from './features.js';

const P = ProtocolFeature;

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
 * The inflight buffer (INFLIGHT_SHMFD) is kept for block and scsi: hw/block/vhost-user-blk.c
 * vhost_user_blk_start, and since QEMU 8.2 ("vhost-user-scsi: support reconnect to backend")
 * hw/scsi/vhost-scsi-common.c vhost_scsi_common_start, which calls vhost_dev_prepare_inflight, then
 * vhost_dev_get_inflight only `if (!vsc->inflight->addr)` and vhost_dev_set_inflight on every start, the buffer
 * allocated once in vhost_user_scsi_realize (`vsc->inflight = g_new0(struct vhost_inflight, 1)`) and freed only
 * at reset or unrealize: a reconnected back-end gets it back. No other device calls vhost_dev_prepare_inflight
 * (hw/virtio/vhost-user-fs.c vuf_start, backends/vhost-user.c vhost_user_backend_start for gpu and input, and
 * hw/net/vhost_net.c go straight to vhost_dev_start).
 *
 * Protocol features: VHOST_USER_PROTOCOL_FEATURE_MASK, every bit QEMU defines up to DEVICE_STATE (19), with
 * CONFIG dropped for a device without config handling (net, fs): vhost_user_backend_init keeps it only for a
 * device that set a config notifier before connecting (vhost-user-blk, vhost-user-gpu, vhost-user-input's
 * vhost_input_realize), and fails without it there. Master's bits 20-23 change what ring addresses and
 * GET_VRING_BASE mean, which the harness does not model: they are left out. Virtio features: the
 * user_feature_bits lists of hw/net/vhost_net.c, hw/block/vhost-user-blk.c and hw/virtio/vhost-user-fs.c;
 * vhost-user-gpu and vhost-user-input have none (backends/vhost-user.c vhost_user_backend_start hands the
 * back-end the guest's features as they are), so a gpu or input check's choice stands. need_reply:
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
export const QEMU: FrontendProfile = {
  name: 'qemu',
  frontend: 'QEMU (hw/virtio/vhost-user.c, vhost.c)',
  source: 'qemu/qemu hw/virtio/vhost-user.c, hw/virtio/vhost.c',
  protocolFeatures: true,
  needReply: [...QEMU_NEED_REPLY, 'SET_VRING_ENABLE'],
  protocolMask: (1n << 20n) - 1n,
  config: ['block', 'gpu', 'input'],
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
  inflight: ['block', 'scsi'],
  baseAfterBreak: 'used-idx',
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
 * - The inflight buffer is kept for block only: 7.2's hw/scsi/vhost-scsi-common.c vhost_scsi_common_start
 *   asks GET_INFLIGHT_FD anew at every start (`assert(vsc->inflight == NULL); vsc->inflight = g_new0(...)`) and
 *   vhost_scsi_common_stop frees it (`vhost_dev_free_inflight(vsc->inflight)`), and 7.2's vhost-user-scsi has no
 *   reconnection: no buffer is ever handed back. (Its GET/SET_INFLIGHT_FD at each scsi start is not replayed.)
 * - A restart (QMP cont) is a start again without what QEMU keeps: vhost_user_blk_start sends SET_FEATURES
 *   and SET_INFLIGHT_FD with the buffer it has, no GET_INFLIGHT_FD; vhost_dev_start sends SET_FEATURES
 *   again and ADD_MEM_REG only for regions that changed (none).
 * - At stop, vhost_user_dev_start(false) sends SET_STATUS 0 first (8.1 moved it after GET_VRING_BASE,
 *   "vhost-user: send SET_STATUS 0 after GET_VRING_BASE"); no masked SET_VRING_CALL follows for block (7.2's
 *   vhost-user-blk has no guest_notifier_mask) nor net (no use_guest_notifier_mask). vhost-user-fs and
 *   vhost-user-gpu do have one: virtio_pci_set_guest_notifiers masks every ring again after vhost_dev_stop
 *   (callAfterStop), and unmasks them before vhost_dev_start too (CALL_ALL first). The fs and gpu orders are
 *   read in the source only: the firmware has no driver for them, so their recording ends before the start.
 *   vhost-user-input (hw/input/vhost-user-input.c) starts and stops through vhost_user_backend_start and
 *   vhost_user_backend_stop as vhost-user-gpu does, but has no guest_notifier_mask: virtio-pci neither
 *   unmasks its rings before vhost_dev_start nor masks them after vhost_dev_stop (virtio_pci_set_guest_notifier
 *   and the vector notifiers call the device's mask only), so its calls are the unmasking loop's after
 *   DRIVER_OK alone. Read in the source, not recorded (no firmware has an input driver either).
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
/** vhost_user_backend_start for a device without guest_notifier_mask (vhost-user-input). */
const QEMU_7_2_INPUT_START: readonly StartStep[] = [
  'VRING_INIT',
  'SET_FEATURES',
  'MEMORY',
  'RINGS',
  'ENABLE_ALL',
  'DRIVER_OK',
  'CALL_ALL',
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
export const QEMU_7_2: FrontendProfile = {
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
  inflight: ['block'],
  baseAfterBreak: 'used-idx',
  statusResetFirst: true,
  // fs and gpu (vuf_start, vhost_user_backend_start); block, input and net below.
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
    input: {
      start: QEMU_7_2_INPUT_START,
      ring: ['NUM', 'BASE', 'ADDR', 'KICK'],
      stop: 'all',
      restart: again(QEMU_7_2_INPUT_START),
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
export const QEMU_LEGACY: FrontendProfile = {
  ...QEMU,
  name: 'qemu-legacy',
  frontend: 'QEMU without protocol features',
  protocolFeatures: false,
};
