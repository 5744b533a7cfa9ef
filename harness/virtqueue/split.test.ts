import { expect } from 'chai';
import { BackendError, VhuError } from '../errors.js';
import { createGuestMemory, GUARD_PATTERN, GuestMemory } from '../memory/guest-memory.js';
import { UsedRingError, VirtqueueError } from './errors.js';
import { type AddRequestOptions, type BufferElement, SplitVirtqueue } from './split.js';
import {
  dataView,
  readRawDescriptor,
  VirtqDescFlag,
  vringNeedEvent,
  writeRawDescriptor,
} from './split-layout.js';

/**
 * A tiny device playing the back-end. It knows the ring layout only from the numbers below (written from
 * the spec, not from split.ts), gets the ring addresses as a back-end does (user addresses, translated
 * through the memory table) and reads and writes guest memory bytes directly.
 */
class TestDevice {
  readonly desc: bigint;
  readonly avail: bigint;
  readonly used: bigint;
  lastAvail: number;
  usedIdx: number;

  constructor(
    readonly memory: GuestMemory,
    readonly size: number,
    addr: { descriptor: bigint; used: bigint; available: bigint },
    base = 0,
  ) {
    this.desc = memory.uvaToGpa(addr.descriptor);
    this.avail = memory.uvaToGpa(addr.available);
    this.used = memory.uvaToGpa(addr.used);
    this.lastAvail = base;
    this.usedIdx = base;
  }

  u16(gpa: bigint): number {
    return view(this.memory.read(gpa, 2)).getUint16(0, true);
  }

  w16(gpa: bigint, value: number): void {
    const b = new Uint8Array(2);
    view(b).setUint16(0, value, true);
    this.memory.write(gpa, b);
  }

  w32(gpa: bigint, value: number): void {
    const b = new Uint8Array(4);
    view(b).setUint32(0, value, true);
    this.memory.write(gpa, b);
  }

  availFlags(): number {
    return this.u16(this.avail); // avail.flags @0
  }

  availIdx(): number {
    return this.u16(this.avail + 2n); // avail.idx @2
  }

  usedEvent(): number {
    return this.u16(this.avail + 4n + 2n * BigInt(this.size)); // after ring[size] @4
  }

  /** The next available chain, walked through NEXT and at most one indirect table. */
  pop(): { head: number; chain: BufferElement[]; indirect: boolean } | undefined {
    if (this.lastAvail === this.availIdx()) return undefined;
    const head = this.u16(this.avail + 4n + 2n * BigInt(this.lastAvail % this.size));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    const chain: BufferElement[] = [];
    let table = this.desc;
    let tableSize = this.size;
    let index = head;
    let indirect = false;
    for (let steps = 0; ; steps++) {
      if (steps > 2 * this.size || index >= tableSize) throw new Error(`bad chain at head ${head}`);
      const d = view(this.memory.read(table + 16n * BigInt(index), 16));
      const flags = d.getUint16(12, true);
      if (flags & 4) {
        if (indirect || flags & 1) throw new Error('INDIRECT within a table, or with NEXT');
        indirect = true;
        table = d.getBigUint64(0, true);
        tableSize = d.getUint32(8, true) / 16;
        index = 0;
        continue;
      }
      chain.push({ gpa: d.getBigUint64(0, true), len: d.getUint32(8, true), write: (flags & 2) !== 0 });
      if (!(flags & 1)) return { head, chain, indirect };
      index = d.getUint16(14, true);
    }
  }

  /** Writes one used element at the current used index, and (unless told not to) publishes it. */
  push(id: number, len: number, publish = true): void {
    const slot = BigInt(this.usedIdx % this.size);
    this.w32(this.used + 4n + 8n * slot, id); // used.ring[slot].id
    this.w32(this.used + 8n + 8n * slot, len); // used.ring[slot].len
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    if (publish) this.w16(this.used + 2n, this.usedIdx); // used.idx @2
  }

  setUsedIdx(value: number): void {
    this.usedIdx = value;
    this.w16(this.used + 2n, value);
  }

  setUsedFlags(value: number): void {
    this.w16(this.used, value); // used.flags @0
  }

