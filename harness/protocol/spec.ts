/**
 * vhost-user spec tables, spelled as docs/interop/vhost-user.rst spells them (without the VHOST_USER_ prefix).
 * Checked against the QEMU master text of 2026 (front-end ids up to 45, back-end ids up to 10, protocol
 * features up to bit 23).
 * All numbers on the wire are in native byte order; vhu-conform supports little-endian hosts only.
 */

/** Front-end message types (front-end -> back-end requests), "Front-end message types" in the spec. */
export const FrontendRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4, // deprecated: "This is no longer used"
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21, // previous name SET_SLAVE_REQ_FD
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
  GET_SHMEM_CONFIG: 44, // VIRTIO Shared Memory Region sizes (PROTOCOL_F_SHMEM)
  GET_VRING_BASE_SKIP_DRAIN: 45, // GET_VRING_BASE without waiting for in-flight I/O
} as const;
export type FrontendRequestName = keyof typeof FrontendRequest;

/**
 * Back-end message types (back-end -> front-end requests on the channel set by SET_BACKEND_REQ_FD),
 * spelled without the VHOST_USER_BACKEND_ prefix (previously VHOST_USER_SLAVE_).
 */
export const BackendRequest = {
  IOTLB_MSG: 1,
  CONFIG_CHANGE_MSG: 2,
  VRING_HOST_NOTIFIER_MSG: 3,
  VRING_CALL: 4, // in-band call (PROTOCOL_F_INBAND_NOTIFICATIONS)
  VRING_ERR: 5,
  SHARED_OBJECT_ADD: 6,
  SHARED_OBJECT_REMOVE: 7,
  SHARED_OBJECT_LOOKUP: 8,
  SHMEM_MAP: 9,
  SHMEM_UNMAP: 10,
} as const;
export type BackendRequestName = keyof typeof BackendRequest;

/** Header flag bits. */
export const HeaderFlag = {
  VERSION: 0x1, // lower 2 bits: protocol version, currently 1
  VERSION_MASK: 0x3,
  REPLY: 0x4, // bit 2: set on every reply from the back-end
  NEED_REPLY: 0x8, // bit 3: REPLY_ACK requested
} as const;

export const HEADER_SIZE = 12;
/** The spec caps fds per message at 8 (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_FDS_PER_MESSAGE = 8;
/** SET_MEM_TABLE's memory regions description has room for region0 ... region7. */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;
/** GET_SHMEM_CONFIG's reply has one size per shmid 0 ... 255. */
export const VIRTIO_MAX_SHMEM_REGIONS = 256;
/** Dirty-log granularity: one bit of the log per page of this size. */
export const VHOST_LOG_PAGE = 0x1000;

/** Virtio feature bit reused by vhost-user to gate protocol feature negotiation. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

/** Virtio (GET_FEATURES / SET_FEATURES) feature bits the harness needs, with their full spec names. */
export const VirtioFeature = {
  VIRTIO_F_NOTIFY_ON_EMPTY: 24,
  VHOST_F_LOG_ALL: 26, // the front-end declares it once it logs dirty pages (Migration)
  VIRTIO_RING_F_INDIRECT_DESC: 28,
  VIRTIO_RING_F_EVENT_IDX: 29,
  VHOST_USER_F_PROTOCOL_FEATURES: 30,
  VIRTIO_F_VERSION_1: 32,
  VIRTIO_F_ACCESS_PLATFORM: 33, // vhost-user.rst still calls it VIRTIO_F_IOMMU_PLATFORM
  VIRTIO_F_RING_PACKED: 34,
  VIRTIO_F_IN_ORDER: 35,
} as const;
export type VirtioFeatureName = keyof typeof VirtioFeature;

/** Device status bits of SET_STATUS / GET_STATUS (virtio spec "Device Status Field"). */
export const DeviceStatus = {
  ACKNOWLEDGE: 1n,
  DRIVER: 2n,
  DRIVER_OK: 4n,
  FEATURES_OK: 8n,
} as const;

