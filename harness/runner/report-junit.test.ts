import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { type DirectoryResult, dir } from 'tmp-promise';
import { toJunitXml, writeJunitReport, xmlSafe } from './report-junit.js';
import { checkResult, runResult } from './testing.js';
import type { CheckResult, RunResult } from './types.js';

const NASTY = 'expected <reply> & flags 0x5, got ]]> \u0000 then \x1b[31mred\x1b[0m';
const NASTY_SAFE = 'expected <reply> & flags 0x5, got ]]>  then [31mred[0m';
// Two `]]>`: a CDATA writer that splits only the first would let `<inject/>` through as markup.
const STDERR = 'warn: ]]> first\nsecond ]]><inject/> \u0000\x1b[2J tail\n';

function sample(): RunResult {
  const checks: CheckResult[] = [
    checkResult('conventions.a', 'pass'),
    checkResult('conventions.b', 'fail', NASTY, { stderrTail: STDERR }),
    checkResult('protocol.c', 'timeout', 'timed out after 500 ms waiting for GET_FEATURES reply'),
    checkResult('protocol.d', 'skip', 'no REPLY_ACK', { severity: 'SHOULD' }),
    checkResult('vring.e', 'error', 'mmap failed', { durationMs: 1500 }),
    checkResult('conventions.f', 'pass', 'socket at /tmp/x', { severity: 'INFO' }),
  ];
  return runResult(checks);
}

/** Decodes the five predefined entities and the character references xmlbuilder writes. */
function decodeXml(text: string): string {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replaceAll('&amp;', '&');
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w.-]+)="([^"]*)"/g)) out[m[1]!] = decodeXml(m[2]!);
  return out;
}

interface Element {
  attrs: Record<string, string>;
  body: string;
}

function elements(xml: string, name: string): Element[] {
  // Attribute values may hold a raw `>`, so the start tag is read attribute by attribute.
  const re = new RegExp(`<${name}((?:\\s+[\\w.:-]+="[^"]*")*)\\s*(?:/>|>([\\s\\S]*?)</${name}>)`, 'g');
  return [...xml.matchAll(re)].map((m) => ({ attrs: attributes(m[1]!), body: m[2] ?? '' }));
}

function count(xml: string, name: string): number {
  return elements(xml, name).length;
}

