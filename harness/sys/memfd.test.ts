import fs from 'node:fs';
import { expect } from 'chai';
import { ClosedError } from './fd-waiter.js';
import { fstatSize, isOpenFd, mmapShared, readlinkFd } from './libc.js';
import { SharedMemory } from './memfd.js';
import { expectNoFdLeaks } from './testing.js';

describe('sys/memfd', () => {
  expectNoFdLeaks();

  it('is a memfd of the asked size, mapped shared: a second mapping and the file see the same bytes', () => {
    const mem = new SharedMemory(64 * 1024, 'guest-ram');
    try {
      expect(mem.size).to.equal(64 * 1024);
      expect(fstatSize(mem.fd)).to.equal(64 * 1024);
      expect(readlinkFd(mem.fd)).to.equal('/memfd:guest-ram (deleted)');
      expect(mem.bytes.length).to.equal(64 * 1024);
      expect(mem.address).to.be.a('bigint');

      const pattern = Buffer.from('vhost-user shared memory');
      mem.bytes.set(pattern, 4096 + 3);
      mem.view.setUint32(60 * 1024, 0xdeadbeef, true);

      // A second MAP_SHARED mapping of the same fd, at another address, sees the writes.
      const second = mmapShared(mem.fd, 8192, 0);
      try {
        expect(second.address).to.not.equal(mem.address);
        const again = Buffer.from(second.buffer, 4096 + 3, pattern.length);
        expect(again.equals(pattern)).to.equal(true);
        // ... and writes through it show up in the first.
        new Uint8Array(second.buffer)[0] = 0x7e;
        expect(mem.bytes[0]).to.equal(0x7e);
      } finally {
        second.unmap();
      }

      // pread on the fd itself, and a read through a new open of /proc/self/fd/N: the file holds the bytes.
      const viaFd = Buffer.alloc(pattern.length);
      expect(fs.readSync(mem.fd, viaFd, 0, viaFd.length, 4096 + 3)).to.equal(pattern.length);
      expect(viaFd.equals(pattern)).to.equal(true);
      const reopened = fs.openSync(`/proc/self/fd/${mem.fd}`, 'r');
      try {
        const word = Buffer.alloc(4);
        fs.readSync(reopened, word, 0, 4, 60 * 1024);
        expect(word.readUInt32LE(0)).to.equal(0xdeadbeef);
      } finally {
        fs.closeSync(reopened);
      }
    } finally {
      mem.close();
    }
  });

  it('close unmaps and closes the fd, idempotently; stale views read zeros', () => {
    const mem = new SharedMemory(4096);
    const fd = mem.fd;
    const stale = mem.bytes;
    stale[10] = 99;
    mem.close();
    mem.close();
    expect(mem.closed).to.equal(true);
    expect(isOpenFd(fd)).to.equal(false);
    expect(stale[10]).to.equal(0);
    expect(() => mem.bytes).to.throw(ClosedError, /shared memory fd \d+ is closed/);
    expect(() => mem.view).to.throw(ClosedError);
  });

  it('refuses sizes that are not positive integers', () => {
    expect(() => new SharedMemory(0)).to.throw(RangeError);
    expect(() => new SharedMemory(1.5)).to.throw(RangeError);
  });
});
