import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { type DirectoryResult, dir } from 'tmp-promise';
import { validateReport } from '../schemas/validate.js';
import { REPORT_FORMAT, REPORT_FORMAT_VERSION, toJson, writeJsonReport } from './report-json.js';
import { checkResult, runResult } from './testing.js';
import { type CheckResult, frontendMatrix, type RunResult } from './types.js';

const NASTY = 'expected <reply> & flags 0x5, got ]]> \u0000 then \x1b[31mred\x1b[0m';

function sample(): RunResult {
  const checks: CheckResult[] = [
    checkResult('conventions.a', 'pass'),
    checkResult('conventions.b', 'fail', NASTY, { stderrTail: 'oops \u0000\x1b[2J\n' }),
    checkResult('protocol.c', 'timeout', 'timed out after 500 ms waiting for GET_FEATURES reply'),
    checkResult('protocol.d', 'skip', 'no REPLY_ACK', { severity: 'SHOULD' }),
    checkResult('vring.e', 'error', 'mmap failed'),
    checkResult('conventions.f', 'pass', 'socket at /tmp/x', { severity: 'INFO' }),
  ];
  return runResult(checks);
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
    expect(json.split('\n')[1]).to.equal('  "format": "vhu-conform-report",');
  });

  it('names its format and version, then round-trips the run result exactly, escapes included', () => {
    const result = sample();
    const json = toJson(result);
    expect(JSON.parse(json)).to.deep.equal({
      format: REPORT_FORMAT,
      formatVersion: REPORT_FORMAT_VERSION,
      ...result,
    });
    expect(Object.keys(JSON.parse(json)).slice(0, 2)).to.deep.equal(['format', 'formatVersion']);
    expect(json).to.include('\\u0000').and.include('\\u001b[2J');
    expect(json).not.to.include('\u0000').and.not.to.include('\x1b');
  });

  it('keeps only the fields of the result model', () => {
    const result = sample();
    Object.assign(result, { secret: 1 });
    Object.assign(result.checks[0]!, { internal: 'x' });
    const parsed = JSON.parse(toJson(result));
    expect(Object.keys(parsed)).to.have.members([
      'format',
      'formatVersion',
      'tool',
      'startedAt',
      'options',
      'interrupted',
      'backend',
      'summary',
      'checks',
    ]);
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
    expect(JSON.parse(text)).to.deep.include(result);
  });

  it('is valid against the JSON Schema shipped in harness/schemas, and the schema refuses what it must', () => {
    const checks = [checkResult('vring.x', 'pass', '', { frontend: 'qemu' })];
    const all: RunResult = {
      ...runResult(checks, undefined, undefined, { frontend: 'all', seed: 1234, fuzzSeconds: 2.5 }),
      frontend: 'all',
      matrix: frontendMatrix(['qemu'], checks),
      interrupted: true,
    };
    for (const result of [sample(), all])
      expect(validateReport(JSON.parse(toJson(result)))).to.deep.equal([]);
    const doc = JSON.parse(toJson(sample()));
    expect(validateReport({ ...doc, formatVersion: 2 }).join()).to.match(
      /formatVersion must be equal to constant/,
    );
    const { interrupted: _, ...noFlag } = doc;
    expect(validateReport(noFlag).join()).to.match(/must have required property 'interrupted'/);
    doc.checks[0].verdict = 'maybe';
    expect(validateReport(doc).join()).to.match(
      /\/checks\/0\/verdict must be equal to one of the allowed values/,
    );
  });

  it('keeps the front-end profile of each check and the profile x check matrix (--frontend all)', () => {
    const checks = [
      checkResult('protocol.a', 'pass'),
      checkResult('vring.x', 'pass', '', { frontend: 'qemu' }),
      checkResult('vring.x', 'timeout', 'late', { frontend: 'dpdk' }),
    ];
    const result: RunResult = {
      ...runResult(checks),
      frontend: 'all',
      matrix: frontendMatrix(['qemu', 'dpdk'], checks),
    };
    const parsed = JSON.parse(toJson(result)) as RunResult;
    expect(parsed.frontend).to.equal('all');
    expect(parsed.checks.map((c) => c.frontend)).to.deep.equal([undefined, 'qemu', 'dpdk']);
    expect(parsed.matrix).to.deep.equal({
      profiles: ['qemu', 'dpdk'],
      checks: { 'vring.x': { qemu: 'pass', dpdk: 'timeout' } },
    });
  });
});
