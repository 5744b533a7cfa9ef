import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { allChecks } from '../suites/index.js';
import { ROOT } from './helpers.js';

describe('README', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('lists every check with its severity and spec anchor', () => {
    for (const check of allChecks) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${check.id}\` |`));
      expect(row, `README row for ${check.id}`).to.be.a('string');
      expect(row).to.contain(`| ${check.severity} | ${check.spec} |`);
    }
  });

  it('gives the test command that .ci/run runs', () => {
    const ci = readFileSync(path.join(ROOT, '.ci/run'), 'utf8').trim().split('\n').at(-1)!;
    expect(readme.split('\n').slice(0, 6).join('\n')).to.contain(ci);
  });
});
