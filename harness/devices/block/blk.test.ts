import { expect } from 'chai';
import { BackendError } from '../../errors.js';
import { createGuestMemory, type GuestMemory } from '../../memory/guest-memory.js';
import type { UsedBatch, VringPort } from '../../virtqueue/port.js';
import { SplitVirtqueue } from '../../virtqueue/split.js';
import {
  BLK_HEADER_SIZE,
  BlkError,
  BlkErrorCode,
  blkChain,
  blkExpectedUsedLen,
  decodeBlkConfig,
  describeSectorDiff,
  encodeBlkHeader,
  sectorPattern,
  VirtioBlkStatus,
} from './blk.js';
import {
  blkUsedLenShortfall,
  completionFindings,
  expectBlkStatus,
  expectUsedLenWritten,
} from './completion.js';
import { BlkDriver } from './driver.js';

// The skewed layout's regions by guest address (see guest-memory.test.ts): A, C, B.
const A = 0x0n;
const C = 0x10_0000n;
const B = 0x1_0000_0000n;

const le16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const le32 = (b: Uint8Array, at: number) => (le16(b, at) | (le16(b, at + 2) << 16)) >>> 0;
const le64 = (b: Uint8Array, at: number) => BigInt(le32(b, at)) | (BigInt(le32(b, at + 4)) << 32n);

interface Element {
  gpa: bigint;
  len: number;
  write: boolean;
}

/**
 * A RAM disk playing the device, written from the virtio spec rather than from blk.ts: it finds the rings by
 * their user addresses as a back-end does, walks chains (NEXT, and an INDIRECT descriptor wherever it is),
 * takes the header from the readable bytes and the status from the last writable byte.
 */
class RamBlkDevice {
  lastAvail = 0;
  usedIdx = 0;
  /** Adds this to every used.len (a device that miscounts). */
  usedLenError = 0;
  /** Writes over the first header byte (a device that writes where it must only read). */
  scribbleHeader = false;
  /** A read past the end: OK and used.len counting the data, none of it written (contrib/vhost-user-blk 7.2). */
  pastEndUnwritten = false;
  readonly desc: bigint;
  readonly avail: bigint;
  readonly used: bigint;

  constructor(
    readonly memory: GuestMemory,
    readonly size: number,
    addr: { descriptor: bigint; used: bigint; available: bigint },
    readonly disk: Uint8Array,
  ) {
    this.desc = memory.uvaToGpa(addr.descriptor);
    this.avail = memory.uvaToGpa(addr.available);
    this.used = memory.uvaToGpa(addr.used);
  }

  process(): void {
    const availIdx = le16(this.memory.read(this.avail + 2n, 2), 0);
    while (this.lastAvail !== availIdx) {
      const slot = this.lastAvail % this.size;
      const head = le16(this.memory.read(this.avail + 4n + 2n * BigInt(slot), 2), 0);
      const len = this.serve(this.chain(head));
      const elem = new Uint8Array(8);
      new DataView(elem.buffer).setUint32(0, head, true);
      new DataView(elem.buffer).setUint32(4, len + this.usedLenError, true);
      this.memory.write(this.used + 4n + 8n * BigInt(this.usedIdx % this.size), elem);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.memory.write(this.used + 2n, Uint8Array.of(this.usedIdx & 0xff, this.usedIdx >> 8));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
    }
  }

  chain(head: number): Element[] {
    const out: Element[] = [];
    let table = this.desc;
    let index = head;
    for (;;) {
      const d = this.memory.read(table + 16n * BigInt(index), 16);
      const flags = le16(d, 12);
      if (flags & 4) {
        table = le64(d, 0);
        index = 0;
        continue;
      }
      out.push({ gpa: le64(d, 0), len: le32(d, 8), write: (flags & 2) !== 0 });
      if (!(flags & 1)) return out;
      index = le16(d, 14);
    }
  }