/** Protocol feature bits (VHOST_USER_PROTOCOL_F_*). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  NET_MTU: 4, // the #define table spells it PROTOCOL_F_MTU, the NET_SET_MTU text PROTOCOL_F_NET_MTU
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
  GET_VRING_BASE_INFLIGHT: 20,
  GPA_ADDRESSES: 21, // memory-region "user address" and ring addresses carry guest-physical addresses
  SHMEM: 22, // some back-end libraries shipped this as bit 20 or 21 before the spec settled on 22
  GET_VRING_BASE_SKIP_DRAIN: 23,
} as const;
export type ProtocolFeatureName = keyof typeof ProtocolFeature;

/** Bit number of VHOST_VRING_F_LOG in the vring address description's flags (linux/vhost.h). */
export const VHOST_VRING_F_LOG = 0;

/**
 * u64 payload of SET_VRING_KICK / SET_VRING_CALL / SET_VRING_ERR: "Bits (0-7) of the payload contain the
 * vring index. Bit 8 is the invalid FD flag", set when no fd is in the ancillary data.
 */
export const VringFileBits = {
  INDEX_MASK: 0xffn,
  INVALID_FD: 0x100n,
} as const;

/**
 * u64 reply of SET_DEVICE_STATE_FD: "Bits 0–7 are 0 on success, and non-zero on error. Bit 8 is the invalid
 * FD flag; this flag is set when there is no file descriptor returned."
 */
export const DeviceStateReplyBits = {
  ERROR_MASK: 0xffn,
  INVALID_FD: 0x100n,
} as const;

/** The 32-bit "index in avail ring" of a split virtqueue's SET_VRING_BASE / GET_VRING_BASE. */
export const SplitVringBaseBits = {
  AVAIL_INDEX_MASK: 0xffff, // bits 0-15; bits 16-31 are reserved, set to zero
} as const;

/** The 32-bit "descriptor indices" of a packed virtqueue's SET_VRING_BASE / GET_VRING_BASE. */
export const PackedVringBaseBits = {
  AVAIL_INDEX_MASK: 0x7fff, // bits 0-14
  AVAIL_WRAP_COUNTER: 0x8000, // bit 15: driver (available) ring wrap counter
  USED_INDEX_SHIFT: 16, // bits 16-30
  USED_INDEX_MASK: 0x7fff,
  USED_WRAP_COUNTER: 0x8000_0000, // bit 31: device (used) ring wrap counter
} as const;

/** IOTLB message "type" (u8). */
export const IotlbType = {
  MISS: 1,
  UPDATE: 2,
  INVALIDATE: 3,
  ACCESS_FAIL: 4,
} as const;

/** IOTLB message "permissions flags" (u8). */
export const IotlbPermission = {
  NO_ACCESS: 0,
  READ: 1,
  WRITE: 2,
  READ_WRITE: 3,
} as const;

/** Device config space "flags" (u32): values, not bits, in the spec's list. */
export const DeviceConfigFlag = {
  WRITABLE: 0, // "Vhost front-end messages used for writable fields"
  LIVE_MIGRATION: 1, // "Vhost front-end messages used for live migration"
} as const;

/** Device state transfer parameters: "transfer direction" (u32). */
export const DeviceStateDirection = {
  SAVE: 0, // back-end -> front-end, on the migration source
  LOAD: 1, // front-end -> back-end, on the migration destination
} as const;

/** Device state transfer parameters: "migration phase" (u32). */
export const DeviceStatePhase = {
  STOPPED: 0, // the guest is stopped and the device suspended
} as const;

/** MMAP request "flags" (u64). */
export const ShmemMapFlag = {
  READ_ONLY: 0n,
  READ_WRITE: 1n,
} as const;

