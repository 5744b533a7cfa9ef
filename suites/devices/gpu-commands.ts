/**
 * virtio-gpu commands beyond the picture (virtio spec, "GPU Device: Device Operation"): request flags, resource
 * unref, the cursor queue, invalid commands, fences, and both queues at once. The set-up is suites/common/gpu.ts,
 * the shared commands gpu-common.ts; the picture's checks are gpu.ts.
 */
import {
  cropPixels,
  describePixelDiff,
  encodeGetDisplayInfo,
  encodeResourceAttachBacking,
  encodeResourceCreate2d,
  encodeResourceFlush,
  encodeResourceUnref,
  encodeSetScanout,
  encodeTransferToHost2d,
  encodeUpdateCursor,
  expectResponse,
  type GpuRect,
  type GpuResponse,
  type HdrOptions,
  testPattern,
  toXrgb,
} from '../../harness/devices/gpu/gpu.js';
import {
  ctrlTypeName,
  VIRTIO_GPU_MAX_SCANOUTS,
  VirtioGpuCtrlType,
  VirtioGpuFlag,
  VirtioGpuFormat,
  VirtioGpuSize,
} from '../../harness/devices/gpu/spec.js';
import { BackendError, TimeoutError } from '../../harness/errors.js';
import { defineChecks } from '../../harness/runner/check.js';

export const GpuSpec = {
  operation: 'virtio-spec#sec-device-types-gpu-device-device-operation',
  cursor: 'virtio-spec#sec-device-types-gpu-device-device-operation-cursorq',
  display: 'vhost-user-gpu.rst#communication',
  config: 'virtio-spec#sec-device-types-gpu-device-device-configuration-layout',
} as const;

import { openGpu } from '../common/gpu.js';
import { freshSeed } from '../common/seed.js';
import {
  createResource,
  describeRect,
  expectCleanDisplay,
  expectCommand,
  flushAndExpect,
  full,
  OK,
  setScanout,
  transfer,
} from './gpu-common.js';

export const gpuCommandChecks = defineChecks('gpu', [
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
      const pixels = testPattern(64, 48, freshSeed());
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
        testPattern(16, 16, freshSeed()),
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
      const image = testPattern(64, 64, freshSeed());
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
        testPattern(64, 32, freshSeed()),
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
      let fenceId = 0x1_0000_0000n + BigInt(freshSeed());
      const fenced = (): HdrOptions & { fenceId: bigint; ctxId: number } => ({
        flags: VirtioGpuFlag.FENCE,
        fenceId: fenceId++,
        ctxId: 0,
      });
      const format = VirtioGpuFormat.B8G8R8X8_UNORM;
      const pixels = testPattern(16, 8, freshSeed());
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
      const cursorImage = testPattern(64, 64, freshSeed());
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
        testPattern(CONCURRENT_WIDTH, BAND * BANDS, freshSeed()),
        2,
      );
      await setScanout(gpu, res, full(res));
      const start = display.lastSeq;
      const updates: Array<{ rect: GpuRect; pixels: Buffer }> = [];
      const positions: Array<{ x: number; y: number }> = [];
      for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
        const picture = testPattern(res.width, res.height, freshSeed() ^ round);
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
