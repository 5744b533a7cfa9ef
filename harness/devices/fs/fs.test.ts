import { expect } from 'chai';
import { createGuestMemory, type GuestMemory } from '../../memory/guest-memory.js';
import type { UsedBatch, VringPort } from '../../virtqueue/port.js';
import { SplitVirtqueue } from '../../virtqueue/split.js';
import { FsDriver, FsError, FsErrorCode, sharedDirFromArgs } from './fs.js';
import { FuseOpcode } from './fuse.js';

const B = 0x1_0000_0000n;

const le16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const le32 = (b: Uint8Array, at: number) => (le16(b, at) | (le16(b, at + 2) << 16)) >>> 0;
const le64 = (b: Uint8Array, at: number) => BigInt(le32(b, at)) | (BigInt(le32(b, at + 4)) << 32n);

interface Element {
  gpa: bigint;
  len: number;
  write: boolean;
}

/** What the fake device answers: the bytes to write (or none), and used.len (default: their length). */
type Answer = (request: Uint8Array, room: number) => { reply?: Uint8Array; usedLen?: number };

/**
 * A device played by hand from the virtio spec (not from fs.ts): it walks direct chains from the rings'
 * user addresses, concatenates the readable bytes, and writes the answer across the writable ones.
 */
class FakeFsDevice {
  lastAvail = 0;
  usedIdx = 0;
  readonly desc: bigint;
  readonly avail: bigint;
  readonly used: bigint;
  constructor(
    readonly memory: GuestMemory,
    readonly size: number,
    addr: { descriptor: bigint; used: bigint; available: bigint },
    readonly answer: Answer,
  ) {
    this.desc = memory.uvaToGpa(addr.descriptor);
    this.avail = memory.uvaToGpa(addr.available);
    this.used = memory.uvaToGpa(addr.used);
  }

  process(): void {
    const availIdx = le16(this.memory.read(this.avail + 2n, 2), 0);
    while (this.lastAvail !== availIdx) {
      const head = le16(this.memory.read(this.avail + 4n + 2n * BigInt(this.lastAvail % this.size), 2), 0);
      const chain: Element[] = [];
      for (let i = head; ; ) {
        const d = this.memory.read(this.desc + 16n * BigInt(i), 16);
        chain.push({ gpa: le64(d, 0), len: le32(d, 8), write: (le16(d, 12) & 2) !== 0 });
        if (!(le16(d, 12) & 1)) break;
        i = le16(d, 14);
      }
      const readable = Buffer.concat(
        chain.filter((e) => !e.write).map((e) => this.memory.read(e.gpa, e.len)),
      );
      const writable = chain.filter((e) => e.write);
      const room = writable.reduce((n, e) => n + e.len, 0);
      const { reply = new Uint8Array(0), usedLen = reply.length } = this.answer(readable, room);
      let at = 0;
      for (const e of writable) {
        const part = reply.subarray(at, at + e.len);
        if (part.length) this.memory.write(e.gpa, part);
        at += e.len;
      }
      const elem = Buffer.alloc(8);
      elem.writeUInt32LE(head, 0);
      elem.writeUInt32LE(usedLen, 4);
      this.memory.write(this.used + 4n + 8n * BigInt(this.usedIdx % this.size), elem);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.memory.write(this.used + 2n, Uint8Array.of(this.usedIdx & 0xff, this.usedIdx >> 8));
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
    }
  }
}

function outHeader(len: number, error: number, unique: bigint): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

function setUp(answer: Answer) {
  const memory = createGuestMemory();
  const ports = [0, 1].map((index) => {
    const queue = new SplitVirtqueue<unknown>(memory, 16, { region: B });
    const device = new FakeFsDevice(memory, 16, queue.vringAddr(), answer);
    const port: VringPort<unknown> = {
      index,
      queue,
      notify: () => device.process(),
      waitUsed: async (_timeoutMs: number, count = 1): Promise<UsedBatch<unknown>> => {
        const used = queue.collectUsed();
        if (used.length < count) throw new Error(`only ${used.length} of ${count} used`);
        return { used, calls: 0 };
      },
      takeUsed: () => queue.collectUsed(),
    };
    return port;
  });
  return { fs: new FsDriver(ports, { timeoutMs: 100, uid: 1000, gid: 100, pid: 7 }), memory };
}

