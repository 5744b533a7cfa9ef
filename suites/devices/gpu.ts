/**
 * virtio-gpu 2D end to end (virtio spec, "GPU Device"; QEMU docs/interop/vhost-user-gpu.rst): the harness is
 * both the guest driver, on the control and cursor queues, and the display, on the socket it hands over with
 * VHOST_USER_GPU_SET_SOCKET. What the guest writes to its memory must reach the display pixel for pixel.
 */

import { readConfigSpace } from '../../harness/devices/config.js';
import {
  cropPixels,
  decodeDisplayInfo,
  describePixelDiff,
  encodeGetDisplayInfo,
  encodeGetEdid,
  encodeResourceFlush,
  encodeSetScanout,
  expectResponse,
  GPU_CONFIG,
  type GpuRect,
  testPattern,
  toXrgb,
} from '../../harness/devices/gpu/gpu.js';
import {
  VIRTIO_GPU_MAX_SCANOUTS,
  VirtioGpuCtrlType,
  VirtioGpuFormat,
  VirtioGpuSize,
} from '../../harness/devices/gpu/spec.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { ProtocolFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { requireDevice } from '../common/device.js';
import { sessionWith } from '../protocol/common.js';

export const GpuSpec = {
  operation: 'virtio-spec#sec-device-types-gpu-device-device-operation',
  cursor: 'virtio-spec#sec-device-types-gpu-device-device-operation-cursorq',
  display: 'vhost-user-gpu.rst#communication',
  config: 'virtio-spec#sec-device-types-gpu-device-device-configuration-layout',
} as const;

import { MODES, openGpu } from '../common/gpu.js';
import { freshSeed } from '../common/seed.js';
import {
  createResource,
  describeRect,
  expectCleanDisplay,
  expectCommand,
  FORMATS_OTHER,
  flushAndExpect,
  full,
  saveScanout,
  setScanout,
  transfer,
  VIRTIO_GPU_EVENT_DISPLAY,
} from './gpu-common.js';

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
        testPattern(64, 48, freshSeed()),
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
      const first = testPattern(96, 64, freshSeed());
      const res = await createResource(gpu, { id: 11, format, width: 96, height: 64 }, first);
      await setScanout(gpu, res, full(res));
      await transfer(gpu, res, full(res));
      await flushAndExpect(ctx, setup, res, full(res), toXrgb(format, first));
      // A second picture, transferred and flushed a rectangle at a time: each UPDATE carries exactly its
      // rectangle, and what the display shows in the end is the two pictures put together.
      const second = testPattern(96, 64, freshSeed() ^ 0x5555);
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
      const first = testPattern(64, 48, freshSeed());
      const res = await createResource(gpu, { id: 13, format, width: 64, height: 48 }, first);
      await setScanout(gpu, res, full(res));
      await transfer(gpu, res, full(res));
      await flushAndExpect(ctx, setup, res, full(res), toXrgb(format, first));
      // The whole backing changes, but only rows 0-9 are transferred: the other rows keep the first picture.
      const second = testPattern(64, 48, freshSeed() ^ 0xaaaa);
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
      const pixels = testPattern(64, 48, freshSeed());
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
        const pixels = testPattern(32, 16, freshSeed() + format);
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
]);