  serve(chain: Element[]): number {
    const readable = chain.filter((e) => !e.write);
    const writable = chain.filter((e) => e.write);
    const input = concat(readable.map((e) => this.memory.read(e.gpa, e.len)));
    const type = le32(input, 0);
    const sector = Number(le64(input, 8));
    const room = writable.reduce((n, e) => n + e.len, 0);
    if (this.scribbleHeader) this.memory.write(readable[0]!.gpa, Uint8Array.of(0xee));
    let out = new Uint8Array(0);
    let status: number = VirtioBlkStatus.OK;
    if (type === 0) {
      const start = sector * 512;
      if (start + room - 1 > this.disk.length && this.pastEndUnwritten) {
        this.memory.write(writable.at(-1)!.gpa + BigInt(writable.at(-1)!.len - 1), Uint8Array.of(0));
        return room;
      }
      if (start + room - 1 > this.disk.length) status = VirtioBlkStatus.IOERR;
      else out = this.disk.slice(start, start + room - 1);
    } else if (type === 1) {
      const data = input.subarray(BLK_HEADER_SIZE);
      if (sector * 512 + data.length > this.disk.length) status = VirtioBlkStatus.IOERR;
      else this.disk.set(data, sector * 512);
    } else if (type === 8) {
      out = new Uint8Array(20);
      out.set(new TextEncoder().encode('ram-disk'));
    } else if (type !== 4) {
      status = VirtioBlkStatus.UNSUPP;
    }
    const bytes = new Uint8Array(room);
    bytes.set(out);
    bytes[room - 1] = status;
    let at = 0;
    for (const e of writable) {
      this.memory.write(e.gpa, bytes.subarray(at, at + e.len));
      at += e.len;
    }
    return status === VirtioBlkStatus.OK ? out.length + 1 : 1;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A port whose notification makes the RAM disk process the ring at once. */
function setUp(options: { indirect?: boolean; sectors?: number; keep?: BlkErrorCode[] } = {}) {
  const memory = createGuestMemory();
  // The last sector of A and the first of C, adjacent in guest space, kept out of the driver's slots.
  const span = memory.alloc(512, 512, { region: A, fromEnd: true });
  memory.alloc(512, 512, { region: C });
  const queue = new SplitVirtqueue<unknown>(memory, 16, { indirect: options.indirect ?? false, region: B });
  const device = new RamBlkDevice(
    memory,
    16,
    queue.vringAddr(),
    new Uint8Array((options.sectors ?? 64) * 512),
  );
  let kicks = 0;
  const port: VringPort<unknown> = {
    index: 0,
    queue,
    notify: () => {
      kicks++;
      device.process();
    },
    waitUsed: async (_timeoutMs: number, count = 1): Promise<UsedBatch<unknown>> => {
      const used = queue.collectUsed();
      if (used.length < count) throw new Error(`only ${used.length} of ${count} used`);
      return { used, calls: 0 };
    },
    takeUsed: () => queue.collectUsed(),
  };
  const blk = new BlkDriver(port, { timeoutMs: 100, ...(options.keep ? { keep: options.keep } : {}) });
  return { memory, queue, device, blk, span, kicks: () => kicks };
}

describe('devices/blk', () => {
  it('encodes the request header: type le32, reserved 0, sector le64', () => {
    expect([...encodeBlkHeader(1, 0x0102_0304_0506_0708n)]).to.deep.equal([
      0x01, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    ]);
    expect([...encodeBlkHeader(8)]).to.deep.equal([8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('lays a request out as header (readable), data, status (writable, last)', () => {
    const layout = {
      header: 0x100n,
      data: [
        { gpa: 0x1000n, len: 512 },
        { gpa: 0x2000n, len: 1024 },
      ],
      status: 0x300n,
    };
    expect(blkChain({ type: 'IN', sector: 3n, count: 3 }, layout)).to.deep.equal([
      { gpa: 0x100n, len: 16, write: false },
      { gpa: 0x1000n, len: 512, write: true },
      { gpa: 0x2000n, len: 1024, write: true },
      { gpa: 0x300n, len: 1, write: true },
    ]);
    expect(blkChain({ type: 'OUT', sector: 3n, data: new Uint8Array(1536) }, layout)).to.deep.equal([
      { gpa: 0x100n, len: 16, write: false },
      { gpa: 0x1000n, len: 512, write: false },
      { gpa: 0x2000n, len: 1024, write: false },
      { gpa: 0x300n, len: 1, write: true },
    ]);
    expect(
      blkChain({ type: 'FLUSH' }, { header: 0x100n, data: [{ gpa: 0x1000n, len: 0 }], status: 0x300n }),
    ).to.deep.equal([
      { gpa: 0x100n, len: 16, write: false },
      { gpa: 0x300n, len: 1, write: true },
    ]);
  });

  it('expects used.len to count the data the device writes and the status byte', () => {
    expect(blkExpectedUsedLen({ type: 'IN', sector: 0n, count: 2 })).to.equal(1025);
    expect(blkExpectedUsedLen({ type: 'OUT', sector: 0n, data: new Uint8Array(512) })).to.equal(1);
    expect(blkExpectedUsedLen({ type: 'FLUSH' })).to.equal(1);
    expect(blkExpectedUsedLen({ type: 'GET_ID' })).to.equal(21);
  });

  it('decodes capacity at 0 and blk_size at 20 of the config space', () => {
    const bytes = Buffer.alloc(60);
    bytes.set([0x00, 0x40, 0, 0, 0, 0, 0, 0], 0); // capacity 0x4000
    bytes.set([0x00, 0x10, 0, 0], 20); // blk_size 4096
    bytes.set([0x7e, 0, 0, 0], 12); // seg_max 126
    expect(decodeBlkConfig(bytes)).to.deep.include({ capacity: 0x4000n, blkSize: 4096, segMax: 126 });
  });

  it('makes sector patterns that name their sector and seed', () => {
    const a = sectorPattern(10n, 2, 7);
    expect(le64(a, 0)).to.equal(10n);
    expect(le64(a, 512)).to.equal(11n);
    expect(le32(a, 8)).to.equal(7);
    expect(Buffer.from(a.subarray(12, 512)).equals(Buffer.from(a.subarray(524, 1024)))).to.equal(false);
    expect(Buffer.from(sectorPattern(10n, 1, 8)).equals(Buffer.from(a.subarray(0, 512)))).to.equal(false);
  });

  it('says which sector differs and what it holds instead', () => {
    const expected = sectorPattern(100n, 3, 1);
    const misplaced = expected.slice();
    misplaced.set(sectorPattern(100n, 1, 1), 1024);
    expect(describeSectorDiff(expected, expected.slice(), 100n)).to.equal(undefined);
    expect(describeSectorDiff(expected, misplaced, 100n)).to.match(
      /^sector 102 differs .*holds the pattern of sector 100 \(seed 1\)/,
    );
    const zeroed = expected.slice();
    zeroed.fill(0, 512, 1024);
    expect(describeSectorDiff(expected, zeroed, 100n)).to.match(/^sector 101 differs \(\d+ of 1536.*zeros/);
  });

  it('writes and reads back through the ring', async () => {
    const { blk, device } = setUp();
    const data = sectorPattern(4n, 6, 3);
    await blk.write(4n, data);
    expect(Buffer.from(device.disk.subarray(4 * 512, 10 * 512)).equals(Buffer.from(data))).to.equal(true);
    expect(Buffer.from(await blk.read(4n, 6)).equals(Buffer.from(data))).to.equal(true);
  });

  it('puts the header, the two data segments and the status byte in different regions', async () => {
    const { blk, device } = setUp();
    const seen: Element[][] = [];
    const serve = device.serve.bind(device);
    device.serve = (chain) => {
      seen.push(chain);
      return serve(chain);
    };
    await blk.read(0n, 4);
    const where = seen[0]!.map((e) => device.memory.regionAt(e.gpa)?.guestAddress);
    expect(where).to.deep.equal([C, A, B, A]);
    expect(seen[0]!.map((e) => e.len)).to.deep.equal([16, 1024, 1024, 1]);
  });

  it('keeps several requests in flight and returns them in request order', async () => {
    const { blk, kicks } = setUp();
    await blk.runAll([
      { type: 'OUT', sector: 0n, data: sectorPattern(0n, 2, 9) },
      { type: 'OUT', sector: 2n, data: sectorPattern(2n, 1, 9) },
    ]);
    const [first, second, third] = await blk.runAll([
      { type: 'IN', sector: 2n, count: 1 },
      { type: 'IN', sector: 0n, count: 3 },
      { type: 'GET_ID' },
    ]);
    expect(Buffer.from(first!.data).equals(Buffer.from(sectorPattern(2n, 1, 9)))).to.equal(true);
    expect(Buffer.from(second!.data).equals(Buffer.from(sectorPattern(0n, 3, 9)))).to.equal(true);
    expect(new TextDecoder().decode(third!.data.subarray(0, 8))).to.equal('ram-disk');
    expectBlkStatus(third!, VirtioBlkStatus.OK);
    expect(kicks()).to.equal(2);
  });

  it('goes through indirect tables, whole or after direct descriptors', async () => {
    const { blk } = setUp({ indirect: true });
    const data = sectorPattern(8n, 4, 5);
    await blk.write(8n, data, { indirect: true });
    expect(Buffer.from(await blk.read(8n, 4, { indirect: true })).equals(Buffer.from(data))).to.equal(true);
    expect(
      Buffer.from(await blk.read(8n, 4, { indirect: true, directPrefix: 2 })).equals(Buffer.from(data)),
    ).to.equal(true);
  });

  it('uses data segments the caller gives, across a region boundary', async () => {
    const { blk, memory, span: gpa } = setUp();
    const data = sectorPattern(0n, 2, 4);
    expect(gpa).to.equal(C - 512n);
    await blk.write(0n, data, { data: [{ gpa, len: 1024 }] });
    expect(Buffer.from(memory.read(gpa, 1024)).equals(Buffer.from(data))).to.equal(true);
    expect(Buffer.from(await blk.read(0n, 2)).equals(Buffer.from(data))).to.equal(true);
  });

  it('accepts IOERR past the capacity when asked for it', async () => {
    const { blk } = setUp({ sectors: 8 });
    const completion = await blk.run({ type: 'IN', sector: 8n, count: 1 });
    expectBlkStatus(completion, VirtioBlkStatus.IOERR);
    expect(() => expectBlkStatus(completion, VirtioBlkStatus.OK)).to.throw(BlkError, /status 1 \(IOERR\)/);
  });

  it('takes a used.len below the bytes written ("permitted to be an underestimate") and names the shortfall', async () => {
    const { blk, device } = setUp();
    device.disk.set(sectorPattern(0n, 17, 3));
    device.usedLenError = -1;
    expect(Buffer.from(await blk.read(0n, 16)).equals(Buffer.from(sectorPattern(0n, 16, 3)))).to.equal(true);
    const completion = await blk.run({ type: 'IN', sector: 0n, count: 16 });
    expectBlkStatus(completion, VirtioBlkStatus.OK);
    expect([completion.usedLen, blkUsedLenShortfall(completion)]).to.deep.equal([8192, 1]);
    device.usedLenError = 0;
    expect(blkUsedLenShortfall(await blk.run({ type: 'IN', sector: 0n, count: 16 }))).to.equal(0);
  });

  it('fails a used.len that counts bytes the device never wrote, whatever the status', async () => {
    const { blk, device } = setUp({ sectors: 8 });
    device.pastEndUnwritten = true;
    const past = await blk.run({ type: 'IN', sector: 8n, count: 1 });
    expect(past.usedLen).to.equal(513);
    expect(() => expectUsedLenWritten(past)).to.throw(
      BlkError,
      /IN sector 8 x1 \(head \d+\): used\.len 513 counts 512 data bytes the device never wrote/,
    );
    // Whatever the status: the findings of a completion, none thrown.
    expect(completionFindings(past).map((f) => f.code)).to.deep.equal([BlkErrorCode.USED_LEN]);
    device.pastEndUnwritten = false;
    expect(completionFindings(await blk.run({ type: 'IN', sector: 8n, count: 1 }))).to.deep.equal([]);
  });

  it('fails a used.len above the writable bytes and a written header', async () => {
    const { blk, device } = setUp();
    device.usedLenError = 1;
    const err = await blk.read(0n, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(BlkError).and.to.be.instanceOf(BackendError);
    expect((err as BlkError).code).to.equal(BlkErrorCode.USED_LEN);
    expect((err as BlkError).message).to.match(/used\.len 514 is more than the 513 writable bytes/);
    device.usedLenError = 0;
    device.scribbleHeader = true;
    const written = await blk.run({ type: 'FLUSH' });
    expect(() => expectBlkStatus(written, VirtioBlkStatus.OK)).to.throw(BlkError, /header was modified/);
  });

  it('keeps the findings of the rules it leaves to another check, and still fails the status and the data', async () => {
    const { blk, device } = setUp({
      sectors: 8,
      keep: [BlkErrorCode.USED_LEN, BlkErrorCode.READONLY_WRITTEN],
    });
    const data = sectorPattern(0n, 2, 6);
    device.usedLenError = 512;
    await blk.write(0n, data);
    device.usedLenError = 0;
    device.scribbleHeader = true;
    expect(Buffer.from(await blk.read(0n, 2)).equals(Buffer.from(data))).to.equal(true);
    expect(blk.findings.map((f) => [f.code, f.message])).to.deep.equal([
      [
        BlkErrorCode.USED_LEN,
        'OUT sector 0 x2 (head 0): used.len 513 is more than the 1 writable bytes of the chain',
      ],
      [
        BlkErrorCode.READONLY_WRITTEN,
        'IN sector 0 x2 (head 0): the request header was modified by the device',
      ],
    ]);
    // A status other than OK is no completion rule: thrown.
    const past = await blk.read(8n, 1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((past as BlkError).code).to.equal(BlkErrorCode.STATUS);
    // Nor is data that differs, in a stream whose used.len findings are kept.
    device.scribbleHeader = false;
    device.usedLenError = 1;
    device.disk.fill(0);
    const streamed = await blk
      .stream({
        total: 4,
        depth: 2,
        request: () => ({ type: 'IN', sector: 0n, count: 2 }),
        expectedData: () => data,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((streamed as BlkError).code).to.equal(BlkErrorCode.DATA);
    expect(blk.findings.at(-1)?.code).to.equal(BlkErrorCode.USED_LEN);
  });

  describe('stream', () => {
    const read = (i: number) => ({ type: 'IN' as const, sector: BigInt(i % 8), count: 4 });

    it('keeps depth requests in flight, checks each in place and gives every slot back', async () => {
      const { blk, device, kicks } = setUp({ indirect: true });
      device.disk.set(sectorPattern(0n, 16, 9));
      const result = await blk.stream({
        total: 100,
        depth: 8,
        request: read,
        expectedData: (r) => (r.type === 'IN' ? sectorPattern(r.sector, r.count, 9) : undefined),
        indirect: true,
      });
      // The RAM disk answers every kick at once: each round posts 8, kicks once, takes 8, and never waits.
      expect(result).to.deep.equal({ completed: 100, kicks: 13, waits: 0 });
      expect(kicks()).to.equal(13);
      expect(blk.inFlight).to.equal(0);
      await blk.stream({
        total: 10,
        depth: 3,
        request: (i) => ({ type: 'OUT', sector: BigInt(i), data: sectorPattern(BigInt(i), 1, 1) }),
      });
      expect(
        Buffer.from(device.disk.subarray(0, 10 * 512)).equals(Buffer.from(sectorPattern(0n, 10, 1))),
      ).to.equal(true);
      expect(blk.inFlight).to.equal(0);
    });

    it('fails data that differs, naming the sector and what it holds', async () => {
      const { blk, device } = setUp();
      device.disk.set(sectorPattern(0n, 16, 9));
      device.disk.fill(0, 5 * 512, 6 * 512);
      const err = await blk
        .stream({
          total: 20,
          depth: 4,
          request: read,
          expectedData: (r) => (r.type === 'IN' ? sectorPattern(r.sector, r.count, 9) : undefined),
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).to.be.instanceOf(BlkError);
      expect((err as BlkError).code).to.equal(BlkErrorCode.DATA);
      expect((err as BlkError).message).to.match(
        /^IN sector 2 x4 \(head \d+\) returned other data: sector 5 differs.*zeros/,
      );
    });

    it('fails a wrong used.len and a written header as expectBlkStatus does', async () => {
      const { blk, device } = setUp();
      device.usedLenError = 1;
      const miscounted = await blk.stream({ total: 4, depth: 2, request: read }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((miscounted as BlkError).code).to.equal(BlkErrorCode.USED_LEN);
      const other = setUp();
      other.device.scribbleHeader = true;
      const scribbled = await other.blk
        .stream({ total: 4, depth: 2, request: () => ({ type: 'FLUSH' }) })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect((scribbled as BlkError).code).to.equal(BlkErrorCode.READONLY_WRITTEN);
      const tooDeep = await setUp()
        .blk.stream({ total: 1, depth: 9, request: read })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(tooDeep).to.be.instanceOf(RangeError);
    });
  });

  it('gives its slot back when a request completes, and refuses more than it has slots for', async () => {
    const { blk } = setUp();
    for (let i = 0; i < 8; i++) blk.post({ type: 'FLUSH' });
    expect(() => blk.post({ type: 'FLUSH' })).to.throw(/slots are in flight/);
    expect(blk.inFlight).to.equal(8);
    blk.kick();
    await blk.collect(8);
    expect(blk.inFlight).to.equal(0);
  });
});
