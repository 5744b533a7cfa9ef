import { expect } from 'chai';
import { VhuError } from '../errors.js';
import {
  createGuestMemory,
  GUARD_BYTES,
  GUARD_PATTERN,
  GuestMemory,
  GuestMemoryError,
  type MemoryRegion,
  SKEWED_LAYOUT,
} from './guest-memory.js';

// The skewed layout, restated by hand: A gpa 0x0 uva 0x7f00_0000_0000 mmap 0x1000 (1 MiB); B gpa 0x1_0000_0000
// uva 0x7e00_0000_0000 mmap 0x3000 (1 MiB); C gpa 0x10_0000 uva 0x7f80_0020_0000 mmap 0 (256 KiB).
const A = 0x0n;
const B = 0x1_0000_0000n;
const C = 0x10_0000n;

function thrown(fn: () => unknown): GuestMemoryError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(GuestMemoryError);
    expect(err).to.be.instanceOf(VhuError);
    return err as GuestMemoryError;
  }
  throw new Error('expected a GuestMemoryError');
}

function backing(memory: GuestMemory, guestAddress: bigint): Uint8Array {
  return memory.regions.find((r) => r.guestAddress === guestAddress)!.bytes;
}

function region(guestAddress: bigint, size: bigint, userAddress: bigint, mmapOffset = 0n): MemoryRegion {
  return { guestAddress, size, userAddress, mmapOffset, bytes: new Uint8Array(Number(mmapOffset + size)) };
}

