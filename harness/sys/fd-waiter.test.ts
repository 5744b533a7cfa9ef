import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { expect } from 'chai';
import { SysError, UsageError } from '../errors.js';
import { EventFd } from './eventfd.js';
import { ClosedError, FdWaiter } from './fd-waiter.js';
import { closeFd, eventfd, eventfdWrite, PollEvent, sendmsgFds, socketpair } from './libc.js';
import { expectNoFdLeaks, sleep } from './testing.js';

const { POLLIN, POLLOUT, POLLERR, POLLHUP, POLLPRI } = PollEvent;

/** Rejection of `promise`, or a failure if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Runs an ES module script in a new node process; `eventFdUrl` in it is the URL of eventfd.js. */
function runNode(script: string): Promise<{ code: number | null; stdout: string; ms: number }> {
  const source = `const eventFdUrl = ${JSON.stringify(new URL('./eventfd.js', import.meta.url).href)};\n${script}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '--eval', source],
      { timeout: 8000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        if (err && code === null) reject(new Error(`node failed: ${err.message}\n${stderr}`));
        else resolve({ code, stdout: stdout.trim(), ms: performance.now() - started });
      },
    );
  });
}

describe('sys/fd-waiter', () => {
  expectNoFdLeaks();

  it('resolves with the revents asked for, or 0 at the deadline, and stops watching after', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd');
    try {
      expect(waiter.pollInFlight).to.equal(false);
      const started = performance.now();
      const timedOut = waiter.wait(POLLIN, 250);
      expect(waiter.pollInFlight).to.equal(true);
      expect(await timedOut).to.equal(0);
      expect(performance.now() - started)
        .to.be.at.least(245)
        .and.below(2000);
      expect(waiter.pollInFlight).to.equal(false);
      setTimeout(() => eventfdWrite(fd, 1), 20);
      expect(await waiter.wait(POLLIN, 1000)).to.equal(POLLIN);
      // The eventfd stays readable: a handle left started would fire on every loop turn.
      expect(waiter.pollInFlight).to.equal(false);
    } finally {
      waiter.close();
      closeFd(fd);
    }
  });

  it('answers a timeout of 0 from the state now, without watching', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd');
    try {
      expect(await waiter.wait(POLLIN | POLLOUT, 0)).to.equal(POLLOUT);
      eventfdWrite(fd, 1);
      expect(await waiter.wait(POLLIN, -5)).to.equal(POLLIN);
      expect(waiter.pollInFlight).to.equal(false);
    } finally {
      waiter.close();
      closeFd(fd);
    }
  });

  it('serves overlapping waits on one handle: a new kind of wait, or an earlier deadline, counts at once', async () => {
    const [a, b] = socketpair({ nonblocking: true });
    const waiter = new FdWaiter(a, 'test socket');
    try {
      const reading = waiter.wait(POLLIN, 2000);
      await sleep(10);
      let started = performance.now();
      expect(await waiter.wait(POLLOUT, 2000)).to.equal(POLLOUT);
      expect(performance.now() - started).to.be.below(2000);
      started = performance.now();
      expect(await waiter.wait(POLLIN, 100)).to.equal(0);
      expect(performance.now() - started)
        .to.be.at.least(95)
        .and.below(2000);
      expect(waiter.pollInFlight).to.equal(true);
      closeFd(b);
      // The peer's close is end of stream: POLLIN with POLLHUP, as poll(2) reports it.
      expect(await reading).to.equal(POLLIN | POLLHUP);
      expect(waiter.pollInFlight).to.equal(false);
    } finally {
      waiter.close();
      closeFd(a);
    }
  });

  it('reports POLLERR, and answers again on the next wait after libuv stopped the handle', async () => {
    const [a, b] = socketpair({ nonblocking: true });
    const waiter = new FdWaiter(a, 'test socket');
    try {
      const reading = waiter.wait(POLLIN, 2000);
      await sleep(10);
      // Closing with unread data resets the connection: the other end gets ECONNRESET, which is POLLERR.
      sendmsgFds(a, Buffer.from('never read'));
      closeFd(b);
      expect(await reading).to.equal(POLLIN | POLLERR | POLLHUP);
      expect(await waiter.wait(POLLIN, 2000)).to.equal(POLLIN | POLLERR | POLLHUP);
    } finally {
      waiter.close();
      closeFd(a);
    }
  });

  it('close rejects pending and later waits with ClosedError, at once', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd');
    const pending = waiter.wait(POLLIN, 5000);
    await sleep(10);
    const started = performance.now();
    waiter.close();
    waiter.close();
    closeFd(fd);
    expect(waiter.pollInFlight).to.equal(false);
    const errors = await Promise.allSettled([pending, waiter.wait(POLLIN, 10)]);
    expect(performance.now() - started).to.be.below(2000);
    for (const settled of errors) {
      expect(settled.status).to.equal('rejected');
      expect((settled as PromiseRejectedResult).reason).to.be.instanceOf(ClosedError);
    }
    expect(String((errors[0] as PromiseRejectedResult).reason.message)).to.equal('test eventfd is closed');
  });

  it('allows one FdWaiter per fd until it is closed (libuv allows one poll handle per fd)', async () => {
    const fd = eventfd();
    const first = new FdWaiter(fd, 'first');
    try {
      expect(() => new FdWaiter(fd, 'second')).to.throw(UsageError, /already has a waiter, for first/);
      first.close();
      const third = new FdWaiter(fd, 'third');
      eventfdWrite(fd, 1);
      expect(await third.wait(POLLIN, 1000)).to.equal(POLLIN);
      third.close();
    } finally {
      first.close();
      closeFd(fd);
    }
  });

  it('refuses fds epoll cannot watch with SysError, where uv_poll would abort the process', () => {
    const file = fs.openSync(new URL(import.meta.url), 'r');
    try {
      expect(() => new FdWaiter(file, 'regular file')).to.throw(SysError, /EPERM/);
    } finally {
      fs.closeSync(file);
    }
    expect(() => new FdWaiter(999_999, 'closed fd')).to.throw(SysError, /EBADF/);
    // Nothing was registered: the fd numbers stay free.
    const fd = eventfd();
    try {
      new FdWaiter(fd, 'after refusals').close();
    } finally {
      closeFd(fd);
    }
  });

  it('refuses waits uv_poll cannot serve', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd');
    try {
      expect(await rejection(waiter.wait(POLLPRI, 100))).to.be.instanceOf(RangeError);
      expect(await rejection(waiter.wait(POLLERR, 100))).to.be.instanceOf(RangeError);
      expect(await rejection(waiter.wait(POLLIN, Number.NaN))).to.be.instanceOf(RangeError);
      expect(waiter.pollInFlight).to.equal(false);
    } finally {
      waiter.close();
      closeFd(fd);
    }
  });

  it('lets 32 eventfds wait at once while fs calls (which need the thread pool) complete', async () => {
    const eventFds = Array.from({ length: 32 }, () => new EventFd());
    try {
      const waits = eventFds.map((ev) => ev.waitSignalled(5000));
      await sleep(20);
      // Waits hold no pool thread: these complete while all 32 wait (with the pool held they would queue).
      for (let i = 0; i < 16; i++) await fs.promises.stat('/proc/self');
      for (const ev of eventFds) ev.signal();
      expect(await Promise.all(waits)).to.deep.equal(eventFds.map(() => true));
    } finally {
      for (const ev of eventFds) ev.close();
    }
  });
});

// Outside the fd-leak check: Node closes a child's stdio pipes some time after execFile's callback.
describe('sys/fd-waiter and process lifetime', () => {
  it('keeps the process alive while a wait is pending, never once idle', async function () {
    this.timeout(20_000);
    // Signalled by an unref'd timer: only the pending wait can hold the process until it fires.
    const pending = await runNode(`
      const { EventFd } = await import(eventFdUrl);
      const ev = new EventFd();
      setTimeout(() => ev.signal(), 300).unref();
      console.log(await ev.waitSignalled(Number.POSITIVE_INFINITY));
    `);
    expect(pending).to.include({ code: 0, stdout: 'true' });
    // Left unclosed on purpose: an idle waiter's handle must not hold the process.
    const idle = await runNode(`
      const { EventFd } = await import(eventFdUrl);
      const ev = new EventFd();
      setTimeout(() => ev.signal(), 20);
      console.log(await ev.waitSignalled(60_000));
    `);
    expect(idle).to.include({ code: 0, stdout: 'true' });
    expect(idle.ms).to.be.below(5000);
  });
});
