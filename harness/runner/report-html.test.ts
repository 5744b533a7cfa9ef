import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { PNG } from 'pngjs';
import { dir } from 'tmp-promise';
import { escapeHtml, specUrl, toHtml, writeHtmlReport } from './report-html.js';
import { checkResult, runResult } from './testing.js';

const wire = {
  records: [
    {
      atMs: 0.5,
      connection: 1,
      direction: '->' as const,
      name: 'GET_FEATURES',
      flags: 1,
      size: 0,
      fields: '',
      fds: 0,
    },
    {
      atMs: 1.25,
      connection: 1,
      direction: '<-' as const,
      name: 'GET_FEATURES',
      flags: 1,
      size: 8,
      fields: '0x140000000',
      fds: 0,
    },
  ],
  cut: 0,
  head: 2,
};

describe('HTML report', () => {
  const hostile = '<script>alert(1)</script> & "quotes" \x1b[31m';
  const result = runResult(
    [
      checkResult('conv.socket-path.reply', 'fail', hostile, {
        rule: 'vhost-user.rst (QEMU 7.2), Communication: "Most of the requests don\'t require replies."',
        stderrTail: '</pre><img src=x onerror=alert(2)>',
        wire,
      }),
      checkResult('conv.caps.exit', 'pass', '', { wire }),
      checkResult('proto.status.round-trip', 'skip', 'no STATUS', { severity: 'SHOULD', interop: true }),
      checkResult('robust.fuzz', 'timeout', 'no reply to GET_FEATURES'),
    ],
    ['--x', '<b>'],
  );
  const html = toHtml(result);

  it('escapes every text of the run: a message, stderr and arguments stay text', () => {
    expect(html.match(/<script>/g)).to.have.length(1);
    expect(html).not.to.contain('<img');
    expect(html).not.to.contain('<b>');
    expect(html).to.contain('&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;quotes&#34; \\x1b[31m');
    expect(escapeHtml(`<'>`)).to.equal('&#60;&#39;&#62;');
  });

  it('shows each check: verdict, severity, spec link, rule, message, stderr, and wire logs for failures only', () => {
    expect(html.match(/<section class="check"/g)).to.have.length(4);
    expect(html).to.contain('data-verdict="fail"');
    expect(html).to.contain(
      '<a href="https://github.com/qemu/qemu/blob/v7.2.0/docs/interop/vhost-user.rst#conv">vhost-user.rst#conv</a>',
    );
    expect(html).to.contain('Most of the requests don&#39;t require replies.');
    expect(html).to.contain('&#60;/pre&#62;&#60;img src=x onerror=alert(2)&#62;');
    expect(html).to.contain('(interoperability: no sentence binds the back-end)');
    // The failure's wire log, in a <details>; the passing check's log is not shown; the timeout had none.
    expect(html.match(/<details class="wire">/g)).to.have.length(1);
    expect(html).to.contain('+1.3ms #1 &#60;- GET_FEATURES [v1] size=8 0x140000000');
    expect(html).to.contain('<dt>wire log</dt><dd>no message on the back-end socket</dd>');
  });

  it('has a summary with the counts per verdict, the back-end, the options and the interrupted flag, and a filter', () => {
    expect(html).to.match(/<th>checks<\/th><td>4: /);
    expect(html).to.contain('<th>interrupted</th><td>no</td>');
    expect(toHtml({ ...result, interrupted: true })).to.contain('<p class="interrupted">');
    expect(html).to.contain('/usr/libexec/vhost-user-blk <code>--x &#60;b&#62;</code>');
    expect(html).to.contain('<th>timeoutMs</th><td>3000</td>');
    for (const v of ['pass', 'fail', 'timeout', 'skip', 'error'])
      expect(html).to.contain(`<input type="checkbox" value="${v}" checked>`);
    // Nothing from the network: no src or stylesheet link, and a policy that forbids fetching.
    expect(html).not.to.match(/\bsrc=["']|<link\b/);
    expect(html).to.contain("default-src 'none'");
  });

  it('adds the profile x check table of --frontend all and the baseline comparison', () => {
    const withMatrix = toHtml({
      ...result,
      matrix: {
        profiles: ['qemu', 'dpdk'],
        checks: { 'vring.blk.read-write': { qemu: 'pass', dpdk: 'fail' } },
      },
      baseline: { entries: 1, expectedFailures: 1, newFailures: ['robust.fuzz'], fixed: [], notRun: [] },
    });
    expect(withMatrix).to.contain('<h3>front-end profiles</h3>');
    expect(withMatrix).to.match(
      /vring\.blk\.read-write<\/td><td><span class="badge v-pass">pass<\/span><\/td><td><span class="badge v-fail">/,
    );
    expect(withMatrix).to.contain('<th>new failures</th><td>robust.fuzz</td>');
  });

  it('links the spec documents the checks cite', () => {
    expect(specUrl('vhost-user.rst@8.2#migrating-back-end-state')).to.equal(
      'https://github.com/qemu/qemu/blob/v8.2.0/docs/interop/vhost-user.rst#migrating-back-end-state',
    );
    expect(specUrl('vhost-user-gpu.rst#communication')).to.equal(
      'https://github.com/qemu/qemu/blob/v7.2.0/docs/interop/vhost-user-gpu.rst#communication',
    );
    expect(specUrl('vhost-user.json#VhostUserBackend')).to.match(/docs\/interop\/vhost-user\.json$/);
    expect(specUrl('virtio-spec#sec-virtqueues')).to.match(/^https:\/\/docs\.oasis-open\.org\/virtio\//);
    expect(specUrl('elsewhere.txt#x')).to.equal(undefined);
  });

  it('shows a saved PNG inline as a data: URL, and names a file it cannot show', async () => {
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const png = new PNG({ width: 2, height: 1 });
      png.data.set([255, 0, 0, 255, 0, 0, 255, 255]);
      const image = join(tmp.path, 'gpu.pixels-scanout0.png');
      await writeFile(image, PNG.sync.write(png));
      const gone = join(tmp.path, 'gone.png');
      const result = runResult([checkResult('gpu.pixels', 'pass', '', { files: [image, gone] })]);
      const file = join(tmp.path, 'report.html');
      await writeHtmlReport(result, file);
      const html = await readFile(file, 'utf8');
      const inlined = `data:image/png;base64,${(await readFile(image)).toString('base64')}`;
      expect(html).to.contain(`<img src="${inlined}" alt="${image}">`);
      expect(html).to.contain(`<dt>saved</dt><dd>${gone}</dd>`);
    } finally {
      await tmp.cleanup();
    }
  });
});
