/**
 * A device of any kind (harness/devices/kind.ts) started as the run's front-end profile starts one, and a
 * driver that posts its kind's sample requests and judges their completions: what a generic check (the
 * ring-state checks) drives every device type with.
 */

import type {
  DeviceKind,
  EffectTarget,
  EffectWatch,
  Sample,
  SampleSource,
} from '../../harness/devices/kind.js';
import { deviceKind } from '../../harness/devices/kinds.js';
import { SkipError, TimeoutError } from '../../harness/errors.js';
import { FrontendDevice, type Vring } from '../../harness/frontend/device.js';
import {
  ackFeatures,
  initTargetSession,
  requireProtocol,
  type Started,
  startDevice,
} from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import type { PackedVirtqueue } from '../../harness/virtqueue/packed.js';
import type { DriverQueue, VringPort } from '../../harness/virtqueue/port.js';
import type { RingPlacement, SplitVirtqueue } from '../../harness/virtqueue/split.js';
import { type RingChoice, requireOffered, ringFeatures } from './ring-features.js';

/** The kind of the device under test, or a SkipError saying there is no driver for it. */
export function requireKind(ctx: CheckContext): DeviceKind {
  const type = ctx.target.type;
  const kind = deviceKind(type);
  if (kind) return kind;
  throw new SkipError(
    type === null
      ? 'the device type is unknown (no --type, and --print-capabilities named none): no driver to make requests with'
      : `device type ${type}: vhu-conform has no driver for it (no DeviceKind), so no request to make`,
  );
}

/**
 * A SkipError unless the device under test is of `type` (vhost-user.json's name): `needs` says what the check
 * does that needs one ("the gpu checks drive gpu devices only").
 */
export function requireDevice(
  ctx: CheckContext,
  type: string,
  needs = `the ${type} checks drive ${type} devices only`,
): void {
  const actual = ctx.target.type;
  if (actual === type) return;
  throw new SkipError(
    actual === null
      ? `the device type is unknown (no --type, and --print-capabilities named none): ${needs}`
      : `device type ${actual}: ${needs}`,
  );
}

/** What a generic check asks of the device; the ring layout and features (RingChoice) skip when not offered. */
export interface DeviceOptions extends RingChoice {
  /**
   * VHOST_USER_F_PROTOCOL_FEATURES: 'prefer' (default) negotiates it when offered, 'require' skips without
   * it, 'none' leaves it out (the legacy start).
   */
  protocolFeatures?: 'prefer' | 'require' | 'none';
  /**
   * Protocol features the check cannot go without when offered (LOG_SHMFD): a skip names the front-end profile
   * when it does not negotiate one (whether the back-end offers it stays the check's to ask).
   */
  requiredProtocolFeatures?: bigint;
  /** SET_VRING_ENABLE 1 after the set-up (default: when bit 30 was negotiated, as QEMU does). */
  enable?: boolean;
  /** The available index split rings start at. */
  base?: number;
  /** Ring size (default 64). */
  size?: number;
  /** Where the samples' buffers go (the parts the device writes at least): a region's guest address. */
  sampleRegion?: bigint;
  /** A connection to start the device on, instead of a fresh one. */
  connection?: Connection;
  /** A session to start the device on (a robustness subject's), instead of one on a fresh connection. */
  session?: FrontendSession;
  /**
   * VIRTIO_RING_F_INDIRECT_DESC acked where offered (and the profile passes it on), the rings using it; not
   * offered, the device runs without (where RingChoice's `indirect` skips).
   */
  indirectWhereOffered?: boolean;
  /**
   * Lays out guest memory once the device is made, before its rings are set up: where each ring goes (by
   * vring index; the rest where the device puts them).
   */
  layout?(device: FrontendDevice, kind: DeviceKind): ReadonlyMap<number, RingPlacement>;
  /**
   * Protocol features negotiated on top of the profile's own when offered (CONFIG, for a driver that reads
   * the config space of a type a profile does not keep it for: input under dpdk and cloud-hypervisor, whose
   * front-ends have no input device).
   */
  protocolExtra?: bigint;
  /**
   * Watches the side effect the kind lets the harness see (`DeviceSetup.watch`); where the kind's own samples
   * have none, the driver posts the watch's requests instead (fs: MKDIR, gpu: SET_SCANOUT).
   */
  watch?: boolean;
}

