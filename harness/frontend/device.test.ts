import { expect } from 'chai';
import { BackendError, ProtocolError, TimeoutError } from '../errors.js';
import { SKEWED_LAYOUT } from '../memory/guest-memory.js';
import { Scope } from '../process/scope.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { decodeMemoryRegions, decodeSingleMemoryRegion, decodeVringAddress } from '../protocol/messages.js';
import { frontendRequestName, HeaderFlag, ProtocolFeature } from '../protocol/spec.js';
import { closeFd, eventfdWrite, type Mapping, mmapShared } from '../sys/libc.js';
import { expectNoFdLeaks } from '../sys/testing.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from '../transport/connection.js';
import { FrontendSession } from '../transport/session.js';
import { FrontendDevice } from './device.js';
import { HandoverPort } from './handover.js';

const REPLY = HeaderFlag.VERSION | HeaderFlag.REPLY;

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

interface Region {
  guestAddress: bigint;
  size: bigint;
  userAddress: bigint;
  mmapOffset: bigint;
  mapping: Mapping;
}

/**
 * A back-end played by hand over the other end of the socket: it records every message, answers GET_FEATURES,
 * need_reply and GET_VRING_BASE, and maps the memory SET_MEM_TABLE hands it as a back-end would (the whole
 * fd from offset 0, the region at its mmap offset).
 */
class FakeBackend {
  readonly frames: Array<DecodedFrame & { name: string }> = [];
  readonly regions: Region[] = [];
  ack = 0n;
  vringBase = { index: 0, num: 0 };
  readonly #decoder = new FrameDecoder();
  readonly done: Promise<void>;

  constructor(readonly channel: UnixChannel) {
    this.done = this.#loop();
  }

  get names(): string[] {
    return this.frames.map((f) => f.name);
  }

  frame(name: string): DecodedFrame {
    const found = this.frames.find((f) => f.name === name);
    if (!found) throw new Error(`no ${name} received`);
    return found;
  }

  /** The back-end's view of `len` bytes at user address `uva`. */
  userBytes(uva: bigint, len: number): Uint8Array {
    const region = this.regions.find((r) => uva >= r.userAddress && uva < r.userAddress + r.size)!;
    const at = Number(region.mmapOffset + (uva - region.userAddress));
    return new Uint8Array(region.mapping.buffer, at, len);
  }

  close(): void {
    this.channel.close();
    for (const frame of this.frames) for (const fd of frame.fds) closeFd(fd);
    for (const region of this.regions) region.mapping.unmap();
  }

  async #loop(): Promise<void> {
    for (;;) {
      let message: Awaited<ReturnType<UnixChannel['receive']>>;
      try {
        message = await this.channel.receive(5000);
      } catch {
        return;
      }
      if (!message) return;
      for (const frame of this.#decoder.push(message.data, message.fds)) await this.#handle(frame);
    }
  }

  async #handle(frame: DecodedFrame): Promise<void> {
    const name = frontendRequestName(frame.request);
    this.frames.push({ ...frame, name });
    if (name === 'SET_MEM_TABLE') {
      decodeMemoryRegions(frame.payload).regions.forEach((r, i) => {
        const mapping = mmapShared(frame.fds[i]!, Number(r.mmapOffset + r.size), 0);
        this.regions.push({ ...r, mapping });
      });
    }
    if (name === 'ADD_MEM_REG') {
      const r = decodeSingleMemoryRegion(frame.payload);
      this.regions.push({ ...r, mapping: mmapShared(frame.fds[0]!, Number(r.mmapOffset + r.size), 0) });
    }
    const reply = (payload: Buffer) =>
      this.channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload }));
    if (name === 'GET_FEATURES') await reply(u64(0n));
    else if (name === 'GET_VRING_BASE') {
      const state = Buffer.alloc(8);
      state.writeUInt32LE(this.vringBase.index, 0);
      state.writeUInt32LE(this.vringBase.num, 4);
      await reply(state);
    } else if (frame.flags & HeaderFlag.NEED_REPLY) await reply(u64(this.ack));
  }
}

