/**
 * A scsi host started as the run's front-end profile starts one (`openScsi`): what the scsi checks drive.
 */

import { readConfigSpace } from '../../harness/devices/config.js';
import { ScsiDriver } from '../../harness/devices/scsi/driver.js';
import {
  decodeScsiConfig,
  SCSI_CONFIG,
  type ScsiConfig,
  ScsiQueue,
} from '../../harness/devices/scsi/scsi.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from './device.js';

const QUEUE_SIZE = 64;

export interface ScsiSetup {
  scsi: ScsiDriver;
  /** The device, whose eventq (ScsiQueue.EVENT) the driver leaves alone. */
  device: FrontendDevice;
  /** GET_CONFIG's view, when CONFIG was negotiated (`config` asked and offered). */
  config: ScsiConfig | undefined;
}

/**
 * A scsi host started on a fresh connection as the run's front-end profile starts one: SET_FEATURES
 * (VERSION_1, bit 30 when negotiated), the memory, controlq, eventq and the first request queue set up and
 * enabled. The driver uses the default cdb_size and sense_size, as a driver that writes neither. With
 * `config`, CONFIG is negotiated when offered and the config read.
 */
export async function openScsi(ctx: CheckContext, options: { config?: boolean } = {}): Promise<ScsiSetup> {
  requireDevice(ctx, 'scsi');
  const session = new FrontendSession(await frontendConnection(ctx));
  const started = await initTargetSession(ctx, session, {
    protocol: true,
    ...(options.config ? { extra: 1n << BigInt(ProtocolFeature.CONFIG) } : {}),
  });
  const features = ackFeatures(started, 1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1));
  const config = hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG)
    ? decodeScsiConfig(await readConfigSpace(session, SCSI_CONFIG))
    : undefined;
  const device = new FrontendDevice(session, ctx.scope);
  const rings = [ScsiQueue.CONTROL, ScsiQueue.EVENT, ScsiQueue.REQUEST];
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: rings.map((index) => ({ index, size: QUEUE_SIZE })),
    enable: started.protocol,
  });
  const scsi = new ScsiDriver(device.ring(ScsiQueue.REQUEST), {
    timeoutMs: ctx.timeoutMs,
    control: device.ring(ScsiQueue.CONTROL),
  });
  return { scsi, device, config };
}