/** A device started: its rings are split (`Q`: SplitVirtqueue), or packed with `packed`. */
export interface DeviceSetup<Q extends DriverQueue<unknown> = SplitVirtqueue<unknown>> {
  kind: DeviceKind;
  session: FrontendSession;
  device: FrontendDevice;
  /** The vring the samples go to. */
  ring: Vring<unknown, Q>;
  driver: SampleDriver;
  features: bigint;
  started: Started;
  /** With `watch`: the side effect watched, or why none can be (undefined: the kind has none to see). */
  watch?: EffectWatch | string;
}

/** The back-end's arguments after --, or null when attached to it (what an EffectTarget is given). */
function backendArgs(ctx: CheckContext): readonly string[] | null {
  return ctx.target.connect === null ? ctx.target.extraArgs : null;
}

/**
 * The watch of the side effect of the kind's own samples on a device (net: the frame looped back), or
 * undefined: for a kind whose watch needs requests of its own (fs, gpu), the caller's samples show none.
 */
export function samplesEffect(
  ctx: CheckContext,
  kind: DeviceKind,
  ring: EffectTarget['ring'],
  memory: EffectTarget['memory'],
): EffectWatch | undefined {
  const watch = kind.effect?.({
    ring,
    memory,
    options: {},
    prepared: undefined,
    args: backendArgs(ctx),
    scope: ctx.scope,
  });
  return typeof watch === 'object' && watch.samples === undefined ? watch : undefined;
}

/**
 * A device of the run's type started on a fresh connection as the front-end profile starts one: its
 * start-up, SET_FEATURES with VERSION_1, the ring features asked and what the kind's driver understands (as
 * the profile lets them through), the kind's own set-up (gpu: the display), the memory, every ring of the
 * kind set up (all packed with `packed`) and (unless told otherwise) enabled.
 */
export function openDevice(
  ctx: CheckContext,
  options: DeviceOptions & { packed: true },
): Promise<DeviceSetup<PackedVirtqueue<unknown>>>;
export function openDevice(
  ctx: CheckContext,
  options?: DeviceOptions & { packed?: false },
): Promise<DeviceSetup>;
export async function openDevice(
  ctx: CheckContext,
  options: DeviceOptions = {},
): Promise<DeviceSetup<DriverQueue<unknown>>> {
  const kind = requireKind(ctx);
  const session =
    options.session ?? new FrontendSession(options.connection ?? (await frontendConnection(ctx)));
  const protocol = options.protocolFeatures ?? 'prefer';
  const started = await initTargetSession(ctx, session, {
    protocol: protocol !== 'none',
    ...(options.requiredProtocolFeatures === undefined ? {} : { required: options.requiredProtocolFeatures }),
    ...(options.protocolExtra === undefined ? {} : { extra: options.protocolExtra }),
  });
  if (protocol === 'require') requireProtocol(started, 'the check needs them');
  if (kind.modernOnly && !hasBit(started.offered, VirtioFeature.VIRTIO_F_VERSION_1)) {
    throw new SkipError(`VIRTIO_F_VERSION_1 is not offered: a legacy ${kind.type} device is not driven`);
  }
  const ringBits = requireOffered(started.offered, ringFeatures(options));
  const whereOffered = options.indirectWhereOffered
    ? 1n << BigInt(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC)
    : 0n;
  const features = ackFeatures(
    started,
    kind.driverFeatures | (1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1)) | ringBits | whereOffered,
    ringBits,
  );
  const indirect = hasBit(features, VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC);
  const prepared = await kind.prepare?.(session, ctx.scope);
  const device = new FrontendDevice(session, ctx.scope);
  const size = options.size ?? 64;
  const placements = options.layout?.(device, kind);
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: kind.rings.map((index) => {
      const placement = placements?.get(index);
      return {
        index,
        size,
        packed: options.packed ?? false,
        eventIdx: options.eventIdx ?? false,
        indirect,
        ...(options.base === undefined ? {} : { base: options.base }),
        ...(placement ? { placement } : {}),
      };
    }),
    enable: options.enable ?? started.protocol,
  });
  const ring = options.packed ? device.packedRing(kind.sampleRing) : device.ring(kind.sampleRing);
  const sampleOptions = options.sampleRegion === undefined ? {} : { region: options.sampleRegion };
  const watch = options.watch
    ? kind.effect?.({
        ring: (index) => device.ring(index),
        memory: device.memory,
        options: sampleOptions,
        prepared,
        args: backendArgs(ctx),
        scope: ctx.scope,
      })
    : undefined;
  const source =
    (typeof watch === 'object' ? watch.samples : undefined) ?? kind.samples(device.memory, sampleOptions);
  const driver = new SampleDriver(kind, ring, source, ctx.timeoutMs);
  return {
    kind,
    session,
    device,
    ring,
    driver,
    features,
    started,
    ...(watch === undefined ? {} : { watch }),
  };
}

