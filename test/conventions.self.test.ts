/**
 * The conventions suite against our fixtures: the reference back-end passes every check, and each flawed
 * variant fails exactly the checks its flaw breaks, which proves every check can fail.
 */

import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { FLAWS, type Flaw } from '../fixtures/backend/flaws.js';
import { allChecks } from '../suites/index.js';
import {
  broken,
  type CliRun,
  fixture,
  leftovers,
  messageOf,
  runCli,
  tempLeftovers,
  verdicts,
} from './helpers.js';

const TIMEOUT = ['--timeout', '1500'];
/** The gpu device checks: they run against the gpu reference, and skip for a block device. */
const GPU = allChecks.filter((c) => c.id.startsWith('devices.gpu.')).map((c) => c.id);

/** Checks a flaw breaks besides its own (fixtures/backend/flaws.ts names its own). */
const ALSO_FAILS: Partial<Record<Flaw, string[]>> = {
  // A reply without the reply flag breaks the --fd exchange as well.
  'bad-reply-flags': ['conv.fd.works'],
};

/** Variant -> the checks it must fail (fail or timeout), and nothing else. The chaos variant is for reliability. */
const EXPECTED = Object.entries(FLAWS)
  .filter(([flaw]) => flaw !== 'chaos')
  .map(([flaw, check]) => ({ flaw, fails: [check, ...(ALSO_FAILS[flaw as Flaw] ?? [])] }));

/** Descriptor folders that break one descriptor rule each, run against the reference back-end. */
const DESCRIPTOR_FLAWS: Array<{
  name: string;
  files: (ref: string, dir: string) => Record<string, string>;
  fails: string[];
}> = [
  {
    name: 'a malformed file',
    files: (ref) => ({
      '10-ok.json': JSON.stringify({ description: 'd', type: 'block', binary: ref }),
      '20-bad.json': '{"type": "block",',
    }),
    fails: ['conv.descriptor.schema'],
  },
  {
    name: 'a relative and a non-executable binary',
    files: (_ref, dir) => ({
      '10-rel.json': JSON.stringify({ description: 'd', type: 'gpu', binary: 'bin/backend' }),
      '20-plain.json': JSON.stringify({ description: 'd', type: 'gpu', binary: path.join(dir, 'plain.sh') }),
      'plain.sh': '#!/bin/sh\n',
    }),
    fails: ['conv.descriptor.binary'],
  },
  {
    name: 'the wrong type for the reference',
    files: (ref) => ({ '50-ref.json': JSON.stringify({ description: 'd', type: 'gpu', binary: ref }) }),
    fails: ['conv.descriptor.type'],
  },
];

/** Descriptor folders: general (a good file naming the reference) and specific (one that masks another). */
async function descriptorDirs(root: string, reference: string): Promise<string> {
  const share = path.join(root, 'share');
  const etc = path.join(root, 'etc');
  await mkdir(share, { recursive: true });
  await mkdir(etc, { recursive: true });
  const doc = (over: object) =>
    JSON.stringify({ description: 'vhu-conform reference', type: 'block', binary: reference, ...over });
  await writeFile(path.join(share, '50-reference.json'), doc({}));
  await writeFile(path.join(share, '60-masked.json'), '{ broken');
  await writeFile(path.join(etc, '60-masked.json'), '');
  return `${share}:${etc}`;
}

function expectClean(run: CliRun): void {
  expect(leftovers(run.marker), 'processes left running').to.deep.equal([]);
  expect(tempLeftovers(run), 'temp files left').to.deep.equal([]);
}

