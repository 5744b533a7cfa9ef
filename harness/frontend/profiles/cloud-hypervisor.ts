/** cloud-hypervisor's profile. */
import { ProtocolFeature } from '../../protocol/spec.js';
import { bit, bits, type FrontendProfile } from '../profile.js';
import { B, BLK_BITS, F, N, NET_OFFLOADS, NOTIFICATION_DATA, ORDER_PLATFORM } from './features.js';

const P = ProtocolFeature;

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
export const CLOUD_HYPERVISOR: FrontendProfile = {
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
  baseAfterBreak: 'avail-idx',
  status: 'none',
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'GET_QUEUE_NUM'],
  start: ['SET_FEATURES', 'MEMORY', 'NUM_ALL', 'INFLIGHT', 'RINGS', 'ENABLE_ALL', 'SET_BACKEND_REQ_FD'],
  ring: ['ADDR', 'BASE', 'CALL', 'KICK'],
  stop: 'all',
};
