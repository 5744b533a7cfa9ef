/**
 * The programmatic API, what `import ... from 'vhu-conform'` gives: everything the CLI does, for a program (the
 * CLI in harness/cli is a thin layer over it). It sits with the CLI at the top: it hands runConformance the
 * checks of suites/.
 */
export { allChecks } from '../suites/index.js';
export { type CommonMode, commonMode } from './abi/common.js';
export { type CompatResult, compareAbi } from './abi/compat.js';
export { type AbiFingerprint, parseAbi, stableJson } from './abi/format.js';
export { type AbiTarget, takeFingerprint } from './abi/probe.js';
export type { Check, CheckContext } from './runner/check.js';
export { formatCheckList } from './runner/check-list.js';
export { toHtml, writeHtmlReport } from './runner/report-html.js';
export { toJson, writeJsonReport } from './runner/report-json.js';
export { toJunitXml, writeJunitReport } from './runner/report-junit.js';
export { writeWireLogs } from './runner/report-wire.js';
export {
  DEFAULT_TIMEOUT_MS,
  type RunOptions,
  runConformance,
  selectChecks,
  TIMEOUT_BOUNDS_MS,
  withPrerequisites,
} from './runner/run.js';
export type { CheckInfo, CheckResult, RunResult, Severity, Summary, Verdict } from './runner/types.js';
export { VERSION } from './runner/version.js';
