/**
 * The case file of a failure found by fuzzing: the shrunk steps, exactly as they are sent, with the seed that
 * found them and the verdict they gave. `vhu-conform replay <case.json> <binary>` sends them again.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { Step } from './steps.js';

export const CASE_FORMAT = 'vhu-conform-fuzz-case';
export const CASE_VERSION = 1;

export interface FuzzCase {
  format: typeof CASE_FORMAT;
  version: typeof CASE_VERSION;
  /** The check that found it. */
  check: string;
  /** The fast-check seed of the run that found it, and the path of the shrunk counterexample. */
  seed: number;
  path: string;
  /** The back-end it failed: binary (or attach socket) and extra arguments. */
  backend: { binary: string | null; connect?: string; args: string[] };
  /** What the last step did: the verdict (fail or timeout) and the oracle's words. */
  verdict: 'fail' | 'timeout';
  message: string;
  /**
   * The sequences it fails after only, when it does (found on a back-end kept from one sequence to the next):
   * sent first, on the same connection, each ended by the reset the search made between sequences (the rings
   * stopped, or a new connection to a back-end that keeps listening).
   */
  before?: Step[][];
  /** The steps, in order; the oracle runs after each. */
  steps: Step[];
}

export function caseJson(fuzzCase: FuzzCase): string {
  return `${JSON.stringify(fuzzCase, null, 2)}\n`;
}

/** Parses and checks a case file's text; a UsageError says what is wrong with it. */
export function parseCase(text: string, where = 'the case file'): FuzzCase {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where} is not JSON: ${(err as Error).message}`);
  }
  const c = doc as Partial<FuzzCase> | null;
  if (c?.format !== CASE_FORMAT) throw new UsageError(`${where} is not a ${CASE_FORMAT} file`);
  if (c.version !== CASE_VERSION)
    throw new UsageError(`${where}: version ${String(c.version)}, this vhu-conform reads ${CASE_VERSION}`);
  if (!Array.isArray(c.steps) || !c.steps.every(isStep)) throw new UsageError(`${where}: malformed steps`);
  if (
    c.before !== undefined &&
    !(Array.isArray(c.before) && c.before.every((s) => Array.isArray(s) && s.every(isStep)))
  )
    throw new UsageError(`${where}: malformed sequences before`);
  if (typeof c.seed !== 'number' || typeof c.check !== 'string')
    throw new UsageError(`${where}: no seed or check`);
  return c as FuzzCase;
}

function isStep(step: unknown): step is Step {
  const s = step as Partial<Step> | null;
  if (s?.kind === 'message')
    return (
      typeof s.request === 'number' &&
      typeof s.flags === 'number' &&
      typeof s.size === 'number' &&
      typeof s.payload === 'string' &&
      /^([0-9a-f]{2})*$/.test(s.payload) &&
      Array.isArray(s.fds) &&
      s.fds.every((k) => k === 'memory' || k === 'eventfd' || k === 'memfd')
    );
  if (s?.kind === 'request')
    return (
      typeof s.ring === 'number' &&
      typeof s.head === 'number' &&
      typeof s.availSlot === 'number' &&
      typeof s.availIdx === 'number' &&
      Array.isArray(s.descriptors)
    );
  return false;
}

export async function loadCase(file: string): Promise<FuzzCase> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the case file ${file}: ${(err as Error).message}`);
  }
  return parseCase(text, file);
}

/** Saves `fuzzCase` in `dir` as fuzz-<check>-seed<seed>.json; returns the absolute path. */
export async function saveCase(dir: string, fuzzCase: FuzzCase): Promise<string> {
  const file = path.resolve(dir, `fuzz-${fuzzCase.check}-seed${fuzzCase.seed}.json`);
  await writeFile(file, caseJson(fuzzCase));
  return file;
}
