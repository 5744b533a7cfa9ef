/**
 * A virtio-gpu 2D driver (virtio spec, "GPU Device") over the control and cursor queues of a FrontendDevice,
 * or any two VringPorts. A control command is a chain of the request the device reads (a virtio_gpu_ctrl_hdr
 * and the command's fields, then for ATTACH_BACKING the memory entries) and a response buffer the device
 * writes (a header, and the display info or EDID for those commands). Cursor commands have no response: the
 * buffer comes back used, with nothing written.
 *
 * Pixels: a resource's format names the order of its bytes in memory (B8G8R8X8: blue, green, red, padding);
 * what the display receives in vhost-user-gpu UPDATE messages is x8r8g8b8 (bytes blue, green, red, padding on
 * a little-endian host). `toXrgb` converts a resource's bytes to that, for comparison.
 */
import { BackendError, ProtocolError, TimeoutError } from '../../errors.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { VringPort } from '../../virtqueue/port.js';
import type { BufferElement } from '../../virtqueue/split.js';
import type { ConfigSpace } from '../config.js';
import {
  ctrlTypeName,
  VIRTIO_GPU_MAX_SCANOUTS,
  VirtioGpuCtrlType,
  VirtioGpuFlag,
  VirtioGpuFormat,
  VirtioGpuSize,
} from './spec.js';

/** struct virtio_gpu_config. */
export interface GpuConfig {
  eventsRead: number;
  eventsClear: number;
  numScanouts: number;
  numCapsets: number;
}

export function decodeGpuConfig(bytes: Buffer): GpuConfig {
  if (bytes.length < VirtioGpuSize.CONFIG) {
    throw new ProtocolError(`virtio-gpu config of ${bytes.length} bytes is too short`, bytes);
  }
  return {
    eventsRead: bytes.readUInt32LE(0),
    eventsClear: bytes.readUInt32LE(4),
    numScanouts: bytes.readUInt32LE(8),
    numCapsets: bytes.readUInt32LE(12),
  };
}

/** struct virtio_gpu_config as the harness reads it (see ../config.ts). */
export const GPU_CONFIG: ConfigSpace = {
  struct: 'virtio_gpu_config',
  size: VirtioGpuSize.CONFIG,
  // le32 events_read, events_clear, num_scanouts: only events_clear is the driver's to write.
  field: { name: 'num_scanouts', offset: 8, size: 4 },
  readOnly: { name: 'num_scanouts', offset: 8, size: 4 },
  fields(bytes) {
    const c = decodeGpuConfig(bytes);
    return { num_scanouts: c.numScanouts, num_capsets: c.numCapsets };
  },
};

export interface GpuCtrlHdr {
  type: number;
  flags: number;
  fenceId: bigint;
  ctxId: number;
  ringIdx: number;
}

export interface GpuRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface GpuDisplayMode {
  rect: GpuRect;
  enabled: boolean;
  flags: number;
}

export interface GpuMemEntry {
  addr: bigint;
  length: number;
}

export interface GpuCursorCommand {
  type: 'UPDATE_CURSOR' | 'MOVE_CURSOR';
  scanoutId: number;
  x: number;
  y: number;
  resourceId: number;
  hotX: number;
  hotY: number;
}

// ---- codecs ----

export function encodeCtrlHdr(hdr: Partial<GpuCtrlHdr> & { type: number }): Buffer {
  const out = Buffer.alloc(VirtioGpuSize.CTRL_HDR);
  out.writeUInt32LE(hdr.type, 0);
  out.writeUInt32LE(hdr.flags ?? 0, 4);
  out.writeBigUInt64LE(hdr.fenceId ?? 0n, 8);
  out.writeUInt32LE(hdr.ctxId ?? 0, 16);
  out.writeUInt8(hdr.ringIdx ?? 0, 20);
  return out;
}

