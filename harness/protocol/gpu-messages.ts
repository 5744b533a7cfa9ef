/**
 * Payload codecs of the vhost-user-gpu protocol (QEMU docs/interop/vhost-user-gpu.rst). The frame is the
 * vhost-user one (u32 request, u32 flags, u32 size, payload), so FrameDecoder and encodeFrame carry it; these
 * functions turn payloads into typed messages and back. No I/O. Little-endian hosts only (see gpu-spec.ts).
 */
import { ProtocolError } from '../errors.js';
import type { Frame } from './encoder.js';
import { CURSOR_SIZE, GPU_FLAG_REPLY, GpuPayloadSize, GpuRequest, gpuRequestName } from './gpu-spec.js';

export interface GpuCursorPos {
  scanoutId: number;
  x: number;
  y: number;
}

export interface GpuCursorUpdate {
  pos: GpuCursorPos;
  hotX: number;
  hotY: number;
  /** 64 x 64 pixels, a8r8g8b8 (as 32-bit values: bytes B, G, R, A in memory), row after row. */
  data: Buffer;
}

export interface GpuScanout {
  scanoutId: number;
  width: number;
  height: number;
}

export interface GpuUpdate {
  scanoutId: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** x8r8g8b8 pixels, `width * 4` bytes a row (empty for DMABUF_UPDATE). */
  data: Buffer;
}

export interface GpuDmabufScanout {
  scanoutId: number;
  x: number;
  y: number;
  width: number;
  height: number;
  fdWidth: number;
  fdHeight: number;
  fdStride: number;
  fdFlags: number;
  fourcc: number;
  /** DMABUF_SCANOUT2 only. */
  modifier?: bigint;
}

/** A back-end request as the display receives it. */
export type GpuMessage =
  | { request: 'GET_PROTOCOL_FEATURES' }
  | { request: 'SET_PROTOCOL_FEATURES'; features: bigint }
  | { request: 'GET_DISPLAY_INFO' }
  | { request: 'CURSOR_POS' | 'CURSOR_POS_HIDE'; pos: GpuCursorPos }
  | { request: 'CURSOR_UPDATE'; cursor: GpuCursorUpdate }
  | { request: 'SCANOUT'; scanout: GpuScanout }
  | { request: 'UPDATE' | 'DMABUF_UPDATE'; update: GpuUpdate }
  | { request: 'DMABUF_SCANOUT' | 'DMABUF_SCANOUT2'; scanout: GpuDmabufScanout }
  | { request: 'GET_EDID'; scanoutId: number };

function expectSize(payload: Buffer, size: number, what: string): void {
  if (payload.length !== size) {
    throw new ProtocolError(`${what}: ${payload.length}-byte payload, expected ${size}`, payload);
  }
}

export function encodeCursorPos(pos: GpuCursorPos): Buffer {
  const out = Buffer.alloc(GpuPayloadSize.CURSOR_POS);
  out.writeUInt32LE(pos.scanoutId, 0);
  out.writeUInt32LE(pos.x >>> 0, 4);
  out.writeUInt32LE(pos.y >>> 0, 8);
  return out;
}

export function decodeCursorPos(payload: Buffer, what = 'CURSOR_POS'): GpuCursorPos {
  expectSize(payload, GpuPayloadSize.CURSOR_POS, what);
  return { scanoutId: payload.readUInt32LE(0), x: payload.readUInt32LE(4), y: payload.readUInt32LE(8) };
}

export function encodeCursorUpdate(cursor: GpuCursorUpdate): Buffer {
  const out = Buffer.alloc(GpuPayloadSize.CURSOR_UPDATE);
  encodeCursorPos(cursor.pos).copy(out, 0);
  out.writeUInt32LE(cursor.hotX >>> 0, 12);
  out.writeUInt32LE(cursor.hotY >>> 0, 16);
  cursor.data.copy(out, 20, 0, Math.min(cursor.data.length, CURSOR_SIZE * CURSOR_SIZE * 4));
  return out;
}

