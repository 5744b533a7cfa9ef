import { expect } from 'chai';
import fc from 'fast-check';
import { BackendError, ProtocolError, SysError, TimeoutError, VhuError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { FrontendRequest, HeaderFlag } from '../protocol/spec.js';
import { EventFd } from '../sys/eventfd.js';
import { SCM_KERNEL_MAX_FDS } from '../sys/layout.js';
import {
  closeFd,
  eventfd,
  eventfdRead,
  isOpenFd,
  openFds,
  recvmsgFds,
  sendmsgFds,
  socketpair,
} from '../sys/libc.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection, MAX_QUEUED_FDS, MAX_QUEUED_FRAMES } from './connection.js';
import { formatWireRecord, WireLog, wireLogContext } from './wire-log.js';

const REPLY = HeaderFlag.VERSION | HeaderFlag.REPLY;

/** A connection and the raw back-end end of it, which the test plays by hand. */
function pair(timeoutMs = 500): { connection: Connection; backend: UnixChannel } {
  const [backend, fd] = UnixChannel.pair();
  return { connection: Connection.fromFd(fd, timeoutMs), backend };
}

async function nextRequest(backend: UnixChannel): Promise<{ request: number; flags: number; fds: number[] }> {
  const decoder = new FrameDecoder();
  for (;;) {
    const message = await backend.receive(1000);
    if (!message) throw new Error('closed');
    const [frame] = decoder.push(message.data, message.fds);
    if (frame) return frame;
  }
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

describe('transport/connection', () => {
  it('records what it sends and receives, and the end, in the wire log of its async context', async () => {
    const log = new WireLog();
    await wireLogContext.run(log, async () => {
      const { connection, backend } = pair();
      const reply = connection.requestU64('GET_FEATURES');
      await nextRequest(backend);
      await backend.send(encodeFrame({ request: 1, flags: REPLY, payload: u64(0x1_4000_0000n) }));
      await reply;
      await connection.sendRaw(Buffer.from('0300000001000000', 'hex'), [], 'a cut header');
      // Read before closing: bytes left unread would reset the connection instead of ending it.
      await backend.receive(1000);
      backend.close();
      await connection.closed;
      connection.close();
    });
    expect(log.data().records.map((r) => formatWireRecord(r).replace(/^\+[\d.]+ms /, ''))).to.deep.equal([
      '#1 -> GET_FEATURES [v1] size=0',
      '#1 <- GET_FEATURES [v1 reply] size=8 0x140000000',
      '#1 -> a cut header 8 raw bytes: 0300000001000000',
      '#1 <- end of stream: the back-end closed the connection',
    ]);
  });

  it('sends a request and takes its well-formed reply', async () => {
    const { connection, backend } = pair();
    const reply = connection.requestU64('GET_FEATURES');
    const req = await nextRequest(backend);
    expect(req).to.deep.include({ request: FrontendRequest.GET_FEATURES, flags: HeaderFlag.VERSION });
    await backend.send(encodeFrame({ request: 1, flags: REPLY, payload: u64(0x1_4000_0000n) }));
    expect(await reply).to.equal(0x1_4000_0000n);
    connection.close();
    backend.close();
  });

  it('passes fds with a request', async () => {
    const { connection, backend } = pair();
    const kick = new EventFd();
    await connection.send('SET_VRING_KICK', { payload: u64(0n), fds: [kick.fd] });
    const req = await nextRequest(backend);
    expect(req.fds).to.have.length(1);
    kick.signal(3);
    // The received fd is the same eventfd object: reading it drains what we signalled.
    expect(eventfdRead(req.fds[0]!)).to.equal(3n);
    closeFd(req.fds[0]!);
    kick.close();
    connection.close();
    backend.close();
  });

  it('refuses a reply without the reply flag, showing the bytes', async () => {
    const { connection, backend } = pair();
    const reply = connection.requestU64('GET_FEATURES');
    await nextRequest(backend);
    await backend.send(encodeFrame({ request: 1, flags: HeaderFlag.VERSION, payload: u64(1n) }));
    const err = await reply.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as Error).message).to.match(
      /reply flag \(bit 2\) not set.*bytes: 01 00 00 00 01 00 00 00 08/,
    );
    connection.close();
    backend.close();
  });

  it('refuses, and closes, fds a reply should not carry', async () => {
    const { connection, backend } = pair();
    const reply = connection.requestU64('GET_FEATURES');
    await nextRequest(backend);
    const stray = new EventFd();
    await backend.send(encodeFrame({ request: 1, flags: REPLY, payload: u64(1n) }), [stray.fd]);
    const err = await reply.catch((e: unknown) => e);
    expect((err as Error).message).to.match(/1 fds, expected 0/);
    stray.close();
    connection.close();
    backend.close();
  });

  it('names the request it waited for when no reply comes', async () => {
    const { connection, backend } = pair(100);
    const err = await connection.requestU64('GET_QUEUE_NUM').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
    expect((err as Error).message).to.contain('the reply to GET_QUEUE_NUM');
    connection.close();
    backend.close();
  });

  it('reports a back-end that closes the connection', async () => {
    const { connection, backend } = pair();
    const reply = connection.requestU64('GET_FEATURES');
    await nextRequest(backend);
    backend.close();
    const err = await reply.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.contain('closed the connection');
    connection.close();
  });

  it('says how the back-end went when whoever launched it can tell, in replies awaited and sends alike', async () => {
    const { connection, backend } = pair();
    connection.explainEndWith(async () => 'it died (killed by SIGABRT; nothing on stderr)');
    const reply = connection.requestU64('GET_FEATURES');
    await nextRequest(backend);
    backend.close();
    const said = 'the back-end closed the connection: it died (killed by SIGABRT; nothing on stderr)';
    expect(((await reply.catch((e: unknown) => e)) as Error).message).to.equal(said);
    expect(connection.endedWith).to.equal(said);
    expect(((await connection.send('SET_OWNER').catch((e: unknown) => e)) as Error).message).to.equal(said);
    connection.close();
    // One that lives on: "closed" alone.
    const other = pair();
    other.connection.explainEndWith(async () => undefined);
    other.backend.close();
    await other.connection.closed;
    expect(other.connection.endedWith).to.equal('the back-end closed the connection');
    other.connection.close();
  });

  it('refuses a header announcing a huge payload without waiting for it', async () => {
    const { connection, backend } = pair();
    const reply = connection.requestU64('GET_FEATURES');
    await nextRequest(backend);
    const header = Buffer.alloc(12);
    header.writeUInt32LE(1, 0);
    header.writeUInt32LE(REPLY, 4);
    header.writeUInt32LE(0xffff_ffff, 8);
    await backend.send(header);
    const err = await reply.catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as Error).message).to.match(/4294967295-byte payload/);
    connection.close();
    backend.close();
  });

  it('closes the fds of frames nobody took', async () => {
    const { connection, backend } = pair();
    const stray = new EventFd();
    await backend.send(encodeFrame({ request: 99, flags: REPLY, payload: Buffer.alloc(0) }), [stray.fd]);
    const frame = await connection.nextFrame('a stray frame');
    expect(frame.fds).to.have.length(1);
    const fd = frame.fds[0]!;
    expect(isOpenFd(fd)).to.equal(true);
    closeFd(fd);
    stray.close();
    connection.close();
    backend.close();
  });

  it('sends raw bytes and fds exactly as given, more than 8 fds included', async () => {
    const { connection, backend } = pair();
    // A header with version 2, the reply flag, and a size that lies about the payload that follows.
    const bytes = Buffer.from('010000000600000010000000abcd', 'hex');
    const events = Array.from({ length: 12 }, () => new EventFd());
    await connection.sendRaw(
      bytes,
      events.map((e) => e.fd),
      'a lying header',
    );
    let got: ReturnType<typeof recvmsgFds> = null;
    for (let i = 0; i < 200 && !got; i++) {
      got = recvmsgFds(backend.fd, 4096, 16);
      if (!got) await new Promise((r) => setTimeout(r, 5));
    }
    expect(got!.data.equals(bytes)).to.equal(true);
    expect(got!.fds).to.have.length(12);
    expect(got!.truncated).to.equal(false);
    for (const fd of got!.fds) closeFd(fd);
    expect(connection.recent(1)[0]).to.equal('-> a lying header: 14 bytes fds=12');
    for (const e of events) e.close();
    connection.close();
    backend.close();
  });

  it('reports a raw send to a closed back-end as the back-end gone, and a harness misuse as such', async () => {
    const { connection, backend } = pair();
    expect(await connection.sendRaw(Buffer.alloc(0), [1]).catch((e: unknown) => e)).to.be.instanceOf(
      RangeError,
    );
    backend.close();
    await connection.closed;
    const err = await connection.sendRaw(Buffer.alloc(12)).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.contain('closed the connection');
    connection.close();
  });
});

