import { expect } from 'chai';
import { FrontendRequest } from '../protocol/spec.js';
import { currentWireLog, formatWireLog, formatWireRecord, WireLog, wireLogContext } from './wire-log.js';

// A GET_FEATURES request and its reply, by hand: request, flags, size, payload (little-endian).
const u64 = Buffer.from('0000004001000000', 'hex');

describe('wire log', () => {
  it('records messages with direction, connection, flags, size, fds and decoded fields', () => {
    const log = new WireLog();
    const a = {};
    const b = {};
    log.message(a, '->', FrontendRequest.GET_FEATURES, 0x1, Buffer.alloc(0), 0);
    log.message(a, '<-', FrontendRequest.GET_FEATURES, 0x5, u64, 0);
    log.message(b, '->', FrontendRequest.SET_VRING_KICK, 0x1, Buffer.from('0000000000000000', 'hex'), 1);
    log.event(b, '<-', 'end of stream: the back-end closed the connection');
    log.backendChannelMessage(b, '<-', 1, 0x9, Buffer.from('0100000000000000', 'hex'), 0);
    const { records, cut } = log.data();
    expect(cut).to.equal(0);
    expect(records.map((r) => [r.connection, r.direction, r.name])).to.deep.equal([
      [1, '->', 'GET_FEATURES'],
      [1, '<-', 'GET_FEATURES'],
      [2, '->', 'SET_VRING_KICK'],
      [2, '<-', 'end of stream: the back-end closed the connection'],
      [2, '<-', 'BACKEND_IOTLB_MSG'],
    ]);
    const line = formatWireRecord(records[1]!);
    expect(line).to.match(/^\+\d+\.\dms #1 <- GET_FEATURES \[v1 reply\] size=8 0x140000000$/);
    expect(formatWireRecord(records[2]!)).to.match(
      /SET_VRING_KICK \[v1\] size=8 fds=1 index=0 invalidFd=false$/,
    );
  });

  it('describes raw bytes by the header they start with, and bytes too short for one', () => {
    const log = new WireLog();
    const frame = Buffer.from('01000000' + '01000000' + 'ffffffff', 'hex');
    log.raw({}, frame, 0, 'size 0xFFFFFFFF');
    log.raw({}, Buffer.from('0100', 'hex'), 0, 'a 2-byte header');
    const [big, short] = log.data().records;
    expect(big!.name).to.equal('size 0xFFFFFFFF (GET_FEATURES, 0 payload bytes sent)');
    expect(big!.size).to.equal(0xffff_ffff);
    expect(short!.fields).to.equal('2 raw bytes: 0100');
  });

  it('keeps the first and the last records within its bound, and says how many were cut', () => {
    const log = new WireLog(3, 5);
    const c = {};
    for (let i = 0; i < 100; i++) log.event(c, '->', `event ${i}`);
    const data = log.data();
    expect(data.records.map((r) => r.name)).to.deep.equal([
      'event 0',
      'event 1',
      'event 2',
      ...[95, 96, 97, 98, 99].map((i) => `event ${i}`),
    ]);
    expect(data.cut).to.equal(92);
    const lines = formatWireLog(data);
    expect(lines[3]).to.equal('... 92 messages cut here: the log keeps the first 3 and the last 5 ...');
    expect(lines).to.have.length(9);
  });

  it('records into the log of the async context only, and nothing once closed', async () => {
    expect(currentWireLog()).to.equal(undefined);
    const log = new WireLog();
    await wireLogContext.run(log, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      currentWireLog()?.event({}, '->', 'inside');
    });
    log.close();
    log.event({}, '->', 'after');
    expect(log.data().records.map((r) => r.name)).to.deep.equal(['inside']);
  });
});
