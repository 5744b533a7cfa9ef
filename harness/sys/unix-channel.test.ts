import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { TimeoutError, UsageError } from '../errors.js';
import { EventFd } from './eventfd.js';
import { ClosedError } from './fd-waiter.js';
import { closeFd, eventfdWrite, isNonBlocking, isOpenFd, readlinkFd } from './libc.js';
import { expectNoFdLeaks, sleep } from './testing.js';
import { UnixChannel } from './unix-channel.js';

/** Rejection of `promise`, or a failure if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('sys/unix-channel', () => {
  // Outside the suite below, so the fd count is taken before its beforeEach and checked after its afterEach.
  expectNoFdLeaks();
  describe('UnixChannel.pair', channelTests);
});

function channelTests(): void {
  let ours: UnixChannel;
  let theirs: number;
  let peer: UnixChannel | undefined;
  beforeEach(() => {
    [ours, theirs] = UnixChannel.pair();
    peer = undefined;
  });
  afterEach(() => {
    ours.close();
    if (peer) peer.close();
    else if (isOpenFd(theirs)) closeFd(theirs);
  });
  /** The other end as a channel too (it takes over `theirs`). */
  function peerChannel(): UnixChannel {
    peer = UnixChannel.fromFd(theirs);
    return peer;
  }

  it('pairs a non-blocking channel with a raw blocking fd, and carries bytes both ways', async () => {
    expect(isNonBlocking(ours.fd)).to.equal(true);
    expect(isNonBlocking(theirs)).to.equal(false);
    expect(readlinkFd(theirs)).to.match(/^socket:\[\d+\]$/);
    const other = peerChannel();
    await ours.send(Buffer.from('ping'));
    expect(await other.receive(1000)).to.deep.equal({ data: Buffer.from('ping'), fds: [], truncated: false });
    await other.send(Buffer.from('pong'));
    expect((await ours.receive(1000))?.data.toString()).to.equal('pong');
  });

  for (const count of [1, 3, 8]) {
    it(`passes ${count} eventfd(s): new fd numbers for the same eventfds`, async () => {
      const other = peerChannel();
      const originals = Array.from({ length: count }, () => new EventFd());
      try {
        await ours.send(
          Buffer.from([count]),
          originals.map((ev) => ev.fd),
        );
        const got = await other.receive(1000);
        expect(got?.data).to.deep.equal(Buffer.from([count]));
        expect(got?.truncated).to.equal(false);
        const received = got?.fds ?? [];
        expect(received).to.have.length(count);
        try {
          received.forEach((fd, i) => {
            expect(originals.map((ev) => ev.fd)).to.not.include(fd);
            eventfdWrite(fd, i + 1);
          });
          expect(originals.map((ev) => ev.drain())).to.deep.equal(originals.map((_, i) => i + 1));
        } finally {
          for (const fd of received) closeFd(fd);
        }
      } finally {
        for (const ev of originals) ev.close();
      }
    });
  }

  it('sends 1 MiB to a slow reader by waiting for room, with the fd on the first byte only', async () => {
    const other = peerChannel();
    const message = randomBytes(1 << 20);
    const ev = new EventFd();
    let readSoFar = 0;
    let readWhenSent = -1;
    const sent = ours.send(message, [ev.fd]).then(() => {
      readWhenSent = readSoFar;
    });
    const chunks: Buffer[] = [];
    const fdsPerChunk: number[] = [];
    try {
      while (readSoFar < message.length) {
        await sleep(5);
        const got = await other.receive(2000, 32 * 1024);
        if (!got) throw new Error('unexpected end of stream');
        chunks.push(got.data);
        fdsPerChunk.push(got.fds.length);
        for (const fd of got.fds) closeFd(fd);
        readSoFar += got.data.length;
      }
      await sent;
    } finally {
      ev.close();
    }
    expect(Buffer.concat(chunks).equals(message)).to.equal(true);
    expect(fdsPerChunk[0]).to.equal(1);
    expect(fdsPerChunk.slice(1).every((n) => n === 0)).to.equal(true);
    // The socket holds well under 1 MiB, so the send can only have finished after the reader made room.
    expect(readWhenSent).to.be.above(message.length / 2);
  });

  it('keeps concurrent sends whole and in order, while a receive waits on the same fd', async () => {
    const other = peerChannel();
    const first = Buffer.alloc(600 * 1024, 1);
    const second = Buffer.alloc(600 * 1024, 2);
    const pending = ours.receive(5000);
    const sends = Promise.all([ours.send(first), ours.send(second)]);
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < first.length + second.length) {
      const got = await other.receive(2000);
      if (!got) throw new Error('unexpected end of stream');
      chunks.push(got.data);
      total += got.data.length;
    }
    await sends;
    expect(Buffer.concat(chunks).equals(Buffer.concat([first, second]))).to.equal(true);
    await other.send(Buffer.from('done'));
    expect((await pending)?.data.toString()).to.equal('done');
  });

  it('throws TimeoutError when nothing arrives in time', async () => {
    const started = performance.now();
    const err = await rejection(ours.receive(150));
    expect(err).to.be.instanceOf(TimeoutError).and.to.include({ code: 'VHU_ERR_TIMEOUT', afterMs: 150 });
    expect((err as Error).message).to.match(/data on unix channel fd \d+/);
    expect(performance.now() - started).to.be.at.least(145);
  });

  it('times out a send the peer never reads', async () => {
    const err = await rejection(ours.send(Buffer.alloc(4 << 20), [], 200));
    expect(err).to.be.instanceOf(TimeoutError);
    expect((err as Error).message).to.match(/the peer to read.*of 4194304 bytes sent/);
  });

  it('returns null at end of stream once the peer has closed', async () => {
    const waiting = ours.receive(2000);
    await sleep(30);
    closeFd(theirs);
    expect(await waiting).to.equal(null);
    expect(await ours.receive(100)).to.equal(null);
  });

  it('close while a receive waits: the receive rejects with ClosedError at once, the peer sees EOF', async () => {
    const other = peerChannel();
    const fd = ours.fd;
    const waiting = ours.receive(5000);
    await sleep(30);
    const started = performance.now();
    ours.close();
    ours.close();
    const err = await rejection(waiting);
    expect(err).to.be.instanceOf(ClosedError).and.to.include({ code: 'VHU_ERR_CLOSED' });
    expect(performance.now() - started).to.be.below(2000);
    expect(isOpenFd(fd)).to.equal(false);
    expect(await other.receive(1000)).to.equal(null);
    expect(await rejection(ours.send(Buffer.from('x')))).to.be.instanceOf(ClosedError);
    expect(await rejection(ours.receive(10))).to.be.instanceOf(ClosedError);
  });

  it('refuses a second concurrent receive', async () => {
    const first = ours.receive(200);
    expect(await rejection(ours.receive(200))).to.be.instanceOf(UsageError);
    expect(await rejection(first)).to.be.instanceOf(TimeoutError);
  });

  it('leaves the event loop free during a 500 ms wait', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 50);
    try {
      expect(await rejection(ours.receive(500))).to.be.instanceOf(TimeoutError);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).to.be.at.least(3);
  });

  it('refuses more than 8 fds and fds without bytes', async () => {
    expect(await rejection(ours.send(Buffer.from('x'), new Array(9).fill(0)))).to.be.instanceOf(RangeError);
    expect(await rejection(ours.send(Buffer.alloc(0), [0]))).to.be.instanceOf(RangeError);
  });
}
