/** DPDK virtio-user's profile. */
import { ProtocolFeature } from '../../protocol/spec.js';
import { bits, type FrontendProfile, type StartStep } from '../profile.js';
import { F, N } from './features.js';

const P = ProtocolFeature;

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
export const DPDK: FrontendProfile = {
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
