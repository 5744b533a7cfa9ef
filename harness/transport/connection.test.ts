import { expect } from 'chai';
import { BackendError, ProtocolError, TimeoutError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { FrontendRequest, HeaderFlag } from '../protocol/spec.js';
import { EventFd } from '../sys/eventfd.js';
import { closeFd, eventfdRead, isOpenFd, recvmsgFds } from '../sys/libc.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from './connection.js';

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
