import { expect } from 'chai';
import { createGuestMemory, type GuestMemory } from '../memory/guest-memory.js';
import { UsedRingError, VirtqueueError } from './errors.js';
import { PackedVirtqueue, packedAdvance, packedBase, packedPosition, RingEventFlags } from './packed.js';
import type { BufferElement } from './split.js';

/** pvirtq_desc flag bits, written here from the spec rather than imported from packed.ts. */
const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;
const F_AVAIL = 0x80;
const F_USED = 0x8000;

interface TakenBuffer {
  id: number;
  /** Ring descriptors the buffer took. */
  count: number;
  elements: BufferElement[];
  /** The flags of each ring descriptor, as read. */
  flags: number[];
}

/**
 * A tiny device playing the back-end of a packed ring: it finds the ring from the user addresses
 * SET_VRING_ADDR carries, keeps its own wrap counters, and reads and writes guest memory bytes directly.
 */
class PackedTestDevice {
  readonly ring: bigint;
  readonly driverArea: bigint;
  readonly deviceArea: bigint;
  nextAvail = 0;
  availWrap = true;
  nextUsed = 0;
  usedWrap = true;

  constructor(
    readonly memory: GuestMemory,
    readonly size: number,
    addr: { descriptor: bigint; used: bigint; available: bigint },
  ) {
    this.ring = memory.uvaToGpa(addr.descriptor);
    this.driverArea = memory.uvaToGpa(addr.available);
    this.deviceArea = memory.uvaToGpa(addr.used);
  }

  desc(index: number): { addr: bigint; len: number; id: number; flags: number } {
    const bytes = this.memory.read(this.ring + BigInt(index * 16), 16);
    const view = new DataView(bytes.buffer);
    return {
      addr: view.getBigUint64(0, true),
      len: view.getUint32(8, true),
      id: view.getUint16(12, true),
      flags: view.getUint16(14, true),
    };
  }

  isAvailable(index: number, wrap: boolean): boolean {
    const { flags } = this.desc(index);
    return ((flags & F_AVAIL) !== 0) === wrap && ((flags & F_USED) !== 0) !== wrap;
  }

  /** The next available buffer, or undefined. */
  take(): TakenBuffer | undefined {
    if (!this.isAvailable(this.nextAvail, this.availWrap)) return undefined;
    const elements: BufferElement[] = [];
    const flags: number[] = [];
    let count = 0;
    let id = 0;
    for (;;) {
      if (count > 0 && !this.isAvailable(this.nextAvail, this.availWrap)) {
        throw new Error(`descriptor ${this.nextAvail}, next in the list, is not available`);
      }
      const d = this.desc(this.nextAvail);
      flags.push(d.flags);
      count++;
      this.nextAvail++;
      if (this.nextAvail === this.size) {
        this.nextAvail = 0;
        this.availWrap = !this.availWrap;
      }
      if (d.flags & F_INDIRECT) {
        const table = new DataView(this.memory.read(d.addr, d.len).buffer);
        for (let at = 0; at < d.len; at += 16) {
          elements.push({
            gpa: table.getBigUint64(at, true),
            len: table.getUint32(at + 8, true),
            write: (table.getUint16(at + 14, true) & F_WRITE) !== 0,
          });
        }
      } else {
        elements.push({ gpa: d.addr, len: d.len, write: (d.flags & F_WRITE) !== 0 });
      }
      id = d.id;
      if (!(d.flags & F_NEXT)) break;
    }
    return { id, count, elements, flags };
  }

  /** Writes the used descriptor for `buffer` at the device's used position, and skips its descriptors. */
  use(buffer: TakenBuffer, len: number, flags?: number): void {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint32(8, len, true);
    view.setUint16(12, buffer.id, true);
    view.setUint16(14, flags ?? (this.usedWrap ? F_AVAIL | F_USED : 0) | (len ? F_WRITE : 0), true);
    this.memory.write(this.ring + BigInt(this.nextUsed * 16), bytes);
    this.nextUsed += buffer.count;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap = !this.usedWrap;
    }
  }

  /**
   * IN_ORDER: one used descriptor for `buffers` (taken in order), the last one's id and `len`, over the
   * first one's descriptor; then skips the descriptors of them all.
   */
  useBatch(buffers: readonly TakenBuffer[], len: number): void {
    const last = buffers.at(-1)!;
    this.use({ ...last, count: buffers.reduce((n, b) => n + b.count, 0) }, len);
  }

  setDeviceEvent(flags: number, position = 0): void {
    const bytes = new Uint8Array(4);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, position, true);
    view.setUint16(2, flags, true);
    this.memory.write(this.deviceArea, bytes);
  }

  driverEvent(): { position: number; flags: number } {
    const view = new DataView(this.memory.read(this.driverArea, 4).buffer);
    return { position: view.getUint16(0, true), flags: view.getUint16(2, true) };
  }
}

