import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { closeFd, isOpenFd, pipe } from './libc.js';
import { readToEnd, writeAll } from './pipe.js';
import { expectNoFdLeaks } from './testing.js';

/** Closes what is still open of `fds`. */
function closeAll(...fds: number[]): void {
  for (const fd of fds) if (isOpenFd(fd)) closeFd(fd);
}

describe('sys/pipe', () => {
  expectNoFdLeaks();

  it('moves more than a pipe holds, the reader waiting on the writer and the writer on the reader, to EOF', async () => {
    const [r, w] = pipe();
    const data = randomBytes(300_000);
    try {
      const reading = readToEnd(r, { what: 'read end', timeoutMs: 2000, maxBytes: 1 << 20 });
      const wrote = await writeAll(w, data, { what: 'write end', timeoutMs: 2000 });
      expect(wrote).to.deep.equal({ written: data.length, end: 'done' });
      closeFd(w);
      const read = await reading;
      expect(read.end).to.equal('eof');
      expect(read.data.equals(data)).to.equal(true);
    } finally {
      closeAll(r, w);
    }
  });

  it('says timeout when the writer keeps its end open, limit past maxBytes, closed when the reader went', async () => {
    const [r, w] = pipe();
    try {
      await writeAll(w, Buffer.from('partial'), { what: 'write end', timeoutMs: 100 });
      const open = await readToEnd(r, { what: 'read end', timeoutMs: 50, maxBytes: 100 });
      expect(open).to.deep.equal({ data: Buffer.from('partial'), end: 'timeout' });
      await writeAll(w, Buffer.alloc(200), { what: 'write end', timeoutMs: 100 });
      expect((await readToEnd(r, { what: 'read end', timeoutMs: 50, maxBytes: 100 })).end).to.equal('limit');
      closeFd(r);
      const gone = await writeAll(w, Buffer.alloc(10), { what: 'write end', timeoutMs: 100 });
      expect(gone).to.deep.equal({ written: 0, end: 'closed' });
    } finally {
      closeAll(r, w);
    }
  });
});