describe('JUnit report', () => {
  let tmp: DirectoryResult;
  before(async () => {
    tmp = await dir({ unsafeCleanup: true });
  });
  after(async () => {
    await tmp.cleanup();
  });

  describe('xmlSafe', () => {
    it('strips what XML 1.0 cannot carry and keeps everything else', () => {
      expect(xmlSafe('a\u0000b\x1bc\u000bd\u000ce\u001ff')).to.equal('abcdef');
      expect(xmlSafe('\t\n\r <&>"\' ]]>')).to.equal('\t\n\r <&>"\' ]]>');
      expect(xmlSafe('x\uFFFEy\uFFFFz')).to.equal('xyz');
      expect(xmlSafe('lone \uD800 high, lone \uDC00 low, pair \uD83D\uDE00')).to.equal(
        'lone  high, lone  low, pair \uD83D\uDE00',
      );
      expect(xmlSafe('caf\u00e9 \u2603 \uE000 \u0085')).to.equal('caf\u00e9 \u2603 \uE000 \u0085');
    });
  });

  it('writes one testsuite per area, in the order areas first appear', () => {
    const xml = toJunitXml(sample());
    const suites = elements(xml, 'testsuite');
    expect(suites.map((s) => s.attrs.name)).to.deep.equal(['conventions', 'protocol', 'vring']);
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).to.equal(true);
    expect(xml.endsWith('</testsuites>\n')).to.equal(true);
  });

  it('counts testcases, failures, errors and skips per suite', () => {
    const xml = toJunitXml(sample());
    const expected = {
      conventions: { tests: 3, failures: 1, errors: 0, skipped: 0 },
      protocol: { tests: 2, failures: 1, errors: 0, skipped: 1 },
      vring: { tests: 1, failures: 0, errors: 1, skipped: 0 },
    };
    for (const suite of elements(xml, 'testsuite')) {
      const want = expected[suite.attrs.name as keyof typeof expected];
      const counted = {
        tests: count(suite.body, 'testcase'),
        failures: count(suite.body, 'failure'),
        errors: count(suite.body, 'error'),
        skipped: count(suite.body, 'skipped'),
      };
      expect(counted, suite.attrs.name).to.deep.equal(want);
      const declared = {
        tests: Number(suite.attrs.tests),
        failures: Number(suite.attrs.failures),
        errors: Number(suite.attrs.errors),
        skipped: Number(suite.attrs.skipped),
      };
      expect(declared, suite.attrs.name).to.deep.equal(want);
    }
    // junit-10.xsd has no `skipped` on <testsuites>.
    expect(attributes(xml.match(/<testsuites\b[^>]*>/)![0])).to.deep.equal({
      name: 'vhu-conform',
      tests: '6',
      failures: '2',
      errors: '1',
    });
  });

  it('names each testcase and maps each verdict to its element', () => {
    const cases = elements(toJunitXml(sample()), 'testcase');
    const byName = new Map(cases.map((c) => [c.attrs.name!, c]));
    expect([...byName.keys()]).to.deep.equal([
      'conventions.a title of conventions.a',
      'conventions.b title of conventions.b',
      'conventions.f title of conventions.f',
      'protocol.c title of protocol.c',
      'protocol.d title of protocol.d',
      'vring.e title of vring.e',
    ]);
    for (const c of cases) expect(c.attrs.classname).to.equal(`vhu-conform.${c.attrs.name!.split('.')[0]}`);

    const pass = byName.get('conventions.a title of conventions.a')!;
    expect(pass.attrs.time).to.equal('0.012');
    expect(pass.body).not.to.match(/<(failure|error|skipped|system-err)\b/);

    const [failure] = elements(byName.get('conventions.b title of conventions.b')!.body, 'failure');
    expect(failure!.attrs).to.deep.equal({ message: `[MUST] ${NASTY_SAFE}`, type: 'fail' });
    expect(decodeXml(failure!.body)).to.equal(NASTY_SAFE);

    const [timeout] = elements(byName.get('protocol.c title of protocol.c')!.body, 'failure');
    expect(timeout!.attrs).to.deep.equal({
      message: '[MUST] timed out after 500 ms waiting for GET_FEATURES reply',
      type: 'timeout',
    });

    const [skipped] = elements(byName.get('protocol.d title of protocol.d')!.body, 'skipped');
    expect(skipped!.attrs).to.deep.equal({ message: 'no REPLY_ACK' });

    const error = byName.get('vring.e title of vring.e')!;
    expect(error.attrs.time).to.equal('1.5');
    expect(elements(error.body, 'error')[0]!.attrs).to.deep.equal({
      message: '[MUST] mmap failed',
      type: 'error',
    });

    const info = byName.get('conventions.f title of conventions.f')!;
    expect(decodeXml(elements(info.body, 'system-out')[0]!.body)).to.equal(
      'severity: INFO\nspec: vhost-user.rst#conventions\nsocket at /tmp/x',
    );
  });

  it('heads each testcase system-out with its severity and spec anchor (junit-10.xsd: no testcase properties)', () => {
    const cases = elements(toJunitXml(sample()), 'testcase');
    expect(cases.map((c) => count(c.body, 'properties'))).to.deep.equal([0, 0, 0, 0, 0, 0]);
    const skip = cases.find((c) => c.attrs.name!.startsWith('protocol.d'))!;
    expect(decodeXml(elements(skip.body, 'system-out')[0]!.body)).to.equal(
      'severity: SHOULD\nspec: vhost-user.rst#protocol',
    );
  });

  it('quotes the rule a check enforces in its system-out, and says when it is an interoperability check', () => {
    const rule =
      'vhost-user.rst (QEMU 7.2), Ring states: "stopped: the back-end must not process the ring at all."';
    const xml = toJunitXml(
      runResult([
        checkResult('vring.a', 'pass', '', { rule }),
        checkResult('vring.b', 'pass', '', {
          rule: 'QEMU 7.2 restores from it',
          interop: true,
          severity: 'SHOULD',
        }),
      ]),
    );
    const outs = elements(xml, 'testcase').map((c) => decodeXml(elements(c.body, 'system-out')[0]!.body));
    expect(outs[0]).to.equal(`severity: MUST\nspec: vhost-user.rst#vring\nrule: ${rule}`);
    expect(outs[1]).to.equal(
      'severity: SHOULD\nspec: vhost-user.rst#vring\nrule: QEMU 7.2 restores from it\n' +
        'interoperability: what real peers do, not a sentence of the spec',
    );
  });

  it('keeps the run-wide facts as testsuite properties: tool, back-end, strict, interrupted', () => {
    const xml = toJunitXml({ ...sample(), interrupted: true });
    const [suite] = elements(xml, 'testsuite');
    const props = elements(elements(suite!.body, 'properties')[0]!.body, 'property').map((p) => p.attrs);
    expect(props).to.deep.include({ name: 'strict', value: 'false' });
    expect(props).to.deep.include({ name: 'interrupted', value: 'true' });
    expect(props).to.deep.include({ name: 'backend.type', value: 'block' });
  });

  it('a SHOULD failure is a <failure> only under --strict, as the exit status says; otherwise a passed testcase saying so', () => {
    const checks = [
      checkResult('conventions.s', 'fail', 'socket left behind', { severity: 'SHOULD' }),
      checkResult('conventions.t', 'timeout', 'no exit within 500 ms', { severity: 'SHOULD' }),
      checkResult('conventions.i', 'fail', 'odd', { severity: 'INFO' }),
    ];
    const lenient = toJunitXml(runResult(checks));
    expect(count(lenient, 'failure')).to.equal(0);
    expect(attributes(lenient.match(/<testsuite\b[^>]*>/)![0])).to.include({ tests: '3', failures: '0' });
    const outs = elements(lenient, 'system-out').map((o) => decodeXml(o.body).split('\n').at(-1));
    expect(outs).to.deep.equal([
      'SHOULD not met: socket left behind',
      'SHOULD not met (timed out): no exit within 500 ms',
      'INFO not met: odd',
    ]);

    const strict = toJunitXml(runResult(checks, undefined, undefined, { strict: true }));
    expect(elements(strict, 'failure').map((f) => f.attrs)).to.deep.equal([
      { message: '[SHOULD] socket left behind', type: 'fail' },
      { message: '[SHOULD] no exit within 500 ms', type: 'timeout' },
    ]);
    expect(attributes(strict.match(/<testsuite\b[^>]*>/)![0])).to.include({ failures: '2' });
  });

  it('a failure the baseline expected is a passed testcase giving the reason; a fixed one says it passes now', () => {
    const checks = [
      checkResult('gpu.a', 'fail', 'pixels differ', { expected: { reason: 'bug <42> & co' } }),
      checkResult('gpu.b', 'timeout', 'no UPDATE', { expected: { reason: 'hangs' } }),
      checkResult('gpu.c', 'pass', '', { expected: { reason: 'was broken' } }),
      checkResult('gpu.d', 'fail', 'new'),
    ];
    const xml = toJunitXml(runResult(checks, undefined, undefined, { strict: true, baseline: 'known.json' }));
    expect(elements(xml, 'failure').map((f) => f.attrs.message)).to.deep.equal(['[MUST] new']);
    expect(attributes(xml.match(/<testsuite\b[^>]*>/)![0])).to.include({ tests: '4', failures: '1' });
    const outs = elements(xml, 'system-out').map((o) => decodeXml(o.body).split('\n').slice(2).join('\n'));
    expect(outs).to.deep.equal([
      'expected failure, in the baseline: bug <42> & co\nMUST not met: pixels differ',
      'expected failure, in the baseline: hangs\nMUST not met (timed out): no UPDATE',
      'fixed: the baseline expected a failure (was broken); it passes now',
      '',
    ]);
    const props = elements(elements(xml, 'properties')[0]!.body, 'property').map((p) => p.attrs);
    expect(props).to.deep.include({ name: 'baseline', value: 'known.json' });
  });

  it('escapes markup and drops characters XML cannot carry', () => {
    const xml = toJunitXml(sample());
    expect(xml).to.include('expected &lt;reply&gt; &amp; flags 0x5, got ]]&gt;');
    expect(xml).to.include('message="[MUST] expected &lt;reply> &amp; flags');
    const controls = [...xml].filter((c) => c < ' ' && !'\t\n\r'.includes(c));
    expect(controls).to.deep.equal([]);
    expect(xml).not.to.include('<inject');
    expect(xml).not.to.include('<![CDATA[');
  });

  it('puts the stderr tail into the testcase system-err', () => {
    const xml = toJunitXml(sample());
    const systemErr = elements(xml, 'system-err');
    expect(systemErr).to.have.length(1);
    expect(decodeXml(systemErr[0]!.body)).to.equal(xmlSafe(STDERR));
    const owner = elements(xml, 'testcase').find((c) => c.body.includes('<system-err'));
    expect(owner!.attrs.name).to.equal('conventions.b title of conventions.b');
  });

  it('does not share state between reports', () => {
    const result = sample();
    expect(toJunitXml(result)).to.equal(toJunitXml(result));
  });

  it('writes the file, creating parent folders', async () => {
    const result = sample();
    const file = join(tmp.path, 'a', 'b', 'junit.xml');
    await writeJunitReport(result, file);
    expect(await readFile(file, 'utf8')).to.equal(toJunitXml(result));
  });

  it('suffixes the testcase id with @profile for a check run under a front-end profile (--frontend all)', () => {
    const result = runResult([
      checkResult('vring.x', 'pass', '', { frontend: 'qemu' }),
      checkResult('vring.x', 'fail', 'no', { frontend: 'dpdk' }),
    ]);
    const xml = toJunitXml(result);
    expect(xml).to.contain('name="vring.x@qemu title of vring.x"');
    expect(xml).to.contain('name="vring.x@dpdk title of vring.x"');
  });
});
