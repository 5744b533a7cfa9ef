import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import junit, { type Builder, type TestCase, type TestSuite } from 'junit-report-builder';
import { ensureDir } from '../util/fs.js';
import { type CheckResult, checkKey, failsRun, type RunResult } from './types.js';

// The typings declare `export default`, but the CommonJS entry Node loads assigns the builder to
// module.exports, so the default import is the builder itself; accept either shape.
const rootBuilder: Builder =
  (junit as unknown as { default?: Builder }).default ?? (junit as unknown as Builder);

type XmlElement = ReturnType<TestCase['build']>;

/** Everything outside the XML 1.0 `Char` production: C0 controls but \t \n \r, lone surrogates, U+FFFE/FFFF. */
const NOT_XML_CHAR = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * Removes the characters XML 1.0 cannot carry at all, even escaped. Markup characters (`<`, `&`, ...) are
 * left for the XML writer to escape.
 */
export function xmlSafe(text: string): string {
  return text.replace(NOT_XML_CHAR, '');
}

/** Seconds with millisecond precision, as JUnit's `time` attributes expect. */
function seconds(ms: number): number {
  return Math.round(ms) / 1000;
}

/**
 * The JUnit XML report, valid against Jenkins' xUnit schema (junit-10.xsd): one `<testsuite>` per area, in the
 * order areas first appear, one `<testcase>` per check. A verdict that fails the run ({@link failsRun}) is a
 * `<failure>`, so that CI and the exit status agree: a SHOULD (or INFO) check that failed or timed out is a
 * passed testcase whose `<system-out>` says `SHOULD not met: ...` unless the run was strict; so is a failure
 * the baseline expected, whose `<system-out>` gives the baseline's reason. ERROR is `<error>`, SKIP is
 * `<skipped>`. The schema allows no `<properties>` in a testcase: each testcase's severity, spec anchor and
 * the rule it enforces (quoted) head its `<system-out>`; its stderr tail is its `<system-err>`.
 */
export function toJunitXml(result: RunResult): string {
  const builder = rootBuilder.newBuilder().name('vhu-conform');
  const suites = new Map<string, { suite: TestSuite; ms: number }>();
  for (const check of result.checks) {
    let entry = suites.get(check.area);
    if (!entry) {
      entry = { suite: newSuite(builder, check.area, result), ms: 0 };
      suites.set(check.area, entry);
    }
    entry.ms += check.durationMs;
    addTestCase(entry.suite, check, result.options.strict);
  }
  for (const { suite, ms } of suites.values()) suite.time(seconds(ms));
  // The library counts skips on <testsuites> too, an attribute junit-10.xsd does not allow there.
  return `${builder.build().replace(/^(<testsuites\b[^>]*?) skipped="\d+"/m, '$1')}\n`;
}

function newSuite(builder: Builder, area: string, result: RunResult): TestSuite {
  const { backend, tool } = result;
  return builder
    .testSuite()
    .name(xmlSafe(area))
    .timestamp(xmlSafe(result.startedAt))
    .property('tool', xmlSafe(`${tool.name} ${tool.version}`))
    .property('backend.binary', xmlSafe(backend.binary ?? ''))
    .property('backend.connect', xmlSafe(backend.connect ?? ''))
    .property('backend.args', xmlSafe(backend.args.join(' ')))
    .property('backend.type', xmlSafe(backend.type ?? ''))
    .property('strict', String(result.options.strict))
    .property('baseline', xmlSafe(result.options.baseline ?? ''))
    .property('interrupted', String(result.interrupted));
}

function addTestCase(suite: TestSuite, check: CheckResult, strict: boolean): void {
  const message = xmlSafe(check.message);
  const testCase = suite
    .testCase()
    .className(xmlSafe(`vhu-conform.${check.area}`))
    .name(xmlSafe(`${checkKey(check)} ${check.title}`))
    .time(seconds(check.durationMs));
  const failing = failsRun(check, strict);
  if (failing) testCase.failure(`[${check.severity}] ${message}`, check.verdict);
  else if (check.verdict === 'error') testCase.error(`[${check.severity}] ${message}`, check.verdict);
  else if (check.verdict === 'skip') testCase.skipped();
  const out = [`severity: ${check.severity}`, `spec: ${xmlSafe(check.spec)}`];
  if (check.rule !== undefined) out.push(`rule: ${xmlSafe(check.rule)}`);
  if (check.interop) out.push('interoperability: what real peers do, not a sentence of the spec');
  const expected = check.expected && xmlSafe(check.expected.reason);
  if (expected !== undefined && check.verdict === 'pass')
    out.push(`fixed: the baseline expected a failure (${expected}); it passes now`);
  else if (expected !== undefined && (check.verdict === 'fail' || check.verdict === 'timeout'))
    out.push(`expected failure, in the baseline: ${expected}`);
  if (check.verdict === 'pass' && message !== '') out.push(message);
  else if (!failing && (check.verdict === 'fail' || check.verdict === 'timeout'))
    out.push(`${check.severity} not met${check.verdict === 'timeout' ? ' (timed out)' : ''}: ${message}`);
  // The library writes bodies and <system-err> as CDATA and splits only the first `]]>`, so a second one in
  // back-end output would end the section and inject markup; those parts are added as escaped text instead,
  // together with the skip reason, which its skipped() cannot take.
  const build = testCase.build.bind(testCase);
  testCase.build = (parent) => {
    const element = build(parent);
    if (message !== '') {
      if (check.verdict === 'skip') childElement(element, 'skipped')?.att('message', message);
      else if (failing || check.verdict === 'error')
        childElement(element, failing ? 'failure' : 'error')?.txt(message);
    }
    element.ele('system-out', {}, out.join('\n'));
    if (check.stderrTail) element.ele('system-err', {}, xmlSafe(check.stderrTail));
    return element;
  };
}

function childElement(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((node): node is XmlElement => 'name' in node && node.name === name);
}

/** Writes {@link toJunitXml} of `result` to `file`, creating its parent folders. */
export async function writeJunitReport(result: RunResult, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, toJunitXml(result), 'utf8');
}
