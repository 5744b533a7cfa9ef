/**
 * The display side of the vhost-user-gpu protocol (QEMU docs/interop/vhost-user-gpu.rst), as QEMU's
 * hw/display/vhost-user-gpu.c plays it: a socketpair whose other end goes to the back-end with
 * VHOST_USER_GPU_SET_SOCKET; on ours, the back-end's requests are answered (protocol features, display info,
 * EDID, the DMABUF_UPDATE acknowledgement) and what it shows is recorded: every message in order, and per
 * scanout a framebuffer the UPDATE pixels are drawn into, which can be saved as a PNG.
 */
import { writeFile } from 'node:fs/promises';
import { PNG } from 'pngjs';
import { BackendError, ProtocolError, TimeoutError } from '../../errors.js';
import type { Scope } from '../../process/scope.js';
import { FrameDecoder } from '../../protocol/decoder.js';
import { describeGpuMessage } from '../../protocol/describe.js';
import { encodeFrame } from '../../protocol/encoder.js';
import { decodeGpuMessage, type GpuMessage, type GpuUpdate, gpuReply } from '../../protocol/gpu-messages.js';
import { GpuProtocolFeature, GpuRequest, type GpuRequestName } from '../../protocol/gpu-spec.js';
import { encodeU64 } from '../../protocol/messages.js';
import { ClosedError } from '../../sys/fd-waiter.js';
import { closeFd } from '../../sys/libc.js';
import { UnixChannel } from '../../sys/unix-channel.js';
import type { FrontendSession } from '../../transport/session.js';
import { currentWireLog, type WireLog } from '../../transport/wire-log.js';
import { encodeDisplayInfo, encodeRespEdid, type GpuDisplayMode } from './gpu.js';

/** The largest message the display takes: an UPDATE of a 4096 x 2160 frame, and its header. */
const MAX_MESSAGE = 4096 * 2160 * 4 + 64;
const READ_SLICE_MS = 60_000;

export interface GpuDisplayOptions {
  /** What GET_PROTOCOL_FEATURES answers (default: EDID; DMABUF2 needs a GL display, which this is not). */
  protocolFeatures?: bigint;
  /** The modes GET_DISPLAY_INFO answers (default: scanout 0 enabled, 640 x 480). */
  modes?: readonly GpuDisplayMode[];
  /** The EDID GET_EDID answers (default: 128 bytes, a base block header and a pattern). */
  edid?: Uint8Array;
}

export const DEFAULT_MODES: readonly GpuDisplayMode[] = [
  { rect: { x: 0, y: 0, width: 640, height: 480 }, enabled: true, flags: 0 },
];

/** A message received, numbered in arrival order. */
export type DisplayEvent = GpuMessage & { seq: number };

export interface Framebuffer {
  width: number;
  height: number;
  /** x8r8g8b8 pixels, `width * 4` bytes a row. */
  pixels: Buffer;
}

export class GpuDisplay {
  readonly events: DisplayEvent[] = [];
  /** Rules the back-end broke on this socket (malformed messages, updates outside the scanout...). */
  readonly problems: string[] = [];
  /** Requests whose header flags were not 0 (the protocol defines none for requests), with the flags. */
  readonly strayFlags: Array<{ request: string; flags: number }> = [];
  /** What SET_PROTOCOL_FEATURES acknowledged, once it came. */
  acceptedFeatures: bigint | undefined;
  readonly framebuffers = new Map<number, Framebuffer>();
  readonly offeredFeatures: bigint;
  readonly closed: Promise<void>;
  readonly #channel: UnixChannel;
  readonly #modes: readonly GpuDisplayMode[];
  readonly #edid: Uint8Array;
  readonly #decoder = new FrameDecoder(MAX_MESSAGE);
  #waiters: Array<() => void> = [];
  #ended = false;
  /** The wire log of the check that opened the display, if one is kept. */
  readonly #log: WireLog | undefined = currentWireLog();

  private constructor(channel: UnixChannel, options: GpuDisplayOptions) {
    this.#channel = channel;
    this.offeredFeatures = options.protocolFeatures ?? 1n << BigInt(GpuProtocolFeature.EDID);
    this.#modes = options.modes ?? DEFAULT_MODES;
    this.#edid = options.edid ?? defaultEdid();
    this.closed = this.#readLoop();
  }

  /**
   * A display and the back-end's end of its socketpair, a raw fd: send it with VHOST_USER_GPU_SET_SOCKET,
   * then close it (the back-end has its own copy). `close()` ends the display.
   */
  static create(options: GpuDisplayOptions = {}): { display: GpuDisplay; backendFd: number } {
    const [channel, backendFd] = UnixChannel.pair();
    return { display: new GpuDisplay(channel, options), backendFd };
  }

  get modes(): readonly GpuDisplayMode[] {
    return this.#modes;
  }

  get edid(): Uint8Array {
    return this.#edid;
  }

