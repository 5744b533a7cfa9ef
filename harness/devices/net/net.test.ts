import { expect } from 'chai';
import { createGuestMemory, type GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, UsedBatch, VringPort } from '../../virtqueue/port.js';
import type { AddRequestOptions, BufferElement, UsedBuffer } from '../../virtqueue/split.js';
import {
  checksumTestFrame,
  completeChecksum,
  decodeNetHdr,
  encodeNetHdr,
  NET_HDR_SIZE,
  NetDriver,
  testFrame,
  testFrameTag,
} from './net.js';

/** A receive queue played by the test: it records the buffers posted and returns the ones it is told to. */
class FakeQueue implements DriverQueue<number> {
  readonly size = 64;
  readonly posted: Array<{ gpa: bigint; len: number; token: number }> = [];
  readonly ready: Array<UsedBuffer<number>> = [];
  constructor(readonly memory: GuestMemory) {}
  get inFlight(): number {
    return this.posted.length;
  }
  addRequest(chain: readonly BufferElement[], options: AddRequestOptions<number> = {}): number {
    this.posted.push({ gpa: chain[0]!.gpa, len: chain[0]!.len, token: options.token! });
    return options.token!;
  }
  collectUsed(): Array<UsedBuffer<number>> {
    return this.ready.splice(0);
  }
  describePosition(): string {
    return `${this.ready.length} ready`;
  }
  get availMark(): number {
    return this.posted.length;
  }
  needsKick(): boolean {
    return true;
  }
  /** Writes `bytes` into the oldest posted buffer and returns it as used with `len`. */
  use(bytes: Uint8Array, len = bytes.length): void {
    const buffer = this.posted.shift()!;
    this.memory.write(buffer.gpa, bytes);
    this.ready.push({ id: buffer.token, len, token: buffer.token, writableLen: buffer.len });
  }
}

function port(queue: FakeQueue): VringPort<number, FakeQueue> {
  return {
    index: 0,
    queue,
    notify: () => {},
    takeUsed: () => queue.collectUsed(),
    waitUsed: async (): Promise<UsedBatch<number>> => ({ used: queue.collectUsed(), calls: 0 }),
  };
}

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

  /** A driver with MRG_RXBUF: eight receive buffers of 128 bytes posted on a fake receive queue. */
  function mergeable(): { rx: FakeQueue; net: NetDriver } {
    const memory = createGuestMemory();
    const rx = new FakeQueue(memory);
    const net = new NetDriver(port(rx), port(new FakeQueue(memory)), {
      timeoutMs: 100,
      mergeable: true,
      rxBuffers: 8,
      rxBufferSize: 128,
    });
    net.fillRx();
    return { rx, net };
  }

  it('with MRG_RXBUF, puts a packet together from the num_buffers buffers its header names', () => {
    const { rx, net } = mergeable();
    const frame = testFrame(3, 0, 300);
    const packet = Buffer.concat([encodeNetHdr({ numBuffers: 3 }), frame]);
    rx.use(packet.subarray(0, 128));
    rx.use(packet.subarray(128, 256));
    expect(net.receivedNow(), 'two of the three buffers').to.deep.equal([]);
    rx.use(packet.subarray(256));
    const [got] = net.receivedNow();
    expect(Buffer.from(got!.frame).equals(Buffer.from(frame))).to.equal(true);
    expect(got!.usedLens).to.deep.equal([128, 128, 56]);
    expect(got!.usedLen).to.equal(NET_HDR_SIZE + 300);
    // The three buffers are posted again.
    expect(rx.posted.length).to.equal(8);
  });

  it('with MRG_RXBUF, fails a num_buffers too small for the test frame the packet starts', () => {
    const { rx, net } = mergeable();
    const packet = Buffer.concat([encodeNetHdr({ numBuffers: 1 }), testFrame(3, 7, 300)]);
    rx.use(packet.subarray(0, 128));
    rx.use(packet.subarray(128, 256));
    expect(() => net.receivedNow()).to.throw(/num_buffers 1 .* test frame 7 of 300 bytes/);
  });
});
