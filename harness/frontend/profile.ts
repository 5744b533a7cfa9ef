/**
 * What a front-end profile is (frontend/profiles/*.ts hold one per front-end, frontend/profiles.ts and
 * device-order.ts play them): the order a real front-end sends its messages in at start-up, at ring start and at ring stop, and
 * the choices it makes (protocol features, need_reply, the virtio features it passes on per device type).
 */
import type { FrontendRequestName } from '../protocol/spec.js';

/**
 * A device type as a profile names it: the vhost-user.json "type" of a device kind (harness/devices/kinds.ts).
 * A type a profile does not name is one its front-end has no vhost-user device for, or one that passes the
 * guest's choices on: the check's own choice stands, and the protocol features are the profile's without CONFIG.
 */
export type DeviceType = string;

/** The feature bit `n`. */
export const bit = (n: number): bigint => 1n << BigInt(n);
/** The set of `numbers`' bits. */
export const bits = (...numbers: number[]): bigint => numbers.reduce((acc, n) => acc | bit(n), 0n);

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
   * Where `inflight` names a type: the SET_VRING_BASE it sends for a split ring when it starts the device again
   * after the back-end's connection broke, so that GET_VRING_BASE could not be asked. 'used-idx': the used
   * ring's idx (QEMU: vhost_virtqueue_stop falls back to virtio_queue_restore_last_avail_idx, which reads it).
   * 'avail-idx': the available ring's idx (cloud-hypervisor: setup_vhost_user sends queue.avail_idx at every
   * start). A back-end that resubmits from the inflight buffer meets either.
   */
  baseAfterBreak?: 'used-idx' | 'avail-idx';
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
