/**
 * The npm package as a back-end project installs it: packed, installed from the tarball into a folder of its
 * own (its dependencies from the registry), then its `vhu-conform` bin and its programmatic API used from there.
 */
import { existsSync } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import { ROOT } from './helpers.js';

describe('the npm package, installed from its tarball', function () {
  this.timeout(600_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let consumer: string;
  let tarball: string;

  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-package-', unsafeCleanup: true });
    // dist/ is built by `npm test` before the self-tests: pack what it holds, without building again.
    await execa('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp.path], { cwd: ROOT });
    const packed = (await readdir(tmp.path)).filter((f) => f.endsWith('.tgz'));
    expect(packed).to.have.length(1);
    tarball = path.join(tmp.path, packed[0]!);
    consumer = path.join(tmp.path, 'consumer');
    await execa('mkdir', [consumer]);
    await writeFile(
      path.join(consumer, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
    );
    await execa('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: consumer });
  });
  after(() => tmp?.cleanup());

  it('ships what runs, its types and licence, and no tests, benches or source maps', async () => {
    const { stdout } = await execa('tar', ['-tzf', tarball]);
    const files = stdout.split('\n');
    expect(files).to.include.members([
      'package/LICENSE',
      'package/dist/harness/cli/main.js',
      'package/dist/harness/api.js',
      'package/dist/harness/api.d.ts',
      'package/fixtures/bin/vhu-reference',
      'package/harness/schemas/report.schema.json',
      'package/harness/schemas/abi.schema.json',
    ]);
    expect(files.filter((f) => /\.test\.|\.map$|\/test\/|\/bench\//.test(f))).to.deep.equal([]);
  });

  it('runs its bin: --help, and a check against the bundled reference back-end', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/vhu-conform');
    const help = await execa(bin, ['--help'], { cwd: consumer, reject: false });
    expect(help.exitCode, help.stderr).to.equal(0);
    expect(help.stdout).to.match(/^Usage: vhu-conform /m);
    const run = await execa(bin, ['--grep', '^conv\\.caps\\.exit$', '--reports', 'reports'], {
      cwd: consumer,
      reject: false,
    });
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).to.equal(0);
    expect(run.stdout).to.match(/^1 check: 1 passed/m);
    expect(existsSync(path.join(consumer, 'reports/junit.xml'))).to.equal(true);
  });

  it('runs abi and compat from the package: the ABI schema ships with it', async () => {
    const bin = path.join(consumer, 'node_modules/.bin/vhu-conform');
    const abi = await execa(
      bin,
      ['abi', '--out', 'reference.json', 'node_modules/vhu-conform/fixtures/bin/vhu-reference'],
      {
        cwd: consumer,
        reject: false,
      },
    );
    expect(abi.exitCode, abi.stderr).to.equal(0);
    const compat = await execa(bin, ['compat', 'reference.json', 'reference.json'], {
      cwd: consumer,
      reject: false,
    });
    expect(compat.exitCode, `${compat.stdout}\n${compat.stderr}`).to.equal(0);
  });

  it('gives runConformance and the checks to a program that imports it', async () => {
    const script = [
      "import { allChecks, runConformance, VERSION } from 'vhu-conform';",
      "const result = await runConformance({ checks: allChecks, grep: '^conv\\\\.caps\\\\.exit$', descriptorDirs: [],",
      "  binary: new URL('./node_modules/vhu-conform/fixtures/bin/vhu-reference', import.meta.url).pathname,",
      "  reportsDir: 'reports' });",
      'console.log(JSON.stringify({ version: VERSION, checks: allChecks.length, verdicts: result.checks.map((c) => c.verdict) }));',
    ].join('\n');
    await writeFile(path.join(consumer, 'api.mjs'), script);
    const { stdout } = await execa('node', ['api.mjs'], { cwd: consumer });
    const out = JSON.parse(stdout) as { version: string; checks: number; verdicts: string[] };
    expect(out.checks).to.be.above(100);
    expect(out.verdicts).to.deep.equal(['pass']);
    expect(existsSync(path.join(consumer, 'node_modules/vhu-conform/dist/harness/api.d.ts'))).to.equal(true);
  });
});
