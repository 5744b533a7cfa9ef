import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { ClosedError } from './fd-waiter.js';
import { isOpenFd, readlinkFd } from './libc.js';
import { expectNoFdLeaks, sleep } from './testing.js';

describe('sys/eventfd', () => {
  expectNoFdLeaks();

  it('counts signals; drain takes them all', () => {
    const ev = new EventFd();
    try {
      expect(readlinkFd(ev.fd)).to.equal('anon_inode:[eventfd]');
      expect(ev.drain()).to.equal(0);
      ev.signal();
      ev.signal(4);
      expect(ev.drain()).to.equal(5);
      expect(ev.drain()).to.equal(0);
    } finally {
      ev.close();
    }
  });

  it('blocks the thread until signalled, or answers false after its window, never taking the count', () => {
    const ev = new EventFd();
    try {
      expect(ev.blockUntilSignalled(1)).to.equal(false);
      ev.signal(3);
      expect(ev.blockUntilSignalled(1)).to.equal(true);
      expect(ev.drain()).to.equal(3);
      expect(() => ev.blockUntilSignalled(1.5)).to.throw(RangeError);
      expect(() => ev.blockUntilSignalled(5000)).to.throw(RangeError);
    } finally {
      ev.close();
    }
    expect(() => ev.blockUntilSignalled(0)).to.throw(ClosedError);
  });

  it('takes one at a time in semaphore mode', () => {
    const ev = new EventFd({ initval: 2, semaphore: true });
    try {
      expect([ev.drain(), ev.drain(), ev.drain()]).to.deep.equal([1, 1, 0]);
    } finally {
      ev.close();
    }
  });

  it('resolves true at once when already signalled, without consuming the signal', async () => {
    const ev = new EventFd();
    try {
      ev.signal();
      const started = performance.now();
      expect(await ev.waitSignalled(1000)).to.equal(true);
      expect(performance.now() - started).to.be.below(2000);
      expect(ev.drain()).to.equal(1);
    } finally {
      ev.close();
    }
  });

  it('resolves true soon after a later signal', async () => {
    const ev = new EventFd();
    try {
      setTimeout(() => ev.signal(), 30);
      const started = performance.now();
      expect(await ev.waitSignalled(2000)).to.equal(true);
      // The write wakes the event loop's epoll: no later than a few ms after the 30 ms timer.
      expect(performance.now() - started).to.be.below(2000);
    } finally {
      ev.close();
    }
  });

  it('resolves false after the timeout while the event loop keeps running', async () => {
    const ev = new EventFd();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      const started = performance.now();
      expect(await ev.waitSignalled(300)).to.equal(false);
      const elapsed = performance.now() - started;
      expect(elapsed).to.be.at.least(295).and.below(2000);
      expect(ticks).to.be.at.least(10);
    } finally {
      clearInterval(timer);
      ev.close();
    }
  });

  it('after a drain (drained), still answers a signal that came before the wait', async () => {
    const ev = new EventFd();
    try {
      expect(ev.drain()).to.equal(0);
      ev.signal(2);
      expect(await ev.waitSignalled(1000, { drained: true })).to.equal(true);
      expect(ev.drain()).to.equal(2);
    } finally {
      ev.close();
    }
  });

  it('close rejects a pending wait with ClosedError and is idempotent', async () => {
    const ev = new EventFd();
    const fd = ev.fd;
    const waiting = ev.waitSignalled(5000);
    await sleep(20);
    const started = performance.now();
    ev.close();
    ev.close();
    let error: unknown;
    await waiting.catch((err: unknown) => {
      error = err;
    });
    expect(error).to.be.instanceOf(ClosedError).and.to.include({ code: 'VHU_ERR_CLOSED' });
    expect(performance.now() - started).to.be.below(2000);
    expect(isOpenFd(fd)).to.equal(false);
    expect(() => ev.signal()).to.throw(ClosedError);
  });
});