describe('transport/connection (fuzzed over a socketpair)', () => {
  /** What the back-end end sends, one sendmsg each: bytes (maybe a well-formed reply) and a count of fds. */
  const sends = fc.array(
    fc.record({
      bytes: fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 96 }),
        fc
          .record({
            request: fc.constantFrom(1, 2, 0xffff_ffff),
            flags: fc.constantFrom(5, 4, 1, 0xffff_ffff),
          })
          .map(({ request, flags }) => encodeFrame({ request, flags, payload: u64(0x4000_0000n) })),
        fc
          .record({
            request: fc.nat({ max: 60 }),
            size: fc.oneof(fc.nat({ max: 256 }), fc.constant(0xffff_ffff)),
          })
          .map(({ request, size }) => {
            const header = Buffer.alloc(12);
            header.writeUInt32LE(request, 0);
            header.writeUInt32LE(REPLY, 4);
            header.writeUInt32LE(size, 8);
            return header;
          }),
      ),
      fdCount: fc.oneof(fc.nat({ max: 8 }), fc.integer({ min: 9, max: 200 })),
    }),
    { maxLength: 12 },
  );

  it('answers GET_FEATURES with a value or a coded error within the deadline, and keeps no fd', async function () {
    this.timeout(60_000);
    const before = openFds();
    await fc.assert(
      fc.asyncProperty(sends, fc.boolean(), async (script, hangUp) => {
        const [ours, theirs] = socketpair({ nonblocking: true });
        const connection = Connection.fromFd(ours, 150);
        const started = performance.now();
        const reply = connection.requestU64('GET_FEATURES').then(
          (value) => ({ value }),
          (err: unknown) => ({ err }),
        );
        for (const { bytes, fdCount } of script) {
          const fds = Array.from({ length: fdCount }, () => eventfd());
          try {
            sendmsgFds(theirs, bytes, fds, SCM_KERNEL_MAX_FDS);
          } catch (err) {
            expect(err, 'only a send the harness no longer reads may fail').to.be.instanceOf(SysError);
            // The harness closed its end already (it refused what came before): the rest is not read.
          } finally {
            for (const fd of fds) closeFd(fd);
          }
        }
        if (hangUp) closeFd(theirs);
        const outcome = await reply;
        expect(performance.now() - started, 'time to a verdict').to.be.below(1500);
        if ('err' in outcome) {
          expect(outcome.err).to.be.instanceOf(VhuError);
          expect((outcome.err as VhuError).code).to.be.oneOf([
            'VHU_ERR_PROTOCOL',
            'VHU_ERR_BACKEND',
            'VHU_ERR_TIMEOUT',
          ]);
        } else {
          expect(outcome.value).to.equal(0x4000_0000n);
        }
        connection.close();
        await connection.closed;
        if (!hangUp) closeFd(theirs);
        expect(openFds(), 'fds open after the connection closed').to.deep.equal(before);
      }),
      { numRuns: 60 },
    );
  });

  it('refuses a flood of messages nobody asked for, holding a bounded number of them and their fds', async () => {
    const [ours, theirs] = socketpair({ nonblocking: true });
    const before = openFds();
    const connection = Connection.fromFd(ours, 500);
    const stray = encodeFrame({ request: 99, flags: REPLY, payload: Buffer.alloc(16) });
    const kick = eventfd();
    let sent = 0;
    // Each message with one fd, until the harness gives up reading (or far past every bound).
    for (; sent < MAX_QUEUED_FRAMES * 4; sent++) {
      try {
        if (sendmsgFds(theirs, stray, [kick]) === null) break;
      } catch {
        break;
      }
      if (sent % 32 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await connection.closed;
    const err = await connection.nextFrame('anything').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as Error).message).to.match(/more messages than were asked for/);
    expect(sent).to.be.above(MAX_QUEUED_FDS);
    connection.close();
    closeFd(kick);
    closeFd(theirs);
    expect(openFds().filter((fd) => !before.includes(fd))).to.deep.equal([]);
  });
});
