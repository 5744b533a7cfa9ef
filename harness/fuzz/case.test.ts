import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { UsageError } from '../errors.js';
import { CASE_FORMAT, CASE_VERSION, caseJson, type FuzzCase, loadCase, parseCase, saveCase } from './case.js';
import { concretizeAll, drawArbitrary } from './steps.js';

function fuzzCase(steps: FuzzCase['steps'], seed = 7): FuzzCase {
  return {
    format: CASE_FORMAT,
    version: CASE_VERSION,
    check: 'robust.fuzz',
    seed,
    path: '3:1:0',
    backend: { binary: '/usr/bin/some-backend', args: ['-o', 'x'] },
    verdict: 'fail',
    message: 'it crashed after step 2 of 2 (SET_VRING_NUM ring 0 num 8): killed by SIGABRT',
    steps,
  };
}

describe('fuzz/case', () => {
  it('round-trips any generated sequence through JSON, byte for byte', () => {
    fc.assert(
      fc.property(fc.array(drawArbitrary, { maxLength: 32 }), fc.nat(), (draws, seed) => {
        const original = fuzzCase(concretizeAll(draws), seed);
        const text = caseJson(original);
        const back = parseCase(text);
        expect(back).to.deep.equal(original);
        // What replay sends is what was sent: the same text again.
        expect(caseJson(back)).to.equal(text);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps the sequences a case needs before its own, and round-trips them', () => {
    const before = [concretizeAll([{ op: 'SET_VRING_KICK', valid: true, pick: 4 }]), []];
    const original = { ...fuzzCase(concretizeAll([{ op: 'SET_VRING_NUM', valid: true, pick: 0 }])), before };
    expect(parseCase(caseJson(original))).to.deep.equal(original);
  });

  it('saves in the reports folder under a name with the check and seed, and loads it back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vhu-case-'));
    try {
      const original = fuzzCase(concretizeAll([{ op: 'SET_VRING_KICK', valid: false, pick: 1 }]), 42);
      const file = await saveCase(dir, original);
      expect(file).to.equal(path.join(dir, 'fuzz-robust.fuzz-seed42.json'));
      expect(JSON.parse(await readFile(file, 'utf8')).steps[0].what).to.match(/^SET_VRING_KICK ring 255/);
      expect(await loadCase(file)).to.deep.equal(original);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not a case file, saying why', () => {
    const good = JSON.parse(caseJson(fuzzCase([]))) as Record<string, unknown>;
    const bad: Array<[string, RegExp]> = [
      ['{', /is not JSON/],
      [JSON.stringify({ ...good, format: 'other' }), /is not a vhu-conform-fuzz-case file/],
      [JSON.stringify({ ...good, version: 2 }), /version 2, this vhu-conform reads 1/],
      [JSON.stringify({ ...good, steps: [{ kind: 'message', request: 1 }] }), /malformed steps/],
      [
        JSON.stringify({
          ...good,
          steps: [{ kind: 'message', request: 1, flags: 1, size: 0, payload: 'zz', fds: [] }],
        }),
        /malformed steps/,
      ],
      [
        JSON.stringify({
          ...good,
          steps: [{ kind: 'message', request: 1, flags: 1, size: 0, payload: '', fds: ['socket'] }],
        }),
        /malformed steps/,
      ],
      [JSON.stringify({ ...good, before: [[{ kind: 'message' }]] }), /malformed sequences before/],
      [JSON.stringify({ ...good, before: {} }), /malformed sequences before/],
    ];
    for (const [text, why] of bad) {
      expect(() => parseCase(text, 'case.json'), text).to.throw(UsageError, why);
    }
  });
});
