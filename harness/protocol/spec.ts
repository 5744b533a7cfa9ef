/**
 * vhost-user spec tables, spelled as docs/interop/vhost-user.rst spells them (without the VHOST_USER_ prefix).
 * All numbers on the wire are in native byte order; vhu-conform supports little-endian hosts only.
 */

/** Front-end message types (front-end -> back-end requests). */
export const FrontendRequest = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
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
  SET_BACKEND_REQ_FD: 21,
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
} as const;
export type FrontendRequestName = keyof typeof FrontendRequest;

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

/** Virtio feature bit reused by vhost-user to gate protocol feature negotiation. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

/** Protocol feature bits (VHOST_USER_PROTOCOL_F_*). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  NET_MTU: 4,
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
} as const;

function reverse<T extends Record<string, number>>(table: T): Map<number, keyof T & string> {
  const names = new Map<number, keyof T & string>();
  for (const [name, value] of Object.entries(table)) names.set(value, name as keyof T & string);
  return names;
}

const frontendNames = reverse(FrontendRequest);

export function frontendRequestName(request: number): string {
  return frontendNames.get(request) ?? `UNKNOWN(${request})`;
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
