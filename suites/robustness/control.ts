/**
 * Malformed control messages (issue 5, "Control messages"): each input goes to a back-end of its own, a fresh
 * launch or a new connection to one kept from earlier inputs (kept.ts: a failure seen there counts only when a
 * fresh launch given the input alone shows it again), as raw bytes and fds (Connection.sendRaw, no encoder in
 * the way), and the oracle (oracle.ts) judges what follows: the back-end must answer the next GET_FEATURES or
 * close the connection, never crash or hang. A front-end (or a guest through a compromised one) can send every
 * one of these; no sentence forbids a crash on them, so the checks are SHOULDs (HARDENING_RULE).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BackendError } from '../../harness/errors.js';
import { encodeFrame } from '../../harness/protocol/encoder.js';
import {
  encodeLogDescription,
  encodeMemoryRegions,
  encodeSingleMemoryRegion,
  encodeVringAddress,
  encodeVringFile,
  encodeVringState,
  type MemoryRegion,
} from '../../harness/protocol/messages.js';
import {
  FrontendRequest,
  type FrontendRequestName,
  HEADER_SIZE,
  HeaderFlag,
} from '../../harness/protocol/spec.js';
import { type Check, type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { EventFd } from '../../harness/sys/eventfd.js';
import { closeFd, connectUnix, eventfdWrite, socketpair } from '../../harness/sys/libc.js';
import { SharedMemory } from '../../harness/sys/memfd.js';
import { Connection } from '../../harness/transport/connection.js';
import { NEEDS_SOCKET } from '../protocol/common.js';
import { KeptBackends } from './kept.js';
import {
  answersGetFeatures,
  type BadInput,
  HARDENING_RULE,
  judgeInput,
  type Subject,
  tryInputs,
} from './oracle.js';

export const RobustSpec = {
  messages: 'vhost-user.rst#message-specification',
  frontendMessages: 'vhost-user.rst#front-end-message-types',
} as const;

/** What an input is sent with: the check's context and the fds it makes (released with the check). */
interface Use {
  ctx: CheckContext;
  fds: Fds;
}

/**
 * One bad input: what it is called in messages, how it is sent, and (rarely) how the back-end is probed. The
 * lists are constants, so that a check's budget counts its inputs; what they need of a run comes in `use`.
 */
interface Input {
  input: string;
  send: (subject: Subject, use: Use) => Promise<void>;
  probe?: (subject: Subject, use: Use) => Promise<unknown>;
}

/** The fds an input sends, made when it is sent. */
type FdsOf = (fds: Fds) => number[] | Promise<number[]>;

/** The highest front-end request id the spec defines. */
const LAST_REQUEST = Math.max(...Object.values(FrontendRequest));

/** A message as bytes: a header with these flags and size field (by default the payload's length). */
function rawMessage(
  request: number,
  payload: Buffer = Buffer.alloc(0),
  options: { flags?: number; size?: number } = {},
): Buffer {
  return encodeFrame({ request, flags: options.flags ?? HeaderFlag.VERSION, payload }, options.size);
}

const id = (name: FrontendRequestName) => FrontendRequest[name];

/** Sends `name` with `payload` and `fds`, well framed: the bad part is in what it says. */
function send(name: FrontendRequestName, payload?: Buffer, fds: FdsOf = () => []): Input['send'] {
  return sendBytes(rawMessage(id(name), payload), name, fds);
}

/** Bytes as given, with fds. */
function sendBytes(bytes: Buffer, what: string, fds: FdsOf = () => []): Input['send'] {
  return async (s, use) => s.session.connection.sendRaw(bytes, await fds(use.fds), what);
}

/** Sends several messages in order (a set-up, then the bad one). */
function sequence(...steps: Array<Input['send']>): Input['send'] {
  return async (s, use) => {
    for (const step of steps) await step(s, use);
  };
}

/** The probe for an input that ends the stream: nothing can be answered, the back-end must close. */
async function closes(subject: Subject): Promise<never> {
  await subject.session.connection.closed;
  throw new BackendError('the back-end closed the connection');
}

