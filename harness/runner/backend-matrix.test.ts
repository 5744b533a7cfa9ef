import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { validateMatrix } from '../schemas/validate.js';
import { backendMatrix, type MatrixRun, writeMatrixReport } from './backend-matrix.js';
import { checkResult, runResult } from './testing.js';

function ran(name: string, result: ReturnType<typeof runResult>, exitStatus: number): MatrixRun {
  return {
    backend: {
      name,
      descriptor: `/etc/qemu/vhost-user/${name}.json`,
      binary: `/usr/lib/${name}`,
      type: 'block',
      reports: { junit: `r/${name}/junit.xml`, json: `r/${name}/report.json` },
      summary: result.summary,
      exitStatus,
    },
    result,
  };
}

describe('back-end matrix (--all)', () => {
  it("holds each check's verdict per back-end, the worst of a check run under several profiles", () => {
    const a = runResult([checkResult('conv.a', 'pass'), checkResult('vring.b', 'pass')]);
    const b = runResult([
      checkResult('conv.a', 'fail', 'no'),
      checkResult('vring.b', 'pass', '', { frontend: 'qemu' }),
      checkResult('vring.b', 'timeout', 'slow', { frontend: 'dpdk' }),
      checkResult('vring.b', 'skip', '', { frontend: 'crosvm' }),
    ]);
    const broken: MatrixRun = {
      backend: { name: 'c', descriptor: '/x/c.json', binary: 'rel', type: null, problems: ['no type'] },
    };
    const matrix = backendMatrix([ran('a', a, 0), ran('b', b, 1), broken]);
    expect(matrix.backends.map((x) => x.name)).to.deep.equal(['a', 'b', 'c']);
    expect(matrix.checks).to.deep.equal({
      'conv.a': { a: 'pass', b: 'fail' },
      'vring.b': { a: 'pass', b: 'timeout' },
    });
    expect(validateMatrix(matrix)).to.deep.equal([]);
  });

  it('matrix.json is valid against the shipped schema; a back-end neither run nor refused is not', async () => {
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const file = join(tmp.path, 'out', 'matrix.json');
      await writeMatrixReport(backendMatrix([ran('a', runResult([checkResult('conv.a', 'pass')]), 0)]), file);
      const doc = JSON.parse(await readFile(file, 'utf8')) as { backends: Array<Record<string, unknown>> };
      expect(validateMatrix(doc)).to.deep.equal([]);
      delete doc.backends[0]!.summary;
      expect(validateMatrix(doc).join('; ')).to.contain('/backends/0');
    } finally {
      await tmp.cleanup();
    }
  });
});
