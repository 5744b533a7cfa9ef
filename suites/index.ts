/** Every conformance check, in run order. Areas become mocha suites and JUnit testsuites. */
import type { Check } from '../harness/runner/check.js';
import { capabilityChecks } from './conventions/capabilities.js';
import { descriptorChecks } from './conventions/descriptors.js';
import { lifecycleChecks } from './conventions/lifecycle.js';
import { optionChecks } from './conventions/options.js';
import { socketChecks } from './conventions/socket.js';
import { fsChecks } from './devices/fs.js';
import { gpuChecks } from './devices/gpu.js';
import { inputChecks } from './devices/input.js';
import { netChecks } from './devices/net.js';
import { netMqChecks } from './devices/net-mq.js';
import { scsiChecks } from './devices/scsi.js';
import { migrateChecks } from './migrate/index.js';
import { channelChecks, logDirtyChecks } from './protocol/channels.js';
import { featureChecks, resetDeviceChecks } from './protocol/features.js';
import { protocolLifecycleChecks } from './protocol/lifecycle.js';
import { memSlotChecks } from './protocol/mem-slots.js';
import { negotiationChecks } from './protocol/negotiation.js';
import { replyAckChecks } from './protocol/reply-ack.js';
import { dataPlaneChecks } from './robustness/data-plane.js';
import { fuzzChecks } from './robustness/fuzz.js';
import { robustnessChecks } from './robustness/index.js';
import { vringChecks } from './vring/index.js';

export const allChecks: Check[] = [
  ...capabilityChecks,
  ...descriptorChecks,
  ...socketChecks,
  ...lifecycleChecks,
  ...optionChecks,
  ...negotiationChecks,
  ...channelChecks,
  ...featureChecks,
  ...memSlotChecks,
  ...vringChecks,
  // Two launches of their own, after the ring checks they build on.
  ...migrateChecks,
  ...resetDeviceChecks,
  ...logDirtyChecks,
  ...netChecks,
  ...netMqChecks,
  ...fsChecks,
  ...gpuChecks,
  ...scsiChecks,
  ...inputChecks,
  // After every check that needs the session: a back-end may end with its front-end, and in attach mode
  // nothing restarts it (the checks after it are then skipped).
  ...protocolLifecycleChecks,
  // Last: invalid requests may break a back-end (qemu-storage-daemon 7.2 dies of one), and in attach mode
  // nothing restarts it for the checks after.
  ...replyAckChecks,
  // After everything: bad input may break a back-end for good; in attach mode the checks after skip.
  ...robustnessChecks,
  ...dataPlaneChecks,
  // Generated sequences last of all.
  ...fuzzChecks,
];

const ids = new Set<string>();
for (const check of allChecks) {
  if (ids.has(check.id)) throw new Error(`duplicate check id ${check.id}`);
  // A check is skipped when one it needs did not pass: that one must have run before it.
  for (const need of check.needs ?? []) {
    if (!ids.has(need)) throw new Error(`${check.id} needs ${need}, which does not run before it`);
  }
  ids.add(check.id);
}
