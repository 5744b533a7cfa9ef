/**
 * Every conformance check, in run order, with the attributes the runner schedules them by (runner/check.ts):
 * the one place both are decided. Areas become mocha suites and JUnit testsuites. In attach mode the runner
 * moves the `destructive` checks after all others, as nothing restarts the back-end.
 */
import type { Check, CheckAttributes } from '../harness/runner/check.js';
import { capabilityChecks } from './conventions/capabilities.js';
import { descriptorChecks } from './conventions/descriptors.js';
import { lifecycleChecks } from './conventions/lifecycle.js';
import { optionChecks } from './conventions/options.js';
import { socketChecks } from './conventions/socket.js';
import { fsChecks } from './devices/fs.js';
import { fsDeviceChecks } from './devices/fs-device.js';
import { gpuChecks } from './devices/gpu.js';
import { gpuCommandChecks } from './devices/gpu-commands.js';
import { inputChecks } from './devices/input.js';
import { netChecks } from './devices/net.js';
import { netMqChecks } from './devices/net-mq.js';
import { scsiChecks } from './devices/scsi.js';
import { scsiEventChecks } from './devices/scsi-events.js';
import { migrateChecks } from './migrate/index.js';
import { channelChecks } from './protocol/channels.js';
import { logDirtyChecks } from './protocol/dirty-log.js';
import { featureChecks, resetDeviceChecks } from './protocol/features.js';
import { protocolLifecycleChecks } from './protocol/lifecycle.js';
import { memSlotChecks } from './protocol/mem-slots.js';
import { negotiationChecks } from './protocol/negotiation.js';
import { replyAckChecks } from './protocol/reply-ack.js';
import { dataPlaneChecks } from './robustness/data-plane.js';
import { fuzzChecks } from './robustness/fuzz.js';
import { robustnessChecks } from './robustness/index.js';
import { vringChecks } from './vring/index.js';

/** The conventions checks launch the binary themselves, and judge what that process does. */
const LAUNCHING: CheckAttributes = {
  ownBackends: true,
  launchOnly: 'attach mode (--connect): vhu-conform did not launch this back-end',
};
/** The traffic checks start the device as the run's front-end profile (or each profile) would. */
const TRAFFIC: CheckAttributes = { perProfile: true };
/** The robustness checks try their inputs on back-ends of their own. */
const ROBUST: CheckAttributes = { ownBackends: true };
/**
 * Control messages only, each check on a back-end of its own (launched, or its own connection): no guest
 * data, nothing an earlier check saw; so under --jobs they run beside the others.
 */
const CONTROL: CheckAttributes = { ownBackends: true };
/**
 * Device traffic on a launch of its own that shares nothing with another launch (no disk, no shared folder,
 * no LUN: net, gpu, input), judged by itself (no completion rule of vring.blk.read-write's): beside the others.
 */
const OWN_DEVICE: CheckAttributes = { ...TRAFFIC, ownBackends: true };

/**
 * `checks` with `attributes` declared on each (a check's own value wins), those declared `late` after the
 * others.
 */
function group(checks: readonly Check[], attributes: CheckAttributes = {}): Check[] {
  const all = checks.map((check) => ({ ...attributes, ...check }));
  return [...all.filter((c) => c.late === undefined), ...all.filter((c) => c.late !== undefined)];
}

export const allChecks: Check[] = [
  ...group(
    [...capabilityChecks, ...descriptorChecks, ...socketChecks, ...lifecycleChecks, ...optionChecks],
    LAUNCHING,
  ),
  ...group([...negotiationChecks, ...channelChecks], CONTROL),
  ...group([...featureChecks, ...memSlotChecks]),
  ...group(vringChecks, TRAFFIC),
  // Two launches of their own, after the ring checks they build on.
  ...group(migrateChecks, TRAFFIC),
  ...group([...resetDeviceChecks, ...logDirtyChecks]),
  ...group([...netChecks, ...netMqChecks], { ...OWN_DEVICE, device: 'net' }),
  // fs: one shared folder for every launch; scsi: one LUN behind every launch (contrib's, over iSCSI).
  ...group([...fsChecks, ...fsDeviceChecks], { ...TRAFFIC, device: 'fs' }),
  ...group([...gpuChecks, ...gpuCommandChecks], { ...OWN_DEVICE, device: 'gpu' }),
  ...group([...scsiChecks, ...scsiEventChecks], { ...TRAFFIC, device: 'scsi' }),
  ...group(inputChecks, { ...OWN_DEVICE, device: 'input' }),
  // After every check that needs the session: a back-end may end with its front-end, and in attach mode
  // nothing restarts it (the checks after it are then skipped).
  ...group(protocolLifecycleChecks),
  // Last: invalid requests may break a back-end (qemu-storage-daemon 7.2 dies of one), and in attach mode
  // nothing restarts it for the checks after.
  ...group(replyAckChecks, CONTROL),
  // After everything: bad input may break a back-end for good; in attach mode the checks after skip.
  ...group(robustnessChecks, ROBUST),
  ...group(dataPlaneChecks, { ...ROBUST, needsType: true }),
  // Generated sequences last of all.
  ...group(fuzzChecks, ROBUST),
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
