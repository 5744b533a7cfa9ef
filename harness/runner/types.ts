/** The result model shared by the runner, the reporters and the CLI. */

export type Severity = 'MUST' | 'SHOULD' | 'INFO';
export type Verdict = 'pass' | 'fail' | 'timeout' | 'skip' | 'error';

/** What identifies a check; stable across releases. */
export interface CheckInfo {
  /** Stable id, e.g. `conv.caps.exit`. Its first segment names the area. */
  id: string;
  title: string;
  severity: Severity;
  /** The spec anchor it enforces, e.g. `vhost-user.rst#backend-program-conventions`. */
  spec: string;
  /** The area (JUnit testsuite), e.g. `conventions`. */
  area: string;
}

export interface CheckResult extends CheckInfo {
  verdict: Verdict;
  /** Why it failed, or the fact an INFO check records; empty when there is nothing to say. */
  message: string;
  durationMs: number;
  /** The tail of the back-end's stderr during the check, when it printed anything. */
  stderrTail?: string;
}

export interface BackendInfo {
  /** The binary launched; null in attach mode (--connect). */
  binary: string | null;
  /** Attach mode: the socket of a back-end someone else started. */
  connect?: string;
  args: string[];
  /** Device type: from --type, else from --print-capabilities; null when neither gave one. */
  type: string | null;
  /** The parsed --print-capabilities document, or null when it could not be had. */
  capabilities: unknown;
}

export interface Summary {
  total: number;
  passed: number;
  failed: number;
  timedOut: number;
  skipped: number;
  errors: number;
  /** MUST checks that failed or timed out. */
  mustFailed: number;
  /** SHOULD checks that failed or timed out. */
  shouldFailed: number;
  durationMs: number;
}

export interface RunResult {
  tool: { name: string; version: string };
  startedAt: string;
  backend: BackendInfo;
  summary: Summary;
  checks: CheckResult[];
}

export function summarize(checks: CheckResult[], durationMs: number): Summary {
  const count = (pred: (c: CheckResult) => boolean) => checks.filter(pred).length;
  const broken = (c: CheckResult) => c.verdict === 'fail' || c.verdict === 'timeout';
  return {
    total: checks.length,
    passed: count((c) => c.verdict === 'pass'),
    failed: count((c) => c.verdict === 'fail'),
    timedOut: count((c) => c.verdict === 'timeout'),
    skipped: count((c) => c.verdict === 'skip'),
    errors: count((c) => c.verdict === 'error'),
    mustFailed: count((c) => c.severity === 'MUST' && broken(c)),
    shouldFailed: count((c) => c.severity === 'SHOULD' && broken(c)),
    durationMs,
  };
}
