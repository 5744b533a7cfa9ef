/**
 * `--all`: the back-end x check matrix of the runs against every back-end the descriptor files describe, one
 * column per descriptor in effect (its file name), and matrix.json, its report (harness/schemas/matrix.schema.json).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RunResult, Summary, Verdict } from './types.js';
import { VERSION } from './version.js';

/** One back-end of the matrix: a descriptor that ran, or one whose problems kept it from running. */
export interface MatrixBackend {
  /** The descriptor's file name: the column's name. */
  name: string;
  descriptor: string;
  binary: string | null;
  type: string | null;
  /** The run's own reports, when it ran. */
  reports?: { junit: string; json: string };
  summary?: Summary;
  /** The exit status the run alone would have had. */
  exitStatus?: number;
  /** Why it did not run: the descriptor's problems, as --discover names them. */
  problems?: string[];
}

export interface BackendMatrix {
  format: 'vhu-conform-matrix';
  formatVersion: 1;
  tool: { name: string; version: string };
  backends: MatrixBackend[];
  /** Check id -> back-end name -> verdict, for every check that ran against one of them. */
  checks: Record<string, Record<string, Verdict>>;
}

/** One run of `--all` as the matrix takes it. */
export interface MatrixRun {
  backend: MatrixBackend;
  result?: RunResult;
}

export function backendMatrix(runs: MatrixRun[]): BackendMatrix {
  const checks: BackendMatrix['checks'] = {};
  for (const { backend, result } of runs) {
    for (const c of result?.checks ?? []) {
      // Under --frontend all a check runs once per profile: its worst verdict stands for the back-end.
      checks[c.id] ??= {};
      const cell = checks[c.id]!;
      const before = cell[backend.name];
      cell[backend.name] = before === undefined ? c.verdict : worse(before, c.verdict);
    }
  }
  return {
    format: 'vhu-conform-matrix',
    formatVersion: 1,
    tool: { name: 'vhu-conform', version: VERSION },
    backends: runs.map((r) => r.backend),
    checks,
  };
}

const RANK: Record<Verdict, number> = { error: 5, timeout: 4, fail: 3, pass: 2, skip: 1 };

function worse(a: Verdict, b: Verdict): Verdict {
  return RANK[b] > RANK[a] ? b : a;
}

export async function writeMatrixReport(matrix: BackendMatrix, file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(matrix, null, 2)}\n`);
}