export function decodeCursorUpdate(payload: Buffer): GpuCursorUpdate {
  expectSize(payload, GpuPayloadSize.CURSOR_UPDATE, 'CURSOR_UPDATE');
  return {
    pos: decodeCursorPos(payload.subarray(0, 12), 'CURSOR_UPDATE'),
    hotX: payload.readUInt32LE(12),
    hotY: payload.readUInt32LE(16),
    data: Buffer.from(payload.subarray(20)),
  };
}

export function encodeScanout(scanout: GpuScanout): Buffer {
  const out = Buffer.alloc(GpuPayloadSize.SCANOUT);
  out.writeUInt32LE(scanout.scanoutId, 0);
  out.writeUInt32LE(scanout.width, 4);
  out.writeUInt32LE(scanout.height, 8);
  return out;
}

export function decodeScanout(payload: Buffer): GpuScanout {
  expectSize(payload, GpuPayloadSize.SCANOUT, 'SCANOUT');
  return {
    scanoutId: payload.readUInt32LE(0),
    width: payload.readUInt32LE(4),
    height: payload.readUInt32LE(8),
  };
}

export function encodeUpdate(update: GpuUpdate): Buffer {
  const out = Buffer.alloc(GpuPayloadSize.UPDATE_HEADER + update.data.length);
  out.writeUInt32LE(update.scanoutId, 0);
  out.writeUInt32LE(update.x, 4);
  out.writeUInt32LE(update.y, 8);
  out.writeUInt32LE(update.width, 12);
  out.writeUInt32LE(update.height, 16);
  update.data.copy(out, GpuPayloadSize.UPDATE_HEADER);
  return out;
}

/**
 * UPDATE: the rectangle, then its pixels, `width * 4` bytes a row; DMABUF_UPDATE: the rectangle alone. A
 * size that does not match the rectangle is a ProtocolError.
 */
export function decodeUpdate(payload: Buffer, request: 'UPDATE' | 'DMABUF_UPDATE' = 'UPDATE'): GpuUpdate {
  if (payload.length < GpuPayloadSize.UPDATE_HEADER) {
    throw new ProtocolError(`${request}: ${payload.length}-byte payload, shorter than its 20-byte rectangle`);
  }
  const update: GpuUpdate = {
    scanoutId: payload.readUInt32LE(0),
    x: payload.readUInt32LE(4),
    y: payload.readUInt32LE(8),
    width: payload.readUInt32LE(12),
    height: payload.readUInt32LE(16),
    data: Buffer.from(payload.subarray(GpuPayloadSize.UPDATE_HEADER)),
  };
  const expected = request === 'UPDATE' ? update.width * update.height * 4 : 0;
  if (update.data.length !== expected) {
    throw new ProtocolError(
      `${request} of ${update.width}x${update.height} at (${update.x},${update.y}) carries ${update.data.length} bytes of pixels, expected ${expected}`,
      payload.subarray(0, GpuPayloadSize.UPDATE_HEADER),
    );
  }
  return update;
}

export function encodeDmabufScanout(scanout: GpuDmabufScanout): Buffer {
  const v2 = scanout.modifier !== undefined;
  const out = Buffer.alloc(v2 ? GpuPayloadSize.DMABUF_SCANOUT2 : GpuPayloadSize.DMABUF_SCANOUT);
  const fields = [
    scanout.scanoutId,
    scanout.x,
    scanout.y,
    scanout.width,
    scanout.height,
    scanout.fdWidth,
    scanout.fdHeight,
    scanout.fdStride,
    scanout.fdFlags,
  ];
  fields.forEach((value, i) => {
    out.writeUInt32LE(value >>> 0, i * 4);
  });
  out.writeInt32LE(scanout.fourcc | 0, 36);
  if (v2) out.writeBigUInt64LE(scanout.modifier!, 40);
  return out;
}

