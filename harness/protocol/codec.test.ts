import { expect } from 'chai';
import { FrameDecoder } from './decoder.js';
import { encodeFrame, encodeRequest } from './encoder.js';
import { encodeU64 } from './messages.js';
import { FrontendRequest, frontendRequestName, protocolFeatureList } from './spec.js';

// Golden frames written by hand from the spec's header layout: request u32, flags u32, size u32, payload.
const GET_FEATURES_REQUEST = Buffer.from('01000000' + '01000000' + '00000000', 'hex');
const GET_FEATURES_REPLY = Buffer.from('01000000' + '05000000' + '08000000' + '0000004001000000', 'hex');
const SET_OWNER_NEED_REPLY = Buffer.from('03000000' + '09000000' + '00000000', 'hex');

describe('protocol codec', () => {
  it('encodes requests to the golden bytes', () => {
    expect(encodeRequest(FrontendRequest.GET_FEATURES)).to.deep.equal(GET_FEATURES_REQUEST);
    expect(encodeRequest(FrontendRequest.SET_OWNER, undefined, true)).to.deep.equal(SET_OWNER_NEED_REPLY);
    expect(encodeU64(0x1_4000_0000n)).to.deep.equal(GET_FEATURES_REPLY.subarray(12));
  });

  it('encodes a size field other than the payload length when told (malformed frames)', () => {
    const payload = Buffer.from('0102030405060708', 'hex');
    const frame = { request: FrontendRequest.SET_FEATURES, flags: 1, payload };
    // SET_FEATURES announcing 0xFFFFFFFF bytes and carrying 8; then announcing none and carrying 8.
    expect(encodeFrame(frame, 0xffff_ffff)).to.deep.equal(
      Buffer.from('02000000' + '01000000' + 'ffffffff' + '0102030405060708', 'hex'),
    );
    expect(encodeFrame(frame, 0)).to.deep.equal(
      Buffer.from('02000000' + '01000000' + '00000000' + '0102030405060708', 'hex'),
    );
    expect(encodeFrame(frame)).to.deep.equal(
      Buffer.from('02000000' + '01000000' + '08000000' + '0102030405060708', 'hex'),
    );
  });

  it('decodes a reply cut at every offset', () => {
    for (let cut = 0; cut <= GET_FEATURES_REPLY.length; cut++) {
      const decoder = new FrameDecoder();
      const first = decoder.push(GET_FEATURES_REPLY.subarray(0, cut), [7]);
      const second = decoder.push(GET_FEATURES_REPLY.subarray(cut));
      const frames = [...first, ...second];
      expect(frames, `cut at ${cut}`).to.have.length(1);
      expect(frames[0]).to.deep.include({ request: 1, flags: 5, fds: [7] });
      expect(frames[0]!.payload.readBigUInt64LE()).to.equal(0x1_4000_0000n);
      expect(decoder.pendingBytes).to.equal(0);
    }
  });

  it('gives fds read with several messages to the last one that starts in those bytes', () => {
    // A Unix stream read stops after the bytes of a sendmsg that carried fds: the fds are that message's.
    const decoder = new FrameDecoder();
    const frames = decoder.push(Buffer.concat([GET_FEATURES_REPLY, SET_OWNER_NEED_REPLY]), [3, 4]);
    expect(frames.map((f) => f.request)).to.deep.equal([1, 3]);
    expect(frames[0]!.fds).to.deep.equal([]);
    expect(frames[1]!.fds).to.deep.equal([3, 4]);
  });

  it('gives fds to the message whose bytes they came with, wherever the reads cut', () => {
    const stream = Buffer.concat([GET_FEATURES_REPLY, SET_OWNER_NEED_REPLY, GET_FEATURES_REPLY]);
    const second = GET_FEATURES_REPLY.length;
    const third = second + SET_OWNER_NEED_REPLY.length;
    // The second message carries fd 9; a read that returns the fd ends inside or at the end of that message.
    for (let start = 0; start <= second; start++) {
      for (let end = second + 1; end <= third; end++) {
        const decoder = new FrameDecoder();
        const frames = [
          ...decoder.push(stream.subarray(0, start)),
          ...decoder.push(stream.subarray(start, end), [9]),
          ...decoder.push(stream.subarray(end)),
        ];
        expect(
          frames.map((f) => f.fds),
          `reads cut at ${start} and ${end}`,
        ).to.deep.equal([[], [9], []]);
      }
    }
  });

  it('refuses a header announcing a payload past the limit before buffering it', () => {
    const decoder = new FrameDecoder(256);
    const header = Buffer.from('01000000' + '05000000' + '00000001', 'hex');
    expect(() => decoder.push(header)).to.throw(/16777216-byte payload/);
  });

  it('names requests and protocol features', () => {
    expect(frontendRequestName(15)).to.equal('GET_PROTOCOL_FEATURES');
    expect(frontendRequestName(999)).to.equal('UNKNOWN(999)');
    expect(protocolFeatureList(0b1001n | (1n << 40n))).to.deep.equal(['MQ', 'REPLY_ACK', 'bit40']);
  });
});
