import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { allChecks } from '../suites/index.js';
import { ROOT } from './helpers.js';

describe('README', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('lists every check with its severity and spec anchor', () => {
    const rows = readme
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    for (const check of allChecks) {
      const row = rows.find((cells) => cells[1] === `\`${check.id}\``);
      expect(row, `README row for ${check.id}`).to.be.an('array');
      expect(row?.slice(2, 4)).to.deep.equal([check.severity, check.spec]);
    }
  });

  it('gives the test command that .ci/run runs', () => {
    const ci = readFileSync(path.join(ROOT, '.ci/run'), 'utf8').trim().split('\n').at(-1)!;
    expect(readme.split('\n').slice(0, 6).join('\n')).to.contain(ci);
  });
});
