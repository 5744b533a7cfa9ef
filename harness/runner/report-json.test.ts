import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { type DirectoryResult, dir } from 'tmp-promise';
import { toJson, writeJsonReport } from './report-json.js';
import { type CheckResult, type RunResult, summarize } from './types.js';

const NASTY = 'expected <reply> & flags 0x5, got ]]> \u0000 then \x1b[31mred\x1b[0m';

function check(
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
    durationMs: 3,
    ...extra,
  };
}

function sample(): RunResult {
  const checks: CheckResult[] = [
    check('conventions.a', 'pass'),
    check('conventions.b', 'fail', NASTY, { stderrTail: 'oops \u0000\x1b[2J\n' }),
    check('protocol.c', 'timeout', 'timed out after 500 ms waiting for GET_FEATURES reply'),
    check('protocol.d', 'skip', 'no REPLY_ACK', { severity: 'SHOULD' }),
    check('vring.e', 'error', 'mmap failed'),
    check('conventions.f', 'pass', 'socket at /tmp/x', { severity: 'INFO' }),
  ];
  return {
    tool: { name: 'vhu-conform', version: '0.1.0' },
    startedAt: '2026-01-02T03:04:05.006Z',
    backend: {
      binary: '/usr/libexec/vhost-user-blk',
      args: ['--x', 'a b'],
      type: 'block',
      capabilities: { type: 'block', features: ['a'] },
    },
    summary: summarize(checks, 42),
    checks,
  };
}

describe('JSON report', () => {
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('pretty-prints with two spaces and a trailing newline', () => {
    const json = toJson(sample());
    expect(json.endsWith('}\n')).to.equal(true);
    expect(json.split('\n')[1]).to.match(/^ {2}"tool": \{$/);
  });

  it('round-trips the run result exactly, escapes included', () => {
    const result = sample();
    const json = toJson(result);
    expect(JSON.parse(json)).to.deep.equal(result);
    expect(json).to.include('\\u0000').and.include('\\u001b[2J');
    expect(json).not.to.include('\u0000').and.not.to.include('\x1b');
  });

  it('keeps only the fields of the result model', () => {
    const result = sample();
    Object.assign(result, { secret: 1 });
    Object.assign(result.checks[0]!, { internal: 'x' });
    const parsed = JSON.parse(toJson(result));
    expect(Object.keys(parsed)).to.have.members(['tool', 'startedAt', 'backend', 'summary', 'checks']);
    expect(Object.keys(parsed.checks[0])).to.have.members([
      'id',
      'title',
      'severity',
      'spec',
      'area',
      'verdict',
      'message',
      'durationMs',
    ]);
    expect(parsed.checks[1]).to.have.property('stderrTail');
  });

  it('writes the file, creating parent folders', async () => {
    const result = sample();
    const file = join(tmp.path, 'nested', 'deeper', 'report.json');
    await writeJsonReport(result, file);
    const text = await readFile(file, 'utf8');
    expect(text).to.equal(toJson(result));
    expect(JSON.parse(text)).to.deep.equal(result);
  });
});
