/** `--list`: every check with its id, severity, anchor, title and the sentence it enforces, as text or Markdown. */
import type { Check } from './check.js';

export type ListFormat = 'text' | 'markdown';
export const LIST_FORMATS: readonly ListFormat[] = ['text', 'markdown'];

export function formatCheckList(checks: readonly Check[], format: ListFormat): string {
  return format === 'markdown' ? markdownTable(checks) : textList(checks);
}

function textList(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.id.length));
  const indent = ' '.repeat(width + 2);
  const lines = checks.flatMap((c) => [
    `${c.id.padEnd(width)}  ${severityOf(c).padEnd(6)}  ${c.spec}`,
    `${indent}${c.title}`,
    ...(c.rule ? [`${indent}rule: ${c.rule}`] : []),
  ]);
  return `${[...lines, `${checks.length} checks`].join('\n')}\n`;
}

/** The README's table of checks: `| id | severity | spec anchor | what it checks | the rule it enforces |`. */
function markdownTable(checks: readonly Check[]): string {
  const rows = checks.map((c) =>
    [`\`${c.id}\``, severityOf(c), c.spec, cell(c.detail ?? c.title), cell(c.rule ?? '')].join(' | '),
  );
  return `${[
    '| id | severity | spec anchor | what it checks | the rule it enforces |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r} |`),
  ].join('\n')}\n`;
}

/** The severity, with `interop` for a check of what real peers do rather than of a sentence of the spec. */
function severityOf(check: Check): string {
  return check.interop ? `${check.severity} (interop)` : check.severity;
}

/** Text fit for one Markdown table cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}
