import { expect } from 'chai';
import {
  checksumTestFrame,
  completeChecksum,
  decodeNetHdr,
  encodeNetHdr,
  NET_HDR_SIZE,
  testFrame,
  testFrameTag,
} from './net.js';

/** The RFC 1071 check written apart: a correct packet sums to 0xffff over pseudo header and segment. */
function verifies(frame: Uint8Array): boolean {
  const ipHeader = (frame[14]! & 0xf) * 4;
  const segment = frame.subarray(14 + ipHeader);
  const words: number[] = [];
  for (const at of [26, 28, 30, 32]) words.push((frame[at]! << 8) | frame[at + 1]!);
  words.push(frame[23]!, segment.length);
  for (let i = 0; i < segment.length; i += 2) words.push((segment[i]! << 8) | (segment[i + 1] ?? 0));
  let sum = words.reduce((a, b) => a + b, 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

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

  it('builds UDP and TCP frames with a correct checksum, and their partial form NEEDS_CSUM completes', () => {
    for (const protocol of ['udp', 'tcp'] as const) {
      for (const length of [62, 75, 1514]) {
        const { full, partial, csumStart, csumOffset } = checksumTestFrame(9, length, length, protocol);
        expect(verifies(full), `${protocol} ${length}`).to.equal(true);
        expect(verifies(partial), `${protocol} ${length} partial`).to.equal(false);
        expect([csumStart, csumOffset]).to.deep.equal([34, protocol === 'udp' ? 6 : 16]);
        expect(completeChecksum(partial, csumStart, csumOffset)).to.deep.equal(full);
        // Only the checksum field differs.
        const differ = [...full].flatMap((b, i) => (b === partial[i] ? [] : [i]));
        expect(differ.every((i) => i === 34 + csumOffset || i === 35 + csumOffset)).to.equal(true);
      }
    }
    expect(completeChecksum(new Uint8Array(40), 34, 6)).to.equal(undefined);
  });
});
