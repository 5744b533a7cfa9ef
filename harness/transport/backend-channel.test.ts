import { expect } from 'chai';
import { FrameDecoder } from '../protocol/decoder.js';
import { BackendRequest, HeaderFlag, ProtocolFeature } from '../protocol/spec.js';
import { EventFd } from '../sys/eventfd.js';
import { expectNoFdLeaks, sleep } from '../sys/testing.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { BackendChannel } from './backend-channel.js';

const bit = (b: number) => 1n << BigInt(b);
const CONFIG_AND_ACK = bit(ProtocolFeature.CONFIG) | bit(ProtocolFeature.REPLY_ACK);

/** A back-end request built by hand (not by the encoder): header and payload, little-endian. */
function frame(request: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt32LE(request, 0);
  header.writeUInt32LE(flags, 4);
  header.writeUInt32LE(payload.length, 8);
  return Buffer.concat([header, payload]);
}

/** The channel, and the back-end's end as a channel the test plays by hand. */
function pair(protocolFeatures = CONFIG_AND_ACK): { channel: BackendChannel; backend: UnixChannel } {
  const { channel, backendFd } = BackendChannel.pair({ protocolFeatures });
  return { channel, backend: UnixChannel.fromFd(backendFd) };
}

async function nextReply(backend: UnixChannel): Promise<{ request: number; flags: number; value: bigint }> {
  const decoder = new FrameDecoder();
  for (;;) {
    const message = await backend.receive(1000);
    if (!message) throw new Error('closed');
    const [reply] = decoder.push(message.data, message.fds);
    if (reply) return { request: reply.request, flags: reply.flags, value: reply.payload.readBigUInt64LE() };
  }
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await sleep(5);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('transport/backend-channel', () => {
  expectNoFdLeaks();

  it('acks a well-formed CONFIG_CHANGE_MSG with need_reply with 0, and records no problem', async () => {
    const { channel, backend } = pair();
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY));
    const reply = await nextReply(backend);
    expect(reply).to.deep.equal({
      request: BackendRequest.CONFIG_CHANGE_MSG,
      flags: HeaderFlag.VERSION | HeaderFlag.REPLY,
      value: 0n,
    });
    expect(channel.requests).to.have.length(1);
    expect(channel.requests[0]).to.deep.include({ name: 'CONFIG_CHANGE_MSG', reply: 0n, problems: [] });
    expect(channel.problems).to.deep.equal([]);
    expect(channel.recent().join('\n')).to.match(/<- CONFIG_CHANGE_MSG flags=0x9 size=0/);
    channel.close();
    backend.close();
  });

  it('sends no reply without need_reply', async () => {
    const { channel, backend } = pair();
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION));
    await until('the request', () => channel.requests.length === 1);
    const nothing = await backend.receive(50).then(
      () => 'a reply',
      (err: Error) => err.message,
    );
    expect(nothing).to.match(/data on/);
    expect(channel.requests[0]!.reply).to.equal(undefined);
    channel.close();
    backend.close();
  });

  it('records the reply flag, a wrong version, reserved bits and a wrong size, and goes on serving', async () => {
    const { channel, backend } = pair();
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION | HeaderFlag.REPLY));
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, 0x2));
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION | 0x100));
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION, Buffer.alloc(8)));
    await until('four requests', () => channel.requests.length === 4);
    const problems = channel.requests.map((r) => r.problems.join('; '));
    expect(problems[0]).to.match(/reply flag/);
    expect(problems[1]).to.match(/version 2, expected 1/);
    expect(problems[2]).to.match(/reserved flag bits 0x100/);
    expect(problems[3]).to.match(/8 bytes, expected 0/);
    expect(channel.problems).to.have.length(4);
    expect(channel.closedByBackend).to.equal(false);
    channel.close();
    backend.close();
  });

  it('tolerates an unknown request: recorded, answered with a failure when a reply is asked', async () => {
    const { channel, backend } = pair();
    await backend.send(frame(99, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY, Buffer.alloc(4)));
    const reply = await nextReply(backend);
    expect(reply).to.deep.include({ request: 99, value: 1n });
    expect(channel.problems).to.deep.equal(['UNKNOWN(99): request id 99 is not a back-end message type']);
    channel.close();
    backend.close();
  });

  it('records a request whose feature was not negotiated, and fds the type does not allow (and closes them)', async () => {
    const { channel, backend } = pair(bit(ProtocolFeature.REPLY_ACK));
    const event = new EventFd();
    await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION), [event.fd]);
    await until('the request', () => channel.requests.length === 1);
    expect(channel.requests[0]!.problems.join('; ')).to.match(
      /1 fds, expected 0.*without VHOST_USER_PROTOCOL_F_CONFIG negotiated/,
    );
    event.close();
    channel.close();
    backend.close();
  });

  it('always answers SHARED_OBJECT_LOOKUP, with a failure', async () => {
    const { channel, backend } = pair(bit(ProtocolFeature.SHARED_OBJECT));
    await backend.send(frame(BackendRequest.SHARED_OBJECT_LOOKUP, HeaderFlag.VERSION, Buffer.alloc(16)));
    expect(await nextReply(backend)).to.deep.include({
      request: BackendRequest.SHARED_OBJECT_LOOKUP,
      value: 1n,
    });
    expect(channel.problems).to.deep.equal([]);
    channel.close();
    backend.close();
  });

  it('decodes a request split over several writes', async () => {
    const { channel, backend } = pair(bit(ProtocolFeature.INBAND_NOTIFICATIONS));
    const bytes = frame(BackendRequest.VRING_CALL, HeaderFlag.VERSION, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    await backend.send(bytes.subarray(0, 5));
    await sleep(10);
    await backend.send(bytes.subarray(5));
    await until('the request', () => channel.requests.length === 1);
    expect(channel.requests[0]!.message).to.deep.equal({ name: 'VRING_CALL', state: { index: 1, num: 0 } });
    channel.close();
    backend.close();
  });

  it('sees the back-end close its end', async () => {
    const { channel, backend } = pair();
    backend.close();
    await channel.ended;
    expect(channel.closedByBackend).to.equal(true);
    channel.close();
  });

  it('reports a stream that ends inside a message, and a header announcing too much', async () => {
    {
      const { channel, backend } = pair();
      await backend.send(frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION).subarray(0, 6));
      backend.close();
      await channel.ended;
      expect(channel.problems.join()).to.match(/ended inside a message \(6 bytes pending\)/);
    }
    {
      const { channel, backend } = pair();
      const header = frame(BackendRequest.CONFIG_CHANGE_MSG, HeaderFlag.VERSION);
      header.writeUInt32LE(1 << 30, 8);
      await backend.send(header);
      await channel.ended;
      expect(channel.closedByBackend).to.equal(false);
      expect(channel.problems.join()).to.match(/announces a 1073741824-byte payload/);
      backend.close();
    }
  });

  it('ends its read loop on close()', async () => {
    const { channel, backend } = pair();
    channel.close();
    await channel.ended;
    expect(channel.closedByBackend).to.equal(false);
    backend.close();
  });
});