  /** Whether the back-end closed its end (or broke the framing). */
  get ended(): boolean {
    return this.#ended;
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        let message: Awaited<ReturnType<UnixChannel['receive']>>;
        try {
          message = await this.#channel.receive(READ_SLICE_MS, 1024 * 1024);
        } catch (err) {
          if (err instanceof TimeoutError) continue;
          if (!(err instanceof ClosedError)) this.problems.push(`socket error: ${(err as Error).message}`);
          return;
        }
        if (!message) return;
        let frames: ReturnType<FrameDecoder['push']>;
        try {
          frames = this.#decoder.push(message.data, message.fds);
        } catch (err) {
          for (const fd of message.fds) closeFd(fd);
          this.problems.push((err as Error).message);
          return;
        }
        for (const frame of frames) {
          // DMABUF fds are not ours to use: a 2D display shows UPDATE pixels only.
          for (const fd of frame.fds) closeFd(fd);
          let decoded: GpuMessage;
          const logged = { flags: frame.flags, size: frame.payload.length, fds: frame.fds.length };
          try {
            decoded = decodeGpuMessage(frame);
          } catch (err) {
            this.#log?.described(this, '<-', `GPU request ${frame.request}`, {
              ...logged,
              fields: `malformed: ${(err as Error).message}`,
            });
            this.problems.push((err as Error).message);
            continue;
          }
          const { name, fields } = describeGpuMessage(decoded);
          this.#log?.described(this, '<-', name, { ...logged, fields });
          if (frame.flags !== 0) this.strayFlags.push({ request: decoded.request, flags: frame.flags });
          this.#handle(decoded);
        }
      }
    } finally {
      // fds of a message cut off by the end of the stream (or by a protocol error) are closed with it.
      for (const fd of this.#decoder.takePendingFds()) closeFd(fd);
      this.#ended = true;
      this.#wake();
    }
  }

  #handle(message: GpuMessage): void {
    this.events.push({ ...message, seq: this.events.length });
    switch (message.request) {
      case 'GET_PROTOCOL_FEATURES':
        this.#reply(GpuRequest.GET_PROTOCOL_FEATURES, encodeU64(this.offeredFeatures));
        break;
      case 'SET_PROTOCOL_FEATURES':
        if (message.features & ~this.offeredFeatures) {
          this.problems.push(
            `SET_PROTOCOL_FEATURES 0x${message.features.toString(16)} is not a subset of the 0x${this.offeredFeatures.toString(16)} offered`,
          );
        }
        this.acceptedFeatures = message.features;
        break;
      case 'GET_DISPLAY_INFO':
        this.#reply(GpuRequest.GET_DISPLAY_INFO, encodeDisplayInfo(this.#modes));
        break;
      case 'GET_EDID':
        if (!((this.acceptedFeatures ?? 0n) & (1n << BigInt(GpuProtocolFeature.EDID))))
          this.problems.push('GET_EDID without VHOST_USER_GPU_PROTOCOL_F_EDID negotiated');
        this.#reply(GpuRequest.GET_EDID, encodeRespEdid(this.#edid));
        break;
      case 'DMABUF_UPDATE':
        // The back-end waits for this before it goes on.
        this.#reply(GpuRequest.DMABUF_UPDATE);
        break;
      case 'SCANOUT': {
        const { scanoutId, width, height } = message.scanout;
        if (width === 0 || height === 0) this.framebuffers.delete(scanoutId);
        else this.framebuffers.set(scanoutId, { width, height, pixels: Buffer.alloc(width * height * 4) });
        break;
      }
      case 'UPDATE':
        this.#draw(message.update);
        break;
      default:
        break;
    }
    this.#wake();
  }

  #draw(update: GpuUpdate): void {
    const fb = this.framebuffers.get(update.scanoutId);
    const where = `UPDATE of ${update.width}x${update.height} at (${update.x},${update.y}) on scanout ${update.scanoutId}`;
    if (!fb) {
      this.problems.push(`${where}: no SCANOUT set it up`);
      return;
    }
    if (update.x + update.width > fb.width || update.y + update.height > fb.height) {
      this.problems.push(`${where}: outside the ${fb.width}x${fb.height} scanout`);
      return;
    }
    for (let row = 0; row < update.height; row++) {
      const from = row * update.width * 4;
      update.data.copy(
        fb.pixels,
        ((update.y + row) * fb.width + update.x) * 4,
        from,
        from + update.width * 4,
      );
    }
  }

  #reply(request: number, payload?: Buffer): void {
    const reply = gpuReply(request, payload);
    const name = Object.entries(GpuRequest).find(([, n]) => n === request)?.[0] as GpuRequestName | undefined;
    this.#log?.described(this, '->', `GPU_${name ?? request} reply`, {
      flags: reply.flags,
      size: reply.payload.length,
      fields: '',
      fds: 0,
    });
    this.#channel.send(encodeFrame(reply)).catch((err: Error) => {
      this.problems.push(`replying to ${request}: ${err.message}`);
    });
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /**
   * The first event after `since` (a seq, default -1) that `match` accepts, within `timeoutMs`. A
   * TimeoutError names `what` and lists what came meanwhile; the socket closing is a BackendError.
   */
  async waitFor<T extends GpuMessage['request']>(
    what: string,
    requests: readonly T[],
    timeoutMs: number,
    since = -1,
    match: (event: DisplayEvent & { request: T }) => boolean = () => true,
  ): Promise<DisplayEvent & { request: T }> {
    const end = performance.now() + timeoutMs;
    // Events are kept in seq order, seq being the index: only those after `since` are looked at.
    let next = Math.max(0, since + 1);
    for (;;) {
      for (; next < this.events.length; next++) {
        const e = this.events[next]!;
        if ((requests as readonly string[]).includes(e.request) && match(e as DisplayEvent & { request: T }))
          return e as DisplayEvent & { request: T };
      }
      if (this.#ended)
        throw new BackendError(
          `the back-end closed the vhost-user-gpu socket before ${what}; it sent: ${this.describeSince(since)}`,
        );
      const left = end - performance.now();
      if (left <= 0)
        throw new TimeoutError(
          `${what} on the vhost-user-gpu socket`,
          timeoutMs,
          `it sent: ${this.describeSince(since)}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The events after `since`, one short word each. */
  describeSince(since = -1): string {
    const list = this.events.filter((e) => e.seq > since).map(describeEvent);
    const sent = list.length ? list.join(', ') : 'nothing';
    return this.problems.length ? `${sent}; and what broke the protocol: ${this.problems.join('; ')}` : sent;
  }

  /** The seq of the last event, -1 when none came: pass it to `waitFor` to wait for what comes next. */
  get lastSeq(): number {
    return this.events.length - 1;
  }

  /** Writes the framebuffer of `scanoutId` as a PNG (opaque: the padding byte is not alpha). */
  async savePng(scanoutId: number, file: string): Promise<Framebuffer> {
    const fb = this.framebuffers.get(scanoutId);
    if (!fb) throw new Error(`scanout ${scanoutId} has no framebuffer`);
    await writeFile(file, framebufferPng(fb));
    return fb;
  }

  close(): void {
    this.#channel.close();
  }
}

/** A PNG of an x8r8g8b8 framebuffer. */
export function framebufferPng(fb: Framebuffer): Buffer {
  const png = new PNG({ width: fb.width, height: fb.height });
  for (let i = 0; i < fb.width * fb.height * 4; i += 4) {
    png.data[i] = fb.pixels[i + 2]!;
    png.data[i + 1] = fb.pixels[i + 1]!;
    png.data[i + 2] = fb.pixels[i]!;
    png.data[i + 3] = 0xff;
  }
  return PNG.sync.write(png);
}

export function describeEvent(e: GpuMessage): string {
  switch (e.request) {
    case 'SCANOUT':
      return `SCANOUT(${e.scanout.scanoutId}: ${e.scanout.width}x${e.scanout.height})`;
    case 'UPDATE':
    case 'DMABUF_UPDATE':
      return `${e.request}(${e.update.scanoutId}: ${e.update.width}x${e.update.height} at ${e.update.x},${e.update.y})`;
    case 'CURSOR_POS':
    case 'CURSOR_POS_HIDE':
      return `${e.request}(${e.pos.scanoutId}: ${e.pos.x},${e.pos.y})`;
    case 'CURSOR_UPDATE':
      return `CURSOR_UPDATE(${e.cursor.pos.scanoutId}: ${e.cursor.pos.x},${e.cursor.pos.y} hot ${e.cursor.hotX},${e.cursor.hotY})`;
    case 'SET_PROTOCOL_FEATURES':
      return `SET_PROTOCOL_FEATURES(0x${e.features.toString(16)})`;
    default:
      return e.request;
  }
}

/** 128 bytes: the EDID base block header, then a pattern (only its bytes are compared, not its meaning). */
function defaultEdid(): Uint8Array {
  const edid = new Uint8Array(128);
  edid.set([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  for (let i = 8; i < 128; i++) edid[i] = (i * 7) & 0xff;
  return edid;
}

/** A ProtocolError describing the display's problems, or undefined when there are none. */
export function displayProblems(display: GpuDisplay): ProtocolError | undefined {
  return display.problems.length
    ? new ProtocolError(`on the vhost-user-gpu socket: ${display.problems.join('; ')}`)
    : undefined;
}

/**
 * A display attached to the gpu back-end on `session` as QEMU attaches one: VHOST_USER_GPU_SET_SOCKET
 * without need_reply, the GET_FEATURES after it proving it was read. The display ends with `scope`.
 */
export async function attachGpuDisplay(
  session: FrontendSession,
  scope: Scope,
  options: GpuDisplayOptions = {},
): Promise<GpuDisplay> {
  const { display, backendFd } = GpuDisplay.create(options);
  scope.defer('vhost-user-gpu display', () => display.close());
  try {
    await session.connection.send('GPU_SET_SOCKET', { fds: [backendFd] });
  } finally {
    closeFd(backendFd);
  }
  await session.connection.requestU64('GET_FEATURES');
  return display;
}
