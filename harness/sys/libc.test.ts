import fs from 'node:fs';
import { expect } from 'chai';
import { SysError } from '../errors.js';
import {
  closeFd,
  dup,
  eventfd,
  eventfdRead,
  eventfdReadCount,
  eventfdWrite,
  fstat,
  fstatSize,
  ftruncate,
  ioctl,
  isNonBlocking,
  isOpenFd,
  memfdCreate,
  mkfifo,
  mmapShared,
  PollEvent,
  poll,
  pollOne,
  readlinkFd,
  recvmsgFds,
  sendmsgFds,
  setNonBlocking,
  shutdown,
  socketpair,
} from './libc.js';
import { expectNoFdLeaks } from './testing.js';

/** Whether `fd` has FD_CLOEXEC, from the octal flags line of /proc/self/fdinfo. */
function isCloexec(fd: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  return (Number.parseInt(flags ?? '0', 8) & 0o2000000) !== 0;
}

describe('sys/libc', () => {
  expectNoFdLeaks();

  describe('sendmsgFds / recvmsgFds', () => {
    let a = -1;
    let b = -1;
    beforeEach(() => {
      [a, b] = socketpair({ nonblocking: true });
    });
    afterEach(() => {
      closeFd(a);
      closeFd(b);
    });

    it('passes bytes and fds; received fds are new, close-on-exec and refer to the same files', () => {
      const ev = eventfd();
      try {
        expect(sendmsgFds(a, Buffer.from('hello'), [ev, ev])).to.equal(5);
        const got = recvmsgFds(b, 64);
        expect(got?.data.toString()).to.equal('hello');
        expect(got?.truncated).to.equal(false);
        expect(got?.fds).to.have.length(2);
        for (const fd of got?.fds ?? []) {
          expect(fd).to.not.equal(ev);
          expect(readlinkFd(fd)).to.equal('anon_inode:[eventfd]');
          expect(isCloexec(fd)).to.equal(true);
        }
        eventfdWrite(got!.fds[0]!, 3);
        expect(eventfdRead(ev)).to.equal(3n);
        for (const fd of got?.fds ?? []) closeFd(fd);
      } finally {
        closeFd(ev);
      }
    });

    it('returns null when nothing is there, whatever O_NONBLOCK says', () => {
      setNonBlocking(b, false);
      expect(recvmsgFds(b, 64)).to.equal(null);
    });

    it('returns an empty message at end of stream', () => {
      shutdown(a);
      expect(recvmsgFds(b, 64)).to.deep.equal({ data: Buffer.alloc(0), fds: [], truncated: false });
    });

    it('flags MSG_CTRUNC when more fds come than there is room for', () => {
      const evs = [eventfd(), eventfd(), eventfd()];
      try {
        sendmsgFds(a, Buffer.from('x'), evs);
        const got = recvmsgFds(b, 64, 2);
        expect(got?.truncated).to.equal(true);
        expect(got?.fds).to.have.length(2);
        for (const fd of got?.fds ?? []) closeFd(fd);
      } finally {
        for (const fd of evs) closeFd(fd);
      }
    });

    it('sends part of a large buffer, then null when the socket buffer is full', () => {
      const big = Buffer.alloc(4 << 20, 0x5a);
      const first = sendmsgFds(a, big);
      expect(first).to.be.a('number').above(0).and.below(big.length);
      let more: number | null = 0;
      while (more !== null) more = sendmsgFds(a, big);
      expect(poll([a], PollEvent.POLLOUT, 0)).to.deep.equal([0]);
    });

    it('throws EPIPE (not SIGPIPE) when the peer is gone, and EBADF with the syscall name', () => {
      shutdown(b);
      expect(() => sendmsgFds(a, Buffer.from('x'))).to.throw(SysError, /sendmsg.*EPIPE/);
      expect(() => recvmsgFds(-1, 8)).to.throw(SysError, /recvmsg \(fd -1\) failed: errno 9 \(EBADF\)/);
      expect(() => sendmsgFds(a, Buffer.alloc(0), [a])).to.throw(RangeError);
    });
  });

  describe('eventfd and poll without allocation', () => {
    it('reads counts as numbers (0 when empty) and writes numbers and BigInts past 32 bits', () => {
      const ev = eventfd();
      try {
        expect(eventfdReadCount(ev)).to.equal(0);
        expect(pollOne(ev, PollEvent.POLLIN, 0)).to.equal(0);
        eventfdWrite(ev, 3);
        eventfdWrite(ev, 2 ** 40 + 5);
        expect(pollOne(ev, PollEvent.POLLIN | PollEvent.POLLOUT, 0)).to.equal(
          PollEvent.POLLIN | PollEvent.POLLOUT,
        );
        expect(eventfdReadCount(ev)).to.equal(2 ** 40 + 8);
        eventfdWrite(ev, 0xffff_ffff_0000n);
        expect(eventfdRead(ev)).to.equal(0xffff_ffff_0000n);
        expect(eventfdRead(ev)).to.equal(null);
        expect(() => eventfdWrite(ev, 0)).to.throw(RangeError);
        expect(() => eventfdWrite(ev, 0xffff_ffff_ffff_ffffn)).to.throw(RangeError);
        expect(() => eventfdReadCount(-1)).to.throw(SysError, /EBADF/);
      } finally {
        closeFd(ev);
      }
    });

    it('pollOne reports POLLNVAL for a closed fd as poll does', () => {
      const ev = eventfd();
      closeFd(ev);
      expect(pollOne(ev, PollEvent.POLLIN, 0)).to.equal(PollEvent.POLLNVAL);
      expect(poll([ev], PollEvent.POLLIN, 0)).to.deep.equal([PollEvent.POLLNVAL]);
    });
  });

  describe('memfd, mmap, fstat', () => {
    it('creates a sized memfd, maps it shared and reports its size', () => {
      const fd = memfdCreate('libc-test');
      try {
        ftruncate(fd, 3 * 4096);
        expect(fstatSize(fd)).to.equal(3 * 4096);
        expect(fstat(fd).mode & 0o170000).to.equal(0o100000);
        expect(fstatSize(fd)).to.equal(fs.fstatSync(fd).size);
        expect(readlinkFd(fd)).to.equal('/memfd:libc-test (deleted)');
        const whole = mmapShared(fd, 3 * 4096);
        const last = mmapShared(fd, 4096, 2 * 4096);
        new Uint8Array(whole.buffer)[2 * 4096 + 1] = 0xab;
        expect(new Uint8Array(last.buffer)[1]).to.equal(0xab);
        expect(last.offset).to.equal(8192);
        whole.unmap();
        last.unmap();
      } finally {
        closeFd(fd);
      }
    });

    it('unmap is idempotent, and a stale view reads zeros instead of crashing', () => {
      const fd = memfdCreate('libc-test');
      try {
        ftruncate(fd, 4096);
        const mapping = mmapShared(fd, 4096);
        const stale = new Uint8Array(mapping.buffer);
        stale[0] = 42;
        mapping.unmap();
        mapping.unmap();
        expect(mapping.unmapped).to.equal(true);
        expect(stale[0]).to.equal(0);
        stale[0] = 7;
        const check = Buffer.alloc(1);
        fs.readSync(fd, check, 0, 1, 0);
        expect(check[0]).to.equal(42);
      } finally {
        closeFd(fd);
      }
    });

    it('throws SysError with errno for a bad mmap', () => {
      expect(() => mmapShared(-1, 4096)).to.throw(SysError, /mmap \(fd -1, 4096 bytes at offset 0\).*EBADF/);
    });
  });

  describe('eventfd', () => {
    it('adds on write, takes all on read, null when zero', () => {
      const fd = eventfd(2);
      try {
        eventfdWrite(fd, 3);
        eventfdWrite(fd, 0xffff_ffffn);
        expect(eventfdRead(fd)).to.equal(0x1_0000_0004n);
        expect(eventfdRead(fd)).to.equal(null);
        expect(() => eventfdWrite(fd, 0)).to.throw(RangeError);
        eventfdWrite(fd, 0xffff_ffff_ffff_fffen);
        expect(() => eventfdWrite(fd, 1)).to.throw(SysError, /EAGAIN/);
      } finally {
        closeFd(fd);
      }
    });
  });

  describe('poll', () => {
    it('reports readiness synchronously', () => {
      const fd = eventfd();
      try {
        expect(poll([fd], PollEvent.POLLIN | PollEvent.POLLOUT, 0)).to.deep.equal([PollEvent.POLLOUT]);
        eventfdWrite(fd, 1);
        expect(poll([fd], PollEvent.POLLIN, 0)).to.deep.equal([PollEvent.POLLIN]);
        expect(poll([999_999], PollEvent.POLLIN, 0)).to.deep.equal([PollEvent.POLLNVAL]);
      } finally {
        closeFd(fd);
      }
    });
  });

  describe('fd helpers', () => {
    it('sets and clears O_NONBLOCK, dups close-on-exec', () => {
      const [a, b] = socketpair();
      try {
        expect(isNonBlocking(a)).to.equal(false);
        setNonBlocking(a);
        expect(isNonBlocking(a)).to.equal(true);
        setNonBlocking(a, false);
        expect(isNonBlocking(a)).to.equal(false);
        const copy = dup(a);
        expect(copy).to.not.equal(a);
        expect(readlinkFd(copy)).to.equal(readlinkFd(a));
        expect(isCloexec(copy)).to.equal(true);
        closeFd(copy);
        expect(isOpenFd(copy)).to.equal(false);
        // From a number on: the lowest free one at or above it.
        const high = dup(a, 200);
        expect(high).to.be.at.least(200);
        expect(readlinkFd(high)).to.equal(readlinkFd(a));
        expect(isCloexec(high)).to.equal(true);
        closeFd(high);
      } finally {
        closeFd(a);
        closeFd(b);
      }
      expect(() => readlinkFd(999_999)).to.throw(SysError, /ENOENT/);
      expect(() => setNonBlocking(999_999)).to.throw(SysError, /EBADF/);
    });
  });

  describe('ioctl / mkfifo', () => {
    it('ioctl fills a Buffer (FIONREAD of a socket holding 5 bytes); a bad fd is a SysError naming it', () => {
      const [a, b] = socketpair({ nonblocking: true });
      try {
        sendmsgFds(a, Buffer.from('hello'), []);
        const count = Buffer.alloc(4);
        // FIONREAD (TIOCINQ): 0x541b on x86_64 and aarch64.
        expect(ioctl(b, 0x541b, count, 'FIONREAD')).to.equal(0);
        expect(count.readInt32LE(0)).to.equal(5);
      } finally {
        closeFd(a);
        closeFd(b);
      }
      expect(() => ioctl(999_999, 0x541b, Buffer.alloc(4), 'FIONREAD')).to.throw(SysError, /FIONREAD.*EBADF/);
    });

    it('mkfifo makes a named pipe; an existing path is EEXIST', () => {
      const dir = fs.mkdtempSync('/tmp/vhu-libc-');
      try {
        mkfifo(`${dir}/p`);
        expect(fs.statSync(`${dir}/p`).isFIFO()).to.equal(true);
        expect(() => mkfifo(`${dir}/p`)).to.throw(SysError, /EEXIST/);
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    });
  });
});
