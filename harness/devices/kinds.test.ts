import { expect } from 'chai';
import { createGuestMemory } from '../memory/guest-memory.js';
import { SECTOR_SIZE } from './block/blk.js';
import { FuseAttrOut, FuseInHeader, FuseOpcode, FuseOutHeader } from './fs/fuse.js';
import { encodeCtrlHdr } from './gpu/gpu.js';
import { VirtioGpuCtrlType, VirtioGpuSize } from './gpu/spec.js';
import { SampleError } from './kind.js';
import { deviceKind } from './kinds.js';

/** The kind of `type`, which must have one. */
function kindOf(type: string) {
  const kind = deviceKind(type);
  if (!kind) throw new Error(`no kind for ${type}`);
  return kind;
}

describe('devices/kinds: each device kind and its sample request', () => {
  it('has a kind for block, net, fs, gpu, scsi and input only, each naming its sample ring and data-path check', () => {
    expect(deviceKind('rng')).to.equal(undefined);
    expect(deviceKind(null)).to.equal(undefined);
    const rings = Object.fromEntries(
      ['block', 'net', 'fs', 'gpu', 'scsi', 'input'].map((t) => [
        t,
        [kindOf(t).sampleRing, kindOf(t).dataPath],
      ]),
    );
    expect(rings).to.deep.equal({
      block: [0, 'vring.blk.read-write'],
      net: [1, 'net.loopback'],
      fs: [1, 'fs.getattr'],
      gpu: [0, 'gpu.display-info'],
      scsi: [2, 'scsi.test-unit-ready'],
      input: [1, 'input.status'],
    });
  });

  it('gives every kind a request with device-writable buffers, on one of its rings; net a receive buffer filled by a frame sent', () => {
    for (const type of ['block', 'net', 'fs', 'gpu', 'scsi']) {
      const kind = kindOf(type);
      const { ring, request, trigger } = kind.writable!(createGuestMemory());
      expect(kind.rings, type).to.include(ring);
      expect(
        request.chain.some((p) => p.write),
        type,
      ).to.equal(true);
      if (type !== 'net') expect([ring, trigger], type).to.deep.equal([kind.sampleRing, undefined]);
    }
    const net = kindOf('net').writable!(createGuestMemory());
    // input writes its eventq buffers only when an input event comes: no request of the harness's making.
    expect(kindOf('input').writable).to.equal(undefined);
    expect([net.ring, net.trigger?.ring, net.trigger?.request.chain.every((p) => !p.write)]).to.deep.equal([
      0,
      1,
      true,
    ]);
    expect(net.request.judge(12 + 128)).to.equal('a 128-byte frame');
    expect(() => net.request.judge(12)).to.throw(SampleError, /not a header and a frame/);
  });

  it('places each buffer of a sample where the caller says, naming it and saying whether the device writes it', () => {
    const memory = createGuestMemory();
    const placed: Array<[string, number, boolean]> = [];
    const sample = kindOf('block')
      .samples(memory, {
        place: (what, len, write) => {
          placed.push([what, len, write]);
          return memory.alloc(len, 16);
        },
      })
      .next();
    expect(placed).to.deep.equal([
      ['the request header', 16, false],
      ['the data buffer of the request', SECTOR_SIZE, true],
      ['the status byte of the request', 1, true],
    ]);
    expect(sample.chain.map((p) => p.len)).to.deep.equal([16, SECTOR_SIZE, 1]);
    // net: one buffer for header and frame, the header's length said for a check that cuts it off.
    expect(kindOf('net').samples(createGuestMemory()).next().headerLen).to.equal(12);
  });

  it('input: an EV_LED status event in one device-readable buffer, used with used.len 0', () => {
    const memory = createGuestMemory();
    const samples = kindOf('input').samples(memory);
    const first = samples.next();
    const second = samples.next();
    expect(first.chain.map((p) => [p.len, p.write])).to.deep.equal([[8, false]]);
    // le16 type EV_LED (0x11), le16 code LED_NUML (0), le32 value: off, then on.
    expect(Buffer.from(memory.read(first.chain[0]!.gpa, 8)).toString('hex')).to.equal('1100000000000000');
    expect(Buffer.from(memory.read(second.chain[0]!.gpa, 8)).toString('hex')).to.equal('1100000001000000');
    expect(first.judge(0)).to.equal('used.len 0');
    expect(() => first.judge(8)).to.throw(SampleError, /used\.len 8: it has no device-writable part, so 0/);
  });

  it('scsi: TEST UNIT READY to target 0 LUN 0, its response judged as far as used.len says it was written', () => {
    const memory = createGuestMemory();
    const sample = kindOf('scsi').samples(memory).next();
    expect(sample.chain.map((p) => [p.len, p.write])).to.deep.equal([
      [51, false],
      [108, true],
    ]);
    const response = sample.chain[1]!.gpa;
    // used.len 0 (QEMU 7.2's contrib/vhost-user-scsi): nothing said written, nothing read.
    expect(sample.judge(0)).to.match(/not said to be written/);
    expect(() => sample.judge(109)).to.throw(SampleError, /more than the 108 device-writable bytes/);
    // A response header: VIRTIO_SCSI_S_OK (byte 11), status GOOD.
    memory.write(response, Buffer.alloc(12));
    expect(sample.judge(12)).to.equal('VIRTIO_SCSI_S_OK, status 0x0');
    memory.write(response + 11n, Uint8Array.of(3));
    expect(() => sample.judge(12)).to.throw(SampleError, /response 3, not VIRTIO_SCSI_S_OK/);
  });

  it('block: a one-sector read, done with status OK and at most 513 bytes counted', () => {
    const memory = createGuestMemory();
    const sample = kindOf('block').samples(memory).next();
    expect(sample.chain.map((p) => [p.len, p.write])).to.deep.equal([
      [16, false],
      [SECTOR_SIZE, true],
      [1, true],
    ]);
    const status = sample.chain[2]!.gpa;
    expect(() => sample.judge(SECTOR_SIZE + 1)).to.throw(SampleError, /status 255/);
    memory.write(status, Uint8Array.of(0));
    expect(sample.judge(SECTOR_SIZE + 1)).to.equal('status OK');
    expect(() => sample.judge(SECTOR_SIZE + 2)).to.throw(SampleError, /used\.len 514/);
  });

  it('net: a frame on transmitq0, used with used.len 0', () => {
    const sample = kindOf('net').samples(createGuestMemory()).next();
    expect(sample.chain.map((p) => p.write)).to.deep.equal([false]);
    expect(sample.effect).to.equal(0);
    expect(sample.judge(0)).to.equal('used.len 0');
    expect(() => sample.judge(12)).to.throw(SampleError, /used\.len 12: it has no device-writable part/);
  });

  it('fs: FUSE_INIT first (node 0), then GETATTR of the root, each reply judged by its header', () => {
    const memory = createGuestMemory();
    const source = kindOf('fs').samples(memory);
    expect(source.needsOpening).to.equal(true);
    const init = source.next();
    expect(init.opening).to.equal(true);
    expect(source.needsOpening).to.equal(false);
    const request = FuseInHeader.decode(memory.read(init.chain[0]!.gpa, FuseInHeader.size));
    expect([request.opcode, request.nodeid]).to.deep.equal([FuseOpcode.INIT, 0n]);
    const reply = (sample: typeof init, bytes: Buffer) => memory.write(sample.chain[1]!.gpa, bytes);
    reply(init, FuseOutHeader.encode({ len: 80, error: 0, unique: request.unique }));
    expect(init.judge(80)).to.equal('INIT answered');
    expect(() => init.judge(64)).to.throw(SampleError, /fuse_out_header\.len 80, yet used\.len 64/);
    reply(init, FuseOutHeader.encode({ len: 80, error: 0, unique: request.unique + 7n }));
    expect(() => init.judge(80)).to.throw(SampleError, /answered with unique/);

    const getattr = source.next();
    const asked = FuseInHeader.decode(memory.read(getattr.chain[0]!.gpa, FuseInHeader.size));
    expect([asked.opcode, asked.nodeid]).to.deep.equal([FuseOpcode.GETATTR, 1n]);
    const size = FuseOutHeader.size + FuseAttrOut.size;
    const attr = (mode: number) =>
      reply(
        getattr,
        Buffer.concat([
          FuseOutHeader.encode({ len: size, error: 0, unique: asked.unique }),
          FuseAttrOut.encode({ attr: { mode } }),
        ]),
      );
    attr(0o040755);
    expect(getattr.judge(size)).to.equal('a directory');
    attr(0o100644);
    expect(() => getattr.judge(size)).to.throw(SampleError, /not a directory's/);
    reply(getattr, FuseOutHeader.encode({ len: 16, error: -5, unique: asked.unique }));
    expect(() => getattr.judge(16)).to.throw(SampleError, /answered error 5/);
  });

  it('gpu: GET_DISPLAY_INFO, answered RESP_OK_DISPLAY_INFO over the whole response', () => {
    const memory = createGuestMemory();
    const sample = kindOf('gpu').samples(memory).next();
    const response = sample.chain[1]!;
    expect([response.len, response.write]).to.deep.equal([VirtioGpuSize.RESP_DISPLAY_INFO, true]);
    memory.write(response.gpa, encodeCtrlHdr({ type: VirtioGpuCtrlType.RESP_OK_DISPLAY_INFO }));
    expect(sample.judge(VirtioGpuSize.RESP_DISPLAY_INFO)).to.equal('RESP_OK_DISPLAY_INFO');
    expect(() => sample.judge(VirtioGpuSize.CTRL_HDR)).to.throw(SampleError, /used\.len 24/);
    memory.write(response.gpa, encodeCtrlHdr({ type: VirtioGpuCtrlType.RESP_ERR_UNSPEC }));
    expect(() => sample.judge(VirtioGpuSize.RESP_DISPLAY_INFO)).to.throw(
      SampleError,
      /not RESP_OK_DISPLAY_INFO/,
    );
  });
});
