/**
 * The reports of real runs as a CI server takes them: junit.xml valid against Jenkins' xUnit schema
 * (shared/junit/junit-10.xsd beside the clone, checked with xmllint from Debian's libxml2-utils), its verdicts
 * agreeing with the exit status, and report.json valid against the JSON Schema the package ships.
 */
import { expect } from 'chai';
import { toJunitXml } from '../harness/runner/report-junit.js';
import { checkResult, runResult } from '../harness/runner/testing.js';
import { validateReport } from '../harness/schemas/validate.js';
import { type CliRun, expectClean, fixture, runCli, xmllintErrors } from './helpers.js';

/** Decodes what an attribute or text node of the report escapes. */
function decode(text: string): string {
  return text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replaceAll('&amp;', '&');
}

interface Case {
  name: string;
  body: string;
}

function testcases(xml: string): Case[] {
  return [...xml.matchAll(/<testcase\b[^>]*\bname="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map(
    (m) => ({
      name: decode(m[1]!),
      body: m[2] ?? '',
    }),
  );
}

/** Valid JUnit and JSON, a `<failure>` exactly when the exit status is 1, and no harness fault. */
async function expectValidReports(run: CliRun): Promise<string> {
  expect(run.junit, `no junit.xml; stderr: ${run.stderr}`).to.be.a('string');
  const xml = run.junit!;
  expect(await xmllintErrors(xml), 'xmllint --schema junit-10.xsd').to.equal('');
  expect(validateReport(run.report), 'report.json against report.schema.json').to.deep.equal([]);
  expect(run.report?.summary.errors).to.equal(0);
  const failures = (xml.match(/<failure\b/g) ?? []).length;
  expect(failures > 0, `${failures} <failure> with exit status ${run.exitCode}`).to.equal(run.exitCode === 1);
  for (const c of run.report!.checks.filter((r) => r.stderrTail)) {
    const body = testcases(xml).find((t) =>
      t.name.startsWith(`${c.id}${c.frontend ? `@${c.frontend}` : ''} `),
    )!.body;
    expect(decode(body), `${c.id}: its stderr tail`).to.contain(`<system-err>${c.stderrTail}</system-err>`);
  }
  expectClean(run);
  return xml;
}

describe('reports: junit.xml valid against junit-10.xsd, report.json against its schema', function () {
  this.timeout(60_000);

  it('a hand-made result with every verdict and hostile text validates', async () => {
    const nasty = 'expected <reply> & "flags" 0x5, got ]]> \u0000 then \x1b[31mred\x1b[0m';
    const result = runResult([
      checkResult('conventions.a', 'pass', 'fact'),
      checkResult('conventions.b', 'fail', nasty, { stderrTail: `tail ]]> ]]><inject/> ${nasty}` }),
      checkResult('protocol.c', 'timeout', 'timed out'),
      checkResult('protocol.d', 'skip', nasty, { severity: 'SHOULD' }),
      checkResult('protocol.e', 'fail', nasty, { severity: 'SHOULD' }),
      checkResult('vring.f', 'error', nasty, { durationMs: 1_234_567 }),
      checkResult('vring.g', 'pass', '', { frontend: 'dpdk' }),
    ]);
    expect(await xmllintErrors(toJunitXml(result))).to.equal('');
    expect(
      await xmllintErrors(toJunitXml({ ...result, options: { ...result.options, strict: true } })),
    ).to.equal('');
  });

  it('--frontend all: testcases named <id>@<profile>, a skip among them; exit 0, no <failure>', async () => {
    const run = await runCli([
      '--frontend',
      'all',
      '--grep',
      '^vring\\.blk\\.indirect$',
      fixture('vhu-reference'),
    ]);
    expect(run.exitCode, run.stderr).to.equal(0);
    const xml = await expectValidReports(run);
    const names = testcases(xml).map((c) => c.name.split(' ')[0]);
    expect(names).to.deep.equal(
      ['qemu', 'qemu-7.2', 'qemu-legacy', 'dpdk', 'cloud-hypervisor', 'crosvm'].map(
        (p) => `vring.blk.indirect@${p}`,
      ),
    );
    const crosvm = testcases(xml).find((c) => c.name.startsWith('vring.blk.indirect@crosvm'))!;
    expect(decode(crosvm.body)).to.match(/<skipped message="the crosvm front-end profile does not pass/);
    expect(run.report?.options).to.include({
      frontend: 'all',
      grep: '^vring\\.blk\\.indirect$',
      strict: false,
    });
    expect(run.report?.matrix?.profiles).to.have.length(6);
    expect(run.report?.interrupted).to.equal(false);
  });

  it('a MUST failure is a <failure> with the message, its severity and spec in <system-out>; exit 1', async () => {
    const run = await runCli(['--grep', '^conv\\.caps\\.', fixture('vhu-flaw-caps-exit-status')]);
    expect(run.exitCode, run.stderr).to.equal(1);
    const xml = await expectValidReports(run);
    const exit = testcases(xml).find((c) => c.name.startsWith('conv.caps.exit '))!;
    const message = run.report!.checks.find((c) => c.id === 'conv.caps.exit')!.message;
    expect(decode(exit.body)).to.contain(`<failure message="[MUST] ${message}" type="fail">`);
    expect(decode(exit.body)).to.contain('severity: MUST\nspec: vhost-user.rst#backend-program-conventions');
  });

  // robust.ctl.request-id is a SHOULD (no sentence forbids a hang on bad input): --strict makes it fail the run.
  it('a timeout is a <failure type="timeout">, the back-end stderr tail in <system-err>; exit 1', async () => {
    const run = await runCli([
      '--strict',
      '--timeout',
      '500',
      '--grep',
      '^robust\\.ctl\\.request-id$',
      fixture('vhu-flaw-hang-on-unknown-request'),
    ]);
    expect(run.exitCode, run.stderr).to.equal(1);
    const xml = await expectValidReports(run);
    expect(xml).to.match(/<failure message="\[SHOULD\] [^"]*" type="timeout">/);
    expect(run.report?.options.timeoutMs).to.equal(500);
    expect(run.report?.checks[0]?.stderrTail, 'the hanging back-end logs to stderr').to.contain(
      'listening on',
    );
  });

  it('a SHOULD failure: a passed testcase saying "SHOULD not met" and exit 0; under --strict a <failure> and exit 1', async () => {
    const args = ['--grep', 'socket-removed', fixture('vhu-flaw-socket-left')];
    const lenient = await runCli(args);
    expect(lenient.exitCode, lenient.stderr).to.equal(0);
    const xml = await expectValidReports(lenient);
    const [socket] = testcases(xml);
    expect(decode(socket!.body)).to.match(
      /<system-out>severity: SHOULD\nspec: [^\n]+\n(?:rule: [^\n]+\n)?(?:interoperability: [^\n]+\n)?SHOULD not met: \S/,
    );
    expect(xml).to.match(/<testsuite [^>]*failures="0"/);

    const strict = await runCli(['--strict', ...args]);
    expect(strict.exitCode, strict.stderr).to.equal(1);
    expect(await expectValidReports(strict)).to.match(/<failure message="\[SHOULD\] [^"]*" type="fail">/);
    expect(strict.report?.options.strict).to.equal(true);
  });

  it('report.json records the seed, and `interrupted` after a Ctrl-C (exit 130)', async () => {
    const run = await runCli(['--seed', '77', '--grep', '^conv\\.caps\\.', fixture('vhu-reference')], {
      interruptOnStdout: /conv\.caps\.exit/,
    });
    expect(run.exitCode, run.stderr).to.equal(130);
    expect(run.report?.interrupted).to.equal(true);
    expect(run.report?.options.seed).to.equal(77);
    expect(validateReport(run.report)).to.deep.equal([]);
    expect(await xmllintErrors(run.junit!)).to.equal('');
    expect(run.junit).to.contain('<property name="interrupted" value="true"/>');
    expectClean(run);
  });
});
