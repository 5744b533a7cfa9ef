/**
 * The layers of harness/ point one way: a module imports only from its own folder and the folders below it
 * (../shared/STYLE.md, "Keep layers pointing one way"). The order, lowest first: the device drivers need of
 * a ring only the queue contract (virtqueue/port.ts), and the front-end, which runs the rings under each
 * profile, asks the devices what to pass on for them (issue 12's device registry). The
 * checks (suites/) and the fixtures sit above the library: the library imports neither, but for the CLI and
 * the API, which hand runConformance the checks.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT } from './helpers.js';

/** harness/ folders, lowest first; a module may import from its own rank or lower. */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'util', 'schemas'],
  ['sys'],
  ['protocol'],
  ['memory'],
  ['transport'],
  ['virtqueue'],
  ['process'],
  ['devices'],
  ['frontend'],
  ['fuzz'],
  ['runner'],
  ['abi', 'descriptors', 'load'],
  ['cli', 'api.ts'],
];

/** The library's modules may import the checks here only. */
const MAY_IMPORT_SUITES: ReadonlySet<string> = new Set(['harness/cli/program.ts', 'harness/api.ts']);

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(rel);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && entry.name !== 'testing.ts'
      ? [rel]
      : [];
  });
}

/** The repository-relative .ts files a module imports (relative imports only). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom '(\.[^']+)'/gms)].map((m) =>
    path.join(path.dirname(file), m[1]!.replace(/\.js$/, '.ts')),
  );
}

/** A harness module's layer: the rank of its folder (or of the file, directly in harness/). */
function rank(file: string): number {
  const part = file.split(path.sep)[1]!;
  const at = LAYERS.findIndex((layer) => layer.includes(part));
  if (at < 0) throw new Error(`${file}: harness/${part} has no layer in test/layers.test.ts`);
  return at;
}

describe('layers', () => {
  const files = sources('harness');

  it('every harness folder has a layer', () => {
    for (const file of files) rank(file);
  });

  it('no harness module imports from a layer above its own', () => {
    const upward = files.flatMap((file) =>
      importsOf(file)
        .filter((to) => to.startsWith(`harness${path.sep}`) && rank(to) > rank(file))
        .map((to) => `${file} -> ${to}`),
    );
    expect(upward).to.deep.equal([]);
  });

  it('the library imports no fixture, and no check but to hand them over (CLI, API)', () => {
    const wrong = files.flatMap((file) =>
      importsOf(file)
        .filter(
          (to) =>
            to.startsWith(`fixtures${path.sep}`) ||
            (to.startsWith(`suites${path.sep}`) && !MAY_IMPORT_SUITES.has(file)),
        )
        .map((to) => `${file} -> ${to}`),
    );
    expect(wrong).to.deep.equal([]);
  });
});
