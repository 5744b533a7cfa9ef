/** The vring checks, in run order: the data path first, since every other check builds on it. */
import type { Check } from '../../harness/runner/check.js';
import { blkChecks } from './blk.js';
import { lifecycleChecks } from './lifecycle.js';
import { memoryChecks } from './memory.js';

/**
 * Registered once a fixture variant fails each (a check nothing can fail is not done): the others are
 * written and were run by hand against qemu-storage-daemon, and wait for their flawed fixtures.
 */
const REGISTERED = new Set([
  'vring.blk.read-write',
  'vring.blk.cross-region',
  'vring.blk.flush-id',
  'vring.blk.bad-sector',
  'vring.get-vring-base',
  'vring.enable-gates',
  'vring.legacy-start',
  'vring.blk.indirect',
  'vring.blk.event-idx',
  'vring.restart',
  'vring.mem-table.replace',
]);

export const vringChecks: Check[] = [...blkChecks, ...lifecycleChecks, ...memoryChecks].filter((c) =>
  REGISTERED.has(c.id),
);