describe('conventions suite against the fixtures', function () {
  this.timeout(120_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let dirs: string;
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-', unsafeCleanup: true });
    dirs = await descriptorDirs(tmp.path, fixture('vhu-reference'));
  });
  after(() => tmp.cleanup());

  it('the reference back-end passes every check', async () => {
    const run = await runCli([...TIMEOUT, '--descriptor-dirs', dirs, fixture('vhu-reference')]);
    const all = verdicts(run.report);
    expect(Object.keys(all), 'every check ran').to.have.members(allChecks.map((c) => c.id));
    // The gpu checks do not apply to a block device: they are skipped, saying so.
    const notPassed = Object.entries(all).filter(
      ([id, v]) => v !== 'pass' && !(v === 'skip' && GPU.includes(id)),
    );
    expect(notPassed, run.stdout).to.deep.equal([]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(messageOf(run.report, 'conv.fd.form')).to.match(
      /connected socket at fd 3: works.*listening socket at fd 3: works/,
    );
    expect(messageOf(run.report, 'conv.descriptor.found')).to.contain('50-reference.json');
    expectClean(run);
  });

  for (const { flaw, fails: expected } of EXPECTED) {
    it(`vhu-flaw-${flaw} fails ${expected.length === 1 ? expected[0] : `${expected[0]} and what depends on it`}`, async () => {
      const run = await runCli([...TIMEOUT, '--descriptor-dirs', dirs, fixture(`vhu-flaw-${flaw}`)]);
      expect(broken(run.report), run.stdout).to.have.members(expected);
      const errors = run.report?.checks.filter((c) => c.verdict === 'error') ?? [];
      expect(errors, 'harness errors').to.deep.equal([]);
      const must = expected.some((id) => allChecks.find((c) => c.id === id)?.severity === 'MUST');
      expect(run.exitCode, run.stderr).to.equal(must ? 1 : 0);
      expectClean(run);
    });
  }

  it('the gpu reference back-end passes every check that applies to a gpu device', async () => {
    const run = await runCli([...TIMEOUT, '--descriptor-dirs', dirs, fixture('vhu-reference-gpu')]);
    const all = verdicts(run.report);
    expect(Object.keys(all), 'every check ran').to.have.members(allChecks.map((c) => c.id));
    for (const id of GPU) expect(all[id], `${id}: ${messageOf(run.report, id)}`).to.equal('pass');
    // Skipped: the block driver's checks, the block options, and the descriptor that names another binary.
    const skipped = Object.entries(all)
      .filter(([, v]) => v === 'skip')
      .map(([id]) => id);
    expect(skipped, run.stdout).to.have.members([
      ...allChecks.filter((c) => c.area === 'vring').map((c) => c.id),
      'conv.descriptor.type',
      'conv.fail-early.missing-resource',
      'conv.options.features',
    ]);
    expect(broken(run.report), run.stdout).to.deep.equal([]);
    expect(messageOf(run.report, 'devices.gpu.pixels')).to.match(
      /scanout 0 saved as \S+devices\.gpu\.pixels-scanout0\.png/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('every MUST and SHOULD check is failed by some fixture', () => {
    const covered = new Set([
      ...EXPECTED.flatMap((e) => e.fails),
      ...DESCRIPTOR_FLAWS.flatMap((d) => d.fails),
    ]);
    const uncovered = allChecks.filter((c) => c.severity !== 'INFO' && !covered.has(c.id)).map((c) => c.id);
    expect(uncovered).to.deep.equal([]);
  });

  for (const { name, files, fails } of DESCRIPTOR_FLAWS) {
    it(`descriptor folder with ${name} fails ${fails.join(', ')}`, async () => {
      const folder = path.join(tmp.path, name.replace(/\W+/g, '-'));
      await mkdir(folder, { recursive: true });
      for (const [file, content] of Object.entries(files(fixture('vhu-reference'), folder))) {
        await writeFile(path.join(folder, file), content);
        if (file.endsWith('.sh')) await chmod(path.join(folder, file), 0o644);
      }
      const run = await runCli([
        ...TIMEOUT,
        '--descriptor-dirs',
        folder,
        '--grep',
        'descriptor',
        fixture('vhu-reference'),
      ]);
      expect(broken(run.report), run.stdout).to.have.members(fails);
      expect(run.exitCode).to.equal(0);
    });
  }
});