export function decodeCtrlHdr(bytes: Uint8Array): GpuCtrlHdr {
  if (bytes.length < VirtioGpuSize.CTRL_HDR) {
    throw new ProtocolError(
      `virtio_gpu_ctrl_hdr of ${bytes.length} bytes, expected ${VirtioGpuSize.CTRL_HDR}`,
    );
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    type: b.readUInt32LE(0),
    flags: b.readUInt32LE(4),
    fenceId: b.readBigUInt64LE(8),
    ctxId: b.readUInt32LE(16),
    ringIdx: b.readUInt8(20),
  };
}

function writeRect(out: Buffer, at: number, r: GpuRect): void {
  out.writeUInt32LE(r.x >>> 0, at);
  out.writeUInt32LE(r.y >>> 0, at + 4);
  out.writeUInt32LE(r.width >>> 0, at + 8);
  out.writeUInt32LE(r.height >>> 0, at + 12);
}

function readRect(b: Buffer, at: number): GpuRect {
  return {
    x: b.readUInt32LE(at),
    y: b.readUInt32LE(at + 4),
    width: b.readUInt32LE(at + 8),
    height: b.readUInt32LE(at + 12),
  };
}

/** A command: its header (type and the caller's flags / fence) and `size - 24` bytes of fields. */
function command(type: number, size: number, hdr: Partial<GpuCtrlHdr> = {}): Buffer {
  const out = Buffer.alloc(size);
  encodeCtrlHdr({ ...hdr, type }).copy(out, 0);
  return out;
}

export type HdrOptions = Partial<Omit<GpuCtrlHdr, 'type'>>;

export function encodeGetDisplayInfo(hdr?: HdrOptions): Buffer {
  return command(VirtioGpuCtrlType.CMD_GET_DISPLAY_INFO, VirtioGpuSize.CTRL_HDR, hdr);
}

export function encodeResourceCreate2d(
  c: { resourceId: number; format: number; width: number; height: number },
  hdr?: HdrOptions,
): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_RESOURCE_CREATE_2D, VirtioGpuSize.RESOURCE_CREATE_2D, hdr);
  out.writeUInt32LE(c.resourceId >>> 0, 24);
  out.writeUInt32LE(c.format >>> 0, 28);
  out.writeUInt32LE(c.width >>> 0, 32);
  out.writeUInt32LE(c.height >>> 0, 36);
  return out;
}

export function encodeResourceUnref(resourceId: number, hdr?: HdrOptions): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_RESOURCE_UNREF, VirtioGpuSize.RESOURCE_UNREF, hdr);
  out.writeUInt32LE(resourceId >>> 0, 24);
  return out;
}

export function encodeResourceDetachBacking(resourceId: number, hdr?: HdrOptions): Buffer {
  const out = command(
    VirtioGpuCtrlType.CMD_RESOURCE_DETACH_BACKING,
    VirtioGpuSize.RESOURCE_DETACH_BACKING,
    hdr,
  );
  out.writeUInt32LE(resourceId >>> 0, 24);
  return out;
}

export function encodeSetScanout(
  c: { rect: GpuRect; scanoutId: number; resourceId: number },
  hdr?: HdrOptions,
): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_SET_SCANOUT, VirtioGpuSize.SET_SCANOUT, hdr);
  writeRect(out, 24, c.rect);
  out.writeUInt32LE(c.scanoutId >>> 0, 40);
  out.writeUInt32LE(c.resourceId >>> 0, 44);
  return out;
}

export function encodeResourceFlush(c: { rect: GpuRect; resourceId: number }, hdr?: HdrOptions): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_RESOURCE_FLUSH, VirtioGpuSize.RESOURCE_FLUSH, hdr);
  writeRect(out, 24, c.rect);
  out.writeUInt32LE(c.resourceId >>> 0, 40);
  return out;
}

