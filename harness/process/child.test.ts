import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { expect } from 'chai';
import { closeFd, pipe } from '../sys/libc.js';
import { type Child, starters } from './child.js';

function text(stream: Readable | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve) => {
    let all = '';
    stream.on('data', (chunk: Buffer) => {
      all += chunk.toString();
    });
    stream.on('close', () => resolve(all));
  });
}

/** What the child printed on stdout, read until it ends, and how it ended. */
async function run(child: Child) {
  const [out, err] = [text(child.stdout), text(child.stderr)];
  const end = await child.ended;
  return { end, stdout: await out, stderr: await err };
}

for (const [name, start] of Object.entries(starters)) {
  describe(`process/child (${name})`, () => {
    it('captures stdout and stderr, and gives the exit status', async () => {
      const child = start('sh', ['-c', 'echo out; echo err >&2; exit 3'], { capture: true, fds: {} });
      const { end, stdout, stderr } = await run(child);
      expect(end).to.deep.equal({ code: 3, signal: null });
      expect(stdout).to.equal('out\n');
      expect(stderr).to.equal('err\n');
      expect(child.reaped()).to.equal(true);
    });

    it('names the signal that ended it, by the name Node gives it (SIGABRT, not its alias SIGIOT)', async () => {
      for (const signal of ['SIGTERM', 'SIGABRT', 'SIGIO', 'SIGSYS']) {
        const { end } = await run(
          start('sh', ['-c', `kill -${signal.slice(3)} $$`], { capture: true, fds: {} }),
        );
        expect(end).to.deep.equal({ code: null, signal });
      }
    });

    it('starts it with no signal ignored or blocked, though Node ignores SIGPIPE', async () => {
      const { stdout } = await run(start('cat', ['/proc/self/status'], { capture: true, fds: {} }));
      const mask = (field: string) =>
        BigInt(`0x${stdout.match(new RegExp(`^${field}:\\s+([0-9a-f]+)$`, 'm'))?.[1]}`);
      // glibc's posix_spawn ignores its own two signals, 32 and 33 (cancellation, setxid), which every
      // program's libc sets up again at start; no other may be ignored.
      const glibcInternal = (1n << 31n) | (1n << 32n);
      expect(mask('SigIgn') & ~glibcInternal, 'signals ignored').to.equal(0n);
      expect(mask('SigBlk'), 'signals blocked').to.equal(0n);
    });

    it('puts /dev/null on fds 0-2 it does not capture, and hands over the fds asked for at their numbers', async () => {
      const [r1, w1] = pipe();
      const [r2, w2] = pipe();
      try {
        // Swapped numbers: the child's fd numbered w2 is our w1, and the other way round.
        const script = `const fs = require('node:fs');
          fs.writeSync(${w2}, 'one ' + fs.readlinkSync('/proc/self/fd/0') + ' ' + fs.readlinkSync('/proc/self/fd/1'));
          fs.writeSync(${w1}, 'two');`;
        const child = start(process.execPath, ['-e', script], {
          capture: false,
          fds: { [w2]: w1, [w1]: w2 },
        });
        expect(child.stdout).to.equal(null);
        expect((await child.ended).code).to.equal(0);
        closeFd(w1);
        closeFd(w2);
        expect(readFileSync(r1, 'utf8')).to.equal('one /dev/null /dev/null');
        expect(readFileSync(r2, 'utf8')).to.equal('two');
      } finally {
        closeFd(r1);
        closeFd(r2);
      }
    });

    it('throws, naming why, when the program cannot be started', () => {
      expect(() => start('/nonexistent/vhu-conform/backend', [], { capture: true, fds: {} })).to.throw(
        /ENOENT|did not start/,
      );
    });
  });
}

describe('process/child (posixSpawn): a descendant holding its output', () => {
  it('ends once it has exited, without waiting for the pipes a descendant it left still holds', async function () {
    this.timeout(20_000);
    const child = starters.posixSpawn('sh', ['-c', 'sleep 30 & echo $!'], { capture: true, fds: {} });
    let printed = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      printed += chunk.toString();
    });
    const end = await child.ended;
    expect(end).to.deep.equal({ code: 0, signal: null });
    const sleeper = Number(printed.trim());
    expect(sleeper).to.be.greaterThan(0);
    process.kill(sleeper, 'SIGKILL');
    child.stdout?.destroy();
    child.stderr?.destroy();
  });
});
