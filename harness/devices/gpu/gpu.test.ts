import { expect } from 'chai';
import {
  cropPixels,
  decodeCtrlHdr,
  decodeDisplayInfo,
  describePixelDiff,
  encodeCtrlHdr,
  encodeDisplayInfo,
  encodeGetDisplayInfo,
  encodeResourceAttachBacking,
  encodeResourceCreate2d,
  encodeResourceFlush,
  encodeResourceUnref,
  encodeRespEdid,
  encodeSetScanout,
  encodeTransferToHost2d,
  encodeUpdateCursor,
  expectResponse,
  testPattern,
  toXrgb,
} from './gpu.js';
import { VirtioGpuCtrlType, VirtioGpuFormat, VirtioGpuSize } from './spec.js';

/** Bytes from hex written by hand, spaces ignored. */
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** A header of `type` with no flags, no fence, as the golden bytes below start. */
const hdr = (type: string) => `${type} 00000000 0000000000000000 00000000 00000000`;

describe('devices/gpu codecs', () => {
  it('virtio_gpu_ctrl_hdr: type, flags, fence_id, ctx_id, ring_idx, padding', () => {
    const golden = hex('01010000 01000000 0807060504030201 09000000 02000000');
    const h = { type: 0x101, flags: 1, fenceId: 0x0102030405060708n, ctxId: 9, ringIdx: 2 };
    expect(encodeCtrlHdr(h)).to.deep.equal(golden);
    expect(decodeCtrlHdr(golden)).to.deep.equal(h);
  });

  it('the 2D commands, field by field', () => {
    expect(encodeGetDisplayInfo()).to.deep.equal(hex(hdr('00010000')));
    expect(encodeResourceCreate2d({ resourceId: 7, format: 2, width: 64, height: 48 })).to.deep.equal(
      hex(`${hdr('01010000')} 07000000 02000000 40000000 30000000`),
    );
    expect(encodeResourceUnref(7)).to.deep.equal(hex(`${hdr('02010000')} 07000000 00000000`));
    const rect = { x: 1, y: 2, width: 3, height: 4 };
    expect(encodeSetScanout({ rect, scanoutId: 1, resourceId: 7 })).to.deep.equal(
      hex(`${hdr('03010000')} 01000000 02000000 03000000 04000000 01000000 07000000`),
    );
    expect(encodeResourceFlush({ rect, resourceId: 7 })).to.deep.equal(
      hex(`${hdr('04010000')} 01000000 02000000 03000000 04000000 07000000 00000000`),
    );
    expect(encodeTransferToHost2d({ rect, offset: 0x1234n, resourceId: 7 })).to.deep.equal(
      hex(`${hdr('05010000')} 01000000 02000000 03000000 04000000 3412000000000000 07000000 00000000`),
    );
    expect(
      encodeResourceAttachBacking({
        resourceId: 7,
        entries: [
          { addr: 0x1_0000_1000n, length: 0x200 },
          { addr: 0x40n, length: 8 },
        ],
      }),
    ).to.deep.equal(
      hex(
        `${hdr('06010000')} 07000000 02000000 0010000001000000 00020000 00000000 4000000000000000 08000000 00000000`,
      ),
    );
  });

  it('cursor commands: cursor_pos {scanout, x, y, padding}, resource_id, hot_x, hot_y, padding', () => {
    const cmd = { scanoutId: 0, x: 100, y: 50, resourceId: 5, hotX: 3, hotY: 4 };
    expect(encodeUpdateCursor({ type: 'UPDATE_CURSOR', ...cmd })).to.deep.equal(
      hex(`${hdr('00030000')} 00000000 64000000 32000000 00000000 05000000 03000000 04000000 00000000`),
    );
    expect(encodeUpdateCursor({ type: 'MOVE_CURSOR', ...cmd }).readUInt32LE(0)).to.equal(0x301);
  });

  it('display info: 16 pmodes after the header, round trip', () => {
    const modes = [{ rect: { x: 0, y: 0, width: 640, height: 480 }, enabled: true, flags: 0 }];
    const bytes = encodeDisplayInfo(modes);
    expect(bytes.length).to.equal(408);
    expect(bytes.subarray(0, 48)).to.deep.equal(
      hex(`${hdr('01110000')} 00000000 00000000 80020000 e0010000 01000000 00000000`),
    );
    const decoded = decodeDisplayInfo(bytes);
    expect(decoded.hdr.type).to.equal(VirtioGpuCtrlType.RESP_OK_DISPLAY_INFO);
    expect(decoded.modes[0]).to.deep.equal(modes[0]);
    expect(decoded.modes[15]).to.deep.equal({
      rect: { x: 0, y: 0, width: 0, height: 0 },
      enabled: false,
      flags: 0,
    });
  });

  it('EDID response: header, size, padding, 1024 bytes', () => {
    const bytes = encodeRespEdid(Uint8Array.of(0, 0xff, 0xff));
    expect(bytes.length).to.equal(VirtioGpuSize.RESP_EDID);
    expect(bytes.subarray(24, 35)).to.deep.equal(hex('03000000 00000000 00ffff'));
  });

  it('expectResponse: the type, used.len, and the fence echoed', () => {
    const ok = { hdr: decodeCtrlHdr(encodeCtrlHdr({ type: 0x1100 })), bytes: Buffer.alloc(24), usedLen: 24 };
    expect(() => expectResponse('x', ok, 0x1100)).not.to.throw();
    expect(() => expectResponse('x', ok, 0x1203)).to.throw(
      /response type 0x1100 \(RESP_OK_NODATA\), expected 0x1203/,
    );
    // An underestimate is allowed; more than the buffer is not.
    expect(() => expectResponse('x', { ...ok, usedLen: 0 }, 0x1100)).to.not.throw();
    expect(() => expectResponse('x', { ...ok, usedLen: 25 }, 0x1100)).to.throw(
      /used.len 25 is more than the 24/,
    );
    expect(() => expectResponse('x', ok, 0x1100, { fence: { fenceId: 5n, ctxId: 0 } })).to.throw(
      /was fenced/,
    );
    const fenced = { ...ok, hdr: { ...ok.hdr, flags: 1, fenceId: 5n } };
    expect(() => expectResponse('x', fenced, 0x1100, { fence: { fenceId: 5n, ctxId: 0 } })).not.to.throw();
  });
});

