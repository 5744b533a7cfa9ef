import { expect } from 'chai';
import { ClosedError, FdWaiter } from './fd-waiter.js';
import { closeFd, eventfd, eventfdWrite, PollEvent, socketpair } from './libc.js';
import { expectNoFdLeaks, sleep } from './testing.js';

describe('sys/fd-waiter', () => {
  expectNoFdLeaks();

  it('resolves with the revents asked for, or 0 at the deadline', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd');
    try {
      const started = performance.now();
      expect(await waiter.wait(PollEvent.POLLIN, 250)).to.equal(0);
      expect(performance.now() - started).to.be.at.least(245);
      setTimeout(() => eventfdWrite(fd, 1), 20);
      expect(await waiter.wait(PollEvent.POLLIN, 1000)).to.equal(PollEvent.POLLIN);
    } finally {
      waiter.close();
      closeFd(fd);
    }
  });

  it('serves overlapping waits with one poll in flight; a wakeable waiter starts new events at once', async () => {
    const [a, b] = socketpair({ nonblocking: true });
    const waiter = new FdWaiter(a, 'test socket', { wakeable: true });
    try {
      const reading = waiter.wait(PollEvent.POLLIN, 2000);
      await sleep(10);
      expect(waiter.pollInFlight).to.equal(true);
      const started = performance.now();
      expect(await waiter.wait(PollEvent.POLLOUT, 2000)).to.equal(PollEvent.POLLOUT);
      expect(performance.now() - started).to.be.below(30);
      closeFd(b);
      // The peer's close is end of stream: POLLIN and POLLHUP.
      expect((await reading) & PollEvent.POLLIN).to.equal(PollEvent.POLLIN);
    } finally {
      waiter.close();
      closeFd(a);
    }
  });

  it('without wakeable, a new kind of wait joins at the next slice', async () => {
    const [a, b] = socketpair({ nonblocking: true });
    const waiter = new FdWaiter(a, 'test socket');
    try {
      const reading = waiter.wait(PollEvent.POLLIN, 300);
      await sleep(10);
      const started = performance.now();
      expect(await waiter.wait(PollEvent.POLLOUT, 2000)).to.equal(PollEvent.POLLOUT);
      expect(performance.now() - started)
        .to.be.above(50)
        .and.below(150);
      expect(await reading).to.equal(0);
    } finally {
      waiter.close();
      closeFd(a);
      closeFd(b);
    }
  });

  it('close rejects pending and later waits with ClosedError', async () => {
    const fd = eventfd();
    const waiter = new FdWaiter(fd, 'test eventfd', { wakeable: true });
    const pending = waiter.wait(PollEvent.POLLIN, 5000);
    waiter.close();
    waiter.close();
    closeFd(fd);
    const errors = await Promise.allSettled([pending, waiter.wait(PollEvent.POLLIN, 10)]);
    for (const settled of errors) {
      expect(settled.status).to.equal('rejected');
      expect((settled as PromiseRejectedResult).reason).to.be.instanceOf(ClosedError);
    }
    expect(String((errors[0] as PromiseRejectedResult).reason.message)).to.equal('test eventfd is closed');
  });
});
