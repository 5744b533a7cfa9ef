/** The result model shared by the runner, the reporters and the CLI. */
import type { WireLogData } from '../transport/wire-log.js';

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
  /**
   * The normative sentence the check enforces, quoted, and where it stands (the document and version), e.g.
   * `vhost-user.rst (QEMU 7.2), Backend program conventions: "..."`. Its word (must, should) is the severity.
   */
  rule?: string;
  /**
   * An interoperability check: what a real front-end or back-end does, not a sentence of the spec. Never a
   * MUST; the report says so.
   */
  interop?: boolean;
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
  /** With `--frontend all`: the front-end profile a traffic check ran under (its JUnit id gets `@profile`). */
  frontend?: string;
  /**
   * The baseline (`--baseline`) names this check as a known failure, for this reason: failing or timing out,
   * it fails nothing; passing, it is fixed (the entry can go).
   */
  expected?: { reason: string };
  /**
   * With `RunOptions.wireLog`: the vhost-user messages the check sent and received on the back-end's socket
   * (bounded; the HTML report and `--wire-log` show it). Not part of report.json.
   */
  wire?: WireLogData;
  /** Files the check wrote for the reader (the gpu checks' scanout PNGs), absolute paths. */
  files?: string[];
  /**
   * How many back-ends the check launched (0 in attach mode): what a run costs is mostly launches (the bench
   * prints them by area). Not part of report.json.
   */
  launches?: number;
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

/** The settings a run was made with, as given or as resolved (the seed), so that it can be made again. */
export interface RunSettings {
  /** `--type` as given; null: the type came from --print-capabilities (see `backend.type`). */
  type: string | null;
  /** `--grep` as given; null: every check. */
  grep: string | null;
  /** `--skip` as given; null: none excluded. */
  skip: string | null;
  /** `--baseline` as given: the known failures' file; null: none. */
  baseline: string | null;
  timeoutMs: number;
  /** The front-end profile (`--frontend`), or `all`. */
  frontend: string;
  /** `--strict`: SHOULD failures fail the run too (exit status and JUnit). */
  strict: boolean;
  /** The seed of the generated sequences (robust.fuzz), given or drawn. */
  seed: number;
  /** `--fuzz`: the time budget of the generated sequences in seconds; null: the normal suite's. */
  fuzzSeconds: number | null;
  /** `vhu-conform replay`: the case file replayed; null otherwise. */
  replay: string | null;
  /** Descriptor folders searched, general to specific. */
  descriptorDirs: string[];
  /**
   * The destination of the migrate checks' move: the --migrate-to binary (resolved) and its --migrate-to-arg
   * arguments, or the --migrate-to-connect socket; null: a second launch of the binary under test (reports
   * written before it was recorded have none).
   */
  migrateTo: MoveDestination | null;
  /**
   * `--shard i/n`: the shard of the checks this run reports (`vhu-conform merge` joins the n of them); null:
   * every selected check (reports written before it was recorded have none).
   */
  shard?: string | null;
  /**
   * `--fresh-backends`: every robustness input and generated sequence on a fresh launch, no back-end kept from
   * one to the next (reports written before it was recorded have none).
   */
  freshBackends?: boolean;
}

/** Where the migrate checks move the guest: a binary launched with its own arguments, or a socket. */
export type MoveDestination = { binary: string; extraArgs: string[] } | { connect: string };

export interface RunResult {
  tool: { name: string; version: string };
  startedAt: string;
  options: RunSettings;
  /** True when SIGINT or SIGTERM stopped the run: the checks not run are missing, the last ones skipped. */
  interrupted: boolean;
  backend: BackendInfo;
  summary: Summary;
  checks: CheckResult[];
  /** The front-end profile (`--frontend`; default qemu), or `all`. */
  frontend?: string;
  /** With `--frontend all`: each traffic check's verdict under each profile. */
  matrix?: FrontendMatrix;
  /** With `--baseline`: how the run compares with the known failures. */
  baseline?: BaselineSummary;
}

/** How a run compares with its baseline (runner/baseline.ts). */
export interface BaselineSummary {
  /** Entries in the baseline. */
  entries: number;
  /** Checks that failed or timed out as the baseline expected. */
  expectedFailures: number;
  /** Checks that fail the run ({@link failsRun}): failed or timed out, and not in the baseline. */
  newFailures: string[];
  /** Baseline entries whose checks all pass now: to be removed from it. */
  fixed: string[];
  /** Baseline entries that matched no check run to a verdict (filtered out, skipped, other profiles). */
  notRun: string[];
}

/** A profile x check table of verdicts (`--frontend all`). */
export interface FrontendMatrix {
  profiles: string[];
  /** Check id -> profile -> verdict. */
  checks: Record<string, Record<string, Verdict>>;
}

/** The matrix of the results that carry a profile. */
export function frontendMatrix(profiles: string[], checks: CheckResult[]): FrontendMatrix {
  const matrix: FrontendMatrix = { profiles, checks: {} };
  for (const c of checks) {
    if (c.frontend === undefined) continue;
    matrix.checks[c.id] ??= {};
    matrix.checks[c.id]![c.frontend] = c.verdict;
  }
  return matrix;
}

/** The check's id, with `@profile` when it ran under one profile of `--frontend all`: unique in a run. */
export function checkKey(check: CheckResult): string {
  return check.frontend === undefined ? check.id : `${check.id}@${check.frontend}`;
}

/** Whether the check failed or timed out, whatever its severity. */
export function broke(check: CheckResult): boolean {
  return check.verdict === 'fail' || check.verdict === 'timeout';
}

/**
 * Whether a check's verdict fails the run (exit status 1, and a JUnit `<failure>`): a MUST check that failed
 * or timed out; with `strict`, a SHOULD check too. A fact (INFO) never does, nor a failure the baseline
 * expected.
 */
export function failsRun(check: CheckResult, strict: boolean): boolean {
  if (!broke(check) || check.expected !== undefined) return false;
  return check.severity === 'MUST' || (strict && check.severity === 'SHOULD');
}

export function summarize(checks: CheckResult[], durationMs: number): Summary {
  const count = (pred: (c: CheckResult) => boolean) => checks.filter(pred).length;
  return {
    total: checks.length,
    passed: count((c) => c.verdict === 'pass'),
    failed: count((c) => c.verdict === 'fail'),
    timedOut: count((c) => c.verdict === 'timeout'),
    skipped: count((c) => c.verdict === 'skip'),
    errors: count((c) => c.verdict === 'error'),
    mustFailed: count((c) => c.severity === 'MUST' && broke(c)),
    shouldFailed: count((c) => c.severity === 'SHOULD' && broke(c)),
    durationMs,
  };
}
