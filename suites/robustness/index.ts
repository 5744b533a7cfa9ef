/** The robustness checks (issue 5): bad control messages and what a back-end leaks, run last of all. */
import { controlChecks } from './control.js';
import { leakChecks } from './leaks.js';

export const robustnessChecks = [...leakChecks, ...controlChecks];
