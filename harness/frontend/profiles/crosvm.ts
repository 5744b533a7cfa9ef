/** crosvm's profile. */
import { ProtocolFeature } from '../../protocol/spec.js';
import { bits, type FrontendProfile } from '../profile.js';
import { DEVICE_SPECIFIC, F } from './features.js';

const P = ProtocolFeature;

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
 * removed. It reads the config space with GET_CONFIG on every guest read, for every device type. Its
 * front-end is one for any device type (`--vhost-user type=...`, any of devices::virtio::DeviceType),
 * input among them.
 */
const CROSVM_FEATURES = DEVICE_SPECIFIC | bits(F.VIRTIO_F_VERSION_1, F.VIRTIO_RING_F_EVENT_IDX);
export const CROSVM: FrontendProfile = {
  name: 'crosvm',
  frontend: 'crosvm (vhost_user_frontend)',
  source: 'google/crosvm devices/src/virtio/vhost_user_frontend/mod.rs',
  protocolFeatures: true,
  needReply: false,
  protocolMask: bits(P.CONFIG, P.MQ, P.BACKEND_REQ, P.DEVICE_STATE, P.REPLY_ACK),
  config: ['block', 'net', 'fs', 'gpu', 'input'],
  virtioMask: {
    block: CROSVM_FEATURES,
    net: CROSVM_FEATURES,
    fs: CROSVM_FEATURES,
    gpu: CROSVM_FEATURES,
    input: CROSVM_FEATURES,
  },
  memorySlots: false,
  inflight: [],
  status: 'none',
  init: ['SET_OWNER', 'GET_FEATURES', 'PROTOCOL_FEATURES', 'SET_BACKEND_REQ_FD', 'GET_QUEUE_NUM'],
  start: ['SET_FEATURES', 'MEMORY', 'RINGS'],
  ring: ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK', 'ENABLE'],
  stop: 'each',
};
