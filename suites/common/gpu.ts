/**
 * A gpu device started as the run's front-end profile starts one, with the harness's display attached
 * (`openGpu`): what the gpu checks and the gpu bench drive.
 */

import { attachGpuDisplay, type GpuDisplay } from '../../harness/devices/gpu/display.js';
import { type GpuDisplayMode, GpuDriver } from '../../harness/devices/gpu/gpu.js';
import { GpuQueue, VirtioGpuFeature } from '../../harness/devices/gpu/spec.js';
import { SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from './device.js';

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