export function encodeTransferToHost2d(
  c: { rect: GpuRect; offset: bigint; resourceId: number },
  hdr?: HdrOptions,
): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_TRANSFER_TO_HOST_2D, VirtioGpuSize.TRANSFER_TO_HOST_2D, hdr);
  writeRect(out, 24, c.rect);
  out.writeBigUInt64LE(c.offset, 40);
  out.writeUInt32LE(c.resourceId >>> 0, 48);
  return out;
}

/** ATTACH_BACKING with its entries right after it, in the same buffer. */
export function encodeResourceAttachBacking(
  c: { resourceId: number; entries: readonly GpuMemEntry[] },
  hdr?: HdrOptions,
): Buffer {
  const fixed = VirtioGpuSize.RESOURCE_ATTACH_BACKING;
  const out = command(
    VirtioGpuCtrlType.CMD_RESOURCE_ATTACH_BACKING,
    fixed + c.entries.length * VirtioGpuSize.MEM_ENTRY,
    hdr,
  );
  out.writeUInt32LE(c.resourceId >>> 0, 24);
  out.writeUInt32LE(c.entries.length, 28);
  c.entries.forEach((e, i) => {
    out.writeBigUInt64LE(e.addr, fixed + i * VirtioGpuSize.MEM_ENTRY);
    out.writeUInt32LE(e.length, fixed + i * VirtioGpuSize.MEM_ENTRY + 8);
  });
  return out;
}

export function encodeGetEdid(scanoutId: number, hdr?: HdrOptions): Buffer {
  const out = command(VirtioGpuCtrlType.CMD_GET_EDID, VirtioGpuSize.GET_EDID, hdr);
  out.writeUInt32LE(scanoutId >>> 0, 24);
  return out;
}

export function encodeUpdateCursor(c: GpuCursorCommand, hdr?: HdrOptions): Buffer {
  const type =
    c.type === 'UPDATE_CURSOR' ? VirtioGpuCtrlType.CMD_UPDATE_CURSOR : VirtioGpuCtrlType.CMD_MOVE_CURSOR;
  const out = command(type, VirtioGpuSize.UPDATE_CURSOR, hdr);
  out.writeUInt32LE(c.scanoutId >>> 0, 24);
  out.writeUInt32LE(c.x >>> 0, 28);
  out.writeUInt32LE(c.y >>> 0, 32);
  out.writeUInt32LE(c.resourceId >>> 0, 40);
  out.writeUInt32LE(c.hotX >>> 0, 44);
  out.writeUInt32LE(c.hotY >>> 0, 48);
  return out;
}

/** struct virtio_gpu_resp_display_info: a header and 16 pmodes. */
export function encodeDisplayInfo(modes: readonly GpuDisplayMode[], hdr: Partial<GpuCtrlHdr> = {}): Buffer {
  const out = Buffer.alloc(VirtioGpuSize.RESP_DISPLAY_INFO);
  encodeCtrlHdr({ type: VirtioGpuCtrlType.RESP_OK_DISPLAY_INFO, ...hdr }).copy(out, 0);
  modes.slice(0, VIRTIO_GPU_MAX_SCANOUTS).forEach((m, i) => {
    const at = VirtioGpuSize.CTRL_HDR + i * VirtioGpuSize.DISPLAY_ONE;
    writeRect(out, at, m.rect);
    out.writeUInt32LE(m.enabled ? 1 : 0, at + 16);
    out.writeUInt32LE(m.flags >>> 0, at + 20);
  });
  return out;
}

export function decodeDisplayInfo(bytes: Buffer): { hdr: GpuCtrlHdr; modes: GpuDisplayMode[] } {
  if (bytes.length < VirtioGpuSize.RESP_DISPLAY_INFO) {
    throw new ProtocolError(
      `virtio_gpu_resp_display_info of ${bytes.length} bytes, expected ${VirtioGpuSize.RESP_DISPLAY_INFO}`,
    );
  }
  const modes: GpuDisplayMode[] = [];
  for (let i = 0; i < VIRTIO_GPU_MAX_SCANOUTS; i++) {
    const at = VirtioGpuSize.CTRL_HDR + i * VirtioGpuSize.DISPLAY_ONE;
    modes.push({
      rect: readRect(bytes, at),
      enabled: bytes.readUInt32LE(at + 16) !== 0,
      flags: bytes.readUInt32LE(at + 20),
    });
  }
  return { hdr: decodeCtrlHdr(bytes), modes };
}