describe('devices/fs', () => {
  it('sends fuse_in_header and the arguments, and reads a reply spread over two writable descriptors', async () => {
    let seen: Buffer | undefined;
    const { fs } = setUp((request, room) => {
      seen = Buffer.from(request);
      const unique = le64(request, 8);
      const data = Buffer.alloc(100, 0x61);
      expect(room).to.equal(16 + 4096);
      return { reply: Buffer.concat([outHeader(16 + 100, 0, unique), data]) };
    });
    const reply = await fs.run({
      opcode: FuseOpcode.READ,
      nodeid: 9n,
      args: Uint8Array.of(1, 2, 3),
      outData: 4096,
    });
    expect(reply).to.deep.include({ error: 0, len: 116, usedLen: 116, unique: 2n });
    expect(reply.body.equals(Buffer.alloc(100, 0x61))).to.equal(true);
    // len 43, opcode 15, unique 2, nodeid 9, uid 1000, gid 100, pid 7, padding, then the arguments
    const header = Buffer.alloc(40);
    header.writeUInt32LE(43, 0);
    header.writeUInt32LE(15, 4);
    header.writeBigUInt64LE(2n, 8);
    header.writeBigUInt64LE(9n, 16);
    header.writeUInt32LE(1000, 24);
    header.writeUInt32LE(100, 28);
    header.writeUInt32LE(7, 32);
    expect([...seen!]).to.deep.equal([...header, 1, 2, 3]);
  });

  it('puts WRITE data in a readable descriptor of its own', async () => {
    let seen: Buffer | undefined;
    const { fs } = setUp((request) => {
      seen = Buffer.from(request);
      return { reply: outHeader(16, 0, le64(request, 8)) };
    });
    await fs.run({ opcode: FuseOpcode.WRITE, args: Uint8Array.of(5), data: Uint8Array.of(7, 8) });
    expect([...seen!.subarray(40)]).to.deep.equal([5, 7, 8]);
    expect(seen!.readUInt32LE(0)).to.equal(43);
  });

  it('fails a reply with another unique, a len that is not used.len, or an error reply with a body', async () => {
    const cases: Array<[Answer, string]> = [
      [(r) => ({ reply: outHeader(16, 0, le64(r, 8) + 1n) }), FsErrorCode.UNIQUE],
      [(r) => ({ reply: outHeader(16, 0, le64(r, 8)), usedLen: 24 }), FsErrorCode.LENGTH],
      [
        (r) => ({ reply: Buffer.concat([outHeader(24, -2, le64(r, 8)), Buffer.alloc(8)]) }),
        FsErrorCode.LENGTH,
      ],
      [(r) => ({ reply: outHeader(16, 5, le64(r, 8)) }), FsErrorCode.ERRNO],
      [() => ({}), FsErrorCode.REPLY],
    ];
    for (const [answer, code] of cases) {
      const { fs } = setUp(answer);
      const err = await fs.run({ opcode: FuseOpcode.GETATTR, outArgs: 104 }).catch((e: unknown) => e);
      expect(err, code).to.be.instanceOf(FsError);
      expect((err as FsError).code).to.equal(code);
    }
  });

  it('sends FORGET on hiprio with no writable part, and wants used.len 0 back', async () => {
    let room = -1;
    const { fs } = setUp((_r, n) => {
      room = n;
      return {};
    });
    const reply = await fs.run({ opcode: FuseOpcode.FORGET, nodeid: 5n, noReply: true }, 0);
    expect(room).to.equal(0);
    expect(reply.usedLen).to.equal(0);
  });

  it('sends a raw request exactly as given and accepts any unique in its reply', async () => {
    let seen: Buffer | undefined;
    const { fs } = setUp((r) => {
      seen = Buffer.from(r);
      return { reply: outHeader(16, -22, 0n) };
    });
    const reply = await fs.run({ opcode: 0, raw: Uint8Array.of(1, 2, 3) });
    expect([...seen!]).to.deep.equal([1, 2, 3]);
    expect(reply.error).to.equal(-22);
  });
});

describe('devices/fs sharedDirFromArgs', () => {
  it("finds virtiofsd's -o source=DIR and --shared-dir, the last one winning", () => {
    expect(sharedDirFromArgs(['-o', 'source=/srv/a'])).to.equal('/srv/a');
    expect(sharedDirFromArgs(['-o', 'cache=none,source=/srv/b,xattr'])).to.equal('/srv/b');
    expect(sharedDirFromArgs(['-osource=/srv/c'])).to.equal('/srv/c');
    expect(sharedDirFromArgs(['--shared-dir', '/srv/d'])).to.equal('/srv/d');
    expect(sharedDirFromArgs(['--shared-dir=/srv/e', '-o', 'source=/srv/f'])).to.equal('/srv/f');
    expect(sharedDirFromArgs(['-o', 'sandbox=chroot'])).to.equal(undefined);
    expect(sharedDirFromArgs([])).to.equal(undefined);
  });
});
