import { expect } from 'chai';
import { decodeNetHdr, encodeNetHdr, NET_HDR_SIZE, testFrame, testFrameTag } from './net.js';

describe('devices/net', () => {
  it('encodes virtio_net_hdr little-endian, 12 bytes with num_buffers', () => {
    const bytes = encodeNetHdr({
      flags: 1,
      gsoType: 4,
      hdrLen: 54,
      gsoSize: 1448,
      csumStart: 34,
      csumOffset: 16,
    });
    // Written by hand from the spec's struct: u8 flags, u8 gso_type, le16 hdr_len, gso_size, csum_start,
    // csum_offset, num_buffers.
    expect([...bytes]).to.deep.equal([1, 4, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
    expect(bytes.length).to.equal(NET_HDR_SIZE);
    expect(decodeNetHdr(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0)).numBuffers).to.equal(3);
  });

  it('builds test frames that name themselves and differ from one another', () => {
    const a = testFrame(7, 1, 60);
    const b = testFrame(7, 2, 60);
    expect([...a.subarray(12, 14)]).to.deep.equal([0x88, 0xb5]);
    expect(testFrameTag(a)).to.deep.equal({ run: 7, sequence: 1, length: 60 });
    expect(Buffer.from(a.subarray(24)).equals(Buffer.from(b.subarray(24)))).to.equal(false);
    expect(testFrame(7, 1, 60)).to.deep.equal(a);
    expect(testFrameTag(Uint8Array.of(1, 2, 3))).to.equal(undefined);
    expect(() => testFrame(1, 1, 1515)).to.throw(RangeError);
  });
});
