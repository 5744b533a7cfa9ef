/**
 * virtio-gpu 2D end to end (virtio spec, "GPU Device"; QEMU docs/interop/vhost-user-gpu.rst): the harness is
 * both the guest driver, on the control and cursor queues, and the display, on the socket it hands over with
 * VHOST_USER_GPU_SET_SOCKET. What the guest writes to its memory must reach the display pixel for pixel.
 */

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { readConfigSpace } from '../../harness/devices/config.js';
import {
  attachGpuDisplay,
  type DisplayEvent,
  displayProblems,
  type GpuDisplay,
} from '../../harness/devices/gpu/display.js';
import {
  cropPixels,
  decodeDisplayInfo,
  describePixelDiff,
  encodeGetDisplayInfo,
  encodeGetEdid,
  encodeResourceAttachBacking,
  encodeResourceCreate2d,
  encodeResourceFlush,
  encodeResourceUnref,
  encodeSetScanout,
  encodeTransferToHost2d,
  encodeUpdateCursor,
  expectResponse,
  GPU_CONFIG,
  type GpuDisplayMode,
  GpuDriver,
  type GpuMemEntry,
  type GpuRect,
  type GpuResponse,
  type HdrOptions,
  testPattern,
  toXrgb,
} from '../../harness/devices/gpu/gpu.js';
import {
  ctrlTypeName,
  formatName,
  GpuQueue,
  VIRTIO_GPU_MAX_SCANOUTS,
  VirtioGpuCtrlType,
  VirtioGpuFeature,
  VirtioGpuFlag,
  VirtioGpuFormat,
  VirtioGpuSize,
} from '../../harness/devices/gpu/spec.js';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from '../common/device.js';
import { sessionWith } from '../protocol/common.js';

export const GpuSpec = {
  operation: 'virtio-spec#sec-device-types-gpu-device-device-operation',
  cursor: 'virtio-spec#sec-device-types-gpu-device-device-operation-cursorq',
  display: 'vhost-user-gpu.rst#communication',
  config: 'virtio-spec#sec-device-types-gpu-device-device-configuration-layout',
} as const;
/** events_read's only bit: the display configuration changed. */
const VIRTIO_GPU_EVENT_DISPLAY = 1;

