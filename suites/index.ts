/** Every conformance check, in run order. Areas become mocha suites and JUnit testsuites. */
import type { Check } from '../harness/runner/check.js';
import { capabilityChecks } from './conventions/capabilities.js';
import { descriptorChecks } from './conventions/descriptors.js';
import { lifecycleChecks } from './conventions/lifecycle.js';
import { optionChecks } from './conventions/options.js';
import { socketChecks } from './conventions/socket.js';
import { gpuChecks } from './devices/gpu.js';
import { negotiationChecks } from './protocol/negotiation.js';
import { replyAckChecks } from './protocol/reply-ack.js';
import { vringChecks } from './vring/index.js';

export const allChecks: Check[] = [
  ...capabilityChecks,
  ...descriptorChecks,
  ...socketChecks,
  ...lifecycleChecks,
  ...optionChecks,
  ...negotiationChecks,
  ...vringChecks,
  ...gpuChecks,
  // Last: invalid requests may break a back-end (qemu-storage-daemon 7.2 dies of one), and in attach mode
  // nothing restarts it for the checks after.
  ...replyAckChecks,
];

const ids = new Set<string>();
for (const check of allChecks) {
  if (ids.has(check.id)) throw new Error(`duplicate check id ${check.id}`);
  ids.add(check.id);
}
