/**
 * The vring checks, in run order: the data path first, since every other check builds on it; those
 * declared `late` run after the others (suites/index.ts).
 */
import type { Check } from '../../harness/runner/check.js';
import { blkChecks } from './blk.js';
import { lifecycleChecks } from './lifecycle.js';
import { memoryChecks } from './memory.js';
import { packedChecks } from './packed.js';

export const vringChecks: Check[] = [...blkChecks, ...packedChecks, ...lifecycleChecks, ...memoryChecks];
