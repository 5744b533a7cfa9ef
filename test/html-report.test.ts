/**
 * The HTML report of a real run, as a person sees it: the CLI runs a flawed fixture with --html and
 * --wire-log, and Debian's chromium (headless, driven by playwright-core) opens the file. The failed check is
 * shown, its wire log unfolds on a click, and the filter hides the checks that passed. A hand-made result
 * whose texts are markup shows them as text, running none of it.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type DirectoryResult, dir } from 'tmp-promise';
import { toHtml } from '../harness/runner/report-html.js';
import { checkResult, runResult } from '../harness/runner/testing.js';
import { CLI, fixture, ROOT } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const FAILED = 'conv.socket-path.reply';
const PASSED = 'conv.socket-path.listen';

/** The section of a check (its id holds dots, which a CSS #id would read as classes). */
const section = (page: Page, key: string) => page.locator(`section[id="check-${key}"]`);

describe('HTML report in a headless browser', function () {
  this.timeout(120_000);
  let folder: DirectoryResult;
  let browser: Browser;
  let run: Awaited<ReturnType<typeof execa>>;

  before(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} not found: install Debian package chromium (.ci/install-backends does)`);
    folder = await dir({ prefix: 'vhu-html-', unsafeCleanup: true });
    // GET_FEATURES replies without the reply flag: conv.socket-path.reply fails, .listen passes.
    run = await execa(
      process.execPath,
      [
        CLI,
        '--reports',
        folder.path,
        '--html',
        '--wire-log',
        '--grep',
        '^conv\\.socket-path\\.',
        fixture('vhu-flaw-bad-reply-flags'),
      ],
      { reject: false, timeout: 60_000 },
    );
    // Root (CI) has no user namespace sandbox for chromium; the page is our own file.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await folder?.cleanup();
  });

  it('the run wrote report.html and the failed check wire log, and no other', async () => {
    expect(run.exitCode, String(run.stderr)).to.equal(1);
    expect(String(run.stdout)).to.contain(`report: ${path.join(folder.path, 'report.html')}`);
    expect((await readdir(path.join(folder.path, 'wire'))).sort()).to.deep.equal([
      `${FAILED}.jsonl`,
      `${FAILED}.txt`,
    ]);
    const log = await readFile(path.join(folder.path, 'wire', `${FAILED}.txt`), 'utf8');
    expect(log).to.match(/#1 -> GET_FEATURES \[v1\] size=0\n/);
    expect(log).to.match(/#1 <- GET_FEATURES \[v1\] size=8 0x[0-9a-f]+\n/);
  });

  it('shows the failed check, unfolds its wire log on a click, and filters passed checks out', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`file://${path.join(folder.path, 'report.html')}`);
      const failed = section(page, FAILED);
      const passed = section(page, PASSED);
      expect(await failed.getAttribute('data-verdict')).to.equal('fail');
      expect(await failed.locator('h2').innerText()).to.match(/^fail MUST conv\.socket-path\.reply /);
      expect(await failed.locator('.message').innerText()).to.contain('reply flag (bit 2) not set');
      expect(await failed.locator('.rule').innerText()).to.contain('Communication');
      expect(await failed.locator('a').getAttribute('href')).to.equal(
        'https://github.com/qemu/qemu/blob/v7.2.0/docs/interop/vhost-user.rst#communication',
      );

      const log = failed.locator('details.wire pre');
      expect(await log.isVisible(), 'the wire log is folded at first').to.equal(false);
      await failed.locator('details.wire summary').click();
      expect(await log.isVisible(), 'unfolded on a click').to.equal(true);
      expect(await log.innerText()).to.match(/#1 <- GET_FEATURES \[v1\] size=8/);

      expect(await passed.isVisible()).to.equal(true);
      expect(await passed.locator('details.wire').count(), 'no wire log for a check that passed').to.equal(0);
      await page.locator('#filter input[value="pass"]').uncheck();
      expect(await passed.isVisible(), 'filtered out').to.equal(false);
      expect(await failed.isVisible()).to.equal(true);
      await page.locator('#filter input[value="pass"]').check();
      expect(await passed.isVisible()).to.equal(true);

      // A picture of the report for people to look at: reports/ is git-ignored.
      await mkdir(path.join(ROOT, 'reports'), { recursive: true });
      await writeFile(
        path.join(ROOT, 'reports/html-report.test.png'),
        await page.screenshot({ fullPage: true }),
      );
    } finally {
      await page.close();
    }
  });

  it('shows the scanout a gpu check saved, inline, as the run wrote it', async () => {
    const reports = path.join(folder.path, 'gpu');
    const gpu = await execa(
      process.execPath,
      [CLI, '--reports', reports, '--html', '--grep', '^gpu\\.pixels$', fixture('vhu-reference-gpu')],
      { reject: false, timeout: 60_000 },
    );
    expect(gpu.exitCode, String(gpu.stdout)).to.equal(0);
    const png = path.join(reports, 'gpu.pixels-scanout0.png');
    const report = JSON.parse(await readFile(path.join(reports, 'report.json'), 'utf8')) as {
      checks: Array<{ id: string; files?: string[] }>;
    };
    expect(report.checks.find((c) => c.id === 'gpu.pixels')?.files).to.deep.equal([png]);
    const page = await browser.newPage();
    try {
      await page.goto(`file://${path.join(reports, 'report.html')}`);
      const image = section(page, 'gpu.pixels').locator('figure img');
      expect(await image.getAttribute('alt')).to.equal(png);
      expect(await image.getAttribute('src')).to.match(/^data:image\/png;base64,/);
      // Decoded by the browser at the size the scanout has: the PNG itself, not a broken image.
      const size = await image.evaluate((img) => {
        const decoded = img as unknown as { naturalWidth: number; naturalHeight: number };
        return [decoded.naturalWidth, decoded.naturalHeight];
      });
      expect(size[0]).to.be.above(0);
      expect(size[1]).to.be.above(0);
    } finally {
      await page.close();
    }
  });

  it('shows markup from a back-end as text, running none of it', async () => {
    const hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">';
    const html = toHtml(
      runResult(
        [
          checkResult('conv.socket-path.reply', 'fail', hostile, {
            stderrTail: hostile,
            wire: {
              records: [{ atMs: 1, connection: 1, direction: '->', name: hostile, fields: hostile, fds: 0 }],
              cut: 0,
              head: 1,
            },
          }),
        ],
        [hostile],
      ),
    );
    const page = await browser.newPage();
    try {
      await page.setContent(html);
      const failed = section(page, FAILED);
      expect(await failed.locator('.message').innerText()).to.equal(hostile);
      expect(await failed.locator('.stderr').innerText()).to.equal(hostile);
      await failed.locator('details.wire summary').click();
      expect(await failed.locator('details.wire pre').innerText()).to.contain(hostile);
      expect(await page.evaluate('typeof window.pwned')).to.equal('undefined');
      expect(await page.locator('img').count()).to.equal(0);
    } finally {
      await page.close();
    }
  });

  it('refuses, before any check, an --html file that cannot be written or is a program', async () => {
    const unwritable = await execa(process.execPath, [CLI, '--html', '/proc/x/report.html'], {
      reject: false,
    });
    expect(unwritable.exitCode).to.equal(2);
    expect(String(unwritable.stderr)).to.contain('--html /proc/x/report.html: cannot write there');
    // `--html BINARY` reads the binary as the report's file: refused, the binary untouched.
    const binary = fixture('vhu-flaw-bad-reply-flags');
    const before = await readFile(binary);
    const program = await execa(process.execPath, [CLI, '--reports', folder.path, '--html', binary], {
      reject: false,
    });
    expect(program.exitCode).to.equal(2);
    expect(String(program.stderr)).to.contain('an executable file, not overwritten with a report');
    expect(String(program.stdout)).to.equal('');
    expect(await readFile(binary)).to.deep.equal(before);
  });

  it('--help names both options and gives an example', async () => {
    const help = String((await execa(process.execPath, [CLI, '--help'])).stdout);
    expect(help).to.contain('--html [file]').and.contain('--wire-log [dir]');
    expect(help).to.contain('vhu-conform --wire-log=out/wire --html=out/report.html /path/to/backend');
  });
});