describe('devices/gpu pixels', () => {
  it('toXrgb puts each format red, green and blue where x8r8g8b8 has them (bytes B, G, R, X)', () => {
    const pixel = Uint8Array.of(0x11, 0x22, 0x33, 0x44);
    const cases: Array<[number, string]> = [
      [VirtioGpuFormat.B8G8R8A8_UNORM, '112233ff'],
      [VirtioGpuFormat.B8G8R8X8_UNORM, '112233ff'],
      [VirtioGpuFormat.A8R8G8B8_UNORM, '443322ff'],
      [VirtioGpuFormat.X8R8G8B8_UNORM, '443322ff'],
      [VirtioGpuFormat.R8G8B8A8_UNORM, '332211ff'],
      [VirtioGpuFormat.X8B8G8R8_UNORM, '223344ff'],
      [VirtioGpuFormat.A8B8G8R8_UNORM, '223344ff'],
      [VirtioGpuFormat.R8G8B8X8_UNORM, '332211ff'],
    ];
    for (const [format, want] of cases)
      expect(toXrgb(format, pixel).toString('hex'), `format ${format}`).to.equal(want);
  });

  it('the test pattern differs from pixel to pixel and from seed to seed', () => {
    const a = testPattern(32, 16, 1);
    expect(a.length).to.equal(32 * 16 * 4);
    const pixels = new Set<string>();
    for (let i = 0; i < a.length; i += 4) pixels.add(a.subarray(i, i + 3).toString('hex'));
    expect(pixels.size).to.equal(32 * 16);
    expect(testPattern(32, 16, 2).equals(a)).to.equal(false);
    expect(testPattern(32, 16, 1).equals(a)).to.equal(true);
  });

  it('cropPixels packs a rectangle row after row', () => {
    const image = Buffer.from(Array.from({ length: 4 * 3 * 4 }, (_, i) => i));
    expect([...cropPixels(image, 4, { x: 1, y: 1, width: 2, height: 2 })]).to.deep.equal([
      20, 21, 22, 23, 24, 25, 26, 27, 36, 37, 38, 39, 40, 41, 42, 43,
    ]);
  });

  it('describePixelDiff names the first differing pixel, ignoring the padding byte', () => {
    const a = Buffer.from('010203ff' + '04050600', 'hex');
    expect(describePixelDiff(a, Buffer.from('01020300' + '040506ff', 'hex'), 2)).to.equal(undefined);
    expect(describePixelDiff(a, Buffer.from('010203ff' + '04050700', 'hex'), 1)).to.equal(
      'pixel (0,1) is #070504, expected #060504 (1 of 2 pixels differ)',
    );
    expect(describePixelDiff(a, Buffer.alloc(4), 1)).to.equal('4 bytes of pixels, expected 8');
  });
});
