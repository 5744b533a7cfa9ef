import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { showsWireLog, wireLogFileName, wireLogText, writeWireLogs } from './report-wire.js';
import { checkResult, runResult } from './testing.js';

const wire = {
  records: [
    {
      atMs: 0,
      connection: 1,
      direction: '->' as const,
      name: 'GET_FEATURES',
      flags: 1,
      size: 0,
      fields: '',
      fds: 0,
    },
  ],
  cut: 0,
  head: 1,
};

describe('--wire-log files', () => {
  it('are written for checks that failed, timed out or hit an error, one per check key, those of an earlier run removed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vhu-wire-'));
    try {
      const result = runResult([
        checkResult('conv.socket-path.reply', 'fail', 'reply flag not set\nsecond line', { wire }),
        checkResult('vring.blk.read-write', 'timeout', 'no used element', { frontend: 'dpdk', wire }),
        checkResult('conv.caps.exit', 'pass', '', { wire }),
        checkResult('proto.mq.queue-num', 'skip', 'no MQ'),
      ]);
      await writeFile(path.join(dir, 'conv.caps.exit.txt'), 'from a run where it failed');
      await writeFile(path.join(dir, 'conv.caps.exit.jsonl'), '{}');
      // --wire-log DIR may be a folder of the user's: files not named as wire logs stay.
      await writeFile(path.join(dir, 'notes.txt'), 'mine');
      await writeFile(path.join(dir, 'trace.jsonl'), '{}');
      const files = await writeWireLogs(result, dir);
      const written = [
        'conv.socket-path.reply.txt',
        'conv.socket-path.reply.jsonl',
        'vring.blk.read-write@dpdk.txt',
        'vring.blk.read-write@dpdk.jsonl',
      ];
      expect(files.map((f) => path.basename(f))).to.deep.equal(written);
      expect((await readdir(dir)).sort()).to.deep.equal([...written, 'notes.txt', 'trace.jsonl'].sort());
      const lines = (await readFile(files[1]!, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown);
      expect(lines).to.deep.equal([
        {
          check: 'conv.socket-path.reply',
          severity: 'MUST',
          verdict: 'fail',
          message: 'reply flag not set\nsecond line',
          records: 1,
          cut: 0,
          cutAfter: 1,
        },
        wire.records[0],
      ]);
      const text = await readFile(files[0]!, 'utf8');
      expect(text.split('\n').slice(0, 3)).to.deep.equal([
        '# conv.socket-path.reply (MUST, vhost-user.rst#conv): fail',
        '# reply flag not set',
        '# second line',
      ]);
      expect(text).to.contain('\n+0.0ms #1 -> GET_FEATURES [v1] size=0\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('name a check without messages, and keep file names safe', () => {
    expect(wireLogText(checkResult('robust.fuzz', 'error', 'x'))).to.contain(
      '(no message on the back-end socket)',
    );
    expect(wireLogFileName(checkResult('a/../b', 'fail'))).to.equal('a_.._b.txt');
    expect(showsWireLog(checkResult('a.b', 'pass'))).to.equal(false);
  });
});