/** What the check's inputs need: fds of each kind, all released with the check. */
class Fds {
  constructor(private readonly ctx: CheckContext) {}

  eventfds(count: number): number[] {
    return Array.from({ length: count }, () => {
      const event = new EventFd();
      this.ctx.scope.defer('an eventfd sent', () => event.close());
      return event.fd;
    });
  }

  eventfd(): number {
    return this.eventfds(1)[0]!;
  }

  memfd(size: number): number {
    const memory = new SharedMemory(size, 'vhu-conform robustness');
    this.ctx.scope.defer('a memfd sent', () => memory.close());
    return memory.fd;
  }

  #file: Promise<number> | undefined;

  /** A regular file of 4 KiB, the same one each time. */
  file(): Promise<number> {
    this.#file ??= this.#makeFile();
    return this.#file;
  }

  async #makeFile(): Promise<number> {
    const dir = await this.ctx.scope.tempDir('vhu-robust-');
    const fd = openSync(path.join(dir, 'not-an-eventfd'), 'w+');
    writeSync(fd, Buffer.alloc(4096, 0xa5));
    this.ctx.scope.defer('a regular file sent', () => closeSync(fd));
    return fd;
  }

  /** One end of a socket pair whose other end is closed: it polls as hung up forever. */
  hungUp(): number {
    const [ours, theirs] = socketpair();
    closeFd(theirs);
    this.ctx.scope.defer('a hung-up socket sent', () => closeFd(ours));
    return ours;
  }
}

/** A region of `size` bytes of a 1 MiB memfd, at guest 0 and an arbitrary user address, unless told. */
const USER_BASE = 0x7f00_0000_0000n;
const MIB = 1n << 20n;
function region(over: Partial<MemoryRegion> = {}): MemoryRegion {
  return { guestAddress: 0n, size: MIB, userAddress: USER_BASE, mmapOffset: 0n, ...over };
}

const U64_MAX = (1n << 64n) - 1n;

function framingInputs(): Input[] {
  const features = rawMessage(id('GET_FEATURES'));
  const flagged = (name: FrontendRequestName, flags: number) =>
    sendBytes(rawMessage(id(name), undefined, { flags }), `${name} flags 0x${flags.toString(16)}`);
  return [
    {
      input: 'a header cut at 6 bytes, then end of stream',
      send: async (s) => {
        await s.session.connection.sendRaw(features.subarray(0, 6), [], 'a 6-byte header');
        s.session.connection.shutdownWrite();
      },
      probe: closes,
    },
    ...[0, 2, 3].map((version) => ({
      input: `SET_OWNER with version ${version} in its flags`,
      send: flagged('SET_OWNER', version),
    })),
    {
      input: 'a header announcing a 0xFFFFFFFF-byte payload',
      send: sendBytes(rawMessage(id('SET_FEATURES'), undefined, { size: 0xffff_ffff }), 'size 0xFFFFFFFF'),
    },
    {
      input: 'GET_FEATURES with the reply flag set',
      send: flagged('GET_FEATURES', HeaderFlag.VERSION | HeaderFlag.REPLY),
    },
    { input: 'SET_OWNER with every undefined flag bit set', send: flagged('SET_OWNER', 0xffff_fff1) },
    { input: 'SET_FEATURES with a 4-byte payload', send: send('SET_FEATURES', Buffer.alloc(4)) },
    { input: 'SET_FEATURES with a 16-byte payload', send: send('SET_FEATURES', Buffer.alloc(16)) },
    { input: 'SET_VRING_NUM with a 4-byte payload', send: send('SET_VRING_NUM', Buffer.alloc(4)) },
    { input: 'SET_VRING_ADDR with an 8-byte payload', send: send('SET_VRING_ADDR', Buffer.alloc(8)) },
    {
      input: 'SET_MEM_TABLE saying 2 regions in an 8-byte payload',
      send: send('SET_MEM_TABLE', Buffer.from([2, 0, 0, 0, 0, 0, 0, 0])),
    },
    {
      input: 'GET_CONFIG whose size field says 256 in a 12-byte payload',
      send: send('GET_CONFIG', Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0])),
    },
    {
      input: 'a message cut mid-payload, then the connection closed',
      send: async (s) => {
        const bytes = rawMessage(id('SET_MEM_TABLE'), Buffer.alloc(40));
        await s.session.connection.sendRaw(bytes.subarray(0, HEADER_SIZE + 10), [], 'SET_MEM_TABLE, cut');
        s.session.connection.close();
      },
      // Our end is gone: the back-end must serve a new front-end, or have ended cleanly.
      probe: (s, use) => newFrontend(use.ctx, s),
    },
  ];
}