/** Memory region "xen mmap flags" (u32), present only with PROTOCOL_F_XEN_MMAP. */
export const XenMmapFlag = {
  FOREIGN: 0x1, // bit 0
  GRANT: 0x2, // bit 1
  UNMAPPED: 0x100, // bit 8: map parts of the region only when needed
} as const;

/** The payload layouts of the spec's "Payload" section, plus the crypto session it leaves undescribed. */
export type PayloadKind =
  | 'none'
  | 'u64'
  | 'vringState'
  | 'vringBase' // "vring descriptor index/indices": vring state layout, num split or packed
  | 'vringAddress'
  | 'memoryRegions'
  | 'singleMemoryRegion'
  | 'log'
  | 'iotlb'
  | 'deviceConfig'
  | 'vringArea'
  | 'inflight'
  | 'sharedObject'
  | 'deviceStateTransfer'
  | 'mmap'
  | 'shmemConfig'
  | 'cryptoSession'; // named by CREATE_CRYPTO_SESSION but not laid out in the spec

/** When the back-end answers a front-end request on its own (REPLY_ACK adds a u64 ack to the rest). */
export type ReplyRule =
  | { when: 'never' }
  | { when: 'always'; payload: PayloadKind }
  | { when: 'withFeature'; feature: ProtocolFeatureName; payload: PayloadKind }
  | { when: 'postcopy'; payload: PayloadKind }; // only after POSTCOPY_LISTEN

/** How many fds travel in the ancillary data of one message. */
export type FdRule =
  | { kind: 'none' }
  | { kind: 'exactly'; count: number }
  | { kind: 'atMostOne' }
  | { kind: 'perRegion' } // one per memory region, in the regions' order
  | { kind: 'unlessInvalidFd' } // one, unless bit 8 (invalid FD) of the u64 payload is set
  | { kind: 'withFeature'; feature: ProtocolFeatureName; count: number }; // `count` with the feature, else 0

export interface RequestInfo {
  /** Request payload. */
  payload: PayloadKind;
  /** Whether, and when, the back-end replies without need_reply. */
  reply: ReplyRule;
  /** fds the sender puts in the ancillary data. */
  fds: FdRule;
  /** fds in the ancillary data of the reply. */
  replyFds: FdRule;
  /** Protocol feature that must be negotiated before the message may be sent. */
  protocolFeature?: ProtocolFeatureName;
  /** Virtio feature (GET_FEATURES / SET_FEATURES) that gates the message. */
  virtioFeature?: VirtioFeatureName;
  deprecated?: true;
}

const NONE: FdRule = { kind: 'none' };
const NEVER: ReplyRule = { when: 'never' };

/**
 * What the spec says of each front-end request. The "Communication" section lists only five requests that
 * need replies; a request whose own entry names a reply payload is counted here as always replying.
 */
