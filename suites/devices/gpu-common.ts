/**
 * What the gpu checks (gpu.ts, gpu-commands.ts) share: the commands and judgements several of them use
 * (resources, transfers, scanouts, flushes seen on the display). The device itself is started by `openGpu`
 * (suites/common/gpu.ts).
 */

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { type DisplayEvent, displayProblems, type GpuDisplay } from '../../harness/devices/gpu/display.js';
import {
  describePixelDiff,
  encodeResourceAttachBacking,
  encodeResourceCreate2d,
  encodeResourceFlush,
  encodeSetScanout,
  encodeTransferToHost2d,
  expectResponse,
  type GpuDriver,
  type GpuMemEntry,
  type GpuRect,
} from '../../harness/devices/gpu/gpu.js';
import { formatName, VirtioGpuCtrlType, VirtioGpuFormat } from '../../harness/devices/gpu/spec.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import type { CheckContext } from '../../harness/runner/check.js';
import type { GpuSetup } from '../common/gpu.js';

export const GpuSpec = {
  operation: 'virtio-spec#sec-device-types-gpu-device-device-operation',
  cursor: 'virtio-spec#sec-device-types-gpu-device-device-operation-cursorq',
  display: 'vhost-user-gpu.rst#communication',
  config: 'virtio-spec#sec-device-types-gpu-device-device-configuration-layout',
} as const;
/** events_read's only bit: the display configuration changed. */
export const VIRTIO_GPU_EVENT_DISPLAY = 1;

export const OK = VirtioGpuCtrlType.RESP_OK_NODATA;

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

export const FORMATS_OTHER = (Object.entries(VirtioGpuFormat) as Array<[string, number]>).filter(
  ([, f]) => f !== VirtioGpuFormat.B8G8R8X8_UNORM,
);