/**
 * GET_FEATURES answered on a new connection, closed once answered (a kept back-end's next input comes on a
 * connection of its own). A back-end no longer listening (it ended with its front-end, as the spec lets it)
 * makes the connect fail: the oracle reads that as closed, and judges how it ended.
 */
async function newFrontend(ctx: CheckContext, subject: Subject): Promise<void> {
  const connection = Connection.fromFd(connectUnix(subject.socket), ctx.timeoutMs);
  try {
    await answersGetFeatures(connection, ctx.timeoutMs);
  } finally {
    connection.close();
  }
}

function requestIdInputs(): Input[] {
  const ids = [0, LAST_REQUEST + 1, LAST_REQUEST + 2, 0x7fff_ffff, 0xffff_ffff];
  return [
    ...ids.map((request) => ({
      input: `request ${request}`,
      send: sendBytes(rawMessage(request), `request ${request}`),
    })),
    {
      input: `request ${LAST_REQUEST + 1} with an 8-byte payload and need_reply`,
      send: sendBytes(
        rawMessage(LAST_REQUEST + 1, Buffer.alloc(8), { flags: HeaderFlag.VERSION | HeaderFlag.NEED_REPLY }),
        `request ${LAST_REQUEST + 1}`,
      ),
    },
  ];
}

function fdInputs(): Input[] {
  const file: FdsOf = async (fds) => [await fds.file()];
  const vringFile = (index: number, invalidFd = false) => encodeVringFile({ index, invalidFd });
  const oneRegion = encodeMemoryRegions({ regions: [region()] });
  return [
    {
      input: 'GET_FEATURES with 9 eventfds',
      send: send('GET_FEATURES', undefined, (fds) => fds.eventfds(9)),
    },
    {
      input: 'SET_MEM_TABLE of one region with 16 fds',
      send: send('SET_MEM_TABLE', oneRegion, (fds) => [fds.memfd(Number(MIB)), ...fds.eventfds(15)]),
    },
    {
      input: 'GET_FEATURES with 2 eventfds',
      send: send('GET_FEATURES', undefined, (fds) => fds.eventfds(2)),
    },
    {
      input: 'SET_VRING_NUM with an eventfd',
      send: send('SET_VRING_NUM', encodeVringState({ index: 0, num: 64 }), (fds) => fds.eventfds(1)),
    },
    { input: 'SET_VRING_KICK without an fd, bit 8 clear', send: send('SET_VRING_KICK', vringFile(0)) },
    { input: 'SET_VRING_CALL without an fd, bit 8 clear', send: send('SET_VRING_CALL', vringFile(0)) },
    { input: 'SET_MEM_TABLE of one region without its fd', send: send('SET_MEM_TABLE', oneRegion) },
    {
      input: 'SET_LOG_BASE without an fd',
      send: send('SET_LOG_BASE', encodeLogDescription({ size: 4096n, offset: 0n })),
    },
    { input: 'SET_BACKEND_REQ_FD without an fd', send: send('SET_BACKEND_REQ_FD') },
    {
      input: 'SET_VRING_KICK with a regular file',
      send: send('SET_VRING_KICK', vringFile(0), file),
    },
    {
      input: 'SET_VRING_CALL with a regular file',
      send: send('SET_VRING_CALL', vringFile(0), file),
    },
    {
      input: 'SET_VRING_KICK with a hung-up socket',
      send: send('SET_VRING_KICK', vringFile(0), (fds) => [fds.hungUp()]),
    },
    {
      input: 'SET_MEM_TABLE with an eventfd as the region fd',
      send: send('SET_MEM_TABLE', oneRegion, (fds) => fds.eventfds(1)),
    },
  ];
}