export const REQUEST_INFO: Readonly<Record<FrontendRequestName, RequestInfo>> = {
  GET_FEATURES: { payload: 'none', reply: { when: 'always', payload: 'u64' }, fds: NONE, replyFds: NONE },
  SET_FEATURES: { payload: 'u64', reply: NEVER, fds: NONE, replyFds: NONE },
  SET_OWNER: { payload: 'none', reply: NEVER, fds: NONE, replyFds: NONE },
  RESET_OWNER: { payload: 'none', reply: NEVER, fds: NONE, replyFds: NONE, deprecated: true },
  // "In the ancillary data there is an array of file descriptors for each memory mapped region";
  // ":reply payload: (postcopy only) multiple memory regions description"
  SET_MEM_TABLE: {
    payload: 'memoryRegions',
    reply: { when: 'postcopy', payload: 'memoryRegions' },
    fds: { kind: 'perRegion' },
    replyFds: NONE,
  },
  // ":request payload: u64", but "the size and offset of shared memory area provided in the message": the log
  // description, as QEMU sends it; the reply ("if VHOST_USER_PROTOCOL_F_LOG_SHMFD") is a u64 in practice
  SET_LOG_BASE: {
    payload: 'log',
    reply: { when: 'withFeature', feature: 'LOG_SHMFD', payload: 'u64' },
    fds: { kind: 'withFeature', feature: 'LOG_SHMFD', count: 1 },
    replyFds: NONE,
  },
  SET_LOG_FD: { payload: 'none', reply: NEVER, fds: { kind: 'exactly', count: 1 }, replyFds: NONE },
  SET_VRING_NUM: { payload: 'vringState', reply: NEVER, fds: NONE, replyFds: NONE },
  SET_VRING_ADDR: { payload: 'vringAddress', reply: NEVER, fds: NONE, replyFds: NONE },
  SET_VRING_BASE: { payload: 'vringBase', reply: NEVER, fds: NONE, replyFds: NONE },
  // "The request payload's *num* field is currently reserved and must be set to 0"
  GET_VRING_BASE: {
    payload: 'vringState',
    reply: { when: 'always', payload: 'vringBase' },
    fds: NONE,
    replyFds: NONE,
  },
  // "Bit 8 is the invalid FD flag. This flag is set when there is no file descriptor in the ancillary data"
  SET_VRING_KICK: { payload: 'u64', reply: NEVER, fds: { kind: 'unlessInvalidFd' }, replyFds: NONE },
  SET_VRING_CALL: { payload: 'u64', reply: NEVER, fds: { kind: 'unlessInvalidFd' }, replyFds: NONE },
  SET_VRING_ERR: { payload: 'u64', reply: NEVER, fds: { kind: 'unlessInvalidFd' }, replyFds: NONE },
  // "Only legal if feature bit VHOST_USER_F_PROTOCOL_FEATURES is present in VHOST_USER_GET_FEATURES"
  GET_PROTOCOL_FEATURES: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    virtioFeature: 'VHOST_USER_F_PROTOCOL_FEATURES',
  },
  SET_PROTOCOL_FEATURES: {
    payload: 'u64',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    virtioFeature: 'VHOST_USER_F_PROTOCOL_FEATURES',
  },
  // "This request should be sent only when VHOST_USER_PROTOCOL_F_MQ is set"
  GET_QUEUE_NUM: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'MQ',
  },
  // "should be sent only when VHOST_USER_F_PROTOCOL_FEATURES has been negotiated"
  SET_VRING_ENABLE: {
    payload: 'vringState',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    virtioFeature: 'VHOST_USER_F_PROTOCOL_FEATURES',
  },
  // "The first 6 bytes of the payload contain the mac address of the guest"
  SEND_RARP: { payload: 'u64', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'RARP' },
  // also gated by the device's VIRTIO_NET_F_MTU
  NET_SET_MTU: { payload: 'u64', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'NET_MTU' },
  SET_BACKEND_REQ_FD: {
    payload: 'none',
    reply: NEVER,
    fds: { kind: 'exactly', count: 1 },
    replyFds: NONE,
    protocolFeature: 'BACKEND_REQ',
  },
  // "The back-end has to acknowledge the request with sending zero as u64 payload for success";
  // "should be send only when VIRTIO_F_IOMMU_PLATFORM feature has been successfully negotiated"
  IOTLB_MSG: {
    payload: 'iotlb',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    virtioFeature: 'VIRTIO_F_ACCESS_PLATFORM',
  },
  // "Little-endian is indicated with state.num set to 0 and big-endian is indicated with state.num set to 1"
  SET_VRING_ENDIAN: {
    payload: 'vringState',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CROSS_ENDIAN',
  },
  // "vhost-user back-end uses zero length of payload to indicate an error"
  GET_CONFIG: {
    payload: 'deviceConfig',
    reply: { when: 'always', payload: 'deviceConfig' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CONFIG',
  },
  SET_CONFIG: { payload: 'deviceConfig', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'CONFIG' },
  // "The back-end must return the session id, 0 or positive for success, negative for failure"
  CREATE_CRYPTO_SESSION: {
    payload: 'cryptoSession',
    reply: { when: 'always', payload: 'cryptoSession' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CRYPTO_SESSION',
  },
  CLOSE_CRYPTO_SESSION: {
    payload: 'u64',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CRYPTO_SESSION',
  },
  // ":reply payload: userfault fd": the fd is in the reply's ancillary data
  POSTCOPY_ADVISE: {
    payload: 'none',
    reply: { when: 'always', payload: 'none' },
    fds: NONE,
    replyFds: { kind: 'exactly', count: 1 },
    protocolFeature: 'PAGEFAULT',
  },
  POSTCOPY_LISTEN: { payload: 'none', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'PAGEFAULT' },
  // "The reply is an acknowledgement only ... 0 is success"
  POSTCOPY_END: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'PAGEFAULT',
  },
  // its entry says ":reply payload: N/A", the Communication section lists it as replying
  // "(if VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)": the reply is an inflight description and the buffer's fd
  GET_INFLIGHT_FD: {
    payload: 'inflight',
    reply: { when: 'withFeature', feature: 'INFLIGHT_SHMFD', payload: 'inflight' },
    fds: NONE,
    replyFds: { kind: 'exactly', count: 1 },
    protocolFeature: 'INFLIGHT_SHMFD',
  },
  SET_INFLIGHT_FD: {
    payload: 'inflight',
    reply: NEVER,
    fds: { kind: 'exactly', count: 1 },
    replyFds: NONE,
    protocolFeature: 'INFLIGHT_SHMFD',
  },
  // "Sets the GPU protocol socket file descriptor, which is passed as ancillary data"; no feature gates it
  GPU_SET_SOCKET: { payload: 'none', reply: NEVER, fds: { kind: 'exactly', count: 1 }, replyFds: NONE },
  RESET_DEVICE: {
    payload: 'none',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'RESET_DEVICE',
  },
  // "The state.num field is currently reserved and must be set to 0"
  VRING_KICK: {
    payload: 'vringState',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'INBAND_NOTIFICATIONS',
  },
  GET_MAX_MEM_SLOTS: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CONFIGURE_MEM_SLOTS',
  },
  // its entry says ":request payload: N/A" but "The message payload contains a memory region descriptor";
  // "Exactly one file descriptor from which the memory is mapped is passed"; replies in postcopy mode only
  ADD_MEM_REG: {
    payload: 'singleMemoryRegion',
    reply: { when: 'postcopy', payload: 'singleMemoryRegion' },
    fds: { kind: 'exactly', count: 1 },
    replyFds: NONE,
    protocolFeature: 'CONFIGURE_MEM_SLOTS',
  },
  // "No file descriptors SHOULD be passed"; its ":reply payload:" line is not backed by any text
  REM_MEM_REG: {
    payload: 'singleMemoryRegion',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'CONFIGURE_MEM_SLOTS',
  },
  SET_STATUS: { payload: 'u64', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'STATUS' },
  GET_STATUS: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'STATUS',
  },
  // "Back-end will reply passing the fd when the operation is successful, or no fd otherwise"
  GET_SHARED_OBJECT: {
    payload: 'sharedObject',
    reply: { when: 'always', payload: 'none' },
    fds: NONE,
    replyFds: { kind: 'atMostOne' },
    protocolFeature: 'SHARED_OBJECT',
  },
  // the front-end passes its channel's fd; the back-end may pass its own back (bit 8 of the reply clear)
  SET_DEVICE_STATE_FD: {
    payload: 'deviceStateTransfer',
    reply: { when: 'always', payload: 'u64' },
    fds: { kind: 'exactly', count: 1 },
    replyFds: { kind: 'unlessInvalidFd' },
    protocolFeature: 'DEVICE_STATE',
  },
  CHECK_DEVICE_STATE: {
    payload: 'none',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'DEVICE_STATE',
  },
  GET_SHMEM_CONFIG: {
    payload: 'none',
    reply: { when: 'always', payload: 'shmemConfig' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'SHMEM',
  },
  // "Identical to VHOST_USER_GET_VRING_BASE except that the back-end must not wait for inflight I/O"
  GET_VRING_BASE_SKIP_DRAIN: {
    payload: 'vringState',
    reply: { when: 'always', payload: 'vringBase' },
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'GET_VRING_BASE_SKIP_DRAIN',
  },
};

