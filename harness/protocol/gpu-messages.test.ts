import { expect } from 'chai';
import { ProtocolError } from '../errors.js';
import {
  decodeCursorPos,
  decodeCursorUpdate,
  decodeDmabufScanout,
  decodeGpuMessage,
  decodeScanout,
  decodeUpdate,
  encodeCursorPos,
  encodeCursorUpdate,
  encodeDmabufScanout,
  encodeEdidRequest,
  encodeScanout,
  encodeUpdate,
  gpuReply,
  gpuRequest,
} from './gpu-messages.js';
import { GpuPayloadSize, GpuRequest, gpuRequestName } from './gpu-spec.js';

/** Bytes from hex written by hand, spaces ignored. */
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('protocol/gpu-messages', () => {
  it('numbers the requests as vhost-user-gpu.rst does', () => {
    expect(GpuRequest.GET_PROTOCOL_FEATURES).to.equal(1);
    expect(GpuRequest.UPDATE).to.equal(8);
    expect(GpuRequest.DMABUF_SCANOUT2).to.equal(12);
    expect(gpuRequestName(11)).to.equal('GET_EDID');
    expect(gpuRequestName(99)).to.equal('UNKNOWN(99)');
  });

  it('VhostUserGpuCursorPos: scanout_id, x, y', () => {
    const golden = hex('01000000 64000000 32000000');
    expect(encodeCursorPos({ scanoutId: 1, x: 100, y: 50 })).to.deep.equal(golden);
    expect(decodeCursorPos(golden)).to.deep.equal({ scanoutId: 1, x: 100, y: 50 });
    expect(() => decodeCursorPos(golden.subarray(0, 8))).to.throw(
      ProtocolError,
      /8-byte payload, expected 12/,
    );
  });

  it('VhostUserGpuCursorUpdate: pos, hot_x, hot_y, 64x64 pixels', () => {
    const data = Buffer.alloc(64 * 64 * 4);
    data.writeUInt32LE(0xaabbccdd, 0);
    data.writeUInt32LE(0x11223344, data.length - 4);
    const bytes = encodeCursorUpdate({ pos: { scanoutId: 0, x: 3, y: 4 }, hotX: 5, hotY: 6, data });
    expect(bytes.length).to.equal(GpuPayloadSize.CURSOR_UPDATE).and.equal(16404);
    expect(bytes.subarray(0, 24)).to.deep.equal(hex('00000000 03000000 04000000 05000000 06000000 ddccbbaa'));
    expect(bytes.subarray(-4)).to.deep.equal(hex('44332211'));
    const decoded = decodeCursorUpdate(bytes);
    expect(decoded.hotX).to.equal(5);
    expect(decoded.data.equals(data)).to.equal(true);
  });

  it('VhostUserGpuScanout: scanout_id, width, height', () => {
    const golden = hex('01000000 80020000 e0010000');
    expect(encodeScanout({ scanoutId: 1, width: 640, height: 480 })).to.deep.equal(golden);
    expect(decodeScanout(golden)).to.deep.equal({ scanoutId: 1, width: 640, height: 480 });
  });

  it('VhostUserGpuUpdate: the rectangle, then width * height * 4 bytes of pixels', () => {
    const golden = hex('00000000 02000000 03000000 01000000 02000000 01020304 05060708');
    const update = { scanoutId: 0, x: 2, y: 3, width: 1, height: 2, data: hex('0102030405060708') };
    expect(encodeUpdate(update)).to.deep.equal(golden);
    expect(decodeUpdate(golden)).to.deep.equal(update);
    expect(() => decodeUpdate(golden.subarray(0, 24))).to.throw(
      ProtocolError,
      /carries 4 bytes of pixels, expected 8/,
    );
    expect(() => decodeUpdate(golden.subarray(0, 12))).to.throw(
      ProtocolError,
      /shorter than its 20-byte rectangle/,
    );
    // DMABUF_UPDATE has the rectangle alone.
    expect(decodeUpdate(golden.subarray(0, 20), 'DMABUF_UPDATE').data.length).to.equal(0);
  });

  it('VhostUserGpuDMABUFScanout and its version 2 with the modifier', () => {
    const golden = hex(
      '00000000 01000000 02000000 40000000 30000000 80000000 60000000 00020000 01000000 ffffffff',
    );
    const scanout = {
      scanoutId: 0,
      x: 1,
      y: 2,
      width: 64,
      height: 48,
      fdWidth: 128,
      fdHeight: 96,
      fdStride: 512,
      fdFlags: 1,
      fourcc: -1,
    };
    expect(encodeDmabufScanout(scanout)).to.deep.equal(golden);
    expect(decodeDmabufScanout(golden, false)).to.deep.equal(scanout);
    const v2 = Buffer.concat([golden, hex('0807060504030201')]);
    expect(encodeDmabufScanout({ ...scanout, modifier: 0x0102030405060708n })).to.deep.equal(v2);
    expect(decodeDmabufScanout(v2, true).modifier).to.equal(0x0102030405060708n);
  });

  it('decodes every back-end request by id, and refuses unknown ones and wrong sizes', () => {
    const m = (request: number, payload: Buffer = Buffer.alloc(0)) =>
      decodeGpuMessage(gpuRequest(request, payload));
    expect(m(1)).to.deep.equal({ request: 'GET_PROTOCOL_FEATURES' });
    expect(m(2, hex('0300000000000000'))).to.deep.equal({ request: 'SET_PROTOCOL_FEATURES', features: 3n });
    expect(m(3)).to.deep.equal({ request: 'GET_DISPLAY_INFO' });
    expect(m(5, hex('00000000 01000000 02000000'))).to.deep.equal({
      request: 'CURSOR_POS_HIDE',
      pos: { scanoutId: 0, x: 1, y: 2 },
    });
    expect(m(7, hex('00000000 00000000 00000000'))).to.deep.include({ request: 'SCANOUT' });
    expect(m(11, encodeEdidRequest(1))).to.deep.equal({ request: 'GET_EDID', scanoutId: 1 });
    expect(() => m(3, hex('00'))).to.throw(ProtocolError, /GET_DISPLAY_INFO: 1-byte payload, expected 0/);
    expect(() => m(2)).to.throw(ProtocolError, /expected 8/);
    expect(() => m(42)).to.throw(ProtocolError, /unknown vhost-user-gpu request 42/);
  });

  it('replies carry the reply flag (bit 2), requests no flag', () => {
    expect(gpuReply(3).flags).to.equal(0x4);
    expect(gpuRequest(3).flags).to.equal(0);
  });
});