/** struct virtio_gpu_resp_edid: a header, the EDID's size, and 1024 bytes holding it. */
export function encodeRespEdid(edid: Uint8Array): Buffer {
  const out = Buffer.alloc(VirtioGpuSize.RESP_EDID);
  encodeCtrlHdr({ type: VirtioGpuCtrlType.RESP_OK_EDID }).copy(out, 0);
  out.writeUInt32LE(Math.min(edid.length, 1024), 24);
  out.set(edid.subarray(0, 1024), 32);
  return out;
}

// ---- pixels ----

/** Where red, green, blue (and alpha, -1 for padding) sit in a pixel's 4 bytes, by format. */
const CHANNELS: Readonly<Record<number, { r: number; g: number; b: number; a: number }>> = {
  [VirtioGpuFormat.B8G8R8A8_UNORM]: { b: 0, g: 1, r: 2, a: 3 },
  [VirtioGpuFormat.B8G8R8X8_UNORM]: { b: 0, g: 1, r: 2, a: -1 },
  [VirtioGpuFormat.A8R8G8B8_UNORM]: { a: 0, r: 1, g: 2, b: 3 },
  [VirtioGpuFormat.X8R8G8B8_UNORM]: { a: -1, r: 1, g: 2, b: 3 },
  [VirtioGpuFormat.R8G8B8A8_UNORM]: { r: 0, g: 1, b: 2, a: 3 },
  [VirtioGpuFormat.X8B8G8R8_UNORM]: { a: -1, b: 1, g: 2, r: 3 },
  [VirtioGpuFormat.A8B8G8R8_UNORM]: { a: 0, b: 1, g: 2, r: 3 },
  [VirtioGpuFormat.R8G8B8X8_UNORM]: { r: 0, g: 1, b: 2, a: -1 },
};

export const BYTES_PER_PIXEL = 4;

/** Pixels of a resource in `format`, as x8r8g8b8 bytes (blue, green, red, 0xff in memory). */
export function toXrgb(format: number, pixels: Uint8Array): Buffer {
  const c = CHANNELS[format];
  if (!c) throw new Error(`no conversion for format ${format}`);
  const out = Buffer.alloc(pixels.length);
  for (let i = 0; i + 3 < pixels.length; i += 4) {
    out[i] = pixels[i + c.b]!;
    out[i + 1] = pixels[i + c.g]!;
    out[i + 2] = pixels[i + c.r]!;
    out[i + 3] = 0xff;
  }
  return out;
}

/**
 * A test pattern of `width x height` pixels, 4 bytes each, that a person can read in a PNG: the first byte
 * grows with x, the second with y, the third is a checkerboard of 8-pixel squares, the fourth is noise. The
 * two low bits of every byte are noise too, and the seed shifts everything, so a pixel from the wrong row,
 * column or stride, or from another run, shows whatever the format.
 */
export function testPattern(width: number, height: number, seed: number): Buffer {
  const out = Buffer.alloc(width * height * BYTES_PER_PIXEL);
  let n = seed >>> 0 || 1;
  const s = [seed & 0xff, (seed >>> 8) & 0xff, (seed >>> 16) & 0xff];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // xorshift32
      n ^= n << 13;
      n ^= n >>> 17;
      n ^= n << 5;
      const i = (y * width + x) * BYTES_PER_PIXEL;
      const checker = ((x >> 3) + (y >> 3)) & 1 ? 0xc0 : 0x40;
      out[i] = (((x * 4 + s[0]!) & 0xfc) | (n & 3)) & 0xff;
      out[i + 1] = (((y * 4 + s[1]!) & 0xfc) | ((n >>> 2) & 3)) & 0xff;
      out[i + 2] = (((checker + s[2]!) & 0xfc) | ((n >>> 4) & 3)) & 0xff;
      out[i + 3] = (n >>> 24) & 0xff;
    }
  }
  return out;
}

