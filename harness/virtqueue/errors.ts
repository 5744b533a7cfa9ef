/** Errors of the virtqueue drivers: what the back-end did wrong to a ring, and what the harness asked wrongly. */
import { BackendError, VhuError } from '../errors.js';

export const UsedRingErrorCode = {
  /** A used element's id is not a descriptor index (>= queue size). */
  USED_ID_RANGE: 'VHU_ERR_VRING_USED_ID_RANGE',
  /** A used element's id is a descriptor index, but not the head of a chain the device holds. */
  USED_ID_NOT_IN_FLIGHT: 'VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT',
  /** used.idx moved by more than the buffers the device holds (or more than the queue size: garbage). */
  USED_IDX: 'VHU_ERR_VRING_USED_IDX',
} as const;
export type UsedRingErrorCode = (typeof UsedRingErrorCode)[keyof typeof UsedRingErrorCode];

/** Where the driver was in the used ring when it found the fault. */
export interface UsedRingPosition {
  /** used.idx as read (once) from the ring. */
  usedIdx: number;
  /** The driver's last seen used index before this collection. */
  lastUsedIdx: number;
  /** How many buffers were in flight (made available, not yet used). */
  inFlight: number;
}

/** The back-end broke the used ring: a FAIL. Nothing of the faulty batch was consumed by the driver. */
export class UsedRingError extends BackendError {
  override readonly code: UsedRingErrorCode;
  readonly position: UsedRingPosition;
  constructor(code: UsedRingErrorCode, message: string, position: UsedRingPosition) {
    super(
      `${message} (used.idx ${position.usedIdx}, last seen ${position.lastUsedIdx}, ${position.inFlight} in flight)`,
    );
    this.code = code;
    this.position = position;
  }
}

export const VirtqueueErrorCode = {
  /** Queue size not a power of two in 1..32768. */
  SIZE: 'VHU_ERR_VQ_SIZE',
  /** A ring part (or indirect table) is not aligned as the spec requires, in guest or in host memory. */
  ALIGN: 'VHU_ERR_VQ_ALIGN',
  /** Not enough free descriptors for the chain: too many requests in flight. */
  FULL: 'VHU_ERR_VQ_FULL',
  /** The chain breaks a driver requirement: empty, bad length, writable before readable, too long. */
  CHAIN: 'VHU_ERR_VQ_CHAIN',
  /** The call needs a feature the queue was not set up with (INDIRECT_DESC, EVENT_IDX), or must not use it. */
  FEATURE: 'VHU_ERR_VQ_FEATURE',
  /** A bad argument: an index out of u16 range. */
  ARGUMENT: 'VHU_ERR_VQ_ARGUMENT',
} as const;
export type VirtqueueErrorCode = (typeof VirtqueueErrorCode)[keyof typeof VirtqueueErrorCode];

/** The harness drove a virtqueue wrongly: an ERROR of the harness, never the back-end's fault. */
export class VirtqueueError extends VhuError {
  override readonly code: VirtqueueErrorCode;
  constructor(code: VirtqueueErrorCode, message: string) {
    super(code, message);
    this.code = code;
  }
}
