/**
 * `--all`: every back-end the descriptor files in effect describe (--discover's precedence), each run under
 * the type its descriptor declares, its reports in <reports>/<descriptor name>/; then the back-end x check
 * matrix on the console and in <reports>/matrix.json. A descriptor with problems is not run: it is a column
 * of its own that says why, and it fails the run as it fails --discover.
 */
import path from 'node:path';
import { discoverDescriptors, lintDescriptor } from '../descriptors/discover.js';
import { UsageError } from '../errors.js';
import { backendMatrix, type MatrixRun, writeMatrixReport } from '../runner/backend-matrix.js';
import type { ConsoleReporter } from '../runner/console.js';
import { writeMatrixHtml } from '../runner/report-matrix-html.js';
import type { RunResult } from '../runner/types.js';
import { EXIT } from './exit.js';

export type RunOne = (
  target: { binary: string; type?: string },
  reportsDir: string,
) => Promise<{ result: RunResult; exitStatus: number }>;

export async function runAll(
  dirs: string[],
  reportsDir: string,
  reporter: ConsoleReporter,
  signal: AbortSignal,
  runOne: RunOne,
  /** With --html: matrix.html too, linking each back-end's report.html. */
  html = false,
): Promise<number> {
  const found = discoverDescriptors(dirs);
  if (!found.effective.length)
    throw new UsageError(`--all: no descriptor file in effect in ${dirs.join(', ') || '(no folder)'}`);
  const runs: MatrixRun[] = [];
  let status: number = EXIT.ok;
  for (const file of found.effective) {
    if (signal.aborted) break;
    const lint = lintDescriptor(file);
    const name = file.name.replace(/\.json$/, '');
    const binary = typeof lint.document?.binary === 'string' ? lint.document.binary : null;
    const type = typeof lint.document?.type === 'string' ? lint.document.type : null;
    const problems = [...lint.schemaErrors, ...lint.binaryErrors];
    const backend = { name, descriptor: file.path, binary, type };
    if (problems.length || binary === null) {
      reporter.note(`${name}: not run, its descriptor ${file.path} has problems: ${problems.join('; ')}`);
      runs.push({ backend: { ...backend, problems } });
      status = Math.max(status, EXIT.mustFailed);
      continue;
    }
    const dir = path.join(reportsDir, name);
    const { result, exitStatus } = await runOne({ binary, ...(type ? { type } : {}) }, dir);
    runs.push({
      backend: {
        ...backend,
        reports: { junit: path.join(dir, 'junit.xml'), json: path.join(dir, 'report.json') },
        summary: result.summary,
        exitStatus,
      },
      result,
    });
    status = Math.max(status, exitStatus);
  }
  const matrix = backendMatrix(runs);
  reporter.table(
    matrix.backends.map((b) => b.name),
    matrix.checks,
    'back-end',
  );
  reporter.backends(matrix.backends);
  const file = path.join(reportsDir, 'matrix.json');
  await writeMatrixReport(matrix, file).catch((err: Error) => {
    throw new UsageError(`cannot write the report ${file}: ${err.message}`);
  });
  reporter.wrote('report', file);
  if (html) {
    const page = path.join(reportsDir, 'matrix.html');
    await writeMatrixHtml(matrix, page).catch((err: Error) => {
      throw new UsageError(`cannot write the report ${page}: ${err.message}`);
    });
    reporter.wrote('report', page);
  }
  return status;
}
