/**
 * What the gpu checks (gpu.ts) share: a gpu device started with its display attached, and the commands and
 * judgements several of them use (resources, transfers, scanouts, flushes seen on the display).
 */

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  attachGpuDisplay,
  type DisplayEvent,
  displayProblems,
  type GpuDisplay,
} from '../../harness/devices/gpu/display.js';
import {
  describePixelDiff,
  encodeResourceAttachBacking,
  encodeResourceCreate2d,
  encodeResourceFlush,
  encodeSetScanout,
  encodeTransferToHost2d,
  expectResponse,
  type GpuDisplayMode,
  GpuDriver,
  type GpuMemEntry,
  type GpuRect,
} from '../../harness/devices/gpu/gpu.js';
import {
  formatName,
  GpuQueue,
  VirtioGpuCtrlType,
  VirtioGpuFeature,
  VirtioGpuFormat,
} from '../../harness/devices/gpu/spec.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from '../common/device.js';

export const GpuSpec = {
  operation: 'virtio-spec#sec-device-types-gpu-device-device-operation',
  cursor: 'virtio-spec#sec-device-types-gpu-device-device-operation-cursorq',
  display: 'vhost-user-gpu.rst#communication',
  config: 'virtio-spec#sec-device-types-gpu-device-device-configuration-layout',
} as const;
/** events_read's only bit: the display configuration changed. */
export const VIRTIO_GPU_EVENT_DISPLAY = 1;

export const OK = VirtioGpuCtrlType.RESP_OK_NODATA;
const QUEUE_SIZE = 64;
/** The display the checks present: two scanouts of sizes no back-end would make up. */
export const MODES: readonly GpuDisplayMode[] = [
  { rect: { x: 0, y: 0, width: 720, height: 400 }, enabled: true, flags: 0 },
  { rect: { x: 720, y: 0, width: 320, height: 240 }, enabled: true, flags: 0 },
];

export interface GpuSetup {
  session: FrontendSession;
  device: FrontendDevice;
  display: GpuDisplay;
  gpu: GpuDriver;
}

/**
 * A gpu device started as QEMU starts one: features (VERSION_1 and bit 30, neither VIRGL nor EDID), protocol
 * features (REPLY_ACK), SET_OWNER, VHOST_USER_GPU_SET_SOCKET with our display's socket, the memory table,
 * the control and cursor queues set up and enabled.
 */
export async function openGpu(ctx: CheckContext, options: { edid?: boolean } = {}): Promise<GpuSetup> {
  requireDevice(ctx, 'gpu');
  const session = new FrontendSession(await frontendConnection(ctx));
  const started = await initTargetSession(ctx, session, { protocol: true });
  const offered = started.offered;
  if (options.edid && !hasBit(offered, VirtioGpuFeature.EDID))
    throw new SkipError('VIRTIO_GPU_F_EDID is not offered');
  const edid = options.edid ? 1n << BigInt(VirtioGpuFeature.EDID) : 0n;
  const features = ackFeatures(started, (1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1)) | edid, edid);
  const display = await attachDisplay(ctx, session);
  const device = new FrontendDevice(session, ctx.scope);
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: [GpuQueue.CONTROL, GpuQueue.CURSOR].map((index) => ({ index, size: QUEUE_SIZE })),
    enable: true,
  });
  const control = device.ring(GpuQueue.CONTROL);
  const cursor = device.ring(GpuQueue.CURSOR);
  return { session, device, display, gpu: new GpuDriver(control, cursor, { timeoutMs: ctx.timeoutMs }) };
}

/** The display attached as QEMU attaches it (GPU_SET_SOCKET without need_reply), with this suite's modes. */
export function attachDisplay(ctx: CheckContext, session: FrontendSession): Promise<GpuDisplay> {
  return attachGpuDisplay(session, ctx.scope, { modes: MODES });
}

/** Sends a command expecting `type` (default OK_NODATA) and a plain header as the response. */
export async function expectCommand(
  gpu: GpuDriver,
  what: string,
  request: Buffer,
  type: number = OK,
): Promise<void> {
  expectResponse(what, await gpu.command(request), type);
}

interface Resource {
  id: number;
  format: number;
  width: number;
  height: number;
  backing: GpuMemEntry[];
}

