/**
 * A device of any kind (harness/devices/kind.ts) started as the run's front-end profile starts one, and a
 * driver that posts its kind's sample requests and judges their completions: what a generic check (the
 * ring-state checks) drives every device type with.
 */

import type { DeviceKind, Sample, SampleSource } from '../../harness/devices/kind.js';
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
 * A SkipError unless the device under test is of `type`: the checks of one device type's suite drive that
 * type only.
 */
export function requireDevice(ctx: CheckContext, type: string): void {
  const actual = ctx.target.type;
  if (actual === type) return;
  throw new SkipError(
    actual === null
      ? `the device type is unknown (no --type, and --print-capabilities named none): the ${type} checks drive ${type} devices only`
      : `device type ${actual}: the ${type} checks drive ${type} devices only`,
  );
}

export interface DeviceOptions {
  /**
   * VHOST_USER_F_PROTOCOL_FEATURES: 'prefer' (default) negotiates it when offered, 'require' skips without
   * it, 'none' leaves it out (the legacy start).
   */
  protocolFeatures?: 'prefer' | 'require' | 'none';
  /** SET_VRING_ENABLE 1 after the set-up (default: when bit 30 was negotiated, as QEMU does). */
  enable?: boolean;
  /** The available index the rings start at. */
  base?: number;
  /** Ring size (default 64). */
  size?: number;
  /** Where the samples' buffers go (the parts the device writes at least): a region's guest address. */
  sampleRegion?: bigint;
  /** A connection to start the device on, instead of a fresh one. */
  connection?: Connection;
  /**
   * Protocol features negotiated on top of the profile's own when offered (CONFIG, for a driver that reads
   * the config space of a type the profiles do not name).
   */
  protocolExtra?: bigint;
}

export interface DeviceSetup {
  kind: DeviceKind;
  session: FrontendSession;
  device: FrontendDevice;
  /** The vring the samples go to. */
  ring: Vring;
  driver: SampleDriver;
  features: bigint;
  started: Started;
}

/**
 * A device of the run's type started on a fresh connection as the front-end profile starts one: its
 * start-up, SET_FEATURES with VERSION_1 and what the kind's driver understands (as the profile lets them
 * through), the kind's own set-up (gpu: the display), the memory, every ring of the kind set up and (unless
 * told otherwise) enabled.
 */
export async function openDevice(ctx: CheckContext, options: DeviceOptions = {}): Promise<DeviceSetup> {
  const kind = requireKind(ctx);
  const session = new FrontendSession(options.connection ?? (await frontendConnection(ctx)));
  const protocol = options.protocolFeatures ?? 'prefer';
  const started = await initTargetSession(ctx, session, {
    protocol: protocol !== 'none',
    ...(options.protocolExtra === undefined ? {} : { extra: options.protocolExtra }),
  });
  if (protocol === 'require') requireProtocol(started, 'the check needs them');
  if (kind.modernOnly && !hasBit(started.offered, VirtioFeature.VIRTIO_F_VERSION_1)) {
    throw new SkipError(`VIRTIO_F_VERSION_1 is not offered: a legacy ${kind.type} device is not driven`);
  }
  const features = ackFeatures(
    started,
    kind.driverFeatures | (1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1)),
  );
  await kind.prepare?.(session, ctx.scope);
  const device = new FrontendDevice(session, ctx.scope);
  const size = options.size ?? 64;
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: kind.rings.map((index) => ({
      index,
      size,
      ...(options.base === undefined ? {} : { base: options.base }),
    })),
    enable: options.enable ?? started.protocol,
  });
  const ring = device.ring(kind.sampleRing);
  const source = kind.samples(
    device.memory,
    options.sampleRegion === undefined ? {} : { region: options.sampleRegion },
  );
  const driver = new SampleDriver(kind, ring, source, ctx.timeoutMs);
  return { kind, session, device, ring, driver, features, started };
}

/** A sample request the device used: the sample and its used element (judged by `SampleDriver.judge`). */
export interface SampleCompletion {
  sample: Sample;
  id: number;
  len: number;
}

/** Posts a kind's sample requests on one vring and collects their completions; judging is the caller's. */
export class SampleDriver {
  readonly #ring: Vring;
  readonly #source: SampleSource;
  readonly #timeoutMs: number;
  #posted = 0;

  constructor(
    readonly kind: DeviceKind,
    ring: Vring,
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
  post(): Sample {
    const sample = this.#source.next();
    this.#ring.queue.addRequest(sample.chain, { token: sample });
    this.#posted++;
    return sample;
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
  async open(): Promise<void> {
    if (!this.needsOpening) return;
    this.post();
    this.kick();
    for (const c of await this.collect(1)) this.judge(c);
  }

  /** Posts `count` samples (after the opening one), kicks, waits for all and judges each. */
  async run(count: number): Promise<SampleCompletion[]> {
    await this.open();
    for (let i = 0; i < count; i++) this.post();
    this.kick();
    const got = await this.collect(count);
    for (const c of got) this.judge(c);
    return got;
  }

  #completion(u: { id: number; len: number; token: unknown }): SampleCompletion {
    return { sample: u.token as Sample, id: u.id, len: u.len };
  }
}
