/**
 * A virtio-fs driver (virtio spec, "File System Device") over the vrings of a FrontendDevice, or any
 * VringPorts: queue 0 is hiprio (FORGET, BATCH_FORGET, INTERRUPT: no reply), queue 1 and on the request
 * queues (the notification queue exists only with VIRTIO_FS_F_NOTIFICATION, which the driver never accepts). A request is one chain: the
 * device-readable part carries fuse_in_header and the opcode's arguments (and WRITE's data in a second
 * descriptor, in another region), the device-writable part room for fuse_out_header and the reply's fixed
 * arguments, then (READ, READDIR) a data descriptor in yet another region. The driver checks what every
 * FUSE reply must be (its unique, its length against used.len and the room given, an error reply being a
 * bare header with a negative errno); what the reply says is for the caller to judge.
 */
import { BackendError } from '../../errors.js';
import { fillGuardBytes, type GuestMemory } from '../../memory/guest-memory.js';
import type { FrontendSession } from '../../transport/session.js';
import type { VringPort } from '../../virtqueue/port.js';
import type { BufferElement } from '../../virtqueue/split.js';
import { readConfigSpace } from '../config.js';
import {
  decodeVirtioFsConfig,
  errnoLabel,
  FS_CONFIG,
  FuseInHeader,
  FuseOutHeader,
  fuseOpcodeName,
  type VirtioFsConfig,
} from './fuse.js';

/** The virtqueue index of the hiprio queue; request queues follow it. */
export const HIPRIO_QUEUE = 0;
export const FIRST_REQUEST_QUEUE = 1;
/** The largest data part of a request the driver makes (READ, WRITE, READDIR): 32 KiB. */
export const FS_MAX_IO = 32 * 1024;
/** Room for a header and the largest fixed arguments (CREATE's reply: 144 bytes; names up to 255). */
const HEAD_ROOM = 512;

export const FsErrorCode = {
  /** The reply's unique is not the request's. */
  UNIQUE: 'VHU_ERR_FS_UNIQUE',
  /** fuse_out_header.len disagrees with used.len, the room given, or the reply's kind. */
  LENGTH: 'VHU_ERR_FS_LENGTH',
  /** fuse_out_header.error is not 0 or a negative errno. */
  ERRNO: 'VHU_ERR_FS_ERRNO',
  /** A reply where none is due, or none where one is. */
  REPLY: 'VHU_ERR_FS_REPLY',
  /** The device wrote into the device-readable part. */
  READONLY_WRITTEN: 'VHU_ERR_FS_READONLY_WRITTEN',
} as const;
export type FsErrorCode = (typeof FsErrorCode)[keyof typeof FsErrorCode];

