import { expect } from 'chai';
import { backendMatrix } from './backend-matrix.js';
import { matrixToHtml } from './report-matrix-html.js';
import { checkResult, runResult } from './testing.js';

describe('matrix.html (--all --html)', () => {
  const hostile = '<b onmouseover=x>"evil"&';
  const result = runResult([checkResult('conv.a', 'fail', 'no'), checkResult('gpu.b', 'skip')]);
  const matrix = backendMatrix([
    {
      backend: {
        name: hostile,
        descriptor: `/x/${hostile}.json`,
        binary: `/usr/lib/${hostile}`,
        type: 'block',
        reports: { junit: 'j', json: 'r' },
        summary: result.summary,
        exitStatus: 1,
      },
      result,
    },
    {
      backend: {
        name: 'broken',
        descriptor: '/x/broken.json',
        binary: null,
        type: null,
        problems: ['<no binary>'],
      },
    },
  ]);
  const html = matrixToHtml(matrix);

  it('escapes every name a descriptor gives, and links through encoded paths', () => {
    expect(html).to.not.contain('<b onmouseover');
    expect(html).to.contain('&#60;b onmouseover=x&#62;&#34;evil&#34;&#38;');
    expect(html).to.contain(
      `href="${encodeURIComponent(hostile).replaceAll('&', '&#38;')}/report.html#check-conv.a"`,
    );
    expect(html).to.contain('not run</span> &#60;no binary&#62;');
  });

  it('shows the checks some back-end did not skip, and counts the others', () => {
    expect(html).to.contain('<th class="id">conv.a</th>');
    expect(html).to.not.contain('<th class="id">gpu.b</th>');
    expect(html).to.contain('1 more check skipped by every back-end, not shown.');
  });
});