/** A ring set up from scratch around one bad SET_VRING_ADDR, then kicked. */
function ringWithAddress(address: { descriptor: bigint; available: bigint; used: bigint }): Input['send'] {
  return async (s, use) => {
    // The oldest negotiation (no REPLY_ACK, whose defects are other checks' business): the whole offer.
    await s.session.negotiate();
    const kick = use.fds.eventfd();
    await sequence(
      send('SET_MEM_TABLE', encodeMemoryRegions({ regions: [region()] }), (fds) => [fds.memfd(Number(MIB))]),
      send('SET_VRING_NUM', encodeVringState({ index: 0, num: 256 })),
      send('SET_VRING_BASE', encodeVringState({ index: 0, num: 0 })),
      send('SET_VRING_ADDR', encodeVringAddress({ index: 0, flags: 0, log: 0n, ...address })),
      send('SET_VRING_KICK', encodeVringFile({ index: 0, invalidFd: false }), () => [kick]),
      send('SET_VRING_CALL', encodeVringFile({ index: 0, invalidFd: false }), (fds) => fds.eventfds(1)),
      send('SET_VRING_ENABLE', encodeVringState({ index: 0, num: 1 })),
    )(s, use);
    eventfdWrite(kick);
  };
}

function vringInputs(): Input[] {
  const state = (index: number, num: number) => encodeVringState({ index, num });
  const file = (index: number) => encodeVringFile({ index, invalidFd: false });
  const out = [1024, 0xffff_ffff];
  const inside = { descriptor: USER_BASE, available: USER_BASE + 0x1000n, used: USER_BASE + 0x2000n };
  return [
    ...out.map((index) => ({
      input: `SET_VRING_NUM of vring ${index}`,
      send: send('SET_VRING_NUM', state(index, 64)),
    })),
    { input: 'SET_VRING_BASE of vring 1024', send: send('SET_VRING_BASE', state(1024, 0)) },
    { input: 'GET_VRING_BASE of vring 1024', send: send('GET_VRING_BASE', state(1024, 0)) },
    {
      input: 'SET_VRING_ADDR of vring 0xFFFFFFFF',
      send: send('SET_VRING_ADDR', encodeVringAddress({ index: 0xffff_ffff, flags: 0, log: 0n, ...inside })),
    },
    {
      input: 'SET_VRING_KICK of vring 255',
      send: send('SET_VRING_KICK', file(255), (fds) => fds.eventfds(1)),
    },
    {
      input: 'SET_VRING_CALL of vring 255',
      send: send('SET_VRING_CALL', file(255), (fds) => fds.eventfds(1)),
    },
    { input: 'SET_VRING_ENABLE of vring 1024', send: send('SET_VRING_ENABLE', state(1024, 1)) },
    ...[0, 3, 32768, 65536, 0xffff_ffff].map((num) => ({
      input: `SET_VRING_NUM ${num}`,
      send: send('SET_VRING_NUM', state(0, num)),
    })),
    {
      input: 'SET_VRING_KICK again on a running ring',
      send: async (s, use) => {
        await ringWithAddress(inside)(s, use);
        await send('SET_VRING_KICK', file(0), (fds) => fds.eventfds(1))(s, use);
      },
    },
    {
      input: 'SET_VRING_CALL again on a running ring',
      send: async (s, use) => {
        await ringWithAddress(inside)(s, use);
        await send('SET_VRING_CALL', file(0), (fds) => fds.eventfds(1))(s, use);
      },
    },
    {
      input: 'a ring whose descriptor table is outside guest memory, kicked',
      send: ringWithAddress({ ...inside, descriptor: USER_BASE + 16n * MIB }),
    },
    {
      input: 'a ring whose used ring ends past guest memory, kicked',
      send: ringWithAddress({ ...inside, used: USER_BASE + MIB - 8n }),
    },
    {
      input: 'a ring with a misaligned descriptor table and used ring, kicked',
      send: ringWithAddress({ ...inside, descriptor: USER_BASE + 1n, used: USER_BASE + 0x2001n }),
    },
    {
      input: 'a ring whose addresses wrap past 2^64, kicked',
      send: ringWithAddress({ descriptor: U64_MAX - 7n, available: U64_MAX - 3n, used: U64_MAX - 15n }),
    },
  ];
}