/**
 * What the spec says of each back-end request. The front-end replies only when REPLY_ACK is negotiated and
 * need_reply is set, except to SHARED_OBJECT_LOOKUP. fds need BACKEND_SEND_FD besides the feature named here.
 */
export const BACKEND_REQUEST_INFO: Readonly<Record<BackendRequestName, RequestInfo>> = {
  IOTLB_MSG: {
    payload: 'iotlb',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    virtioFeature: 'VIRTIO_F_ACCESS_PLATFORM',
  },
  CONFIG_CHANGE_MSG: { payload: 'none', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'CONFIG' },
  // "register the new notifier if the request is sent with a file descriptor"
  VRING_HOST_NOTIFIER_MSG: {
    payload: 'vringArea',
    reply: NEVER,
    fds: { kind: 'atMostOne' },
    replyFds: NONE,
    protocolFeature: 'HOST_NOTIFIER',
  },
  VRING_CALL: {
    payload: 'vringState',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'INBAND_NOTIFICATIONS',
  },
  VRING_ERR: {
    payload: 'vringState',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'INBAND_NOTIFICATIONS',
  },
  SHARED_OBJECT_ADD: {
    payload: 'sharedObject',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'SHARED_OBJECT',
  },
  SHARED_OBJECT_REMOVE: {
    payload: 'sharedObject',
    reply: NEVER,
    fds: NONE,
    replyFds: NONE,
    protocolFeature: 'SHARED_OBJECT',
  },
  // ":reply payload: dmabuf fd and u64"; "if the operation fails, no fd is sent"
  SHARED_OBJECT_LOOKUP: {
    payload: 'sharedObject',
    reply: { when: 'always', payload: 'u64' },
    fds: NONE,
    replyFds: { kind: 'atMostOne' },
    protocolFeature: 'SHARED_OBJECT',
  },
  SHMEM_MAP: {
    payload: 'mmap',
    reply: NEVER,
    fds: { kind: 'exactly', count: 1 },
    replyFds: NONE,
    protocolFeature: 'SHMEM',
  },
  SHMEM_UNMAP: { payload: 'mmap', reply: NEVER, fds: NONE, replyFds: NONE, protocolFeature: 'SHMEM' },
};

function reverse<T extends Record<string, number>>(table: T): Map<number, keyof T & string> {
  const names = new Map<number, keyof T & string>();
  for (const [name, value] of Object.entries(table)) names.set(value, name as keyof T & string);
  return names;
}

const frontendNames = reverse(FrontendRequest);

export function frontendRequestName(request: number): string {
  return frontendNames.get(request) ?? `UNKNOWN(${request})`;
}

const backendNames = reverse(BackendRequest);

export function backendRequestName(request: number): string {
  return backendNames.get(request) ?? `UNKNOWN(${request})`;
}

const protocolFeatureNames = reverse(ProtocolFeature);

/** Names of the protocol feature bits set in `bits`. */
export function protocolFeatureList(bits: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((bits >> BigInt(bit)) & 1n) names.push(protocolFeatureNames.get(bit) ?? `bit${bit}`);
  }
  return names;
}

export function hasBit(bits: bigint, bit: number): boolean {
  return ((bits >> BigInt(bit)) & 1n) === 1n;
}