  setAvailEvent(value: number): void {
    this.w16(this.used + 4n + 8n * BigInt(this.size), value); // after ring[size] @4
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function thrown<E extends VhuError>(type: new (...args: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name}`);
}

const readable = (gpa: bigint, len: number): BufferElement => ({ gpa, len, write: false });
const writable = (gpa: bigint, len: number): BufferElement => ({ gpa, len, write: true });

describe('virtqueue/split', () => {
  describe('layout', () => {
    it('allocates the three parts aligned and reports guest and user addresses', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 4);
      // desc 16 * 4 = 64 bytes at 0x0; avail (6 + 2 * 4 = 14 bytes, 2-aligned) at 0x40; used 4-aligned after 0x4e.
      expect(vq.descTable).to.deep.equal({ gpa: 0x0n, uva: 0x7f00_0000_0000n });
      expect(vq.availRing).to.deep.equal({ gpa: 0x40n, uva: 0x7f00_0000_0040n });
      expect(vq.usedRing).to.deep.equal({ gpa: 0x50n, uva: 0x7f00_0000_0050n });
      expect(vq.vringAddr()).to.deep.equal({
        descriptor: 0x7f00_0000_0000n,
        used: 0x7f00_0000_0050n,
        available: 0x7f00_0000_0040n,
      });
      // used ring is 6 + 8 * 4 = 38 bytes: the next allocation starts at 0x76.
      expect(memory.alloc(1)).to.equal(0x76n);
    });

    it('writes descriptors, ring entry and idx byte for byte as the spec lays them out', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<string>(memory, 4);
      const head = vq.addRequest([readable(0x1_0000_1000n, 0x200), writable(0x10_0010n, 1)], { token: 'a' });
      expect(head).to.equal(0);
      // desc[0]: addr 0x1_0000_1000, len 0x200, flags NEXT, next 1; desc[1]: addr 0x10_0010, len 1, flags WRITE.
      const golden = `${'0010000001000000' + '00020000' + '0100' + '0100'}${'1000100000000000' + '01000000' + '0200' + '0000'}`;
      expect(hex(memory.read(0x0n, 32))).to.equal(golden);
      // The same bytes sit at mapping offset 0x1000 of region A: its mmap offset.
      expect(hex(memory.regions[0]!.bytes.subarray(0x1000, 0x1020))).to.equal(golden);
      // avail: flags 0, idx 1, ring[0] = 0, ring[1..3] = 0, used_event 0.
      expect(hex(memory.read(0x40n, 14))).to.equal('0000' + '0100' + '0000' + '000000000000' + '0000');

      // The second chain takes the next free descriptors (2, 3) and ring slot 1.
      expect(vq.addRequest([writable(0x2000n, 0x10)], { token: 'b' })).to.equal(2);
      expect(hex(memory.read(0x20n, 16))).to.equal('0020000000000000' + '10000000' + '0200' + '0000');
      expect(hex(memory.read(0x40n, 8))).to.equal('0000' + '0200' + '0000' + '0200');
    });

    it('reads used elements at 4 + 8 * slot and used.idx at 2', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<string>(memory, 4);
      vq.addRequest([writable(0x2000n, 0x10)], { token: 'a' });
      vq.addRequest([writable(0x3000n, 0x10)], { token: 'b' });
      // By hand at used = 0x50: elem 0 = { id 1, len 7 }, elem 1 = { id 0, len 3 }, then idx 2.
      memory.write(0x54n, Buffer.from('01000000' + '07000000' + '00000000' + '03000000', 'hex'));
      expect(vq.collectUsed()).to.deep.equal([]);
      memory.write(0x52n, Buffer.from('0200', 'hex'));
      expect(vq.collectUsed()).to.deep.equal([
        { id: 1, len: 7, token: 'b', writableLen: 0x10 },
        { id: 0, len: 3, token: 'a', writableLen: 0x10 },
      ]);
      expect(vq.lastUsedIdx).to.equal(2);
      expect(vq.numFree).to.equal(4);
    });

    it('puts used_event after avail.ring and avail_event after used.ring', () => {
      for (const [size, usedEventAt, availEventAt] of [
        [4, 12, 36],
        [256, 516, 2052],
      ] as const) {
        const memory = createGuestMemory();
        const vq = new SplitVirtqueue(memory, size, { eventIdx: true });
        vq.setUsedEvent(0x1234);
        expect(hex(memory.read(vq.availRing.gpa + BigInt(usedEventAt), 2))).to.equal('3412');
        memory.write(vq.usedRing.gpa + BigInt(availEventAt), Uint8Array.of(0xcd, 0xab));
        expect(vq.availEvent).to.equal(0xabcd);
        const device = new TestDevice(memory, size, vq.vringAddr());
        expect(device.usedEvent()).to.equal(0x1234);
      }
    });

    it('takes explicit placements in three regions and checks their alignment', () => {
      const memory = createGuestMemory();
      const placement = { descTable: 0x1_0000_0100n, availRing: 0x10_0002n, usedRing: 0x4_0004n };
      const vq = new SplitVirtqueue(memory, 8, { placement });
      expect(vq.vringAddr()).to.deep.equal({
        descriptor: 0x7e00_0000_0100n,
        used: 0x7f00_0004_0004n,
        available: 0x7f80_0020_0002n,
      });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const head = vq.addRequest([readable(0x5000n, 4), writable(0x1_0000_8000n, 8)], { token: 1 });
      expect(device.pop()).to.deep.equal({
        head,
        chain: [readable(0x5000n, 4), writable(0x1_0000_8000n, 8)],
        indirect: false,
      });
      device.push(head, 8);
      expect(vq.collectUsed()).to.deep.equal([{ id: head, len: 8, token: 1, writableLen: 8 }]);

      for (const bad of [
        { ...placement, descTable: 0x1_0000_0108n },
        { ...placement, availRing: 0x10_0001n },
        { ...placement, usedRing: 0x4_0002n },
      ]) {
        const err = thrown(VirtqueueError, () => new SplitVirtqueue(memory, 8, { placement: bad }));
        expect(err.code).to.equal('VHU_ERR_VQ_ALIGN');
        expect(err.message).to.match(/-byte aligned/);
      }
    });

    it('refuses rings at an odd host offset, where a 16-bit store would not be one access', () => {
      const bytes = new Uint8Array(new ArrayBuffer(0x1001), 1);
      const memory = new GuestMemory([
        { guestAddress: 0n, size: 0x1000n, userAddress: 0x1000n, mmapOffset: 0n, bytes },
      ]);
      const err = thrown(VirtqueueError, () => new SplitVirtqueue(memory, 4));
      expect(err.code).to.equal('VHU_ERR_VQ_ALIGN');
      expect(err.message).to.match(/avail\.flags is at an odd host offset/);
    });

    it('accepts power-of-two sizes up to 32768 only', () => {
      for (const size of [0, 3, 1.5, 65536, 32769, -2]) {
        const err = thrown(VirtqueueError, () => new SplitVirtqueue(createGuestMemory(), size));
        expect(err.code).to.equal('VHU_ERR_VQ_SIZE');
      }
      expect(new SplitVirtqueue(createGuestMemory(), 1).numFree).to.equal(1);
      expect(new SplitVirtqueue(createGuestMemory(), 32768).numFree).to.equal(32768);
    });

    it('zeroes the parts it is placed on', () => {
      const memory = createGuestMemory();
      memory.fillGuard(0x0n, 0x100);
      const vq = new SplitVirtqueue(memory, 4);
      // desc 0x0..0x40, avail 0x40..0x4e, used 0x50..0x76: the two bytes between keep the guard.
      expect(memory.checkGuard(0x0n, 0x100)).to.have.length(0x40 + 14 + 38);
      expect([...memory.read(0x4en, 2)]).to.deep.equal([GUARD_PATTERN[6], GUARD_PATTERN[7]]);
      expect(memory.read(0x50n, 38).every((b) => b === 0)).to.equal(true);
      expect(vq.usedFlags).to.equal(0);
    });
  });

  describe('chains', () => {
    it('walks direct chains through the device', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<string>(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const chain = [readable(0x1000n, 16), readable(0x10_0000n, 512), writable(0x1_0000_0000n, 1)];
      const head = vq.addRequest(chain, { token: 'req' });
      expect(device.pop()).to.deep.equal({ head, chain, indirect: false });
      expect(device.pop()).to.equal(undefined);
      expect(vq.numFree).to.equal(5);
      expect(vq.inFlight).to.equal(1);
      device.push(head, 1);
      expect(vq.collectUsed()).to.deep.equal([{ id: head, len: 1, token: 'req', writableLen: 1 }]);
      expect(vq.numFree).to.equal(8);
      expect(vq.inFlight).to.equal(0);
    });

    it('writes an indirect table the device can walk', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8, { indirect: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const chain = [readable(0x1000n, 16), readable(0x2000n, 32), writable(0x3000n, 64)];
      const head = vq.addRequest(chain, { indirect: true });
      expect(vq.numFree).to.equal(7);
      // Rings end at 0xde (desc 0x80, avail 0x80 + 22, used at 0x98 + 70): the table is 16-aligned at 0xe0.
      expect(hex(memory.read(0x0n, 16))).to.equal('e000000000000000' + '30000000' + '0400' + '0000');
      expect(hex(memory.read(0xe0n + 32n, 16))).to.equal('0030000000000000' + '40000000' + '0200' + '0000');
      expect(hex(memory.read(0xe0n + 12n, 4))).to.equal('0100' + '0100');
      expect(device.pop()).to.deep.equal({ head, chain, indirect: true });
      device.push(head, 64);
      expect(vq.collectUsed()[0]).to.include({ id: head, len: 64, writableLen: 64 });
      expect(vq.numFree).to.equal(8);
    });

    it('chains direct descriptors to an indirect one (directPrefix)', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8, { indirect: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const chain = [readable(0x1000n, 1), readable(0x2000n, 2), writable(0x3000n, 3), writable(0x4000n, 4)];
      const head = vq.addRequest(chain, { indirect: true, directPrefix: 2 });
      expect(vq.numFree).to.equal(5);
      expect(device.pop()).to.deep.equal({ head, chain, indirect: true });
      // desc[1] chains to desc[2] (flags NEXT), desc[2] is INDIRECT alone with two entries.
      expect(hex(memory.read(16n + 12n, 4))).to.equal('0100' + '0200');
      expect(hex(memory.read(32n + 8n, 8))).to.equal('20000000' + '0400' + '0000');
    });

    it('grows the indirect table of a head that needs more entries', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 16, { indirect: true });
      const device = new TestDevice(memory, 16, vq.vringAddr());
      const long = Array.from({ length: 9 }, (_, i) => readable(0x1000n * BigInt(i + 1), i + 1));
      const first = vq.addRequest(long.slice(0, 2), { indirect: true });
      const firstTable = view(memory.read(0n, 16)).getBigUint64(0, true);
      device.push(device.pop()!.head, 0);
      vq.collectUsed();
      expect(vq.addRequest(long, { indirect: true })).to.equal(first);
      const secondTable = view(memory.read(0n, 16)).getBigUint64(0, true);
      expect(secondTable).to.not.equal(firstTable);
      expect(device.pop()?.chain).to.deep.equal(long);
    });

    it('returns used buffers out of order, and the device may use them in any order', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 4);
      const device = new TestDevice(memory, 4, vq.vringAddr());
      const heads = [0, 1, 2].map((token) => vq.addRequest([writable(0x1000n, 8)], { token }));
      const popped = [device.pop()!, device.pop()!, device.pop()!];
      device.push(popped[2]!.head, 1);
      device.push(popped[0]!.head, 2);
      expect(vq.collectUsed().map((u) => u.token)).to.deep.equal([2, 0]);
      device.push(popped[1]!.head, 3);
      expect(vq.collectUsed()).to.deep.equal([{ id: heads[1], len: 3, token: 1, writableLen: 8 }]);
    });

    it('wraps the 16-bit indices (70002 requests through a size-8 queue)', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      let sent = 0;
      let received = 0;
      const wrong: string[] = []; // chai stays out of the loop: it would be most of the run time
      while (sent < 70_000) {
        for (let i = 0; i < 3; i++, sent++) {
          vq.addRequest([readable(BigInt(sent) * 16n, 4), writable(0x8000n, 4)], { token: sent });
        }
        const batch = [device.pop()!, device.pop()!, device.pop()!];
        batch.forEach((b, i) => {
          if (b.chain[0]!.gpa !== BigInt(sent - 3 + i) * 16n)
            wrong.push(`request ${sent - 3 + i}: ${b.chain[0]!.gpa}`);
        });
        for (const b of batch.reverse()) device.push(b.head, 4);
        for (const [i, u] of vq.collectUsed().entries()) {
          if (u.token !== sent - 1 - i) wrong.push(`used ${received}: token ${u.token}`);
          received++;
        }
      }
      expect(wrong).to.deep.equal([]);
      expect(received).to.equal(70_002);
      expect(vq.lastAvailIdx).to.equal(70_002 & 0xffff);
      expect(vq.lastUsedIdx).to.equal(70_002 & 0xffff);
      expect(device.availIdx()).to.equal(4466);
      expect(vq.numFree).to.equal(8);
    });
  });

  describe('errors', () => {
    it('reports a used id out of range as a back-end FAIL, consuming nothing', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const head = vq.addRequest([writable(0x1000n, 8)]);
      device.push(8, 1);
      const err = thrown(UsedRingError, () => vq.collectUsed());
      expect(err).to.be.instanceOf(BackendError);
      expect(err.code).to.equal('VHU_ERR_VRING_USED_ID_RANGE');
      expect(err.message).to.match(/used\.ring\[0\] \(used index 0\) has id 8/);
      expect(err.position).to.deep.equal({ usedIdx: 1, lastUsedIdx: 0, inFlight: 1 });
      expect(vq.inFlight).to.equal(1);
      expect(vq.lastUsedIdx).to.equal(0);
      // Rewrite the element: the same batch now collects.
      device.usedIdx = 0;
      device.push(head, 1);
      expect(vq.collectUsed()).to.have.length(1);
    });

    it('reports ids that are not a chain in flight', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      vq.addRequest([readable(0x1000n, 8), writable(0x2000n, 8)]); // descriptors 0, 1
      vq.addRequest([writable(0x3000n, 8)]); // descriptor 2

      device.push(5, 0);
      let err = thrown(UsedRingError, () => vq.collectUsed());
      expect(err.code).to.equal('VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT');
      expect(err.message).to.match(/has id 5, which is not the head of a chain in flight \(used/);

      device.setUsedIdx(0);
      device.push(1, 0);
      err = thrown(UsedRingError, () => vq.collectUsed());
      expect(err.code).to.equal('VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT');
      expect(err.message).to.match(/descriptor 1 is inside the chain headed by 0/);

      device.setUsedIdx(0);
      device.push(2, 0);
      device.push(2, 0);
      err = thrown(UsedRingError, () => vq.collectUsed());
      expect(err.code).to.equal('VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT');
      expect(err.message).to.match(/used\.ring\[1\] .*\(already used earlier in this batch\)/);
      expect(vq.inFlight).to.equal(2);
    });

    it('reports used.idx moving further than the buffers in flight', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      vq.addRequest([writable(0x1000n, 8)]);
      for (const [idx, why] of [
        [2, /advanced by 2, but only 1 buffers are in flight/],
        [0x1234, /advanced by 4660, more than the queue size 8: garbage$/],
        [0xffff, /advanced by 65535, more than the queue size 8: garbage, or moved back by 1/],
      ] as const) {
        device.setUsedIdx(idx);
        const err = thrown(UsedRingError, () => vq.collectUsed());
        expect(err.code).to.equal('VHU_ERR_VRING_USED_IDX');
        expect(err.message.replace(/ \(used\.idx.*$/, '')).to.match(why);
      }
    });

    it('reports free list exhaustion clearly', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 4);
      const device = new TestDevice(memory, 4, vq.vringAddr());
      for (let i = 0; i < 3; i++) vq.addRequest([writable(0x1000n, 8)]);
      const err = thrown(VirtqueueError, () => vq.addRequest([readable(0x1000n, 8), writable(0x2000n, 8)]));
      expect(err.code).to.equal('VHU_ERR_VQ_FULL');
      expect(err.message).to.match(/needs 2 descriptors, 1 of 4 are free \(3 requests in flight/);
      expect(vq.lastAvailIdx).to.equal(3);
      vq.addRequest([writable(0x1000n, 8)]);
      expect(thrown(VirtqueueError, () => vq.addRequest([writable(0x1000n, 8)])).code).to.equal(
        'VHU_ERR_VQ_FULL',
      );
      device.push(device.pop()!.head, 0);
      vq.collectUsed();
      vq.addRequest([writable(0x1000n, 8)]);
      expect(vq.numFree).to.equal(0);
    });

    it('refuses chains that break driver requirements', () => {
      const vq = new SplitVirtqueue(createGuestMemory(), 4, { indirect: true });
      const cases: Array<[BufferElement[], RegExp, AddRequestOptions<unknown>?]> = [
        [[], /at least one element/],
        [[readable(0n, -1)], /len must be a u32/],
        [[readable(0n, 2 ** 32)], /len must be a u32/],
        [[readable(-1n, 1)], /gpa must be a u64/],
        [[readable(1n << 64n, 1)], /gpa must be a u64/],
        [[writable(0n, 1), readable(0n, 1)], /device-readable after a device-writable/],
        [[readable(0n, 0xffff_ffff), readable(0n, 2)], /more than 2\^32/],
        [
          [readable(0n, 1), writable(0n, 1)],
          /directPrefix 1 needs \{ indirect: true \}/,
          { directPrefix: 1 },
        ],
        [[readable(0n, 1), writable(0n, 1)], /directPrefix 2/, { indirect: true, directPrefix: 2 }],
        [
          Array.from({ length: 5 }, () => readable(0n, 1)),
          /longer than the queue size 4/,
          { indirect: true },
        ],
      ];
      for (const [chain, why, options] of cases) {
        const err = thrown(VirtqueueError, () => vq.addRequest(chain, options));
        expect(err.code).to.equal('VHU_ERR_VQ_CHAIN');
        expect(err.message).to.match(why);
      }
      expect(vq.numFree).to.equal(4);
      expect(vq.lastAvailIdx).to.equal(0);
    });

    it('refuses features the queue was not set up with', () => {
      const plain = new SplitVirtqueue(createGuestMemory(), 4);
      expect(
        thrown(VirtqueueError, () => plain.addRequest([readable(0n, 1)], { indirect: true })).code,
      ).to.equal('VHU_ERR_VQ_FEATURE');
      expect(thrown(VirtqueueError, () => plain.setUsedEvent(1)).code).to.equal('VHU_ERR_VQ_FEATURE');
      const withEvent = new SplitVirtqueue(createGuestMemory(), 4, { eventIdx: true });
      const err = thrown(VirtqueueError, () => withEvent.setNoInterrupt(true));
      expect(err.code).to.equal('VHU_ERR_VQ_FEATURE');
      expect(err.message).to.match(/keep avail\.flags at 0/);
    });

    it('refuses indices out of u16 range', () => {
      const vq = new SplitVirtqueue(createGuestMemory(), 4, { eventIdx: true });
      expect(thrown(VirtqueueError, () => vq.needsKick(0, 0x10000)).code).to.equal('VHU_ERR_VQ_ARGUMENT');
      expect(thrown(VirtqueueError, () => vq.setUsedEvent(-1)).code).to.equal('VHU_ERR_VQ_ARGUMENT');
      expect(thrown(VirtqueueError, () => vq.resetTo(70_000)).code).to.equal('VHU_ERR_VQ_ARGUMENT');
    });

    it('leaves the queue as it was when the indirect table cannot be allocated', () => {
      const tiny = new GuestMemory([
        {
          guestAddress: 0n,
          size: 0x100n,
          userAddress: 0x10_0000n,
          mmapOffset: 0n,
          bytes: new Uint8Array(0x100),
        },
      ]);
      const vq = new SplitVirtqueue(tiny, 4, { indirect: true }); // rings take 0x76 bytes
      vq.addRequest([readable(0n, 1)], { indirect: true }); // a 4-entry table: 0x80..0xc0
      const long = Array.from({ length: 4 }, () => readable(0n, 1));
      vq.addRequest(long.slice(0, 1), { indirect: true }); // a second head, a second table: 0xc0..0x100
      const err = thrown(VhuError, () => vq.addRequest(long, { indirect: true }));
      expect(err.code).to.equal('VHU_ERR_MEM_NO_SPACE');
      expect(vq.numFree).to.equal(2);
      expect(vq.lastAvailIdx).to.equal(2);
    });
  });

  describe('notifications', () => {
    it('computes vring_need_event on wrapping u16 indices', () => {
      // (u16)(new - event - 1) < (u16)(new - old), each case worked by hand.
      expect(vringNeedEvent(0, 1, 0)).to.equal(true); // 0 < 1
      expect(vringNeedEvent(0, 2, 1)).to.equal(false); // 1 < 1
      expect(vringNeedEvent(1, 3, 0)).to.equal(true); // 1 < 3
      expect(vringNeedEvent(2, 2, 2)).to.equal(false); // nothing added: 0xffff < 0
      expect(vringNeedEvent(5, 7, 3)).to.equal(true); // 1 < 4
      expect(vringNeedEvent(7, 7, 3)).to.equal(false); // 0xffff < 4: event not reached yet
      expect(vringNeedEvent(0xffff, 0x0001, 0xfffe)).to.equal(true); // 1 < 3
      expect(vringNeedEvent(0x0000, 0x0001, 0xfffe)).to.equal(true); // 0 < 3
      expect(vringNeedEvent(0xfffe, 0x0001, 0xfffe)).to.equal(true); // 2 < 3
      expect(vringNeedEvent(0x0001, 0x0001, 0xfffe)).to.equal(false); // 0xffff < 3
      expect(vringNeedEvent(0xfffd, 0x0001, 0xfffe)).to.equal(false); // 3 < 3
    });

    it('kicks by avail_event with EVENT_IDX, ignoring the low bit of used.flags', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8, { eventIdx: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      let old = vq.lastAvailIdx;
      vq.addRequest([writable(0x1000n, 1)]);
      expect(vq.needsKick(old, vq.lastAvailIdx)).to.equal(true); // avail_event 0, idx 0 -> 1
      device.setAvailEvent(5);
      device.setUsedFlags(1);
      old = vq.lastAvailIdx;
      vq.addRequest([writable(0x1000n, 1)]);
      expect(vq.needsKick(old, vq.lastAvailIdx)).to.equal(false); // 1 -> 2, event 5
      expect(vq.needsKick(3, 7)).to.equal(true); // passes 5
      expect(vq.needsKick(5, 6)).to.equal(true);
      expect(vq.needsKick(6, 7)).to.equal(false);
    });

    it('kicks unless VIRTQ_USED_F_NO_NOTIFY without EVENT_IDX, ignoring avail_event', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 8);
      const device = new TestDevice(memory, 8, vq.vringAddr());
      device.setAvailEvent(100);
      expect(vq.needsKick(0, 1)).to.equal(true);
      device.setUsedFlags(1);
      expect(vq.usedFlags).to.equal(1);
      expect(vq.needsKick(0, 1)).to.equal(false);
    });

    it('sets VIRTQ_AVAIL_F_NO_INTERRUPT and used_event where the device reads them', () => {
      const memory = createGuestMemory();
      const plain = new SplitVirtqueue(memory, 8);
      const device = new TestDevice(memory, 8, plain.vringAddr());
      plain.setNoInterrupt(true);
      expect(device.availFlags()).to.equal(1);
      plain.setNoInterrupt(false);
      expect(device.availFlags()).to.equal(0);
      const withEvent = new SplitVirtqueue(memory, 8, { eventIdx: true });
      const eventDevice = new TestDevice(memory, 8, withEvent.vringAddr());
      withEvent.setUsedEvent(0xbeef);
      expect(eventDevice.usedEvent()).to.equal(0xbeef);
      expect(eventDevice.availFlags()).to.equal(0);
    });
  });

  describe('vring base', () => {
    it('restarts at a given index (SET_VRING_BASE) and wraps from there', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8, { eventIdx: true });
      vq.addRequest([writable(0x1000n, 1)], { token: 1 });
      vq.addRequest([writable(0x1000n, 1)], { token: 2 });
      vq.resetTo(0xfffe);
      expect(vq.lastAvailIdx).to.equal(0xfffe);
      expect(vq.lastUsedIdx).to.equal(0xfffe);
      expect(vq.inFlight).to.equal(0);
      expect(vq.numFree).to.equal(8);
      // avail: flags 0, idx 0xfffe; used: flags 0, idx 0xfffe; both event fields 0xfffe.
      expect(hex(memory.read(vq.availRing.gpa, 4))).to.equal('0000' + 'feff');
      expect(hex(memory.read(vq.usedRing.gpa, 4))).to.equal('0000' + 'feff');
      expect(hex(memory.read(vq.availRing.gpa + 20n, 2))).to.equal('feff');
      expect(hex(memory.read(vq.usedRing.gpa + 68n, 2))).to.equal('feff');

      const device = new TestDevice(memory, 8, vq.vringAddr(), 0xfffe);
      for (let token = 0; token < 4; token++) {
        const old = vq.lastAvailIdx;
        vq.addRequest([writable(0x1000n + BigInt(token), 1)], { token });
        expect(vq.needsKick(old, vq.lastAvailIdx)).to.equal(token === 0);
      }
      expect(vq.lastAvailIdx).to.equal(2);
      for (let i = 0; i < 4; i++) device.push(device.pop()!.head, 1);
      expect(vq.collectUsed().map((u) => u.token)).to.deep.equal([0, 1, 2, 3]);
      expect(vq.lastUsedIdx).to.equal(2);
    });
  });

  describe('IN_ORDER', () => {
    it('takes descriptors in ring order across laps, chained x to x + 1', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8, { inOrder: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const heads: number[] = [];
      for (let token = 0; token < 12; token++) {
        heads.push(vq.addRequest([readable(0x1000n, 4), writable(0x2000n, 4)], { token }));
        const { head } = device.pop()!;
        device.push(head, 4);
        vq.collectUsed();
      }
      expect(heads).to.deep.equal([0, 2, 4, 6, 0, 2, 4, 6, 0, 2, 4, 6]);
      // The second descriptor of the chain at 6 is 7; its next is 0 only when it has NEXT (it has not).
      const d = view(memory.read(vq.descTable.gpa + 16n * 6n, 16));
      expect([d.getUint16(12, true), d.getUint16(14, true)]).to.deep.equal([1, 7]);
    });

    it('reads one used element as a batch: every buffer in flight up to the id it names', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8, { inOrder: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const heads = [0, 1, 2, 3].map((token) => vq.addRequest([writable(0x1000n, 8 + token)], { token }));
      for (let i = 0; i < 4; i++) device.pop();
      // The batch of the first three: one element, the third's id, where the first's would go; idx + 3.
      device.push(heads[2]!, 5, false);
      device.setUsedIdx(3);
      expect(vq.collectUsed()).to.deep.equal([
        { id: heads[0], len: 8, token: 0, writableLen: 8, batched: true },
        { id: heads[1], len: 9, token: 1, writableLen: 9, batched: true },
        { id: heads[2], len: 5, token: 2, writableLen: 10 },
      ]);
      // The next element is at used index 3.
      device.push(heads[3]!, 1);
      expect(vq.collectUsed()).to.deep.equal([{ id: heads[3], len: 1, token: 3, writableLen: 11 }]);
    });

    it('fails a used element that names a later buffer than used.idx covers (used out of order)', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8, { inOrder: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      const heads = [0, 1, 2].map((token) => vq.addRequest([writable(0x1000n, 8)], { token }));
      device.push(heads[1]!, 8);
      const err = thrown(UsedRingError, () => vq.collectUsed());
      expect(err.message).to.match(/id 1, the 2nd buffer in flight.*only 1 more \(used out of order\)/);
      expect(vq.inFlight).to.equal(3);
    });

    it('fails a used element whose id is not in flight', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue<number>(memory, 8, { inOrder: true });
      const device = new TestDevice(memory, 8, vq.vringAddr());
      vq.addRequest([writable(0x1000n, 8)], { token: 0 });
      device.push(5, 8);
      expect(thrown(UsedRingError, () => vq.collectUsed()).message).to.match(
        /id 5, not the head of a buffer in flight/,
      );
    });
  });

  describe('raw access', () => {
    it('writes descriptors exactly as given, loops and out-of-range next included', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 4);
      const loop = { addr: 0xffff_ffff_ffff_fff0n, len: 0xffff_ffff, flags: 0xffff, next: 0 };
      vq.setRawDescriptor(0, loop);
      vq.setRawDescriptor(3, { addr: 0x1000n, len: 0, flags: VirtqDescFlag.NEXT, next: 4000 });
      expect(vq.rawDescriptor(0)).to.deep.equal(loop);
      // addr, len, flags, next: little-endian, where the spec puts them.
      expect(hex(memory.read(vq.descTable.gpa, 16))).to.equal(
        'f0ffffffffffffff' + 'ffffffff' + 'ffff' + '0000',
      );
      expect(hex(memory.read(vq.descTable.gpa + 48n, 16))).to.equal(
        '0010000000000000' + '00000000' + '0100' + 'a00f',
      );
    });

    it('refuses only what does not fit a field, or a table', () => {
      const vq = new SplitVirtqueue(createGuestMemory(), 4);
      const ok = { addr: 0n, len: 0, flags: 0, next: 0 };
      for (const bad of [
        { ...ok, addr: 1n << 64n },
        { ...ok, addr: -1n },
        { ...ok, len: 2 ** 32 },
        { ...ok, flags: 0x10000 },
        { ...ok, next: -1 },
      ]) {
        thrown(VirtqueueError, () => vq.setRawDescriptor(0, bad));
      }
      thrown(VirtqueueError, () => vq.setRawDescriptor(4, ok));
      thrown(VirtqueueError, () => vq.rawDescriptor(4));
    });

    it('writes and reads an indirect table anywhere in guest memory', () => {
      const memory = createGuestMemory();
      const gpa = memory.alloc(32, 16);
      const table = dataView(memory.gpaToBytes(gpa, 32));
      const desc = { addr: 0x2000n, len: 32, flags: VirtqDescFlag.INDIRECT | VirtqDescFlag.NEXT, next: 1 };
      writeRawDescriptor(table, 1, desc);
      expect(readRawDescriptor(table, 1)).to.deep.equal(desc);
      thrown(VirtqueueError, () => writeRawDescriptor(table, 2, desc));
    });

    it('publishes heads as given and avail.idx anywhere, and reads used elements unchecked', () => {
      const memory = createGuestMemory();
      const vq = new SplitVirtqueue(memory, 4);
      const device = new TestDevice(memory, 4, vq.vringAddr());
      expect(vq.publishRaw([3, 9])).to.equal(2);
      expect(device.availIdx()).to.equal(2);
      expect(hex(memory.read(vq.availRing.gpa + 4n, 4))).to.equal('0300' + '0900');
      // avail.idx 100 entries ahead of the ring, no entry written.
      expect(vq.publishRaw([], { availIdx: 102 })).to.equal(102);
      expect(device.availIdx()).to.equal(102);
      expect(vq.lastAvailIdx).to.equal(102);
      // A used element naming a descriptor never made available is returned as written.
      device.push(7, 0x1234);
      device.push(0, 1);
      expect(vq.rawUsedIdx).to.equal(2);
      expect(vq.takeRawUsed()).to.deep.equal({
        usedIdx: 2,
        elements: [
          { id: 7, len: 0x1234 },
          { id: 0, len: 1 },
        ],
      });
      expect(vq.takeRawUsed()).to.deep.equal({ usedIdx: 2, elements: [] });
      // used.idx far ahead: at most the queue size of elements.
      device.setUsedIdx(1000);
      const garbage = vq.takeRawUsed();
      expect(garbage.usedIdx).to.equal(1000);
      expect(garbage.elements).to.have.length(4);
      // resetTo brings back the checked API.
      vq.resetTo(0);
      vq.addRequest([writable(0x1000n, 1)]);
      expect(device.availIdx()).to.equal(1);
    });
  });
});
