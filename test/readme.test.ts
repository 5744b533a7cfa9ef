import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { parse } from 'yaml';
import { formatCheckList } from '../harness/runner/check-list.js';
import { allChecks } from '../suites/index.js';
import { CLI, ROOT } from './helpers.js';

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

  it('gives CI jobs that parse as YAML and pass vhu-conform only options it takes', async function () {
    this.timeout(30_000);
    const section = readme.slice(
      readme.indexOf("### In a back-end's CI"),
      readme.indexOf('## What it found'),
    );
    const jobs = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as unknown);
    expect(jobs, 'a GitHub Actions job, a GitLab CI job, a sharded GitHub Actions workflow').to.have.length(
      3,
    );
    const help = (await execa(process.execPath, [CLI, '--help'])).stdout;
    const mergeHelp = (await execa(process.execPath, [CLI, 'merge', '--help'])).stdout;
    const commands = JSON.stringify(jobs)
      .split('"')
      .filter((text) => text.startsWith('npx vhu-conform '));
    expect(commands, 'a run in each job, and the merge of the shards').to.have.length(4);
    expect(commands.filter((c) => c.startsWith('npx vhu-conform merge '))).to.have.length(1);
    for (const command of commands) {
      const helpText = command.startsWith('npx vhu-conform merge ') ? mergeHelp : help;
      for (const option of command.split(' ').filter((word) => word.startsWith('--')))
        expect(helpText, `${option} in: ${command}`).to.match(new RegExp(`^\\s+${option}\\b`, 'm'));
    }
  });
});