function setUp(size: number, options: { indirect?: boolean; eventIdx?: boolean; inOrder?: boolean } = {}) {
  const memory = createGuestMemory();
  const queue = new PackedVirtqueue<string>(memory, size, options);
  const device = new PackedTestDevice(memory, size, queue.vringAddr());
  return { memory, queue, device };
}

const read = (gpa: bigint, len = 16): BufferElement => ({ gpa, len, write: false });
const write = (gpa: bigint, len = 16): BufferElement => ({ gpa, len, write: true });

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('virtqueue/packed', () => {
  it('lays out the three parts aligned and zeroed, and hands SET_VRING_ADDR the user addresses', () => {
    const { queue, memory } = setUp(8);
    expect(queue.descRing.gpa % 16n).to.equal(0n);
    expect(queue.driverArea.gpa % 4n).to.equal(0n);
    expect(queue.deviceArea.gpa % 4n).to.equal(0n);
    expect(queue.vringAddr()).to.deep.equal({
      descriptor: memory.gpaToUva(queue.descRing.gpa),
      available: memory.gpaToUva(queue.driverArea.gpa),
      used: memory.gpaToUva(queue.deviceArea.gpa),
    });
    expect(memory.read(queue.descRing.gpa, 8 * 16).every((b) => b === 0)).to.equal(true);
    expect(queue.availPosition).to.equal(0x8000);
    expect(queue.usedPosition).to.equal(0x8000);
  });

  it('publishes a list with NEXT, WRITE, AVAIL/USED set right, the buffer id in the last descriptor', () => {
    const { queue, device } = setUp(8);
    const id = queue.addRequest([read(0x1000n), read(0x2000n, 4), write(0x3000n, 1)], { token: 'a' });
    const taken = device.take()!;
    expect(taken.id).to.equal(id);
    expect(taken.count).to.equal(3);
    expect(taken.flags).to.deep.equal([F_AVAIL | F_NEXT, F_AVAIL | F_NEXT, F_AVAIL | F_WRITE]);
    expect(taken.elements).to.deep.equal([read(0x1000n), read(0x2000n, 4), write(0x3000n, 1)]);
    expect(device.take()).to.equal(undefined);
    expect(queue.numFree).to.equal(5);
    device.use(taken, 1);
    expect(queue.collectUsed()).to.deep.equal([{ id, len: 1, token: 'a', writableLen: 1 }]);
    expect(queue.numFree).to.equal(8);
    expect(queue.collectUsed()).to.deep.equal([]);
  });

  it('wraps many times with lists of two, flipping both wrap counters', () => {
    const { queue, device } = setUp(5);
    for (let round = 0; round < 40; round++) {
      const id = queue.addRequest([read(0x1000n), write(0x2000n, 8)], { token: `r${round}` });
      const taken = device.take()!;
      expect(taken.id, `round ${round}`).to.equal(id);
      // A descriptor is available when AVAIL matches the wrap counter and USED does not.
      const lap = Math.floor((round * 2) / 5) % 2 === 0;
      expect(taken.flags[0]! & (F_AVAIL | F_USED), `round ${round}`).to.equal(lap ? F_AVAIL : F_USED);
      device.use(taken, 8);
      const used = queue.collectUsed();
      expect(used.map((u) => u.token)).to.deep.equal([`r${round}`]);
    }
    expect(queue.availPosition).to.equal(packedPosition(0, true)); // 80 descriptors = 16 laps of 5
  });

  it('takes buffers used out of order, skipping each list by its length', () => {
    const { queue, device } = setUp(8);
    const a = queue.addRequest([read(0x1000n), write(0x2000n, 2)], { token: 'a' });
    const b = queue.addRequest([write(0x3000n, 4)], { token: 'b' });
    const c = queue.addRequest([read(0x4000n), read(0x5000n), write(0x6000n, 1)], { token: 'c' });
    const ta = device.take()!;
    const tb = device.take()!;
    const tc = device.take()!;
    device.use(tc, 1);
    device.use(ta, 2);
    expect(queue.collectUsed().map((u) => [u.id, u.token, u.len])).to.deep.equal([
      [c, 'c', 1],
      [a, 'a', 2],
    ]);
    device.use(tb, 4);
    expect(queue.collectUsed().map((u) => [u.id, u.token])).to.deep.equal([[b, 'b']]);
    expect(queue.inFlight).to.equal(0);
    // 3 + 2 + 1 descriptors used: the driver expects the next used one at 6.
    expect(queue.usedPosition).to.equal(packedPosition(6, true));
  });

  it('puts a list in an indirect table: one ring descriptor, WRITE the only table flag', () => {
    const { queue, device } = setUp(4, { indirect: true });
    const chain = [read(0x1000n), read(0x1100n), write(0x1200n, 3), write(0x1300n, 5)];
    const id = queue.addRequest(chain, { indirect: true, token: 'i' });
    const taken = device.take()!;
    expect(taken.count).to.equal(1);
    expect(taken.flags).to.deep.equal([F_AVAIL | F_INDIRECT]);
    expect(taken.elements).to.deep.equal(chain);
    expect(queue.numFree).to.equal(3);
    device.use(taken, 8);
    expect(queue.collectUsed()).to.deep.equal([{ id, len: 8, token: 'i', writableLen: 8 }]);
    expect(thrown(() => setUp(4).queue.addRequest(chain, { indirect: true })).message).to.match(
      /VIRTIO_F_INDIRECT_DESC/,
    );
  });

  it('refuses what a driver must not do: a full ring, an empty or oversized list, readable after writable', () => {
    const { queue } = setUp(4);
    queue.addRequest([read(0x1000n), read(0x1000n), read(0x1000n)]);
    const full = thrown(() => queue.addRequest([read(0x1000n), read(0x1000n)]));
    expect(full).to.be.instanceOf(VirtqueueError);
    expect((full as VirtqueueError).code).to.equal('VHU_ERR_VQ_FULL');
    expect((thrown(() => queue.addRequest([])) as VirtqueueError).code).to.equal('VHU_ERR_VQ_CHAIN');
    expect(
      (thrown(() => setUp(2).queue.addRequest([read(0n), read(0n), read(0n)])) as VirtqueueError).code,
    ).to.equal('VHU_ERR_VQ_CHAIN');
    expect(
      (thrown(() => setUp(4).queue.addRequest([write(0n), read(0n)])) as VirtqueueError).message,
    ).to.match(/readable after a device-writable/);
  });

  it('fails a used descriptor with AVAIL and USED unequal, a bad id, or an id used twice, consuming nothing', () => {
    const { queue, device } = setUp(8);
    queue.addRequest([write(0x1000n, 4)], { token: 'x' });
    const taken = device.take()!;
    device.use(taken, 4, F_USED | F_WRITE); // USED flipped, AVAIL not
    const mismatch = thrown(() => queue.collectUsed());
    expect(mismatch).to.be.instanceOf(UsedRingError);
    expect(mismatch.message).to.match(/USED = 1 but AVAIL = 0/);
    expect(queue.inFlight).to.equal(1);

    const other = setUp(8);
    other.queue.addRequest([write(0x1000n, 4)]);
    const t = other.device.take()!;
    other.device.use({ ...t, id: 99 }, 4);
    expect((thrown(() => other.queue.collectUsed()) as UsedRingError).code).to.equal(
      'VHU_ERR_VRING_USED_ID_RANGE',
    );

    const twice = setUp(8);
    twice.queue.addRequest([write(0x1000n, 4)]);
    twice.queue.addRequest([write(0x1000n, 4)]);
    const first = twice.device.take()!;
    twice.device.use(first, 4);
    twice.device.use(first, 4);
    expect((thrown(() => twice.queue.collectUsed()) as UsedRingError).code).to.equal(
      'VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT',
    );
    expect(twice.queue.inFlight).to.equal(2);
  });

  it('kicks as the Device Event Suppression says: ENABLE, DISABLE, DESC across a wrap', () => {
    const { queue, device } = setUp(8, { eventIdx: true });
    expect(queue.needsKick(packedPosition(0, true), packedPosition(1, true))).to.equal(true);
    device.setDeviceEvent(RingEventFlags.DISABLE);
    expect(queue.needsKick(packedPosition(0, true), packedPosition(1, true))).to.equal(false);
    // Notify when descriptor 3 of this lap is made available.
    device.setDeviceEvent(RingEventFlags.DESC, packedPosition(3, true));
    expect(queue.needsKick(packedPosition(0, true), packedPosition(3, true))).to.equal(false);
    expect(queue.needsKick(packedPosition(0, true), packedPosition(4, true))).to.equal(true);
    // The event is at 6 of the previous lap; moving from 5 (previous lap) to 1 (this lap) passes it.
    device.setDeviceEvent(RingEventFlags.DESC, packedPosition(6, true));
    expect(queue.needsKick(packedPosition(5, true), packedPosition(1, false))).to.equal(true);
    expect(queue.needsKick(packedPosition(7, true), packedPosition(1, false))).to.equal(false);
    // Without EVENT_IDX the DESC value means nothing to the driver: it kicks.
    const plain = setUp(8);
    plain.device.setDeviceEvent(RingEventFlags.DESC, packedPosition(6, true));
    expect(plain.queue.needsKick(packedPosition(0, true), packedPosition(1, true))).to.equal(true);
  });

  it('writes the Driver Event Suppression: DISABLE, ENABLE, and DESC only with EVENT_IDX', () => {
    const { queue, device } = setUp(8, { eventIdx: true });
    queue.setNoInterrupt(true);
    expect(device.driverEvent().flags).to.equal(RingEventFlags.DISABLE);
    queue.setNoInterrupt(false);
    expect(device.driverEvent().flags).to.equal(RingEventFlags.ENABLE);
    queue.setUsedEvent(packedPosition(5, false));
    expect(device.driverEvent()).to.deep.equal({ flags: RingEventFlags.DESC, position: 5 });
    expect(thrown(() => setUp(8).queue.setUsedEvent(1)).message).to.match(/EVENT_IDX/);
  });

  it('restarts at a vhost-user base: available and used positions with their wrap counters', () => {
    const { queue, device } = setUp(8);
    queue.resetTo(packedBase(packedPosition(6, false), packedPosition(6, false)));
    device.nextAvail = 6;
    device.availWrap = false;
    device.nextUsed = 6;
    device.usedWrap = false;
    const ids = [0, 1, 2].map((i) => queue.addRequest([write(0x1000n, 4)], { token: `t${i}` }));
    for (const _ of ids) device.use(device.take()!, 4);
    expect(queue.collectUsed().map((u) => u.token)).to.deep.equal(['t0', 't1', 't2']);
    expect(queue.availPosition).to.equal(packedPosition(1, true));
    expect(thrown(() => queue.resetTo(9)).message).to.match(/outside a ring of 8/);
  });

  it('reads back a list made available, as a device takes it, across the end of the ring', () => {
    const { queue } = setUp(5);
    queue.resetTo(packedBase(packedPosition(4, true), packedPosition(4, true)));
    const at = queue.availPosition;
    const id = queue.addRequest([read(0x1000n, 16), write(0x2000n, 8)]);
    expect(queue.listAt(at)).to.deep.equal([
      { addr: 0x1000n, len: 16, id, flags: F_AVAIL | F_NEXT },
      { addr: 0x2000n, len: 8, id, flags: F_USED | F_WRITE },
    ]);
    expect(packedAdvance(at, 2, 5)).to.equal(queue.availPosition);
    expect(queue.usedAt(at)).to.equal(false);
    expect(packedAdvance(packedPosition(3, false), 12, 5)).to.equal(packedPosition(0, true));
  });

  describe('IN_ORDER', () => {
    it('reads one used descriptor as a batch: every buffer in flight up to the id it names, all their descriptors skipped', () => {
      const { queue, device } = setUp(8, { inOrder: true });
      const a = queue.addRequest([read(0x1000n), write(0x2000n, 6)], { token: 'a' });
      const b = queue.addRequest([write(0x3000n, 4)], { token: 'b' });
      const c = queue.addRequest([read(0x4000n), read(0x5000n), write(0x6000n, 9)], { token: 'c' });
      const d = queue.addRequest([write(0x7000n, 2)], { token: 'd' });
      const [ta, tb, tc, td] = [device.take()!, device.take()!, device.take()!, device.take()!];
      // The batch of the first three: c's id over a's first descriptor, then 2 + 1 + 3 descriptors skipped.
      device.useBatch([ta, tb, tc], 5);
      expect(queue.collectUsed()).to.deep.equal([
        { id: a, len: 6, token: 'a', writableLen: 6, batched: true },
        { id: b, len: 4, token: 'b', writableLen: 4, batched: true },
        { id: c, len: 5, token: 'c', writableLen: 9 },
      ]);
      expect(queue.usedPosition).to.equal(packedPosition(6, true));
      device.use(td, 1);
      expect(queue.collectUsed()).to.deep.equal([{ id: d, len: 1, token: 'd', writableLen: 2 }]);
      expect(queue.inFlight).to.equal(0);
      expect(queue.numFree).to.equal(8);
    });

    it('follows batches across the end of the ring, both wrap counters flipping, for many laps', () => {
      const { queue, device } = setUp(7, { inOrder: true });
      let token = 0;
      let expected = 0;
      for (let round = 0; round < 60; round++) {
        // Lists of one and two descriptors, three or four a round, used in batches of one to three.
        const count = 3 + (round % 2);
        const taken: TakenBuffer[] = [];
        for (let i = 0; i < count; i++) {
          const chain = (round + i) % 3 === 0 ? [read(0x1000n), write(0x2000n, 8)] : [write(0x2000n, 8)];
          if (queue.numFree < chain.length) break;
          queue.addRequest(chain, { token: `t${token++}` });
          taken.push(device.take()!);
        }
        const size = 1 + (round % 3);
        for (let at = 0; at < taken.length; at += size) device.useBatch(taken.slice(at, at + size), 8);
        const used = queue.collectUsed();
        expect(
          used.map((u) => u.token),
          `round ${round}`,
        ).to.deep.equal(taken.map(() => `t${expected++}`));
        expect(queue.usedPosition, `round ${round}`).to.equal(queue.availPosition);
      }
      expect(token).to.be.above(150);
    });

    it('fails a used id that an earlier used descriptor of the pass covered (used twice, or out of order), consuming nothing', () => {
      const { queue, device } = setUp(8, { inOrder: true });
      for (const token of ['a', 'b', 'c']) queue.addRequest([write(0x1000n, 4)], { token });
      const [ta, tb] = [device.take()!, device.take()!];
      // b used first: to an in-order driver its descriptor covers a too, and the next one is past both; a
      // comes there, after b.
      device.useBatch([ta, tb], 4);
      device.use(ta, 4);
      const err = thrown(() => queue.collectUsed());
      expect(err).to.be.instanceOf(UsedRingError);
      expect((err as UsedRingError).code).to.equal('VHU_ERR_VRING_USED_ID_NOT_IN_FLIGHT');
      expect(err.message).to.match(
        new RegExp(
          `descriptor 2 \\(wrap counter 1\\) has buffer id ${ta.id}, .*already covered buffer ${ta.id}, the 1st made available: used out of order`,
        ),
      );
      expect(queue.inFlight).to.equal(3);
      expect(queue.usedPosition).to.equal(packedPosition(0, true));
    });

    it('fails a used id that is not in flight', () => {
      const { queue, device } = setUp(8, { inOrder: true });
      queue.addRequest([write(0x1000n, 4)], { token: 'a' });
      device.use({ ...device.take()!, id: 6 }, 4);
      expect(thrown(() => queue.collectUsed()).message).to.match(
        /buffer id 6, .*\(buffer 6 is not in flight\)/,
      );
    });

    it('without IN_ORDER, takes such a descriptor as the one buffer it names', () => {
      const { queue, device } = setUp(8);
      for (const token of ['a', 'b']) queue.addRequest([write(0x1000n, 4)], { token });
      const [ta, tb] = [device.take()!, device.take()!];
      device.useBatch([ta, tb], 4);
      expect(queue.collectUsed().map((u) => u.token)).to.deep.equal(['b']);
      expect(queue.inFlight).to.equal(1);
    });
  });
});