/** RESOURCE_CREATE_2D and RESOURCE_ATTACH_BACKING of `pixels`, in `pieces` entries over the regions. */
export async function createResource(
  gpu: GpuDriver,
  r: { id: number; format: number; width: number; height: number },
  pixels: Uint8Array,
  pieces = 3,
): Promise<Resource> {
  const what = `resource ${r.id} (${formatName(r.format)}, ${r.width}x${r.height})`;
  await expectCommand(
    gpu,
    `RESOURCE_CREATE_2D of ${what}`,
    encodeResourceCreate2d({ resourceId: r.id, ...r }),
  );
  const backing = gpu.allocBacking(pixels, pieces);
  await expectCommand(
    gpu,
    `RESOURCE_ATTACH_BACKING of ${what} (${backing.length} entries)`,
    encodeResourceAttachBacking({ resourceId: r.id, entries: backing }),
  );
  return { ...r, backing };
}

export const full = (r: { width: number; height: number }): GpuRect => ({
  x: 0,
  y: 0,
  width: r.width,
  height: r.height,
});

/** TRANSFER_TO_HOST_2D of `rect`, from where the rectangle starts in the backing. */
export async function transfer(gpu: GpuDriver, res: Resource, rect: GpuRect): Promise<void> {
  const offset = BigInt((rect.y * res.width + rect.x) * 4);
  await expectCommand(
    gpu,
    `TRANSFER_TO_HOST_2D of ${describeRect(rect)} of resource ${res.id}`,
    encodeTransferToHost2d({ rect, offset, resourceId: res.id }),
  );
}

/**
 * RESOURCE_FLUSH of `rect` of a resource shown on scanout 0 at its origin, and the UPDATE it must bring:
 * that rectangle, and `expected` (x8r8g8b8, packed rows) as its pixels.
 */
export async function flushAndExpect(
  ctx: CheckContext,
  setup: GpuSetup,
  res: Resource,
  rect: GpuRect,
  expected: Buffer,
): Promise<DisplayEvent & { request: 'UPDATE' }> {
  const since = setup.display.lastSeq;
  const what = `RESOURCE_FLUSH of ${describeRect(rect)} of resource ${res.id} (${formatName(res.format)})`;
  await expectCommand(setup.gpu, what, encodeResourceFlush({ rect, resourceId: res.id }));
  const update = await setup.display.waitFor<'UPDATE' | 'DMABUF_UPDATE'>(
    `the UPDATE of ${what}`,
    ['UPDATE', 'DMABUF_UPDATE'],
    ctx.timeoutMs,
    since,
  );
  if (update.request !== 'UPDATE') {
    throw new SkipError(
      'the back-end shows scanouts through DMABUFs (a render node): no pixels on the socket to compare',
    );
  }
  const u = update.update;
  if (
    u.scanoutId !== 0 ||
    u.x !== rect.x ||
    u.y !== rect.y ||
    u.width !== rect.width ||
    u.height !== rect.height
  ) {
    throw new BackendError(
      `${what}: the display got an UPDATE of ${describeRect(u)} on scanout ${u.scanoutId}, expected ${describeRect(rect)} on scanout 0`,
    );
  }
  const diff = describePixelDiff(expected, u.data, rect.width);
  if (diff) throw new BackendError(`${what}: the UPDATE's ${diff}`);
  return update as DisplayEvent & { request: 'UPDATE' };
}

export function describeRect(r: GpuRect): string {
  return `${r.width}x${r.height} at (${r.x},${r.y})`;
}

/** Fails with what the display saw wrong on its socket, if anything. */
export function expectCleanDisplay(display: GpuDisplay): void {
  const problem = displayProblems(display);
  if (problem) throw problem;
}

/** Saves what scanout 0 shows next to the reports; returns the file. */
export async function saveScanout(ctx: CheckContext, display: GpuDisplay, name: string): Promise<string> {
  const dir = ctx.target.reportsDir ?? path.resolve('reports');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await display.savePng(0, file);
  ctx.saved(file);
  return file;
}

export async function setScanout(gpu: GpuDriver, res: Resource, rect: GpuRect, scanoutId = 0): Promise<void> {
  await expectCommand(
    gpu,
    `SET_SCANOUT ${scanoutId} to ${describeRect(rect)} of resource ${res.id}`,
    encodeSetScanout({ rect, scanoutId, resourceId: res.id }),
  );
}

/** A seed that differs from run to run. */
export function seed(): number {
  return (Date.now() ^ (process.pid << 12) ^ Math.floor(Math.random() * 0x10000)) >>> 0;
}

export const FORMATS_OTHER = (Object.entries(VirtioGpuFormat) as Array<[string, number]>).filter(
  ([, f]) => f !== VirtioGpuFormat.B8G8R8X8_UNORM,
);