function setUp(options: { replyAck?: boolean } = {}) {
  const [channel, fd] = UnixChannel.pair();
  const backend = new FakeBackend(channel);
  const connection = Connection.fromFd(fd, 300);
  const session = new FrontendSession(connection);
  if (options.replyAck ?? true) session.ackedProtocolFeatures = 1n << BigInt(ProtocolFeature.REPLY_ACK);
  const scope = new Scope();
  const device = new FrontendDevice(session, scope);
  return {
    backend,
    device,
    session,
    scope,
    async tearDown() {
      expect(await scope.close()).to.deep.equal([]);
      connection.close();
      backend.close();
      await backend.done;
    },
  };
}

describe('frontend/device', () => {
  expectNoFdLeaks();

  it("starts a ring with QEMU's messages in QEMU's order, user addresses, one fd per region", async () => {
    const { backend, device, tearDown } = setUp();
    await device.setMemTable();
    const ring = await device.setUpRing(0, 16);
    await device.enable(0, true);
    expect(backend.names).to.deep.equal([
      'SET_MEM_TABLE',
      'SET_VRING_NUM',
      'SET_VRING_BASE',
      'SET_VRING_ADDR',
      'SET_VRING_KICK',
      'SET_VRING_CALL',
      'SET_VRING_ENABLE',
    ]);
    expect(backend.frames.every((f) => f.flags === (HeaderFlag.VERSION | HeaderFlag.NEED_REPLY))).to.equal(
      true,
    );
    const table = backend.frame('SET_MEM_TABLE');
    expect(table.fds).to.have.length(3);
    const sorted = [...SKEWED_LAYOUT].sort((a, b) => (a.guestAddress < b.guestAddress ? -1 : 1));
    expect(decodeMemoryRegions(table.payload).regions).to.deep.equal(sorted);
    expect([...backend.frame('SET_VRING_NUM').payload]).to.deep.equal([0, 0, 0, 0, 16, 0, 0, 0]);
    expect([...backend.frame('SET_VRING_BASE').payload]).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 0]);
    const addr = decodeVringAddress(backend.frame('SET_VRING_ADDR').payload);
    expect(addr).to.deep.include({ index: 0, flags: 0, log: 0n, ...ring.queue.vringAddr() });
    // The rings are in region B, above 4 GiB: their user addresses are B's, not their guest addresses.
    expect(addr.descriptor >> 40n).to.equal(0x7en);
    for (const name of ['SET_VRING_KICK', 'SET_VRING_CALL']) {
      expect(backend.frame(name).fds, name).to.have.length(1);
      expect(backend.frame(name).payload.readBigUInt64LE(), name).to.equal(0n);
    }
    expect([...backend.frame('SET_VRING_ENABLE').payload]).to.deep.equal([0, 0, 0, 0, 1, 0, 0, 0]);
    await tearDown();
  });

  it("a migration destination shares the source's memory and queue: same fds, same addresses, resumed at a base", async () => {
    const source = setUp();
    const destination = setUp();
    try {
      await source.device.setMemTable();
      const ring = await source.device.setUpRing(0, 16);
      const dest = new FrontendDevice(destination.session, destination.scope, {
        memory: source.device.memory,
      });
      expect(dest.memory).to.equal(source.device.memory);
      const moved = dest.prepareRing(0, 16, { queue: ring.queue, base: 7 });
      expect(moved.queue).to.equal(ring.queue);
      expect(moved.kickFd.fd).to.not.equal(ring.kickFd.fd);
      await dest.setMemTable();
      await dest.setVringBase(0);
      await dest.setVringAddr(0);
      expect(decodeMemoryRegions(destination.backend.frame('SET_MEM_TABLE').payload)).to.deep.equal(
        decodeMemoryRegions(source.backend.frame('SET_MEM_TABLE').payload),
      );
      expect([...destination.backend.frame('SET_VRING_BASE').payload]).to.deep.equal([
        0, 0, 0, 0, 7, 0, 0, 0,
      ]);
      expect(decodeVringAddress(destination.backend.frame('SET_VRING_ADDR').payload)).to.deep.equal(
        decodeVringAddress(source.backend.frame('SET_VRING_ADDR').payload),
      );
      // What one back-end maps, the other sees.
      const uva = source.device.memory.regions[0]!.userAddress + 0x10n;
      source.backend.userBytes(uva, 1)[0] = 0x3c;
      expect(destination.backend.userBytes(uva, 1)[0]).to.equal(0x3c);
      // The driver's port follows the ring to the destination.
      const port = new HandoverPort(ring);
      port.handOver(moved);
      port.notify();
      expect(moved.kickFd.drain()).to.equal(1);
      expect(ring.kickFd.drain()).to.equal(0);
      expect(() => port.handOver(source.device.prepareRing(1, 16))).to.throw(/another queue/);
    } finally {
      await destination.tearDown();
      await source.tearDown();
    }
  });

  it('shares guest memory with a back-end that maps the fds, at the mmap offsets', async () => {
    const { backend, device, tearDown } = setUp();
    await device.setMemTable();
    for (const layout of SKEWED_LAYOUT) {
      device.memory.write(layout.guestAddress + 0x10n, Uint8Array.of(0xa5, 0x5a));
      expect([...backend.userBytes(layout.userAddress + 0x10n, 2)]).to.deep.equal([0xa5, 0x5a]);
      backend.userBytes(layout.userAddress + 0x20n, 1)[0] = 0x77;
      expect(device.memory.read(layout.guestAddress + 0x20n, 1)[0]).to.equal(0x77);
    }
    await tearDown();
  });

  it('adds regions one by one with ADD_MEM_REG, moves one to a new memfd, and removes the old with REM_MEM_REG', async () => {
    const { backend, device, tearDown } = setUp();
    for (const r of device.memory.regions) await device.addMemoryRegion(r.guestAddress);
    const adds = backend.frames.filter((f) => f.name === 'ADD_MEM_REG');
    expect(adds.map((f) => f.fds.length)).to.deep.equal([1, 1, 1]);
    const sorted = [...SKEWED_LAYOUT].sort((a, b) => (a.guestAddress < b.guestAddress ? -1 : 1));
    expect(adds.map((f) => decodeSingleMemoryRegion(f.payload))).to.deep.equal(sorted);
    device.memory.write(0x40n, Uint8Array.of(1, 2, 3));

    const moved = { userAddress: 0x7d00_0000_0000n, mmapOffset: 0x5000n };
    const old = device.replaceRegion(0x0n, moved);
    expect(old.userAddress).to.equal(0x7f00_0000_0000n);
    // The contents moved with it; the old mapping keeps its own copy.
    expect([...device.memory.read(0x40n, 3)]).to.deep.equal([1, 2, 3]);
    device.memory.write(0x40n, Uint8Array.of(9));
    expect(old.bytes[0x1040]).to.equal(1);
    expect(device.memory.checkMmapPrefixes()).to.deep.equal([]);

    await device.removeMemoryRegion(old);
    await device.addMemoryRegion(0x0n);
    const rem = backend.frame('REM_MEM_REG');
    expect(rem.fds, 'REM_MEM_REG fds').to.have.length(0);
    expect(decodeSingleMemoryRegion(rem.payload)).to.deep.equal(SKEWED_LAYOUT[0]);
    const added = backend.frames.filter((f) => f.name === 'ADD_MEM_REG').at(-1)!;
    expect(decodeSingleMemoryRegion(added.payload)).to.deep.equal({
      guestAddress: 0x0n,
      size: 0x10_0000n,
      ...moved,
    });
    expect([...backend.userBytes(0x7d00_0000_0040n, 3)]).to.deep.equal([9, 2, 3]);
    await tearDown();
  });

  it('reserves a guest-contiguous area across the A|C boundary before anything else', () => {
    const { device, tearDown } = setUp();
    expect(device.spanning).to.deep.equal({ gpa: 0x10_0000n - 0x1000n, len: 0x2000 });
    return tearDown();
  });

  it('waits for used buffers on a call, by polling without one, and past a spurious call', async () => {
    const { backend, device, tearDown } = setUp();
    await device.setMemTable();
    const ring = await device.setUpRing(0, 8);
    const call = backend.frame('SET_VRING_CALL').fds[0]!;
    const used = backend.userBytes(ring.queue.vringAddr().used, 4 + 8 * 8);
    const view = new DataView(used.buffer, used.byteOffset, used.byteLength);
    const use = (slot: number, id: number, len: number, idx: number) => {
      view.setUint32(4 + 8 * slot, id, true);
      view.setUint32(8 + 8 * slot, len, true);
      view.setUint16(2, idx, true);
    };
    const post = () => ring.queue.addRequest([{ gpa: 0x1000n, len: 16, write: true }]);

    let head = post();
    use(0, head, 16, 1);
    eventfdWrite(call, 1n);
    const first = await device.waitUsed(0, 500);
    expect(first.used.map((u) => [u.id, u.len])).to.deep.equal([[head, 16]]);
    expect(first.calls).to.equal(1);

    head = post();
    use(1, head, 4, 2);
    const second = await device.waitUsed(0, 500);
    expect(second).to.deep.include({ calls: 0 });
    expect(second.used).to.have.length(1);

    head = post();
    eventfdWrite(call, 1n);
    setTimeout(() => use(2, head, 1, 3), 50);
    const third = await device.waitUsed(0, 500);
    expect(third.used.map((u) => u.len)).to.deep.equal([1]);

    head = post();
    const late = await device.waitUsed(0, 60).catch((e: unknown) => e);
    expect(late).to.be.instanceOf(TimeoutError);
    expect((late as Error).message).to.match(
      /1 used buffer on vring 0: 0 came; avail\.idx 4, used index 3, 1 in flight/,
    );

    // What a failed wait collected is not lost: the next take returns it.
    post();
    use(3, head, 2, 4);
    const short = await device.waitUsed(0, 60, 2).catch((e: unknown) => e);
    expect((short as Error).message).to.match(/2 used buffers on vring 0: 1 came/);
    expect(ring.takeUsed().map((u) => [u.id, u.len])).to.deep.equal([[head, 2]]);
    await tearDown();
  });

  it('returns the base GET_VRING_BASE replies, and refuses a reply for another vring', async () => {
    const { backend, device, tearDown } = setUp();
    await device.setMemTable();
    await device.setUpRing(0, 8, { base: 0xfffe });
    expect([...backend.frame('SET_VRING_BASE').payload]).to.deep.equal([0, 0, 0, 0, 0xfe, 0xff, 0, 0]);
    backend.vringBase = { index: 0, num: 0x2_0007 };
    expect(await device.stopRing(0)).to.deep.equal({ index: 0, availIndex: 7, reserved: 2 });
    expect(backend.frames.at(-1)!.flags).to.equal(HeaderFlag.VERSION);
    backend.vringBase = { index: 1, num: 7 };
    const err = await device.stopRing(0).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ProtocolError);
    expect((err as Error).message).to.match(/GET_VRING_BASE for vring 0 was answered for vring 1/);
    await tearDown();
  });

  it('names the message a back-end refused', async () => {
    const { backend, device, tearDown } = setUp();
    backend.ack = 1n;
    const err = await device.setMemTable().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(/^SET_MEM_TABLE was refused: REPLY_ACK 1/);
    await tearDown();
  });

  it('without REPLY_ACK, follows each message with GET_FEATURES', async () => {
    const { backend, device, tearDown } = setUp({ replyAck: false });
    await device.setMemTable();
    await device.enable(0, false);
    expect(backend.names).to.deep.equal([
      'SET_MEM_TABLE',
      'GET_FEATURES',
      'SET_VRING_ENABLE',
      'GET_FEATURES',
    ]);
    expect(backend.frames[0]!.flags).to.equal(HeaderFlag.VERSION);
    await tearDown();
  });

  it('ends a wait at once when the back-end closes the connection, and names the message it was at', async () => {
    const { backend, device, tearDown } = setUp();
    await device.setMemTable();
    const ring = await device.setUpRing(0, 8);
    ring.queue.addRequest([{ gpa: 0x1000n, len: 16, write: false }]);
    const started = performance.now();
    setTimeout(() => backend.channel.close(), 30);
    const err = await device.waitUsed(0, 2000).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(
      /closed the connection while 1 used buffer was awaited on vring 0/,
    );
    expect(performance.now() - started).to.be.below(1000);
    const refused = await device.enable(0, true).catch((e: unknown) => e);
    expect((refused as Error).message).to.match(/\(at SET_VRING_ENABLE; wire: .*-> SET_VRING_ENABLE/);
    await tearDown();
  });
});