export function decodeDmabufScanout(payload: Buffer, v2: boolean): GpuDmabufScanout {
  expectSize(
    payload,
    v2 ? GpuPayloadSize.DMABUF_SCANOUT2 : GpuPayloadSize.DMABUF_SCANOUT,
    v2 ? 'DMABUF_SCANOUT2' : 'DMABUF_SCANOUT',
  );
  const u = (i: number) => payload.readUInt32LE(i * 4);
  return {
    scanoutId: u(0),
    x: u(1),
    y: u(2),
    width: u(3),
    height: u(4),
    fdWidth: u(5),
    fdHeight: u(6),
    fdStride: u(7),
    fdFlags: u(8),
    fourcc: payload.readInt32LE(36),
    ...(v2 ? { modifier: payload.readBigUInt64LE(40) } : {}),
  };
}

export function encodeEdidRequest(scanoutId: number): Buffer {
  const out = Buffer.alloc(GpuPayloadSize.EDID_REQUEST);
  out.writeUInt32LE(scanoutId, 0);
  return out;
}

/**
 * Decodes a back-end request; an unknown request or a payload of the wrong size is a ProtocolError. The
 * flags are not looked at: the spec defines only the reply bit, and the caller judges them.
 */
export function decodeGpuMessage(frame: Frame): GpuMessage {
  const { payload } = frame;
  const name = gpuRequestName(frame.request);
  switch (frame.request) {
    case GpuRequest.GET_PROTOCOL_FEATURES:
    case GpuRequest.GET_DISPLAY_INFO:
      expectSize(payload, 0, name);
      return { request: name as 'GET_PROTOCOL_FEATURES' | 'GET_DISPLAY_INFO' };
    case GpuRequest.SET_PROTOCOL_FEATURES:
      expectSize(payload, 8, name);
      return { request: 'SET_PROTOCOL_FEATURES', features: payload.readBigUInt64LE(0) };
    case GpuRequest.CURSOR_POS:
    case GpuRequest.CURSOR_POS_HIDE:
      return { request: name as 'CURSOR_POS' | 'CURSOR_POS_HIDE', pos: decodeCursorPos(payload, name) };
    case GpuRequest.CURSOR_UPDATE:
      return { request: 'CURSOR_UPDATE', cursor: decodeCursorUpdate(payload) };
    case GpuRequest.SCANOUT:
      return { request: 'SCANOUT', scanout: decodeScanout(payload) };
    case GpuRequest.UPDATE:
    case GpuRequest.DMABUF_UPDATE: {
      const request = name as 'UPDATE' | 'DMABUF_UPDATE';
      return { request, update: decodeUpdate(payload, request) };
    }
    case GpuRequest.DMABUF_SCANOUT:
    case GpuRequest.DMABUF_SCANOUT2: {
      const v2 = frame.request === GpuRequest.DMABUF_SCANOUT2;
      return {
        request: v2 ? 'DMABUF_SCANOUT2' : 'DMABUF_SCANOUT',
        scanout: decodeDmabufScanout(payload, v2),
      };
    }
    case GpuRequest.GET_EDID:
      expectSize(payload, GpuPayloadSize.EDID_REQUEST, name);
      return { request: 'GET_EDID', scanoutId: payload.readUInt32LE(0) };
    default:
      throw new ProtocolError(`unknown vhost-user-gpu request ${frame.request}`, payload.subarray(0, 64));
  }
}

/** A display reply: the request id, the reply flag, the payload. */
export function gpuReply(request: number, payload: Buffer = Buffer.alloc(0)): Frame {
  return { request, flags: GPU_FLAG_REPLY, payload };
}

/** A back-end request: flags 0 (the protocol defines no version bits). */
export function gpuRequest(request: number, payload: Buffer = Buffer.alloc(0)): Frame {
  return { request, flags: 0, payload };
}