/** The rectangle `r` of a `width`-pixel-wide image, rows packed (`r.width * 4` bytes a row). */
export function cropPixels(pixels: Uint8Array, width: number, r: GpuRect): Buffer {
  const out = Buffer.alloc(r.width * r.height * BYTES_PER_PIXEL);
  for (let row = 0; row < r.height; row++) {
    const from = ((r.y + row) * width + r.x) * BYTES_PER_PIXEL;
    out.set(pixels.subarray(from, from + r.width * BYTES_PER_PIXEL), row * r.width * BYTES_PER_PIXEL);
  }
  return out;
}

/**
 * Undefined when two x8r8g8b8 images of `width` pixels a row are the same in red, green and blue (the padding
 * byte is not compared); else the first differing pixel, and how many differ.
 */
export function describePixelDiff(
  expected: Uint8Array,
  actual: Uint8Array,
  width: number,
): string | undefined {
  if (expected.length !== actual.length)
    return `${actual.length} bytes of pixels, expected ${expected.length}`;
  let first = -1;
  let count = 0;
  for (let i = 0; i < expected.length; i += 4) {
    if (expected[i] !== actual[i] || expected[i + 1] !== actual[i + 1] || expected[i + 2] !== actual[i + 2]) {
      count++;
      if (first < 0) first = i;
    }
  }
  if (first < 0) return undefined;
  const p = first / 4;
  const rgb = (b: Uint8Array) =>
    `#${[b[first + 2]!, b[first + 1]!, b[first]!].map((v) => v.toString(16).padStart(2, '0')).join('')}`;
  return `pixel (${p % width},${Math.floor(p / width)}) is ${rgb(actual)}, expected ${rgb(expected)} (${count} of ${expected.length / 4} pixels differ)`;
}

// ---- the driver ----

export interface GpuResponse {
  hdr: GpuCtrlHdr;
  /** The response buffer as the device left it (the header, and whatever follows). */
  bytes: Buffer;
  usedLen: number;
}

/** Bytes reserved for one command and one response. */
const REQUEST_AREA = 4096;
const RESPONSE_AREA = 4096;
/** A byte no response is made of: what the device did not write keeps it. */
const UNWRITTEN = 0xa5;

/**
 * The driver: one control command or cursor command at a time, each posted, kicked and waited for. The
 * request goes in the first guest region, the response in the last, so a device translating one region
 * wrongly gets every command wrong.
 */
export class GpuDriver {
  readonly #control: VringPort<unknown>;
  readonly #cursor: VringPort<unknown>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #request: bigint;
  readonly #response: bigint;
  readonly #cursorRequest: bigint;