/** The device answered a FUSE request in a way no FUSE reply may look: a FAIL. */
export class FsError extends BackendError {
  override readonly code: FsErrorCode;
  constructor(code: FsErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** A request: the opcode, the node, the arguments; or, for a broken request, the readable bytes as given. */
export interface FuseRequest {
  opcode: number;
  nodeid?: bigint;
  /** The arguments after fuse_in_header (fixed struct, then names). */
  args?: Uint8Array;
  /** Data after the arguments, in a descriptor of its own (WRITE). */
  data?: Uint8Array;
  /** Bytes of reply arguments to make room for after fuse_out_header (default 0). */
  outArgs?: number;
  /** Bytes of variable reply data, in a descriptor of its own (READ, READDIR). */
  outData?: number;
  /** No writable part: a request with no reply (FORGET), on the hiprio queue. */
  noReply?: boolean;
  /**
   * The device-readable bytes exactly as given instead of a header and arguments the driver builds (a
   * short header, a len that lies): `unique` is then the caller's business.
   */
  raw?: Uint8Array;
  /** Overrides of the header the driver builds (a wrong len...). */
  header?: Partial<{ len: number; unique: bigint; uid: number; gid: number; pid: number }>;
}

export interface FuseReply {
  request: FuseRequest;
  unique: bigint;
  /** fuse_out_header.error: 0 or a negative errno. */
  error: number;
  /** fuse_out_header.len. */
  len: number;
  usedLen: number;
  /** The reply after fuse_out_header (len - 16 bytes), arguments then data. */
  body: Buffer;
}

export interface FsDriverOptions {
  timeoutMs: number;
  /** Requests in flight at most per queue (default 4). */
  slots?: number;
  uid?: number;
  gid?: number;
  pid?: number;
}

interface Slot {
  inHead: bigint;
  inData: bigint;
  outHead: bigint;
  outData: bigint;
}

interface Pending {
  request: FuseRequest;
  unique: bigint | undefined;
  slot: number;
  queue: number;
  readable: Buffer;
  chain: BufferElement[];
}

/**
 * The driver. `run` sends one request and waits for its reply; `runAll` several at once on one queue;
 * `forget` sends on hiprio and waits for the buffer to come back. Uniques count up by 2 from 2 (odd ones are
 * the kernel's FUSE_INT_REQ_BIT for interrupts).
 */
export class FsDriver {
  readonly #ports: ReadonlyMap<number, VringPort<Pending>>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #slots = new Map<number, Slot[]>();
  readonly #free = new Map<number, number[]>();
  readonly #ids: { uid: number; gid: number; pid: number };
  #unique = 0n;

  constructor(ports: ReadonlyArray<VringPort<unknown>>, options: FsDriverOptions) {
    if (!ports.length) throw new Error('FsDriver needs at least one queue');
    this.#ports = new Map(ports.map((p) => [p.index, p as VringPort<Pending>]));
    this.#memory = ports[0]!.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    this.#ids = { uid: options.uid ?? 0, gid: options.gid ?? 0, pid: options.pid ?? 1 };
    const regions = this.#memory.regions.map((r) => r.guestAddress);
    const [a, c] = [regions[0]!, regions[1] ?? regions[0]!];
    const b = regions.at(-1)!;
    for (const port of ports) {
      const count = port.index === HIPRIO_QUEUE ? 2 : (options.slots ?? 4);
      const slots: Slot[] = [];
      for (let i = 0; i < count; i++) {
        const big = port.index !== HIPRIO_QUEUE;
        // Headers and data in different regions, so a back-end that translates one region wrongly shows.
        slots.push({
          inHead: this.#memory.alloc(HEAD_ROOM, 64, { region: a }),
          // WRITE data of odd request queues in C, of even ones in B: C (256 KiB) holds one queue's.
          inData: big ? this.#memory.alloc(FS_MAX_IO, 64, { region: port.index % 2 === 1 ? c : b }) : 0n,
          outHead: this.#memory.alloc(HEAD_ROOM, 64, { region: b }),
          outData: big ? this.#memory.alloc(FS_MAX_IO, 64, { region: a }) : 0n,
        });
      }
      this.#slots.set(port.index, slots);
      this.#free.set(
        port.index,
        slots.map((_, i) => i),
      );
    }
  }

  /** The queues this driver posts to, by index. */
  get queues(): number[] {
    return [...this.#ports.keys()];
  }

  /** The next unique. */
  nextUnique(): bigint {
    this.#unique += 2n;
    return this.#unique;
  }

  /** Makes the request available on `queue` without notifying; returns the unique it carries. */
  post(request: FuseRequest, queue = FIRST_REQUEST_QUEUE): bigint | undefined {
    const port = this.#port(queue);
    const slotIndex = this.#free.get(queue)!.pop();
    if (slotIndex === undefined) throw new Error(`every request slot of queue ${queue} is in flight`);
    const slot = this.#slots.get(queue)![slotIndex]!;
    try {
      let unique: bigint | undefined;
      let readable: Buffer;
      if (request.raw) {
        readable = Buffer.from(request.raw);
      } else {
        unique = request.header?.unique ?? this.nextUnique();
        const args = request.args ?? new Uint8Array(0);
        const data = request.data ?? new Uint8Array(0);
        const len = FuseInHeader.size + args.length + data.length;
        readable = Buffer.concat([
          FuseInHeader.encode({
            len: request.header?.len ?? len,
            opcode: request.opcode,
            unique,
            nodeid: request.nodeid ?? 0n,
            uid: request.header?.uid ?? this.#ids.uid,
            gid: request.header?.gid ?? this.#ids.gid,
            pid: request.header?.pid ?? this.#ids.pid,
          }),
          args,
        ]);
        if (data.length > FS_MAX_IO) throw new Error(`${data.length} bytes of data: at most ${FS_MAX_IO}`);
        if (data.length) this.#memory.write(slot.inData, data);
      }
      if (readable.length > HEAD_ROOM) throw new Error(`${readable.length} bytes of header and arguments`);
      this.#memory.write(slot.inHead, readable);
      const chain: BufferElement[] = [{ gpa: slot.inHead, len: readable.length, write: false }];
      if (!request.raw && request.data?.length) {
        chain.push({ gpa: slot.inData, len: request.data.length, write: false });
      }
      if (!request.noReply) {
        const head = FuseOutHeader.size + (request.outArgs ?? 0);
        if (head > HEAD_ROOM) throw new Error(`${head} bytes of reply head`);
        fillGuardBytes(this.#memory.gpaToBytes(slot.outHead, head));
        chain.push({ gpa: slot.outHead, len: head, write: true });
        const outData = request.outData ?? 0;
        if (outData > FS_MAX_IO) throw new Error(`${outData} bytes of reply data: at most ${FS_MAX_IO}`);
        if (outData > 0) {
          fillGuardBytes(this.#memory.gpaToBytes(slot.outData, outData));
          chain.push({ gpa: slot.outData, len: outData, write: true });
        }
      }
      const pending: Pending = { request, unique, slot: slotIndex, queue, readable, chain };
      port.queue.addRequest(chain, { token: pending });
      return unique;
    } catch (err) {
      this.#free.get(queue)!.push(slotIndex);
      throw err;
    }
  }

  /** Posts every request on `queue`, kicks once, and returns the replies in request order. */
  async runAll(requests: readonly FuseRequest[], queue = FIRST_REQUEST_QUEUE): Promise<FuseReply[]> {
    const port = this.#port(queue);
    for (const r of requests) this.post(r, queue);
    port.notify();
    const replies = new Map<number, FuseReply>();
    while (replies.size < requests.length) {
      const { used } = await port.waitUsed(this.#timeoutMs, requests.length - replies.size);
      for (const u of used) {
        const p = u.token!;
        replies.set(requests.indexOf(p.request), this.#complete(p, u.len));
      }
    }
    return requests.map((_, i) => replies.get(i)!);
  }

  /** One request on `queue`: its reply, unchecked beyond what every reply must be. */
  async run(request: FuseRequest, queue = FIRST_REQUEST_QUEUE): Promise<FuseReply> {
    return (await this.runAll([request], queue))[0]!;
  }

  /** One request that must succeed: its reply body; an error reply is an FsError naming the errno. */
  async call(request: FuseRequest, what: string, queue = FIRST_REQUEST_QUEUE): Promise<Buffer> {
    const reply = await this.run(request, queue);
    if (reply.error !== 0) {
      throw new FsError(
        FsErrorCode.REPLY,
        `${what}: ${fuseOpcodeName(request.opcode)} failed with errno ${errnoLabel(-reply.error)}`,
      );
    }
    return reply.body;
  }

  #port(queue: number): VringPort<Pending> {
    const port = this.#ports.get(queue);
    if (!port) throw new Error(`queue ${queue} is not driven (${this.queues.join(', ')})`);
    return port;
  }

  #complete(p: Pending, usedLen: number): FuseReply {
    this.#free.get(p.queue)!.push(p.slot);
    const { request } = p;
    const name = request.raw ? 'a raw request' : `${fuseOpcodeName(request.opcode)} (unique ${p.unique})`;
    const slot = this.#slots.get(p.queue)![p.slot]!;
    if (!Buffer.from(this.#memory.read(slot.inHead, p.readable.length)).equals(p.readable)) {
      throw new FsError(FsErrorCode.READONLY_WRITTEN, `${name}: the device wrote into the request header`);
    }
    const writable = p.chain.filter((e) => e.write);
    const room = writable.reduce((sum, e) => sum + e.len, 0);
    if (request.noReply) {
      if (usedLen !== 0) {
        throw new FsError(
          FsErrorCode.LENGTH,
          `${name}: used.len ${usedLen} for a request with no writable part`,
        );
      }
      return { request, unique: p.unique ?? 0n, error: 0, len: 0, usedLen, body: Buffer.alloc(0) };
    }
    if (usedLen > room) {
      throw new FsError(
        FsErrorCode.LENGTH,
        `${name}: used.len ${usedLen} is more than the ${room} writable bytes`,
      );
    }
    if (usedLen < FuseOutHeader.size) {
      throw new FsError(
        FsErrorCode.REPLY,
        `${name}: used.len ${usedLen}: no fuse_out_header was written (a FUSE request must get a reply)`,
      );
    }
    const bytes = Buffer.concat(writable.map((e) => this.#memory.read(e.gpa, e.len)));
    const header = FuseOutHeader.decode(bytes, 0, `${name}'s fuse_out_header`);
    if (header.len !== usedLen) {
      throw new FsError(
        FsErrorCode.LENGTH,
        `${name}: fuse_out_header.len ${header.len} but used.len ${usedLen} (error ${header.error})`,
      );
    }
    if (p.unique !== undefined && header.unique !== p.unique) {
      throw new FsError(FsErrorCode.UNIQUE, `${name}: the reply carries unique ${header.unique}`);
    }
    if (header.error > 0 || header.error < -4095) {
      throw new FsError(
        FsErrorCode.ERRNO,
        `${name}: fuse_out_header.error ${header.error} is neither 0 nor a negative errno`,
      );
    }
    if (header.error !== 0 && header.len !== FuseOutHeader.size) {
      throw new FsError(
        FsErrorCode.LENGTH,
        `${name}: an error reply (errno ${errnoLabel(-header.error)}) of ${header.len} bytes, not a bare ${FuseOutHeader.size}-byte header`,
      );
    }
    return {
      request,
      unique: header.unique,
      error: header.error,
      len: header.len,
      usedLen,
      body: bytes.subarray(FuseOutHeader.size, header.len),
    };
  }
}

/** GET_CONFIG of struct virtio_fs_config; needs PROTOCOL_F_CONFIG negotiated. */
export async function readFsConfig(session: FrontendSession): Promise<VirtioFsConfig> {
  return decodeVirtioFsConfig(await readConfigSpace(session, FS_CONFIG));
}

/**
 * The directory a virtio-fs back-end serves, read from its command line (the arguments after `--`):
 * virtiofsd's `-o source=DIR` (also inside a comma list, or as `-osource=DIR`), or `--shared-dir DIR` /
 * `--shared-dir=DIR` (Rust virtiofsd's spelling, which the fixture takes too). The last one given wins, as
 * in both parsers. Undefined when none is given.
 */
export function sharedDirFromArgs(args: readonly string[]): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let options: string | undefined;
    if (arg === '-o') options = args[++i];
    else if (arg.startsWith('-o')) options = arg.slice(2);
    else if (arg === '--shared-dir') found = args[++i] ?? found;
    else if (arg.startsWith('--shared-dir=')) found = arg.slice('--shared-dir='.length);
    if (options === undefined) continue;
    for (const option of options.split(',')) {
      if (option.startsWith('source=')) found = option.slice('source='.length);
    }
  }
  return found;
}