const OK = VirtioGpuCtrlType.RESP_OK_NODATA;
const QUEUE_SIZE = 64;
/** The display the checks present: two scanouts of sizes no back-end would make up. */
const MODES: readonly GpuDisplayMode[] = [
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
async function expectCommand(
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

function describeRect(r: GpuRect): string {
  return `${r.width}x${r.height} at (${r.x},${r.y})`;
}

/** Fails with what the display saw wrong on its socket, if anything. */
function expectCleanDisplay(display: GpuDisplay): void {
  const problem = displayProblems(display);
  if (problem) throw problem;
}

/** Saves what scanout 0 shows next to the reports; returns the file. */
async function saveScanout(ctx: CheckContext, display: GpuDisplay, name: string): Promise<string> {
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
function seed(): number {
  return (Date.now() ^ (process.pid << 12) ^ Math.floor(Math.random() * 0x10000)) >>> 0;
}

const FORMATS_OTHER = (Object.entries(VirtioGpuFormat) as Array<[string, number]>).filter(
  ([, f]) => f !== VirtioGpuFormat.B8G8R8X8_UNORM,
);

export const gpuChecks = defineChecks('gpu', [
  {
    id: 'gpu.config',
    detail:
      '(gpu) with `CONFIG`, `GET_CONFIG` of the 16-byte `virtio_gpu_config`: `num_scanouts` from 1 to 16, no `events_read` bit but `VIRTIO_GPU_EVENT_DISPLAY`',
    title: 'with CONFIG, the virtio_gpu_config has num_scanouts from 1 to 16 and no undefined event bits',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device configuration fields, with no normative word: "num_scanouts specifies the maximum number of scanouts supported by the device. Minimum value is 1, maximum value is 16."; interoperability: a driver takes num_scanouts as the number of displays, and events_read for the events defined (VIRTIO_GPU_EVENT_DISPLAY)',
    spec: GpuSpec.config,
    needs: ['proto.config.get'],
    async run(ctx) {
      requireDevice(ctx, 'gpu');
      const session = await sessionWith(ctx, ProtocolFeature.CONFIG, 'CONFIG');
      const c = await readConfigSpace(session, GPU_CONFIG);
      const [eventsRead, , numScanouts, numCapsets] = [0, 4, 8, 12].map((at) => c.readUInt32LE(at)) as [
        number,
        number,
        number,
        number,
      ];
      const problems: string[] = [];
      if (numScanouts < 1 || numScanouts > VIRTIO_GPU_MAX_SCANOUTS)
        problems.push(`num_scanouts is ${numScanouts}: the spec's minimum is 1, its maximum 16`);
      if (eventsRead & ~VIRTIO_GPU_EVENT_DISPLAY)
        problems.push(`events_read 0x${eventsRead.toString(16)} has bits besides VIRTIO_GPU_EVENT_DISPLAY`);
      if (problems.length) throw new BackendError(`virtio_gpu_config: ${problems.join('; ')}`);
      return `num_scanouts ${numScanouts}, num_capsets ${numCapsets}, events_read 0x${eventsRead.toString(16)}`;
    },
  },
  {
    id: 'gpu.display-info',
    detail:
      '(gpu) GET_DISPLAY_INFO answers `RESP_OK_DISPLAY_INFO` with the modes the display gave on the vhost-user-gpu socket',
    title: 'GET_DISPLAY_INFO answers RESP_OK_DISPLAY_INFO with the modes the display gave',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: controlq, with no normative word: "Response type is VIRTIO_GPU_RESP_OK_DISPLAY_INFO, response data is struct virtio_gpu_resp_display_info."; interoperability (QEMU 7.2 contrib/vhost-user-gpu and hw/display/vhost-user-gpu.c): the modes are the ones the front-end answers to VHOST_USER_GPU_GET_DISPLAY_INFO ("Get the preferred display configuration.", vhost-user-gpu.rst)',
    spec: GpuSpec.operation,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx);
      const response = await gpu.command(encodeGetDisplayInfo(), VirtioGpuSize.RESP_DISPLAY_INFO);
      expectResponse('GET_DISPLAY_INFO', response, VirtioGpuCtrlType.RESP_OK_DISPLAY_INFO, {
        size: VirtioGpuSize.RESP_DISPLAY_INFO,
      });
      const { modes } = decodeDisplayInfo(response.bytes);
      for (let i = 0; i < VIRTIO_GPU_MAX_SCANOUTS; i++) {
        const want = MODES[i] ?? { rect: { x: 0, y: 0, width: 0, height: 0 }, enabled: false, flags: 0 };
        const got = modes[i]!;
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          throw new BackendError(
            `GET_DISPLAY_INFO: pmodes[${i}] is ${describeRect(got.rect)} enabled=${got.enabled} flags=${got.flags}, ` +
              `the display gave ${describeRect(want.rect)} enabled=${want.enabled} flags=${want.flags}`,
          );
        }
      }
      expectCleanDisplay(display);
      const asked = display.events.some((e) => e.request === 'GET_DISPLAY_INFO');
      return `${MODES.length} enabled scanouts relayed${asked ? ' (asked the display with VHOST_USER_GPU_GET_DISPLAY_INFO)' : ''}; display protocol features acked: 0x${(display.acceptedFeatures ?? 0n).toString(16)}`;
    },
  },
  {
    id: 'gpu.edid',
    detail:
      '(gpu) with `VIRTIO_GPU_F_EDID`, GET_EDID answers `RESP_OK_EDID` with the EDID the display gave (`VHOST_USER_GPU_GET_EDID`); skipped when the feature is not offered',
    title: 'with VIRTIO_GPU_F_EDID, GET_EDID answers RESP_OK_EDID with the EDID the display gave',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: controlq, with no normative word: "Response type is VIRTIO_GPU_RESP_OK_EDID, response data is struct virtio_gpu_resp_edid." and "The response contains the EDID display data blob (as specified by VESA) for the scanout."; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c): the blob is the one the front-end answers to VHOST_USER_GPU_GET_EDID',
    spec: GpuSpec.operation,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx, { edid: true });
      const response = await gpu.command(encodeGetEdid(0), VirtioGpuSize.RESP_EDID);
      expectResponse('GET_EDID of scanout 0', response, VirtioGpuCtrlType.RESP_OK_EDID, {
        size: VirtioGpuSize.RESP_EDID,
      });
      const edid = display.edid;
      const size = response.bytes.readUInt32LE(24);
      const got = response.bytes.subarray(32, 32 + size);
      if (size !== edid.length || !got.equals(Buffer.from(edid))) {
        throw new BackendError(
          `GET_EDID of scanout 0: ${size} bytes of EDID that are not the ${edid.length} the display gave${display.events.some((e) => e.request === 'GET_EDID') ? '' : ' (the display was never asked: no VHOST_USER_GPU_GET_EDID)'}`,
        );
      }
      expectCleanDisplay(display);
      return `the display's ${edid.length}-byte EDID relayed; display protocol features acked: 0x${(display.acceptedFeatures ?? 0n).toString(16)}`;
    },
  },
  {
    id: 'gpu.scanout',
    detail:
      '(gpu) SET_SCANOUT gives the display a `SCANOUT` of the rectangle shown (whole and part of a resource), and 0x0 when disabled',
    title: 'SET_SCANOUT gives the display a SCANOUT of the rectangle shown, and 0x0 when disabled',
    severity: 'SHOULD',
    interop: true,
    rule: 'vhost-user-gpu.rst (QEMU 7.2), Communication, VHOST_USER_GPU_SCANOUT, with no normative word: "Set the scanout resolution. To disable a scanout, the dimensions width/height are set to 0."; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c sizes the console from it)',
    spec: GpuSpec.display,
    // The front-end profile's start-up asks it with CONFIGURE_MEM_SLOTS (qemu).
    needs: ['proto.reply.get-max-mem-slots'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const res = await createResource(
        gpu,
        { id: 3, format: VirtioGpuFormat.B8G8R8X8_UNORM, width: 64, height: 48 },
        testPattern(64, 48, seed()),
      );
      const cases: Array<{ rect: GpuRect; resourceId: number }> = [
        { rect: full(res), resourceId: res.id },
        { rect: { x: 8, y: 4, width: 40, height: 24 }, resourceId: res.id },
        { rect: { x: 0, y: 0, width: 0, height: 0 }, resourceId: 0 },
      ];
      for (const c of cases) {
        const since = display.lastSeq;
        const what = c.resourceId
          ? `SET_SCANOUT 0 to ${describeRect(c.rect)} of resource ${c.resourceId}`
          : 'SET_SCANOUT 0 to resource 0 (disable)';
        await expectCommand(
          gpu,
          what,
          encodeSetScanout({ rect: c.rect, scanoutId: 0, resourceId: c.resourceId }),
        );
        const event = await display.waitFor<'SCANOUT' | 'DMABUF_SCANOUT' | 'DMABUF_SCANOUT2'>(
          `the SCANOUT of ${what}`,
          ['SCANOUT', 'DMABUF_SCANOUT', 'DMABUF_SCANOUT2'],
          ctx.timeoutMs,
          since,
        );
        const s = event.scanout;
        if (s.scanoutId !== 0 || s.width !== c.rect.width || s.height !== c.rect.height) {
          throw new BackendError(
            `${what}: the display got ${event.request} of ${s.width}x${s.height} on scanout ${s.scanoutId}, expected ${c.rect.width}x${c.rect.height} on scanout 0`,
          );
        }
      }
      expectCleanDisplay(display);
      return undefined;
    },
  },
  {
    id: 'gpu.pixels',
    detail:
      "(gpu) TRANSFER_TO_HOST_2D and RESOURCE_FLUSH of whole and partial rectangles: each `UPDATE` is that rectangle, its pixels exactly the guest's (B8G8R8X8); the scanout is saved as a PNG next to the reports",
    title: 'TRANSFER_TO_HOST_2D and RESOURCE_FLUSH bring the guest pixels to the display exactly (B8G8R8X8)',
    severity: 'SHOULD',
    interop: true,
    rule: 'vhost-user-gpu.rst (QEMU 7.2), Payload types, VhostUserGpuUpdate, with no normative word: "x/y/w/h: u32, region of the update" and "data: RGB data (PIXMAN_x8r8g8b8 format)"; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c copies the data into the console at that region): TRANSFER_TO_HOST_2D and RESOURCE_FLUSH ("This flushes a resource to screen.", virtio spec, Device Operation: controlq) show the guest\'s pixels',
    spec: GpuSpec.display,
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const first = testPattern(96, 64, seed());
      const res = await createResource(gpu, { id: 11, format, width: 96, height: 64 }, first);
      await setScanout(gpu, res, full(res));
      await transfer(gpu, res, full(res));
      await flushAndExpect(ctx, setup, res, full(res), toXrgb(format, first));
      // A second picture, transferred and flushed a rectangle at a time: each UPDATE carries exactly its
      // rectangle, and what the display shows in the end is the two pictures put together.
      const second = testPattern(96, 64, seed() ^ 0x5555);
      gpu.writeBacking(res.backing, second);
      const shown = Buffer.from(toXrgb(format, first));
      const secondXrgb = toXrgb(format, second);
      const rects: GpuRect[] = [
        { x: 8, y: 5, width: 21, height: 13 },
        { x: 40, y: 30, width: 56, height: 34 },
        { x: 0, y: 50, width: 2, height: 1 },
      ];
      for (const rect of rects) {
        await transfer(gpu, res, rect);
        await flushAndExpect(ctx, setup, res, rect, cropPixels(secondXrgb, res.width, rect));
        for (let row = 0; row < rect.height; row++) {
          const at = ((rect.y + row) * res.width + rect.x) * 4;
          secondXrgb.copy(shown, at, at, at + rect.width * 4);
        }
      }
      await flushAndExpect(ctx, setup, res, full(res), shown);
      expectCleanDisplay(display);
      const fb = display.framebuffers.get(0);
      const diff = fb ? describePixelDiff(shown, fb.pixels, res.width) : 'no framebuffer';
      if (diff) throw new BackendError(`what scanout 0 shows in the end: ${diff}`);
      const file = await saveScanout(ctx, display, 'gpu.pixels-scanout0.png');
      return `${rects.length + 2} UPDATEs matched the guest pixels; scanout 0 saved as ${file}`;
    },
  },
  {
    id: 'gpu.transfer-rect',
    detail:
      '(gpu) TRANSFER_TO_HOST_2D of the top rows at full width copies those rows, and the rest of the resource keeps what it had',
    title: 'TRANSFER_TO_HOST_2D of the top rows, full width, copies those rows and no others',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: controlq, with no normative word: VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D "takes a resource id along with an destination offset into the resource, and a box to transfer to the host backing for the resource."; interoperability: what a driver that transfers a damaged rectangle expects (Linux virtio-gpu does)',
    spec: GpuSpec.operation,
    needs: ['gpu.pixels'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const first = testPattern(64, 48, seed());
      const res = await createResource(gpu, { id: 13, format, width: 64, height: 48 }, first);
      await setScanout(gpu, res, full(res));
      await transfer(gpu, res, full(res));
      await flushAndExpect(ctx, setup, res, full(res), toXrgb(format, first));
      // The whole backing changes, but only rows 0-9 are transferred: the other rows keep the first picture.
      const second = testPattern(64, 48, seed() ^ 0xaaaa);
      gpu.writeBacking(res.backing, second);
      const rows: GpuRect = { x: 0, y: 0, width: 64, height: 10 };
      await transfer(gpu, res, rows);
      const expected = Buffer.from(toXrgb(format, first));
      toXrgb(format, second).copy(expected, 0, 0, 64 * 10 * 4);
      try {
        await flushAndExpect(ctx, setup, res, full(res), expected);
      } catch (err) {
        if (!(err instanceof BackendError)) throw err;
        throw new BackendError(`after a TRANSFER_TO_HOST_2D of ${describeRect(rows)} only: ${err.message}`);
      }
      expectCleanDisplay(display);
      return undefined;
    },
  },
  {
    id: 'gpu.scanout-offset',
    detail:
      '(gpu) a scanout showing part of a resource gets `UPDATE`s in its own coordinates, with the pixels of that part',
    title:
      "a scanout showing part of a resource gets UPDATEs in its own coordinates, with that part's pixels",
    severity: 'SHOULD',
    interop: true,
    rule: 'vhost-user-gpu.rst (QEMU 7.2), Payload types, VhostUserGpuUpdate, with no normative word: "scanout-id: u32, the scanout content to update" and "x/y/w/h: u32, region of the update"; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c takes the region in the scanout\'s console coordinates)',
    spec: GpuSpec.display,
    needs: ['gpu.pixels'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const pixels = testPattern(64, 48, seed());
      const res = await createResource(gpu, { id: 14, format, width: 64, height: 48 }, pixels);
      const shown: GpuRect = { x: 16, y: 8, width: 40, height: 24 };
      await setScanout(gpu, res, shown);
      await transfer(gpu, res, full(res));
      const since = display.lastSeq;
      await expectCommand(
        gpu,
        'RESOURCE_FLUSH of the whole resource',
        encodeResourceFlush({ rect: full(res), resourceId: res.id }),
      );
      const update = await display.waitFor<'UPDATE' | 'DMABUF_UPDATE'>(
        `the UPDATE of a flush of resource ${res.id}, shown at (16,8) on scanout 0`,
        ['UPDATE', 'DMABUF_UPDATE'],
        ctx.timeoutMs,
        since,
      );
      if (update.request !== 'UPDATE') throw new SkipError('the back-end shows scanouts through DMABUFs');
      const u = update.update;
      if (u.x !== 0 || u.y !== 0 || u.width !== shown.width || u.height !== shown.height) {
        throw new BackendError(
          `the scanout shows ${describeRect(shown)} of the resource; a flush of all of it brought an UPDATE of ` +
            `${describeRect(u)}, expected 40x24 at (0,0): the scanout's own coordinates`,
        );
      }
      const diff = describePixelDiff(
        cropPixels(toXrgb(format, pixels), res.width, shown),
        u.data,
        shown.width,
      );
      if (diff) throw new BackendError(`the UPDATE of the part shown: ${diff}`);
      expectCleanDisplay(display);
      return undefined;
    },
  },
  {
    id: 'gpu.formats',
    detail: '(gpu) `UPDATE` pixels are x8r8g8b8, as the protocol says, for the seven other 2D formats too',
    title: 'UPDATE pixels are x8r8g8b8 whatever the resource format (7 other formats)',
    severity: 'SHOULD',
    interop: true,
    rule: 'vhost-user-gpu.rst (QEMU 7.2), Payload types, VhostUserGpuUpdate, with no normative word: "data: RGB data (PIXMAN_x8r8g8b8 format)"; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c reads it as PIXMAN_x8r8g8b8 whatever the resource\'s format)',
    spec: GpuSpec.display,
    needs: ['gpu.pixels'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const wrong: string[] = [];
      let id = 20;
      for (const [name, format] of FORMATS_OTHER) {
        const pixels = testPattern(32, 16, seed() + format);
        const res = await createResource(gpu, { id: id++, format, width: 32, height: 16 }, pixels, 2);
        await setScanout(gpu, res, full(res));
        await transfer(gpu, res, full(res));
        try {
          await flushAndExpect(ctx, setup, res, full(res), toXrgb(format, pixels));
        } catch (err) {
          if (!(err instanceof BackendError)) throw err;
          wrong.push(`${name}: ${err.message.replace(/^.*the UPDATE's /, '')}`);
        }
      }
      expectCleanDisplay(display);
      if (wrong.length) {
        throw new BackendError(
          `${wrong.length} of ${FORMATS_OTHER.length} formats reach the display in other than x8r8g8b8: ${wrong.join('; ')}`,
        );
      }
      return `${FORMATS_OTHER.length} formats converted to x8r8g8b8`;
    },
  },
  {
    id: 'gpu.request-flags',
    detail:
      "(gpu) the back-end's requests on the vhost-user-gpu socket have flags 0: bit 2 marks replies, and no other bit is defined",
    title:
      'requests on the vhost-user-gpu socket carry no flags (bit 2 marks replies; no other bit is defined)',
    severity: 'SHOULD',
    interop: true,
    rule: 'vhost-user-gpu.rst (QEMU 7.2), Header, with no normative word: "flags: u32, 32-bit bit field: Bit 2 is the reply flag - needs to be set on each reply"; interoperability: no other bit is defined, so a request carries none',
    spec: GpuSpec.display,
    needs: ['gpu.pixels'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      await gpu.command(encodeGetDisplayInfo(), VirtioGpuSize.RESP_DISPLAY_INFO);
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const pixels = testPattern(64, 48, seed());
      const res = await createResource(gpu, { id: 12, format, width: 64, height: 48 }, pixels);
      await setScanout(gpu, res, full(res));
      await transfer(gpu, res, full(res));
      // UPDATEs of several sizes: a message built in a fresh allocation shows what its header was left with.
      const rects: GpuRect[] = [
        full(res),
        { x: 0, y: 0, width: 1, height: 1 },
        { x: 3, y: 7, width: 30, height: 20 },
      ];
      for (const rect of rects)
        await flushAndExpect(ctx, setup, res, rect, cropPixels(toXrgb(format, pixels), res.width, rect));
      await gpu.cursor(
        encodeUpdateCursor({
          type: 'MOVE_CURSOR',
          scanoutId: 0,
          x: 1,
          y: 2,
          resourceId: 0,
          hotX: 0,
          hotY: 0,
        }),
      );
      await display.waitFor(
        'the cursor message of MOVE_CURSOR',
        ['CURSOR_POS', 'CURSOR_POS_HIDE'],
        ctx.timeoutMs,
      );
      expectCleanDisplay(display);
      if (display.strayFlags.length) {
        const list = display.strayFlags.map((f) => `${f.request} 0x${f.flags.toString(16)}`);
        throw new BackendError(
          `${display.strayFlags.length} of ${display.events.length} requests had flags set: ${list.join(', ')}`,
        );
      }
      return `${display.events.length} requests, all with flags 0`;
    },
  },
  {
    id: 'gpu.unref',
    detail: '(gpu) RESOURCE_UNREF destroys the resource: its id is then unknown, and can be created again',
    title: 'RESOURCE_UNREF destroys the resource: its id is unknown after, and can be created again',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: controlq, with no normative word: "VIRTIO_GPU_CMD_RESOURCE_UNREF Destroy a resource."; interoperability (QEMU 7.2 contrib/vhost-user-gpu): the id is then unknown, and free for a new resource',
    spec: GpuSpec.operation,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx);
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const res = await createResource(
        gpu,
        { id: 7, format, width: 16, height: 16 },
        testPattern(16, 16, seed()),
        1,
      );
      await expectCommand(gpu, 'RESOURCE_UNREF of resource 7', encodeResourceUnref(7));
      await expectCommand(
        gpu,
        'TRANSFER_TO_HOST_2D of resource 7 after its RESOURCE_UNREF',
        encodeTransferToHost2d({ rect: full(res), offset: 0n, resourceId: 7 }),
        VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
      );
      await expectCommand(
        gpu,
        'RESOURCE_CREATE_2D of resource 7 again after its RESOURCE_UNREF',
        encodeResourceCreate2d({ resourceId: 7, format, width: 16, height: 16 }),
      );
      expectCleanDisplay(display);
      return undefined;
    },
  },
  {
    id: 'gpu.cursor',
    detail:
      '(gpu) UPDATE_CURSOR and MOVE_CURSOR reach the display as `CURSOR_UPDATE` (image, position, hot spot) and `CURSOR_POS`',
    title:
      'cursor queue: UPDATE_CURSOR and MOVE_CURSOR reach the display with the image, position and hot spot',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: cursorq, with no normative word: "Cursor will be loaded from the specified resource_id and will be moved to pos."; and vhost-user-gpu.rst (QEMU 7.2), VHOST_USER_GPU_CURSOR_UPDATE "Update the cursor shape and location." and VHOST_USER_GPU_CURSOR_POS "Set/show the cursor position."; interoperability (QEMU 7.2 hw/display/vhost-user-gpu.c)',
    spec: GpuSpec.cursor,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx);
      const format = VirtioGpuFormat.B8G8R8A8_UNORM;
      const image = testPattern(64, 64, seed());
      const res = await createResource(gpu, { id: 5, format, width: 64, height: 64 }, image, 2);
      await transfer(gpu, res, full(res));
      let since = display.lastSeq;
      const update = {
        type: 'UPDATE_CURSOR' as const,
        scanoutId: 0,
        x: 100,
        y: 50,
        resourceId: 5,
        hotX: 5,
        hotY: 9,
      };
      await gpu.cursor(encodeUpdateCursor(update));
      const got = await display.waitFor(
        'the CURSOR_UPDATE of UPDATE_CURSOR',
        ['CURSOR_UPDATE'],
        ctx.timeoutMs,
        since,
      );
      const c = got.cursor;
      if (c.pos.scanoutId !== 0 || c.pos.x !== 100 || c.pos.y !== 50 || c.hotX !== 5 || c.hotY !== 9) {
        throw new BackendError(
          `UPDATE_CURSOR at (100,50) hot spot (5,9) on scanout 0: the display got (${c.pos.x},${c.pos.y}) hot spot (${c.hotX},${c.hotY}) on scanout ${c.pos.scanoutId}`,
        );
      }
      // a8r8g8b8 is B8G8R8A8's byte order: the image goes through unchanged, alpha included.
      if (!c.data.equals(image)) {
        const diff = describePixelDiff(image, c.data, 64) ?? 'the alpha bytes differ';
        throw new BackendError(`UPDATE_CURSOR: the CURSOR_UPDATE image is not the resource's: ${diff}`);
      }
      since = display.lastSeq;
      await gpu.cursor(encodeUpdateCursor({ ...update, type: 'MOVE_CURSOR', x: 200, y: 120 }));
      const moved = await display.waitFor<'CURSOR_POS' | 'CURSOR_UPDATE'>(
        'the CURSOR_POS of MOVE_CURSOR',
        ['CURSOR_POS', 'CURSOR_UPDATE'],
        ctx.timeoutMs,
        since,
      );
      const pos = moved.request === 'CURSOR_POS' ? moved.pos : moved.cursor.pos;
      if (pos.scanoutId !== 0 || pos.x !== 200 || pos.y !== 120) {
        throw new BackendError(
          `MOVE_CURSOR to (200,120): the display got ${moved.request} at (${pos.x},${pos.y}) on scanout ${pos.scanoutId}`,
        );
      }
      expectCleanDisplay(display);
      return undefined;
    },
  },
  {
    id: 'gpu.invalid',
    detail:
      '(gpu) unknown resource ids get `ERR_INVALID_RESOURCE_ID`, rectangles outside the resource `ERR_INVALID_PARAMETER`, scanout 16 `ERR_INVALID_SCANOUT_ID`; the device goes on',
    title:
      'unknown resource ids, rectangles outside the resource and bad scanout ids get the error responses; the device goes on',
    severity: 'SHOULD',
    interop: true,
    rule: 'virtio spec, GPU Device, Device Operation: Request header, with no normative word: "On error the device will return one of the VIRTIO_GPU_RESP_ERR_* error codes."; interoperability (QEMU 7.2 virtio-gpu and contrib/vhost-user-gpu answer an unknown resource ERR_INVALID_RESOURCE_ID, a rectangle outside it ERR_INVALID_PARAMETER, a scanout past num_scanouts ERR_INVALID_SCANOUT_ID)',
    spec: GpuSpec.operation,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx);
      const res = await createResource(
        gpu,
        { id: 9, format: VirtioGpuFormat.B8G8R8X8_UNORM, width: 64, height: 32 },
        testPattern(64, 32, seed()),
        1,
      );
      const unknown = 0x7e57;
      const outside: GpuRect = { x: 60, y: 4, width: 8, height: 8 };
      const cases: Array<[string, Buffer, number]> = [
        [
          'RESOURCE_ATTACH_BACKING of an unknown resource',
          encodeResourceAttachBacking({ resourceId: unknown, entries: res.backing }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
        ],
        [
          'SET_SCANOUT of an unknown resource',
          encodeSetScanout({ rect: full(res), scanoutId: 0, resourceId: unknown }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
        ],
        [
          'TRANSFER_TO_HOST_2D of an unknown resource',
          encodeTransferToHost2d({ rect: full(res), offset: 0n, resourceId: unknown }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
        ],
        [
          'RESOURCE_FLUSH of an unknown resource',
          encodeResourceFlush({ rect: full(res), resourceId: unknown }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
        ],
        [
          'RESOURCE_UNREF of an unknown resource',
          encodeResourceUnref(unknown),
          VirtioGpuCtrlType.RESP_ERR_INVALID_RESOURCE_ID,
        ],
        [
          `TRANSFER_TO_HOST_2D of ${describeRect(outside)} of a 64x32 resource`,
          encodeTransferToHost2d({ rect: outside, offset: 0n, resourceId: res.id }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_PARAMETER,
        ],
        [
          `RESOURCE_FLUSH of ${describeRect(outside)} of a 64x32 resource`,
          encodeResourceFlush({ rect: outside, resourceId: res.id }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_PARAMETER,
        ],
        [
          `SET_SCANOUT to ${describeRect(outside)} of a 64x32 resource`,
          encodeSetScanout({ rect: outside, scanoutId: 0, resourceId: res.id }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_PARAMETER,
        ],
        [
          'SET_SCANOUT of scanout 16',
          encodeSetScanout({ rect: full(res), scanoutId: VIRTIO_GPU_MAX_SCANOUTS, resourceId: res.id }),
          VirtioGpuCtrlType.RESP_ERR_INVALID_SCANOUT_ID,
        ],
      ];
      const wrong: string[] = [];
      for (const [what, request, type] of cases) {
        const response = await gpu.command(request);
        if (response.hdr.type !== type)
          wrong.push(`${what}: ${ctrlTypeName(response.hdr.type)}, expected ${ctrlTypeName(type)}`);
      }
      if (wrong.length)
        throw new BackendError(
          `${wrong.length} of ${cases.length} invalid commands got the wrong response: ${wrong.join('; ')}`,
        );
      // The device goes on: a valid command still works.
      await transfer(gpu, res, full(res));
      expectCleanDisplay(display);
      return `${cases.length} invalid commands answered with the error types`;
    },
  },
  {
    id: 'gpu.fence',
    detail:
      '(gpu) a command with `VIRTIO_GPU_FLAG_FENCE` is answered with the flag and its fence_id (ctx_id is not judged: no sentence asks for it)',
    title: 'a fenced command (VIRTIO_GPU_FLAG_FENCE) is answered with the flag and its fence_id',
    severity: 'MUST',
    rule: 'virtio spec, GPU Device, Device Operation: Request header: "If the driver sets the VIRTIO_GPU_FLAG_FENCE bit in the request flags field the device MUST: set VIRTIO_GPU_FLAG_FENCE bit in the response, copy the content of the fence_id field from the request to the response, and send the response only after command processing is complete."',
    spec: GpuSpec.operation,
    async run(ctx) {
      const { gpu, display } = await openGpu(ctx);
      let fenceId = 0x1_0000_0000n + BigInt(seed());
      const fenced = (): HdrOptions & { fenceId: bigint; ctxId: number } => ({
        flags: VirtioGpuFlag.FENCE,
        fenceId: fenceId++,
        ctxId: 0,
      });
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const pixels = testPattern(16, 8, seed());
      const rect: GpuRect = { x: 0, y: 0, width: 16, height: 8 };
      const backing = gpu.allocBacking(pixels, 1);
      const commands: Array<[string, (h: HdrOptions) => Buffer, number, number]> = [
        [
          'RESOURCE_CREATE_2D',
          (h) => encodeResourceCreate2d({ resourceId: 4, format, width: 16, height: 8 }, h),
          OK,
          VirtioGpuSize.CTRL_HDR,
        ],
        [
          'RESOURCE_ATTACH_BACKING',
          (h) => encodeResourceAttachBacking({ resourceId: 4, entries: backing }, h),
          OK,
          VirtioGpuSize.CTRL_HDR,
        ],
        [
          'SET_SCANOUT',
          (h) => encodeSetScanout({ rect, scanoutId: 0, resourceId: 4 }, h),
          OK,
          VirtioGpuSize.CTRL_HDR,
        ],
        [
          'TRANSFER_TO_HOST_2D',
          (h) => encodeTransferToHost2d({ rect, offset: 0n, resourceId: 4 }, h),
          OK,
          VirtioGpuSize.CTRL_HDR,
        ],
        [
          'RESOURCE_FLUSH',
          (h) => encodeResourceFlush({ rect, resourceId: 4 }, h),
          OK,
          VirtioGpuSize.CTRL_HDR,
        ],
        ['RESOURCE_UNREF', (h) => encodeResourceUnref(4, h), OK, VirtioGpuSize.CTRL_HDR],
      ];
      for (const [name, encode, type, size] of commands) {
        const hdr = fenced();
        const response = await gpu.command(encode(hdr), size);
        expectResponse(`fenced ${name}`, response, type, {
          size,
          // The sentence asks for the flag and fence_id copied, not ctx_id.
          fence: { fenceId: hdr.fenceId },
        });
      }
      expectCleanDisplay(display);
      return `${commands.length} fenced commands answered with their fences`;
    },
  },
  {
    id: 'gpu.queues.concurrent',
    detail:
      "(gpu) control and cursor commands in flight at once, four rounds of 16 control commands (TRANSFER_TO_HOST_2D and RESOURCE_FLUSH of eight bands) and 8 cursor commands: in the first the cursor queue is kicked while the control commands are available but not yet kicked, and must be served; then both queues together; every response OK, every `UPDATE` with the guest's pixels, every cursor position in order",
    title:
      'control and cursor commands in flight at once: every response right, the cursor queue served while control commands wait',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (QEMU 7.2 contrib/vhost-user-gpu serves the cursor queue on its own): control and cursor commands in flight at once are all served, the cursor queue while control commands wait; the virtio spec (GPU Device, Virtqueues) names the two queues with no normative word on how they are served',
    spec: GpuSpec.cursor,
    needs: ['gpu.pixels', 'gpu.cursor'],
    async run(ctx) {
      const setup = await openGpu(ctx);
      const { gpu, display } = setup;
      const cursorImage = testPattern(64, 64, seed());
      const cur = await createResource(
        gpu,
        { id: 21, format: VirtioGpuFormat.B8G8R8A8_UNORM, width: 64, height: 64 },
        cursorImage,
        1,
      );
      await transfer(gpu, cur, full(cur));
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const res = await createResource(
        gpu,
        { id: 22, format, width: CONCURRENT_WIDTH, height: BAND * BANDS },
        testPattern(CONCURRENT_WIDTH, BAND * BANDS, seed()),
        2,
      );
      await setScanout(gpu, res, full(res));
      const start = display.lastSeq;
      const updates: Array<{ rect: GpuRect; pixels: Buffer }> = [];
      const positions: Array<{ x: number; y: number }> = [];
      for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
        const picture = testPattern(res.width, res.height, seed() ^ round);
        gpu.writeBacking(res.backing, picture);
        const xrgb = toXrgb(format, picture);
        const control: Buffer[] = [];
        for (let band = 0; band < BANDS; band++) {
          const rect = { x: 0, y: band * BAND, width: res.width, height: BAND };
          control.push(
            encodeTransferToHost2d({ rect, offset: BigInt(rect.y * res.width * 4), resourceId: res.id }),
            encodeResourceFlush({ rect, resourceId: res.id }),
          );
          updates.push({ rect, pixels: cropPixels(xrgb, res.width, rect) });
        }
        const cursor = Array.from({ length: CURSOR_COMMANDS }, (_, k) => {
          const pos = { x: 10 + 7 * k + 100 * round, y: 5 + 3 * k };
          positions.push(pos);
          const first = round === 0 && k === 0;
          return encodeUpdateCursor({
            type: first ? 'UPDATE_CURSOR' : 'MOVE_CURSOR',
            scanoutId: 0,
            ...pos,
            resourceId: cur.id,
            hotX: 3,
            hotY: 4,
          });
        });
        let responses: GpuResponse[];
        if (round === 0) {
          // Control commands available but not kicked yet: the cursor queue is served all the same.
          const controlDone = gpu.postCommands(control, { kick: false });
          try {
            await gpu.postCursors(cursor)();
          } catch (err) {
            if (!(err instanceof TimeoutError)) throw err;
            throw new BackendError(
              `${CURSOR_COMMANDS} cursor commands, kicked while ${control.length} control commands were available ` +
                `(not kicked yet), were not used: the cursor queue waits for the control queue (${err.message})`,
              { cause: err },
            );
          }
          gpu.kickControl();
          responses = await controlDone();
        } else {
          const controlDone = gpu.postCommands(control);
          const cursorDone = gpu.postCursors(cursor);
          [responses] = await Promise.all([controlDone(), cursorDone()]);
        }
        responses.forEach((r, i) => {
          expectResponse(
            `round ${round}: ${ctrlTypeName(control[i]!.readUInt32LE(0))} of band ${i >> 1}`,
            r,
            OK,
          );
        });
      }
      // The display side: an UPDATE per flush, in order, each with its band's pixels, and every cursor
      // position in the order sent.
      let since = start;
      for (const [i, expected] of updates.entries()) {
        const what = `UPDATE ${i + 1} of ${updates.length} (round ${Math.floor(i / BANDS)}, band ${i % BANDS})`;
        const u = await display.waitFor(what, ['UPDATE'], ctx.timeoutMs, since);
        since = u.seq;
        const { x, y, width, height } = u.update;
        const r = expected.rect;
        if (x !== r.x || y !== r.y || width !== r.width || height !== r.height) {
          throw new BackendError(`${what}: ${describeRect(u.update)}, expected ${describeRect(r)}`);
        }
        const diff = describePixelDiff(expected.pixels, u.update.data, r.width);
        if (diff) throw new BackendError(`${what}: ${diff}`);
      }
      since = start;
      for (const [k, pos] of positions.entries()) {
        const what = `the cursor at (${pos.x},${pos.y}), cursor command ${k + 1} of ${positions.length}`;
        const e = await display.waitFor<'CURSOR_POS' | 'CURSOR_UPDATE' | 'CURSOR_POS_HIDE'>(
          what,
          ['CURSOR_POS', 'CURSOR_UPDATE', 'CURSOR_POS_HIDE'],
          ctx.timeoutMs,
          since,
        );
        since = e.seq;
        const got = e.request === 'CURSOR_UPDATE' ? e.cursor.pos : e.pos;
        if (e.request === 'CURSOR_POS_HIDE' || got.x !== pos.x || got.y !== pos.y || got.scanoutId !== 0) {
          throw new BackendError(
            `${what}: the display got ${e.request} at (${got.x},${got.y}) on scanout ${got.scanoutId}`,
          );
        }
      }
      expectCleanDisplay(display);
      return (
        `${CONCURRENT_ROUNDS} rounds of ${BANDS * 2} control and ${CURSOR_COMMANDS} cursor commands in flight ` +
        `together: every response OK, ${updates.length} UPDATEs with the guest's pixels, ${positions.length} ` +
        'cursor positions in order; the cursor queue served while control commands waited'
      );
    },
  },
]);

/** gpu.queues.concurrent: a resource of BANDS bands, each transferred and flushed by a command pair. */
const CONCURRENT_WIDTH = 64;
const BAND = 8;
const BANDS = 8;
const CONCURRENT_ROUNDS = 4;
const CURSOR_COMMANDS = 8;
