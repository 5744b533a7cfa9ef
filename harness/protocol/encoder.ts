import { HEADER_SIZE, HeaderFlag } from './spec.js';

export interface Frame {
  request: number;
  flags: number;
  payload: Buffer;
}

/**
 * One message: 12-byte header and the payload. Bytes come from Buffer.alloc, so padding is zero. `size` is the
 * header's size field, the payload's length unless told: a malformed frame may say another.
 */
export function encodeFrame(frame: Frame, size = frame.payload.length): Buffer {
  const out = Buffer.alloc(HEADER_SIZE + frame.payload.length);
  out.writeUInt32LE(frame.request >>> 0, 0);
  out.writeUInt32LE(frame.flags >>> 0, 4);
  out.writeUInt32LE(size >>> 0, 8);
  frame.payload.copy(out, HEADER_SIZE);
  return out;
}

/** A front-end request with version 1 and, when asked, the need_reply bit. */
export function encodeRequest(request: number, payload: Buffer = Buffer.alloc(0), needReply = false): Buffer {
  return encodeFrame({
    request,
    flags: HeaderFlag.VERSION | (needReply ? HeaderFlag.NEED_REPLY : 0),
    payload,
  });
}
