/** The migration checks: the harness is the front-end of both sides of a move (issue 14, section 3). */
import type { Check } from '../../harness/runner/check.js';
import { abiStableChecks } from './abi-stable.js';
import { deviceStateChecks } from './device-state.js';
import { inflightChecks } from './inflight.js';
import { refuseUnknownChecks } from './refuse-unknown.js';
import { resumeChecks } from './resume.js';

export const migrateChecks: Check[] = [
  ...resumeChecks,
  ...inflightChecks,
  ...deviceStateChecks,
  ...abiStableChecks,
  ...refuseUnknownChecks,
];