describe('memory/guest-memory', () => {
  it('keeps regions sorted by guest address', () => {
    const memory = createGuestMemory();
    expect(memory.regions.map((r) => r.guestAddress)).to.deep.equal([A, C, B]);
    expect(SKEWED_LAYOUT).to.have.length(3);
  });

  it('translates guest <-> user addresses in every region', () => {
    const memory = createGuestMemory();
    expect(memory.gpaToUva(0x1234n)).to.equal(0x7f00_0000_1234n);
    expect(memory.gpaToUva(0x1_0000_0010n)).to.equal(0x7e00_0000_0010n);
    expect(memory.gpaToUva(0x10_0008n)).to.equal(0x7f80_0020_0008n);
    expect(memory.gpaToUva(0xf_ffffn)).to.equal(0x7f00_000f_ffffn);
    expect(memory.uvaToGpa(0x7f00_0000_1234n)).to.equal(0x1234n);
    expect(memory.uvaToGpa(0x7e00_000f_ffffn)).to.equal(0x1_000f_ffffn);
    expect(memory.uvaToGpa(0x7f80_0020_0000n)).to.equal(0x10_0000n);
  });

  it('gives views that honour the mmap offset of each region', () => {
    const memory = createGuestMemory();
    memory.gpaToBytes(0x1234n, 2).set([0xaa, 0xbb]);
    memory.gpaToBytes(0x1_0000_0010n, 1)[0] = 0xcc;
    memory.gpaToBytes(0x10_0008n, 1)[0] = 0xdd;
    expect([...backing(memory, A).subarray(0x2234, 0x2236)]).to.deep.equal([0xaa, 0xbb]);
    expect(backing(memory, B)[0x3010]).to.equal(0xcc);
    expect(backing(memory, C)[0x8]).to.equal(0xdd);
    expect(memory.gpaToBytes(0xf_fff0n, 0x10)).to.have.length(0x10);
    expect(memory.gpaToBytes(0x5n, 0)).to.have.length(0);
  });

  it('throws UNMAPPED for addresses in no region', () => {
    const memory = createGuestMemory();
    for (const gpa of [0x14_0000n, 0xffff_ffffn, 0x1_0010_0000n]) {
      const err = thrown(() => memory.gpaToBytes(gpa, 1));
      expect(err.code).to.equal('VHU_ERR_MEM_UNMAPPED');
      expect(err.address).to.equal(gpa);
    }
    expect(thrown(() => memory.gpaToUva(0x14_0000n)).message).to.match(
      /guest address 0x140000 is in no region/,
    );
    expect(thrown(() => memory.uvaToGpa(0x7f00_0010_0000n)).code).to.equal('VHU_ERR_MEM_UNMAPPED');
    expect(thrown(() => memory.uvaToGpa(0x1234n)).message).to.match(/user address 0x1234/);
    expect(memory.regionAt(0x14_0000n)).to.equal(undefined);
    expect(memory.regionAtUser(0x7f80_0020_0000n)?.guestAddress).to.equal(C);
  });

  it('throws CROSSES_REGION for a view running past its region, even into an adjacent one', () => {
    const memory = createGuestMemory();
    const intoC = thrown(() => memory.gpaToBytes(0xf_fffcn, 8));
    expect(intoC.code).to.equal('VHU_ERR_MEM_CROSSES_REGION');
    expect(intoC.message).to.match(/end of its region at 0x100000 into an adjacent region/);
    const pastC = thrown(() => memory.gpaToBytes(0x13_fffcn, 8));
    expect(pastC.code).to.equal('VHU_ERR_MEM_CROSSES_REGION');
    expect(pastC.message).to.match(/into unmapped memory/);
    expect(thrown(() => memory.gpaToBytes(0x1_000f_fff0n, 0x20)).code).to.equal('VHU_ERR_MEM_CROSSES_REGION');
  });

  it('reads and writes across adjacent regions, each piece in its own mapping', () => {
    const memory = createGuestMemory();
    memory.write(0xf_fffen, Uint8Array.of(1, 2, 3, 4));
    expect([...backing(memory, A).subarray(0x1000 + 0xf_fffe, 0x1000 + 0x10_0000)]).to.deep.equal([1, 2]);
    expect([...backing(memory, C).subarray(0, 2)]).to.deep.equal([3, 4]);
    expect([...memory.read(0xf_fffdn, 6)]).to.deep.equal([0, 1, 2, 3, 4, 0]);
  });

  it('writes nothing when part of the range is unmapped', () => {
    const memory = createGuestMemory();
    const err = thrown(() => memory.write(0x13_fffen, Uint8Array.of(9, 9, 9, 9)));
    expect(err.code).to.equal('VHU_ERR_MEM_UNMAPPED');
    expect(err.address).to.equal(0x14_0000n);
    expect([...memory.read(0x13_fffen, 2)]).to.deep.equal([0, 0]);
    expect(thrown(() => memory.read(0x13_ffffn, 2)).code).to.equal('VHU_ERR_MEM_UNMAPPED');
  });

  it('refuses regions that overlap in guest or in user space', () => {
    const memory = createGuestMemory();
    const guest = thrown(() => memory.add(region(0x8_0000n, 0x1000n, 0x1000n)));
    expect(guest.code).to.equal('VHU_ERR_MEM_OVERLAP');
    expect(guest.message).to.match(/overlaps the guest range of the region at guest 0x0/);
    const user = thrown(() => memory.add(region(0x2_0000_0000n, 0x1000n, 0x7f00_0008_0000n)));
    expect(user.code).to.equal('VHU_ERR_MEM_OVERLAP');
    expect(user.message).to.match(/overlaps the user range/);
    memory.add(region(0x14_0000n, 0x1000n, 0x7f00_0010_0000n));
    expect(memory.gpaToUva(0x14_0010n)).to.equal(0x7f00_0010_0010n);
  });

  it('refuses invalid regions', () => {
    const memory = new GuestMemory();
    expect(thrown(() => memory.add(region(0n, 0n, 0n))).code).to.equal('VHU_ERR_MEM_BAD_REGION');
    const short = { ...region(0n, 0x1000n, 0n, 0x1000n), bytes: new Uint8Array(0x1fff) };
    const err = thrown(() => memory.add(short));
    expect(err.code).to.equal('VHU_ERR_MEM_BAD_REGION');
    expect(err.message).to.match(/exceeds its 8191-byte mapping/);
    const past = { ...region(0n, 0x10n, 0n), guestAddress: (1n << 64n) - 8n };
    expect(thrown(() => memory.add(past)).message).to.match(/past 2\^64/);
    expect(thrown(() => memory.add(region(-1n, 0x10n, 0n))).code).to.equal('VHU_ERR_MEM_BAD_REGION');
    expect(memory.regions).to.have.length(0);
  });

  it('removes regions', () => {
    const memory = createGuestMemory();
    expect(memory.remove(C).userAddress).to.equal(0x7f80_0020_0000n);
    expect(thrown(() => memory.gpaToBytes(C, 1)).code).to.equal('VHU_ERR_MEM_UNMAPPED');
    expect(thrown(() => memory.read(0xf_ffffn, 2)).code).to.equal('VHU_ERR_MEM_UNMAPPED');
    expect(thrown(() => memory.remove(C)).code).to.equal('VHU_ERR_MEM_UNMAPPED');
    expect(memory.regions.map((r) => r.guestAddress)).to.deep.equal([A, B]);
  });

  it('replaces a region with a new backing, keeping its allocations', () => {
    const memory = createGuestMemory();
    expect(memory.alloc(0x100, 1, { region: A })).to.equal(A);
    const moved = region(A, 0x10_0000n, 0x7d00_0000_0000n, 0x5000n);
    const old = memory.replace(moved);
    expect(old.userAddress).to.equal(0x7f00_0000_0000n);
    expect(memory.gpaToUva(0x10n)).to.equal(0x7d00_0000_0010n);
    memory.write(0x10n, Uint8Array.of(7));
    expect(moved.bytes[0x5010]).to.equal(7);
    expect(old.bytes[0x1010]).to.equal(0);
    // What was allocated before stays taken.
    expect(memory.alloc(0x10, 1, { region: A })).to.equal(0x100n);
    expect(memory.regions.map((r) => r.guestAddress)).to.deep.equal([A, C, B]);
  });

  it('refuses a replacement of another size, at no region, or overlapping another region', () => {
    const memory = createGuestMemory();
    expect(thrown(() => memory.replace(region(A, 0x1000n, 0x7d00_0000_0000n))).code).to.equal(
      'VHU_ERR_MEM_BAD_REGION',
    );
    expect(thrown(() => memory.replace(region(0x2000n, 0x1000n, 0x7d00_0000_0000n))).code).to.equal(
      'VHU_ERR_MEM_UNMAPPED',
    );
    // B's user range: refused, and A is left as it was, allocations included.
    memory.alloc(0x20, 1, { region: A });
    expect(thrown(() => memory.replace(region(A, 0x10_0000n, 0x7e00_0000_0000n))).code).to.equal(
      'VHU_ERR_MEM_OVERLAP',
    );
    expect(memory.gpaToUva(0x0n)).to.equal(0x7f00_0000_0000n);
    expect(memory.alloc(1, 1, { region: A })).to.equal(0x20n);
  });

  it('allocates with alignment, region by region', () => {
    const memory = createGuestMemory();
    expect(memory.alloc(3)).to.equal(0x0n);
    expect(memory.alloc(16, 16)).to.equal(0x10n);
    expect(memory.alloc(1, 4096)).to.equal(0x1000n);
    expect(memory.alloc(6, 2)).to.equal(0x1002n);
    expect(memory.alloc(8, 8, { region: B })).to.equal(0x1_0000_0000n);
    // Does not fit what is left of A (0x1008..) nor C (256 KiB): goes to B.
    expect(memory.alloc(0xf_f000)).to.equal(0x1_0000_0008n);
    expect(memory.alloc(0x1000)).to.equal(0x1008n);
  });

  it('allocates from the end of a region, aligned down', () => {
    const memory = createGuestMemory();
    expect(memory.alloc(10, 16, { region: C, fromEnd: true })).to.equal(0x13_fff0n);
    expect(memory.alloc(0x10, 1, { region: C, fromEnd: true })).to.equal(0x13_ffe0n);
    expect(memory.alloc(0x3_ffe0, 1, { region: C })).to.equal(C);
    expect(thrown(() => memory.alloc(1, 1, { region: C })).code).to.equal('VHU_ERR_MEM_NO_SPACE');
  });

  it('reports allocator errors', () => {
    const memory = createGuestMemory();
    const full = thrown(() => memory.alloc(0x20_0000));
    expect(full.code).to.equal('VHU_ERR_MEM_NO_SPACE');
    expect(full.message).to.match(/no room for 2097152 bytes aligned to 1 in any region/);
    expect(thrown(() => memory.alloc(1, 3)).code).to.equal('VHU_ERR_MEM_ARGUMENT');
    expect(thrown(() => memory.alloc(1, 0)).code).to.equal('VHU_ERR_MEM_ARGUMENT');
    expect(thrown(() => memory.alloc(-1)).code).to.equal('VHU_ERR_MEM_ARGUMENT');
    expect(thrown(() => memory.alloc(1.5)).code).to.equal('VHU_ERR_MEM_ARGUMENT');
    expect(thrown(() => memory.alloc(1, 1, { region: 0x5n })).code).to.equal('VHU_ERR_MEM_UNMAPPED');
  });

  it('lays out named areas and resets the allocator', () => {
    const memory = createGuestMemory();
    const areas = memory.layout({ a: { len: 6, align: 2 }, b: { len: 16, align: 16 }, c: { len: 1 } });
    expect(areas).to.deep.equal({ a: 0x0n, b: 0x10n, c: 0x20n });
    expect(memory.layout({ d: { len: 4, align: 4 } }, { region: B })).to.deep.equal({ d: 0x1_0000_0000n });
    memory.resetAllocator();
    expect(memory.alloc(1)).to.equal(0x0n);
  });

  it('detects writes into guard bytes', () => {
    const memory = createGuestMemory();
    memory.fillGuard(0x2000n, 64);
    expect([...memory.read(0x2000n, 8)]).to.deep.equal([...GUARD_PATTERN]);
    expect(memory.checkGuard(0x2000n, 64)).to.deep.equal([]);
    // The back-end writes through its own mapping: region A byte 0x2005 is mapping byte 0x3005.
    const a = backing(memory, A);
    a[0x3005] = a[0x3005]! ^ 0xff;
    a[0x3000 + 63] = 0;
    expect(memory.checkGuard(0x2000n, 64)).to.deep.equal([5, 63]);
  });

  it('guards ranges across adjacent regions and with a custom pattern', () => {
    const memory = createGuestMemory();
    const pattern = Uint8Array.of(0x11, 0x22, 0x33);
    memory.fillGuard(0xf_fff0n, 32, pattern);
    expect([...memory.read(0xf_fff0n, 4)]).to.deep.equal([0x11, 0x22, 0x33, 0x11]);
    backing(memory, C)[3] = 0x99;
    expect(memory.checkGuard(0xf_fff0n, 32, pattern)).to.deep.equal([19]);
    expect(memory.checkGuard(0xf_fff0n, 32)).to.have.length.above(20);
    expect(thrown(() => memory.fillGuard(0n, 4, new Uint8Array(0))).code).to.equal('VHU_ERR_MEM_ARGUMENT');
  });

  it('guards ranges longer than one pattern tile, at every phase, across a region boundary', () => {
    const memory = createGuestMemory();
    const pattern = Uint8Array.of(0x11, 0x22, 0x33);
    const start = 0xf_0000n - 5n; // 0x1_0005 bytes in region A, the rest in C
    const len = 0x3_0000 + 7;
    memory.fillGuard(start, len, pattern);
    const bytes = memory.read(start, len);
    expect(bytes.every((b, i) => b === pattern[i % 3])).to.equal(true);
    expect(memory.checkGuard(start, len, pattern)).to.deep.equal([]);
    const hits = [0, 0x1_0004, 0x1_0005, 0x1_0006, 0x2_0000, len - 1];
    for (const at of hits) memory.write(start + BigInt(at), Uint8Array.of(0));
    expect(memory.checkGuard(start, len, pattern)).to.deep.equal(hits);
  });

  it('reads into a caller buffer across adjacent regions', () => {
    const memory = createGuestMemory();
    memory.write(0xf_fffen, Uint8Array.of(1, 2, 3, 4));
    const target = new Uint8Array(8).fill(7);
    memory.readInto(0xf_fffdn, target.subarray(1, 7));
    expect([...target]).to.deep.equal([7, 0, 1, 2, 3, 4, 0, 7]);
    expect(thrown(() => memory.readInto(0x13_ffffn, new Uint8Array(2))).code).to.equal(
      'VHU_ERR_MEM_UNMAPPED',
    );
  });

  it('guards the mmap prefixes a back-end ignoring mmap_offset would hit', () => {
    const memory = createGuestMemory();
    expect(memory.checkMmapPrefixes()).to.deep.equal([]);
    expect([...backing(memory, A).subarray(0, 4)]).to.deep.equal([0xde, 0xad, 0xbe, 0xef]);
    // A back-end that maps region A but forgets mmap_offset puts guest byte 0x10 at mapping byte 0x10.
    backing(memory, A)[0x10] = 0;
    backing(memory, B)[0x2fff] = 0;
    expect(memory.checkMmapPrefixes()).to.deep.equal([
      { guestAddress: A, offsets: [0x10] },
      { guestAddress: B, offsets: [0x2fff] },
    ]);
  });

  it('builds test memory over a given backing', () => {
    const lengths: number[] = [];
    const memory = createGuestMemory({
      backing: (length) => {
        lengths.push(length);
        return new Uint8Array(new ArrayBuffer(length + 16), 16);
      },
    });
    expect(lengths).to.deep.equal([0x10_1000, 0x10_3000, 0x4_0000]);
    memory.write(0x10n, Uint8Array.of(7));
    expect(backing(memory, A)[0x1010]).to.equal(7);
    expect(new Uint8Array(backing(memory, A).buffer)[16 + 0x1010]).to.equal(7);
  });

  it('records the fd of a backing that has one', () => {
    let fd = 40;
    const memory = createGuestMemory({ backing: (length) => ({ bytes: new Uint8Array(length), fd: fd++ }) });
    expect(memory.regions.map((r) => r.fd)).to.deep.equal([40, 42, 41]);
    expect(createGuestMemory().regions[0]!.fd).to.equal(undefined);
  });

  describe('guard zones', () => {
    it('puts guard bytes on both sides of an area and names a write past its end', () => {
      const memory = createGuestMemory();
      const status = memory.allocGuarded('status byte of request 1', 1, 1, { region: C });
      expect(status - C).to.equal(BigInt(GUARD_BYTES));
      expect(memory.read(status - 8n, 8)).to.deep.equal(GUARD_PATTERN);
      expect(memory.checkGuards()).to.deep.equal([]);
      memory.write(status, Uint8Array.of(0)); // the area itself: the device's to write
      expect(memory.checkGuards()).to.deep.equal([]);
      memory.write(status + 1n, Uint8Array.of(0, 0, 7));
      const [violation, ...more] = memory.checkGuards();
      expect(more).to.deep.equal([]);
      expect(violation!.gpa).to.equal(status + 1n);
      expect(violation!.bytes).to.deep.equal(Uint8Array.of(0, 0, 7));
      // The guard after the area starts at pattern byte 0.
      expect(violation!.expected).to.deep.equal(GUARD_PATTERN.subarray(0, 3));
      expect(violation!.nextTo).to.equal(
        `1 byte(s) past the end of status byte of request 1 (guest 0x${(status).toString(16)}, 1 byte)`,
      );
    });

    it('aligns the area and names a write before it', () => {
      const memory = createGuestMemory();
      memory.alloc(3, 1, { region: B });
      const table = memory.allocGuarded('descriptor table', 64, 4096, { region: B });
      expect(table % 4096n).to.equal(0n);
      memory.write(table - 2n, Uint8Array.of(1));
      const [violation] = memory.checkGuards();
      expect(violation!.gpa).to.equal(table - 2n);
      expect(violation!.nextTo).to.match(
        /^2 byte\(s\) before the start of descriptor table \(guest 0x1000[0-9a-f]+, 64 bytes\)$/,
      );
    });

    it('watches free memory once guarded, naming the nearest area', () => {
      const memory = createGuestMemory();
      const ring = memory.allocGuarded('used ring', 70, 4, { region: A });
      memory.guardFree();
      expect(memory.checkGuards()).to.deep.equal([]);
      const far = ring + 70n + 1000n;
      memory.write(far, Uint8Array.of(0xde, 0xad, 0x00, 0x00));
      const violations = memory.checkGuards();
      expect(violations).to.have.length(1);
      // 0xde, 0xad may match the pattern by chance: the run starts at the first byte that differs.
      expect(violations[0]!.gpa >= far).to.equal(true);
      expect(violations[0]!.nextTo).to.match(/^free guest memory, \d+ byte\(s\) past the end of used ring/);
      // A write into another region's free room.
      memory.write(B + 5n, Uint8Array.of(1, 2));
      expect(memory.checkGuards().map((v) => v.gpa)).to.include(B + 5n);
    });

    it('forgets areas and zones with the allocator', () => {
      const memory = createGuestMemory();
      const area = memory.allocGuarded('buffer', 8);
      memory.write(area + 8n, Uint8Array.of(0));
      memory.resetAllocator();
      expect(memory.checkGuards()).to.deep.equal([]);
      expect(memory.guardedAreas).to.deep.equal([]);
    });
  });
});