/** How a sample is made available: through an indirect table (VIRTIO_RING_F_INDIRECT_DESC negotiated). */
export interface PostOptions {
  indirect?: boolean;
}

/** A sample request the device used: the sample and its used element (judged by `SampleDriver.judge`). */
export interface SampleCompletion {
  sample: Sample;
  id: number;
  len: number;
}

/** Posts a kind's sample requests on one vring and collects their completions; judging is the caller's. */
export class SampleDriver {
  readonly #ring: VringPort<unknown, DriverQueue<unknown>>;
  readonly #source: SampleSource;
  readonly #timeoutMs: number;
  #posted = 0;

  constructor(
    readonly kind: DeviceKind,
    ring: VringPort<unknown, DriverQueue<unknown>>,
    source: SampleSource,
    timeoutMs: number,
  ) {
    this.#ring = ring;
    this.#source = source;
    this.#timeoutMs = timeoutMs;
  }

  /** Requests made available and not yet used. */
  get inFlight(): number {
    return this.#ring.queue.inFlight;
  }

  /** Samples posted so far. */
  get posted(): number {
    return this.#posted;
  }

  /** Whether the device wants an opening request answered before samples may go together (fs: FUSE_INIT). */
  get needsOpening(): boolean {
    return this.#source.needsOpening;
  }

  /** Makes the next sample available, without a kick. */
  post(options: PostOptions = {}): Sample {
    return this.postHead(options).sample;
  }

  /** `post`, with the head the sample went to (a split ring's head descriptor, a packed ring's buffer id). */
  postHead(options: PostOptions = {}): { sample: Sample; head: number } {
    const sample = this.#source.next();
    const head = this.#ring.queue.addRequest(sample.chain, {
      token: sample,
      indirect: options.indirect ?? false,
    });
    this.#posted++;
    return { sample, head };
  }

  kick(): void {
    this.#ring.notify();
  }

  /** Waits (within the run's deadline per wait, or `timeoutMs`) until `count` samples were used. */
  async collect(count: number, timeoutMs = this.#timeoutMs): Promise<SampleCompletion[]> {
    const got: SampleCompletion[] = [];
    const end = performance.now() + timeoutMs;
    while (got.length < count) {
      const left = Math.round(end - performance.now());
      if (left <= 0)
        throw new TimeoutError(
          `${count} used ${this.kind.type} sample requests`,
          timeoutMs,
          `${got.length} came`,
        );
      const { used } = await this.#ring.waitUsed(left, count - got.length);
      got.push(...used.map((u) => this.#completion(u)));
    }
    return got;
  }

  /** The samples used so far and not yet collected, without waiting. */
  collectNow(): SampleCompletion[] {
    return this.#ring.takeUsed().map((u) => this.#completion(u));
  }

  /** Judges `c` (see Sample.judge): a SampleError when it is not that of the request done. */
  judge(c: SampleCompletion): string {
    return c.sample.judge(c.len);
  }

  /**
   * Posts the opening request if one is due and waits for it, judged: after this, samples may be posted
   * together (fs: FUSE_INIT answered before GETATTRs go).
   */
  async open(options: PostOptions = {}): Promise<void> {
    if (!this.needsOpening) return;
    this.post(options);
    this.kick();
    for (const c of await this.collect(1)) this.judge(c);
  }

  /** Posts `count` samples (after the opening one), kicks, waits for all and judges each. */
  async run(count: number, options: PostOptions = {}): Promise<SampleCompletion[]> {
    await this.open(options);
    for (let i = 0; i < count; i++) this.post(options);
    this.kick();
    const got = await this.collect(count);
    for (const c of got) this.judge(c);
    return got;
  }

  #completion(u: { id: number; len: number; token: unknown }): SampleCompletion {
    return { sample: u.token as Sample, id: u.id, len: u.len };
  }
}
