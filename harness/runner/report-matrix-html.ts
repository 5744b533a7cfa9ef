/**
 * `--all --html`: matrix.html, the back-end x check table of the run as one page with no external asset, each
 * back-end's column linking to its own report.html and each cell to the check there.
 */
import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensureDir } from '../util/fs.js';
import type { BackendMatrix, MatrixBackend } from './backend-matrix.js';
import { escapeHtml, REPORT_CSS } from './report-html.js';

/** A back-end's own report page, relative to matrix.html (each run's reports are in <reports>/<name>/). */
const reportOf = (b: MatrixBackend) => `${encodeURIComponent(b.name)}/report.html`;

function backendHtml(b: MatrixBackend): string {
  const how = b.problems
    ? `<span class="badge v-error">not run</span> ${escapeHtml(b.problems.join('; '))}`
    : `exit ${b.exitStatus}: ${b.summary!.passed} passed, ${b.summary!.failed} failed, ${b.summary!.timedOut} timed out` +
      ` (<a href="${escapeHtml(reportOf(b))}">report</a>)`;
  return `<tr><th>${escapeHtml(b.name)}</th><td>${escapeHtml(b.binary ?? '?')}</td><td>${escapeHtml(b.type ?? '?')}</td><td>${how}</td></tr>`;
}

/** The page: the back-ends and how each run ended, then the table (a check skipped by every back-end counted, not shown). */
export function matrixToHtml(matrix: BackendMatrix): string {
  const ids = Object.keys(matrix.checks);
  const shown = ids.filter((id) => Object.values(matrix.checks[id]!).some((v) => v !== 'skip'));
  const head = matrix.backends.map((b) => `<th>${escapeHtml(b.name)}</th>`).join('');
  const rows = shown.map((id) => {
    const cells = matrix.backends.map((b) => {
      const verdict = matrix.checks[id]![b.name];
      if (verdict === undefined) return '<td>-</td>';
      const link = `${reportOf(b)}#${encodeURIComponent(`check-${id}`)}`;
      return `<td><a class="badge v-${verdict}" href="${escapeHtml(link)}">${verdict}</a></td>`;
    });
    return `<tr><th class="id">${escapeHtml(id)}</th>${cells.join('')}</tr>`;
  });
  const hidden = ids.length - shown.length;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>vhu-conform: ${matrix.backends.length} back-ends</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<h1>vhu-conform: ${matrix.backends.length} back-ends</h1>
<table class="facts"><tr><th>back-end</th><th>binary</th><th>type</th><th>run</th></tr>${matrix.backends.map(backendHtml).join('')}</table>
<table class="matrix"><tr><th>check</th>${head}</tr>${rows.join('')}</table>
${hidden ? `<p>${hidden} more check${hidden === 1 ? '' : 's'} skipped by every back-end, not shown.</p>` : ''}
</body>
</html>
`;
}

/** Writes {@link matrixToHtml} of `matrix` to `file`, creating its parent folders. */
export async function writeMatrixHtml(matrix: BackendMatrix, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, matrixToHtml(matrix), 'utf8');
}
