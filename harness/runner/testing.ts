/** Builders of hand-made results for the reporters' tests (as pg-protocol's src/testing). */
import { type CheckResult, type RunResult, type RunSettings, summarize } from './types.js';

export function checkResult(
  id: string,
  verdict: CheckResult['verdict'],
  message = '',
  extra?: Partial<CheckResult>,
): CheckResult {
  const area = id.split('.')[0]!;
  return {
    id,
    title: `title of ${id}`,
    severity: 'MUST',
    spec: `vhost-user.rst#${area}`,
    area,
    verdict,
    message,
    durationMs: 12,
    ...extra,
  };
}

export function runResult(
  checks: CheckResult[],
  args: string[] = ['--socket-path', '/tmp/s'],
  durationMs = 42,
  options: Partial<RunSettings> = {},
): RunResult {
  return {
    tool: { name: 'vhu-conform', version: '0.1.0' },
    startedAt: '2026-01-02T03:04:05.006Z',
    options: {
      type: null,
      grep: null,
      skip: null,
      baseline: null,
      timeoutMs: 3000,
      frontend: 'qemu',
      strict: false,
      seed: 5,
      fuzzSeconds: null,
      replay: null,
      descriptorDirs: ['/usr/share/qemu/vhost-user'],
      migrateTo: null,
      shard: null,
      freshBackends: false,
      ...options,
    },
    interrupted: false,
    backend: { binary: '/usr/libexec/vhost-user-blk', args, type: 'block', capabilities: null },
    summary: summarize(checks, durationMs),
    checks,
  };
}
