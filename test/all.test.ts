/**
 * `--all`: every back-end the descriptor files describe, each under its type, then the back-end x check
 * matrix: our reference, a flawed fixture, Debian's vhost-user-gpu through its own descriptor, and a
 * descriptor with problems.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { chromium } from 'playwright-core';
import { dir } from 'tmp-promise';
import type { BackendMatrix } from '../harness/runner/backend-matrix.js';
import type { RunResult } from '../harness/runner/types.js';
import { validateMatrix, validateReport } from '../harness/schemas/validate.js';
import { expectClean, fixture, runCli } from './helpers.js';

const GPU_DESCRIPTOR = '/usr/share/qemu/vhost-user/50-qemu-gpu.json';

describe('--all: every back-end the descriptors describe, and the back-end x check matrix', function () {
  this.timeout(120_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-all-', unsafeCleanup: true });
  });
  after(() => tmp?.cleanup());

  it('runs each in effect under its type, reports each in its folder, fails on the flaw and the broken descriptor', async () => {
    const descriptors = path.join(tmp.path, 'vhost-user');
    const reports = path.join(tmp.path, 'reports');
    const describe = (binary: string, type: string) =>
      `${JSON.stringify({ description: 'test', type, binary })}\n`;
    await mkdir(descriptors);
    await writeFile(path.join(descriptors, '40-reference.json'), describe(fixture('vhu-reference'), 'block'));
    await writeFile(
      path.join(descriptors, '45-flaw.json'),
      describe(fixture('vhu-flaw-caps-exit-status'), 'block'),
    );
    await copyFile(GPU_DESCRIPTOR, path.join(descriptors, '50-qemu-gpu.json'));
    await writeFile(path.join(descriptors, '60-broken.json'), describe('relative/backend', 'block'));

    const run = await runCli([
      '--all',
      '--descriptor-dirs',
      descriptors,
      '--grep',
      '^conv\\.(caps|socket-path)\\.',
      '--reports',
      reports,
    ]);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(1);
    const lines = run.stdout.split('\n');
    expect(lines).to.include('check                         40-reference  45-flaw  50-qemu-gpu  60-broken');
    expect(lines.find((l) => l.startsWith('conv.caps.exit '))).to.match(
      /^conv\.caps\.exit +pass +fail +pass +- *$/,
    );
    expect(run.stdout).to.contain('note: 60-broken: not run, its descriptor');
    expect(run.stdout).to.contain('binary is not an absolute path: relative/backend');
    expect(lines).to.include(
      `45-flaw: ${fixture('vhu-flaw-caps-exit-status')} (type block): exit 1: 4 passed, 1 failed, 0 timed out`,
    );

    const matrix = JSON.parse(await readFile(path.join(reports, 'matrix.json'), 'utf8')) as BackendMatrix;
    expect(validateMatrix(matrix)).to.deep.equal([]);
    expect(matrix.backends.map((b) => [b.name, b.type, b.exitStatus])).to.deep.equal([
      ['40-reference', 'block', 0],
      ['45-flaw', 'block', 1],
      ['50-qemu-gpu', 'gpu', 0],
      ['60-broken', 'block', undefined],
    ]);
    expect(matrix.checks['conv.caps.exit']).to.deep.equal({
      '40-reference': 'pass',
      '45-flaw': 'fail',
      '50-qemu-gpu': 'pass',
    });
    // Each back-end's own reports, as a run of it alone writes them.
    const gpu = JSON.parse(
      await readFile(path.join(reports, '50-qemu-gpu', 'report.json'), 'utf8'),
    ) as RunResult;
    expect(validateReport(gpu)).to.deep.equal([]);
    expect([gpu.backend.binary, gpu.backend.type]).to.deep.equal(['/usr/lib/qemu/vhost-user-gpu', 'gpu']);
    expect(await readFile(path.join(reports, '45-flaw', 'junit.xml'), 'utf8')).to.contain('<failure');
    expectClean(run);
  });

  it("--html: matrix.html links each cell to the check in that back-end's own report, in a real browser", async () => {
    const descriptors = path.join(tmp.path, 'html-descriptors');
    const reports = path.join(tmp.path, 'html-reports');
    await mkdir(descriptors);
    const describe = (binary: string) =>
      `${JSON.stringify({ description: 'test', type: 'block', binary })}\n`;
    await writeFile(path.join(descriptors, '40-reference.json'), describe(fixture('vhu-reference')));
    await writeFile(path.join(descriptors, '45-flaw.json'), describe(fixture('vhu-flaw-caps-exit-status')));
    const run = await runCli([
      '--all',
      '--html',
      '--descriptor-dirs',
      descriptors,
      '--grep',
      '^conv\\.caps\\.',
      '--reports',
      reports,
    ]);
    expect(run.exitCode, run.stdout + run.stderr).to.equal(1);
    expect(run.stdout).to.contain(`report: ${path.join(reports, 'matrix.html')}`);
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${path.join(reports, 'matrix.html')}`);
      const row = page.locator('table.matrix tr', {
        has: page.locator('th', { hasText: /^conv\.caps\.exit$/ }),
      });
      expect(await row.locator('td').allInnerTexts()).to.deep.equal(['pass', 'fail']);
      await row.locator('td a').nth(1).click();
      await page.waitForURL(/45-flaw\/report\.html#check-conv\.caps\.exit$/);
      const section = page.locator('section[id="check-conv.caps.exit"]');
      expect(await section.getAttribute('data-verdict')).to.equal('fail');
      expect(await section.isVisible()).to.equal(true);
    } finally {
      await browser.close();
    }
    expectClean(run);
  });

  it('takes no back-end, --connect, --baseline or --type of its own: a usage error before any run', async () => {
    const run = await runCli(['--all', '--type', 'block', fixture('vhu-reference')]);
    expect(run.exitCode).to.equal(2);
    expect(run.stderr).to.contain(`it takes no back-end argument (${fixture('vhu-reference')}), --type`);
    expect(run.stdout).to.not.match(/^(PASS|FAIL) /m);
    const none = await runCli(['--all', '--descriptor-dirs', path.join(tmp.path, 'nothing-here')]);
    expect(none.exitCode).to.equal(2);
    expect(none.stderr).to.contain('--all: no descriptor file in effect in');
  });
});