function memoryInputs(): Input[] {
  const table = (regions: MemoryRegion[]) => encodeMemoryRegions({ regions });
  const memfds =
    (count: number, size = Number(MIB)): FdsOf =>
    (fds) =>
      Array.from({ length: count }, () => fds.memfd(size));
  const log = (size: bigint, offset: bigint, fdSize = 4096) =>
    send('SET_LOG_BASE', encodeLogDescription({ size, offset }), memfds(1, fdSize));
  return [
    {
      input: 'SET_MEM_TABLE of two regions overlapping in guest space',
      send: send(
        'SET_MEM_TABLE',
        table([region(), region({ guestAddress: MIB / 2n, userAddress: USER_BASE + 4n * MIB })]),
        memfds(2),
      ),
    },
    {
      input: 'SET_MEM_TABLE of two regions overlapping in user space',
      send: send(
        'SET_MEM_TABLE',
        table([region(), region({ guestAddress: 4n * MIB, userAddress: USER_BASE + MIB / 2n })]),
        memfds(2),
      ),
    },
    {
      input: 'SET_MEM_TABLE of a zero-size region',
      send: send('SET_MEM_TABLE', table([region({ size: 0n })]), memfds(1)),
    },
    {
      input: 'SET_MEM_TABLE of a region whose mmap offset + size passes the end of its fd',
      send: send('SET_MEM_TABLE', table([region({ mmapOffset: MIB })]), memfds(1)),
    },
    {
      input: 'SET_MEM_TABLE of a region 2 MiB long in a 1 MiB fd',
      send: send('SET_MEM_TABLE', table([region({ size: 2n * MIB })]), memfds(1)),
    },
    {
      input: 'SET_MEM_TABLE of a region whose mmap offset + size wraps past 2^64',
      send: send('SET_MEM_TABLE', table([region({ mmapOffset: U64_MAX - 4095n })]), memfds(1)),
    },
    {
      input: 'SET_MEM_TABLE of a region whose guest address + size wraps past 2^64',
      send: send('SET_MEM_TABLE', table([region({ guestAddress: U64_MAX - 4095n })]), memfds(1)),
    },
    {
      input: 'SET_MEM_TABLE saying 9 regions',
      send: send(
        'SET_MEM_TABLE',
        Buffer.concat([Buffer.from([9, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(9 * 32)]),
        memfds(8),
      ),
    },
    {
      input: 'SET_MEM_TABLE saying 0xFFFFFFFF regions',
      send: send(
        'SET_MEM_TABLE',
        Buffer.concat([Buffer.from([255, 255, 255, 255, 0, 0, 0, 0]), Buffer.alloc(32)]),
        memfds(1),
      ),
    },
    {
      input: 'ADD_MEM_REG of a region past the end of its fd',
      send: send('ADD_MEM_REG', encodeSingleMemoryRegion(region({ mmapOffset: MIB })), memfds(1)),
    },
    {
      input: 'ADD_MEM_REG of a zero-size region',
      send: send('ADD_MEM_REG', encodeSingleMemoryRegion(region({ size: 0n })), memfds(1)),
    },
    { input: 'SET_LOG_BASE of 2^64-1 bytes', send: log(U64_MAX, 0n) },
    { input: 'SET_LOG_BASE at offset 2^63', send: log(4096n, 1n << 63n) },
    { input: 'SET_LOG_BASE whose offset + size wraps past 2^64', send: log(8192n, U64_MAX - 4095n) },
    { input: 'SET_LOG_BASE of 8 KiB in a 4 KiB fd', send: log(8192n, 0n) },
  ];
}

const NEEDS = [NEEDS_SOCKET];

/**
 * The budget and run of a check of `inputs`, one after the other on a back-end kept from input to input while
 * it serves new connections (kept.ts), else each on a fresh launch. Each input is a launch or a new connection
 * (whose GET_FEATURES may wait the deadline), a send and a probe that may each wait it, and, when a kept
 * back-end failed on it, the same again on a fresh launch (a back-end that hangs on every one of them still
 * gets its verdict with every input named).
 */
function inputsCheck(inputs: readonly Input[]): Pick<Check, 'budgetMs' | 'run'> {
  return {
    budgetMs: (timeoutMs) => inputs.length * (7 * timeoutMs + 2000) + 5000,
    run: async (ctx) => {
      const use: Use = { ctx, fds: new Fds(ctx) };
      const backends = new KeptBackends<BadInput>(ctx, (subject, input) => judgeInput(ctx, subject, input));
      try {
        return await tryInputs(
          ctx,
          inputs.map(({ input, send, probe }) => ({
            input,
            send: (s: Subject) => send(s, use),
            ...(probe ? { probe: (s: Subject) => probe(s, use) } : {}),
          })),
          { attempt: backends.attempt },
        );
      } finally {
        await backends.close();
      }
    },
  };
}

export const controlChecks = defineChecks(
  'robustness',
  [
    {
      id: 'robust.ctl.framing',
      detail:
        "each on a back-end of its own (a fresh launch, or a new connection to one kept from earlier inputs; a failure seen only after earlier inputs is reported, not counted: see [The crash oracle](#the-crash-oracle)): a header cut short then end of stream, versions 0, 2 and 3, size 0xFFFFFFFF, the reply flag or undefined flags on a request, payloads shorter or longer than the request's, a message cut mid-payload then the connection closed: it answers the next `GET_FEATURES` (or a new front-end) or closes, never dies of it (a signal, or an exit with a crash signature on stderr: see [The crash oracle](#the-crash-oracle)), never hangs; the message says which inputs closed",
      ...inputsCheck(framingInputs()),
      title:
        'malformed headers and payload sizes: it answers the next request or closes, never crashes or hangs',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: RobustSpec.messages,
      needs: NEEDS,
    },
    {
      id: 'robust.ctl.request-id',
      detail:
        'the same, for request ids 0, just past the last defined one (twice, once with need_reply), 0x7FFFFFFF and 0xFFFFFFFF',
      ...inputsCheck(requestIdInputs()),
      title: 'unknown request ids: it answers the next request or closes, never crashes or hangs',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: RobustSpec.frontendMessages,
      needs: NEEDS,
    },
    {
      id: 'robust.ctl.fds',
      detail:
        "the same, for 9 and 16 fds, fds on messages that take none, `SET_VRING_KICK`/`CALL`, `SET_MEM_TABLE`, `SET_LOG_BASE`, `SET_BACKEND_REQ_FD` without their fd, a regular file and a hung-up socket as kick or call fd, an eventfd as a region's fd",
      ...inputsCheck(fdInputs()),
      title: 'too many, unexpected, missing and wrong-kind fds: it answers the next request or closes',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: RobustSpec.messages,
      needs: NEEDS,
    },
    {
      id: 'robust.ctl.vring',
      detail:
        'the same, for vring indexes out of range in every vring message, `SET_VRING_NUM` 0, 3, 32768, 65536 and 0xFFFFFFFF, `SET_VRING_KICK` or `CALL` again on a running ring, and rings set up and kicked whose addresses are outside guest memory, misaligned or wrap past 2^64',
      ...inputsCheck(vringInputs()),
      title:
        'vring indexes out of range, bad sizes, ring addresses outside memory or misaligned: it answers or closes',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: RobustSpec.frontendMessages,
      needs: NEEDS,
    },
    {
      id: 'robust.ctl.memory',
      detail:
        'the same, for regions that overlap (guest or user space), are empty, pass the end of their fd or wrap past 2^64, 9 and 0xFFFFFFFF regions, `ADD_MEM_REG` of such regions, `SET_LOG_BASE` sizes and offsets that overflow or pass their fd',
      ...inputsCheck(memoryInputs()),
      title:
        'memory regions that overlap, are empty or pass their fd, log bases that overflow: it answers or closes',
      severity: 'SHOULD',
      interop: true,
      rule: HARDENING_RULE,
      spec: RobustSpec.frontendMessages,
      needs: NEEDS,
    },
  ],
  { destructive: true },
);
