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
import type { ConfigSpace } from './config.js';

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
  /**
   * Bytes at the start of the first buffer that are the request's header, when one buffer holds header and
   * payload (net: the virtio_net_hdr before the frame): a check that cuts the request into its parts puts
   * them in descriptors of their own, the layout every device takes.
   */
  readonly headerLen?: number;
}

/** Where a kind's sample requests put their buffers. */
export interface SampleOptions {
  /** The region the device-writable buffers go to (a region's guest address). */
  region?: bigint;
  /**
   * Allocates each buffer instead of the memory's allocator (a check that guards every buffer): `what` names
   * the buffer for messages, `write` says whether the device writes it.
   */
  place?: (what: string, len: number, write: boolean) => bigint;
}

/** The allocator of `options`: `place` when given, else `memory.alloc` (writable buffers in `region`). */
export function sampleAllocator(
  memory: GuestMemory,
  options: SampleOptions = {},
): (what: string, len: number, write: boolean, align?: number) => bigint {
  const { place, region } = options;
  if (place) return (what, len, write) => place(what, len, write);
  return (_what, len, write, align = 16) =>
    memory.alloc(len, align, write && region !== undefined ? { region } : {});
}

/**
 * A request the device writes into, and what makes the device use it: the sample itself for a device that
 * answers requests; net's transmit sample has nothing the device writes, so a receive buffer filled by a
 * frame sent.
 */
export interface WritableRequest {
  /** The vring the request goes to. */
  ring: number;
  request: Sample;
  /** A request on another vring that makes the device use this one (net: a frame sent on transmitq0). */
  trigger?: { ring: number; request: Sample };
}

/** `DeviceKind.writable` of a kind whose sample request has device-writable buffers: the sample itself. */
export function writableSample(
  ring: number,
  samples: (memory: GuestMemory, options?: SampleOptions) => SampleSource,
): DeviceKind['writable'] {
  return (memory, options) => ({ ring, request: samples(memory, options).next() });
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
 * coming back on receiveq0 from a back-end that loops frames; fs: a directory made in the shared folder; gpu:
 * a scanout set on the display): what lets a check tell a request executed from one consumed and discarded,
 * as a disabled ring must treat it.
 */
export interface EffectWatch {
  /** What is watched, for messages ("the frame looped back on receiveq0"). */
  readonly what: string;
  /**
   * Requests whose side effect this watch sees, for a kind whose own samples have none (fs: MKDIR of a name
   * of its own after FUSE_INIT; gpu: SET_SCANOUT after RESOURCE_CREATE_2D): a check that watches posts these
   * instead. Undefined when the kind's samples are the ones watched (net).
   */
  readonly samples?: SampleSource;
  /** Makes the effect visible from now on (net: receive buffers posted and kicked); again, more of them. */
  arm(): void;
  /** Whether the side effect of `sample` was seen (since the first `arm`). */
  seen(sample: Sample): boolean;
  /**
   * The guest memory the device wrote for the effects seen so far (net: each receive buffer, as far as its
   * used.len goes), and the vring it was used on: what a check of the dirty log looks for.
   */
  written?(): Array<{ what: string; ring: number; gpa: bigint; len: number }>;
}

/** What a kind's watch of side effects is given. */
export interface EffectTarget {
  /** The device's vrings by index. */
  ring(index: number): VringPort<unknown>;
  memory: GuestMemory;
  /** Where the watch's own samples put their buffers, as `samples` is given them. */
  options: SampleOptions;
  /** What the kind's `prepare` returned (gpu: the display). */
  prepared: unknown;
  /** The back-end's arguments after --, or null when attached to it (fs: the shared directory they name). */
  args: readonly string[] | null;
  /** What the watch leaves behind (fs: the directories its requests made) is cleaned up with it. */
  scope: Scope;
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
  /** The device type's own virtio feature bits by name ("VIRTIO_BLK_F_" and SEG_MAX: 2), for messages. */
  readonly features: { readonly prefix: string; readonly bits: Readonly<Record<string, number>> };
  /** The device's own virtio feature bits its driver understands (besides VERSION_1 and the ring features). */
  readonly driverFeatures: bigint;
  /** Whether the driver drives the modern device only (VIRTIO_F_VERSION_1 must be offered). */
  readonly modernOnly: boolean;
  /** Its config space; undefined for a device type without one. */
  readonly config?: ConfigSpace;
  /** The check that judges this device's data path: a ring check needing it names it when it breaks. */
  readonly dataPath: string;
  /**
   * What the device needs before its rings run (gpu: a display attached with VHOST_USER_GPU_SET_SOCKET),
   * on the session after start-up's negotiation; what it creates is the scope's. What it returns (gpu: the
   * display) is given to `effect`.
   */
  prepare?(session: FrontendSession, scope: Scope): Promise<unknown>;
  /**
   * Sample requests whose buffers are allocated in `memory` (in the region at `region` when given, the
   * parts the device writes at least).
   */
  samples(memory: GuestMemory, options?: SampleOptions): SampleSource;
  /**
   * A request with device-writable buffers (what a check malforming those needs), allocated as `samples`
   * allocates its buffers; undefined for a kind whose device writes only on an event of its own (input: the
   * eventq fills when an input event comes).
   */
  writable?(memory: GuestMemory, options?: SampleOptions): WritableRequest;
  /**
   * A side effect the harness can watch: of the samples, or of requests of the watch's own. A string says why
   * none can be seen here (fs attached: the shared directory is unknown); undefined for a device type with
   * none the harness can see (its ring-state checks say so).
   */
  effect?(target: EffectTarget): EffectWatch | string;
}

/** A completion that is not that of the sample request done (see `Sample.judge`). */
export class SampleError extends BackendError {}