  constructor(control: VringPort<unknown>, cursor: VringPort<unknown>, options: { timeoutMs: number }) {
    this.#control = control;
    this.#cursor = cursor;
    this.#memory = control.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    const regions = this.#memory.regions;
    this.#request = this.#memory.alloc(REQUEST_AREA, 64, { region: regions[0]!.guestAddress });
    this.#response = this.#memory.alloc(RESPONSE_AREA, 64, { region: regions.at(-1)!.guestAddress });
    this.#cursorRequest = this.#memory.alloc(VirtioGpuSize.UPDATE_CURSOR, 64, {
      region: regions[0]!.guestAddress,
    });
  }

  get memory(): GuestMemory {
    return this.#memory;
  }

  /**
   * Sends one control command and returns the response as the device wrote it: the header decoded, the
   * bytes (`responseSize` of them), and used.len. The readable part must come back as it went.
   */
  async command(request: Buffer, responseSize: number = VirtioGpuSize.CTRL_HDR): Promise<GpuResponse> {
    if (request.length > REQUEST_AREA || responseSize > RESPONSE_AREA)
      throw new Error('gpu command too large');
    this.#memory.write(this.#request, request);
    this.#memory.write(this.#response, Buffer.alloc(responseSize, UNWRITTEN));
    const chain: BufferElement[] = [
      { gpa: this.#request, len: request.length, write: false },
      { gpa: this.#response, len: responseSize, write: true },
    ];
    this.#control.queue.addRequest(chain);
    this.#control.notify();
    const { used } = await this.#control.waitUsed(this.#timeoutMs, 1);
    const usedLen = used[0]!.len;
    const name = ctrlTypeName(request.readUInt32LE(0));
    if (!Buffer.from(this.#memory.read(this.#request, request.length)).equals(request)) {
      throw new BackendError(`command ${name}: the device wrote into the request, a device-readable buffer`);
    }
    const bytes = Buffer.from(this.#memory.read(this.#response, responseSize));
    return { hdr: decodeCtrlHdr(bytes), bytes, usedLen };
  }

  /** Sends one cursor command; the buffer must come back used. */
  async cursor(request: Buffer): Promise<{ usedLen: number }> {
    this.#memory.write(this.#cursorRequest, request);
    this.#cursor.queue.addRequest([{ gpa: this.#cursorRequest, len: request.length, write: false }]);
    this.#cursor.notify();
    const { used } = await this.#cursor.waitUsed(this.#timeoutMs, 1);
    return { usedLen: used[0]!.len };
  }

  /**
   * Makes control commands available at once, each with buffers of its own, and notifies the device only
   * with `kick` (default true). Returns a wait for all their responses, in the order of `requests`; a
   * response's readable part must come back as it went.
   */
  postCommands(
    requests: readonly Buffer[],
    options: { kick?: boolean; responseSize?: number } = {},
  ): () => Promise<GpuResponse[]> {
    const responseSize = options.responseSize ?? VirtioGpuSize.CTRL_HDR;
    const posted = requests.map((request, i) => {
      const req = this.#memory.alloc(request.length, 64);
      const resp = this.#memory.alloc(responseSize, 64);
      this.#memory.write(req, request);
      this.#memory.write(resp, Buffer.alloc(responseSize, UNWRITTEN));
      this.#control.queue.addRequest(
        [
          { gpa: req, len: request.length, write: false },
          { gpa: resp, len: responseSize, write: true },
        ],
        { token: i },
      );
      return { req, resp };
    });
    if (options.kick ?? true) this.#control.notify();
    return async () => {
      const lens = await this.#waitAll(this.#control, requests.length, 'control');
      return requests.map((request, i) => {
        const name = ctrlTypeName(request.readUInt32LE(0));
        if (!Buffer.from(this.#memory.read(posted[i]!.req, request.length)).equals(request)) {
          throw new BackendError(
            `command ${name}: the device wrote into the request, a device-readable buffer`,
          );
        }
        const bytes = Buffer.from(this.#memory.read(posted[i]!.resp, responseSize));
        return { hdr: decodeCtrlHdr(bytes), bytes, usedLen: lens[i]! };
      });
    };
  }

  /** `postCommands` for the cursor queue: returns a wait for every buffer to be used (their used.len). */
  postCursors(requests: readonly Buffer[], options: { kick?: boolean } = {}): () => Promise<number[]> {
    for (const [i, request] of requests.entries()) {
      const gpa = this.#memory.alloc(request.length, 64);
      this.#memory.write(gpa, request);
      this.#cursor.queue.addRequest([{ gpa, len: request.length, write: false }], { token: i });
    }
    if (options.kick ?? true) this.#cursor.notify();
    return () => this.#waitAll(this.#cursor, requests.length, 'cursor');
  }

  /** Notifies the control queue (after `postCommands` without `kick`). */
  kickControl(): void {
    this.#control.notify();
  }

  /** Waits until `count` buffers posted with tokens 0..count-1 are used; returns used.len by token. */
  async #waitAll(port: VringPort<unknown>, count: number, queue: string): Promise<number[]> {
    const lens: number[] = new Array(count);
    let got = 0;
    const end = performance.now() + this.#timeoutMs;
    while (got < count) {
      let used: Array<{ token: unknown; len: number }>;
      try {
        ({ used } = await port.waitUsed(Math.max(1, end - performance.now()), 1));
      } catch (err) {
        if (err instanceof TimeoutError) {
          throw new TimeoutError(
            `${count} ${queue} commands (${got} came back)`,
            this.#timeoutMs,
            err.message,
          );
        }
        throw err;
      }
      for (const u of used) {
        lens[u.token as number] = u.len;
        got++;
      }
    }
    return lens;
  }

  /**
   * Guest memory for a resource's backing of `length` bytes, in `pieces` entries taken from the regions in
   * turn (so a back-end must gather them in order), with the content `pixels` written.
   */
  allocBacking(pixels: Uint8Array, pieces = 1): GpuMemEntry[] {
    const regions = this.#memory.regions;
    const entries: GpuMemEntry[] = [];
    const step = Math.ceil(pixels.length / pieces / 64) * 64;
    for (let at = 0, i = 0; at < pixels.length; at += step, i++) {
      const length = Math.min(step, pixels.length - at);
      const region = regions[(i + 1) % regions.length]!.guestAddress;
      const addr = this.#memory.alloc(length, 64, { region });
      this.#memory.write(addr, pixels.subarray(at, at + length));
      entries.push({ addr, length });
    }
    return entries;
  }

  /** Writes `pixels` over a backing laid out by `allocBacking`, from its start. */
  writeBacking(entries: readonly GpuMemEntry[], pixels: Uint8Array): void {
    let at = 0;
    for (const e of entries) {
      this.#memory.write(e.addr, pixels.subarray(at, at + e.length));
      at += e.length;
    }
  }
}

/**
 * Throws a BackendError unless the response has type `expected`, used.len is within the response buffer,
 * and a fenced command's response carries the fence (flag and fence_id; ctx_id too when one is given, which no
 * sentence of the virtio spec asks for).
 */
export function expectResponse(
  what: string,
  response: GpuResponse,
  expected: number,
  options: { size?: number; fence?: { fenceId: bigint; ctxId?: number } } = {},
): void {
  const { hdr } = response;
  if (hdr.type !== expected) {
    throw new BackendError(
      `${what}: response type ${ctrlTypeName(hdr.type)}, expected ${ctrlTypeName(expected)}`,
    );
  }
  // used.len may count less than the response ("len is permitted to be an underestimate", virtio 1.3
  // 2.7.8.1): the bytes themselves are judged. More than the writable bytes the device cannot have written.
  if (response.usedLen > response.bytes.length) {
    throw new BackendError(
      `${what}: used.len ${response.usedLen} is more than the ${response.bytes.length} writable bytes of the response buffer`,
    );
  }
  if (options.fence) {
    if (
      !(hdr.flags & VirtioGpuFlag.FENCE) ||
      hdr.fenceId !== options.fence.fenceId ||
      (options.fence.ctxId !== undefined && hdr.ctxId !== options.fence.ctxId)
    ) {
      const ctx = (id: number | undefined) => (options.fence?.ctxId === undefined ? '' : `, ctx_id ${id}`);
      throw new BackendError(
        `${what}: the command was fenced (flags 0x1, fence_id ${options.fence.fenceId}${ctx(options.fence.ctxId)}) ` +
          `but the response has flags 0x${hdr.flags.toString(16)}, fence_id ${hdr.fenceId}${ctx(hdr.ctxId)}`,
      );
    }
  }
}
