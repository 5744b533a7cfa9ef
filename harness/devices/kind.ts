/**
 * What a generic check (the ring-state checks, later robustness and migration) needs to drive a device of
 * any type without knowing it: the rings to set up, the ring a sample request goes to, the virtio features
 * its driver understands, the set-up it needs before its rings run, a well-formed sample request with the
 * judging of its completion, and the check that gates its data path. Each device type's value sits next to
 * its driver, in the index.ts of the type's folder (block/, net/, fs/, gpu/, scsi/, input/); `deviceKind` (kinds.ts) looks one up.
 */
import { BackendError } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { Scope } from '../process/scope.js';
import type { FrontendSession } from '../transport/session.js';
import type { VringPort } from '../virtqueue/port.js';
import type { BufferElement } from '../virtqueue/split.js';

/** One sample request: its buffers, and how to tell that its completion is that of the request done. */
export interface Sample {
  /** What it is, for messages ("GETATTR of the root", "a 128-byte frame on transmitq0"). */
  readonly what: string;
  /** The chain, device-readable parts first, in guest memory of its own. */
  readonly chain: readonly BufferElement[];
  /**
   * Throws a SampleError when `usedLen` and what the device wrote are not those of the request done as the
   * device type's spec says (the used.len a reply has, the reply well-formed); returns a note otherwise.
   */
  judge(usedLen: number): string;
  /** What names this sample's side effect, for a kind with one (net: the frame's sequence number). */
  readonly effect?: number;
}

/** Makes sample requests in one guest memory, each with buffers of its own. */
export interface SampleSource {
  /**
   * The next sample. A device that needs an opening request answers it first (fs: FUSE_INIT): `opening`
   * is true for it, and the caller lets it complete before it posts the others (`needsOpening`).
   */
  next(): Sample & { opening?: boolean };
  /** Whether an opening request is still due before the ordinary samples may be posted together. */
  readonly needsOpening: boolean;
}

/**
 * A side effect of the sample request that the harness can see besides its completion (net: the frame
 * coming back on receiveq0 from a back-end that loops frames): what lets a check tell a request executed
 * from one consumed and discarded, as a disabled ring must treat it.
 */
export interface EffectWatch {
  /** What is watched, for messages ("the frame looped back on receiveq0"). */
  readonly what: string;
  /** Makes the effect visible from now on (net: receive buffers posted and kicked); again, more of them. */
  arm(): void;
  /** Whether the side effect of `sample` was seen (since the first `arm`). */
  seen(sample: Sample): boolean;
}

/** What a generic check needs to know of a device type. */
export interface DeviceKind {
  /** The vhost-user.json type ("block", "net", "fs", "gpu"). */
  readonly type: string;
  /** The vrings a driver of this type sets up (and the front-end starts). */
  readonly rings: readonly number[];
  /** The vring the sample requests go to, and its name in the device type's spec. */
  readonly sampleRing: number;
  readonly sampleRingName: string;
  /** The device's own virtio feature bits its driver understands (besides VERSION_1 and the ring features). */
  readonly driverFeatures: bigint;
  /** Whether the driver drives the modern device only (VIRTIO_F_VERSION_1 must be offered). */
  readonly modernOnly: boolean;
  /** The check that judges this device's data path: a ring check needing it names it when it breaks. */
  readonly dataPath: string;
  /**
   * What the device needs before its rings run (gpu: a display attached with VHOST_USER_GPU_SET_SOCKET),
   * on the session after start-up's negotiation; what it creates is the scope's.
   */
  prepare?(session: FrontendSession, scope: Scope): Promise<void>;
  /**
   * Sample requests whose buffers are allocated in `memory` (in the region at `region` when given, the
   * parts the device writes at least).
   */
  samples(memory: GuestMemory, options?: { region?: bigint }): SampleSource;
  /**
   * A side effect of the samples the harness can watch, given the device's vrings by index; undefined for a
   * device type whose sample has none the harness can see (its ring-state checks say so).
   */
  effect?(ring: (index: number) => VringPort<unknown>, memory: GuestMemory): EffectWatch;
}

/** A completion that is not that of the sample request done (see `Sample.judge`). */
export class SampleError extends BackendError {}
