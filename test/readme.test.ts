import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { formatCheckList } from '../harness/runner/check-list.js';
import { allChecks } from '../suites/index.js';
import { ROOT } from './helpers.js';

describe('README', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('holds the table of checks `--list --format markdown` prints, from the check definitions', () => {
    const begin = readme.indexOf('<!-- checks: generated');
    const end = readme.indexOf('<!-- checks: end -->');
    expect(begin, 'the table markers').to.be.above(-1);
    const table = readme.slice(readme.indexOf('\n', begin) + 1, end);
    expect(table, 'regenerate it: node dist/harness/cli/main.js --list --format markdown').to.equal(
      formatCheckList(allChecks, 'markdown'),
    );
  });

  it('gives the test command that .ci/run runs', () => {
    const ci = readFileSync(path.join(ROOT, '.ci/run'), 'utf8').trim().split('\n').at(-1)!;
    expect(readme.split('\n').slice(0, 6).join('\n')).to.contain(ci);
  });
});
