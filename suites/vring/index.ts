/** The vring checks, in run order: the data path first, since every other check builds on it. */
import type { Check } from '../../harness/runner/check.js';
import { blkChecks } from './blk.js';
import { lifecycleChecks } from './lifecycle.js';
import { memoryChecks } from './memory.js';
import { packedChecks } from './packed.js';

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
  'vring.blk.indirect-chained',
  'vring.get-vring-base.drain',
  'vring.restart.pending-kick',
  'vring.disable-stops',
  'vring.mem-table.replace',
  // INFO: nothing fails it; the variant used-len-short shows what it reports.
  'vring.used-len.exact',
  'vring.packed.used',
  'vring.packed.indirect',
  'vring.packed.event-idx',
]);

/**
 * Run after the others: qemu-storage-daemon 7.2 panics on these and drops the connection, and in attach
 * mode a back-end that dies of one takes every later check with it.
 */
const LAST = new Set(['vring.get-vring-base.drain', 'vring.restart.pending-kick']);

const registered = [...blkChecks, ...packedChecks, ...lifecycleChecks, ...memoryChecks].filter((c) =>
  REGISTERED.has(c.id),
);
export const vringChecks: Check[] = [
  ...registered.filter((c) => !LAST.has(c.id)),
  ...registered.filter((c) => LAST.has(c.id)),
];
