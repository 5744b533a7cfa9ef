/**
 * A side effect of gpu commands the harness can see: SET_SCANOUT of a resource of the watch's own, which the
 * back-end passes on to its display (VHOST_USER_GPU_SCANOUT, or DMABUF_SCANOUT where the resource has a
 * dmabuf) and the harness's display (display.ts) records. GET_DISPLAY_INFO, the kind's sample, only asks; a
 * scanout set is what the display then shows, a side effect by any reading of vhost-user.rst's "started but
 * disabled: the back-end must process the ring without causing any side effects". Each SET_SCANOUT has a
 * width of its own, so that the display's record tells which one came.
 */
import type { EffectTarget, EffectWatch, Sample, SampleSource } from '../kind.js';
import { type DisplayEvent, GpuDisplay } from './display.js';
import { encodeResourceCreate2d, encodeSetScanout } from './gpu.js';
import { commandSample, type Response } from './samples.js';
import { VirtioGpuFormat, VirtioGpuSize } from './spec.js';

/** The watch's resource: an id no other check's device uses, and room for every width below. */
const RESOURCE = { resourceId: 0x7e57, width: 256, height: 16 };
const FIRST_WIDTH = 16;
const OK_NODATA: Response = {
  struct: 'virtio_gpu_ctrl_hdr',
  size: VirtioGpuSize.CTRL_HDR,
  type: 'RESP_OK_NODATA',
};

/** Whether `event` sets scanout 0 at `width` x the resource's height. */
function setsScanout(event: DisplayEvent, width: number): boolean {
  if (
    event.request !== 'SCANOUT' &&
    event.request !== 'DMABUF_SCANOUT' &&
    event.request !== 'DMABUF_SCANOUT2'
  )
    return false;
  const { scanoutId, width: w, height } = event.scanout;
  return scanoutId === 0 && w === width && height === RESOURCE.height;
}

export function scanoutsSet({ memory, options, prepared }: EffectTarget): EffectWatch | string {
  if (!(prepared instanceof GpuDisplay)) return 'no display is attached to see the scanouts on';
  const display = prepared;
  const widths = new Map<Sample, number>();
  let created = false;
  let count = 0;
  /** The display's record from the first `arm` on. */
  let from: number | undefined;
  const samples: SampleSource = {
    get needsOpening() {
      return !created;
    },
    next() {
      if (!created) {
        created = true;
        const create = encodeResourceCreate2d({ ...RESOURCE, format: VirtioGpuFormat.B8G8R8X8_UNORM });
        const what = `RESOURCE_CREATE_2D of resource ${RESOURCE.resourceId}`;
        return { ...commandSample(memory, options, what, create, OK_NODATA), opening: true };
      }
      // A width of its own for each, within the resource.
      const width = FIRST_WIDTH + (count++ % (RESOURCE.width - FIRST_WIDTH + 1));
      const rect = { x: 0, y: 0, width, height: RESOURCE.height };
      const command = encodeSetScanout({ rect, scanoutId: 0, resourceId: RESOURCE.resourceId });
      const what = `SET_SCANOUT of scanout 0 to ${width}x${RESOURCE.height} of resource ${RESOURCE.resourceId}`;
      const sample = commandSample(memory, options, what, command, OK_NODATA);
      widths.set(sample, width);
      return sample;
    },
  };
  return {
    what: 'the scanout set on the display (VHOST_USER_GPU_SCANOUT)',
    samples,
    arm() {
      from ??= display.events.length;
    },
    seen(sample) {
      const width = widths.get(sample);
      if (width === undefined || from === undefined) return false;
      return display.events.slice(from).some((event) => setsScanout(event, width));
    },
  };
}
