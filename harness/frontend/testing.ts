/**
 * Test support for the front-end profiles: a back-end that records what a profile sends, and `replay`, which
 * plays a profile's start-up, device start, stop and restart against it. Used by profiles.test.ts and by
 * test/frontends (the profiles against recordings of the real front-ends).
 */
import { expect } from 'chai';
import { Scope } from '../process/scope.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { decodeInflightDescription, encodeInflightDescription } from '../protocol/messages.js';
import { frontendRequestName, HeaderFlag } from '../protocol/spec.js';
import { closeFd } from '../sys/libc.js';
import { SharedMemory } from '../sys/memfd.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from '../transport/connection.js';
import { FrontendSession } from '../transport/session.js';
import { FrontendDevice } from './device.js';
import {
  ackFeatures,
  initSession,
  profileNamed,
  restartDevice,
  startDevice,
  stopDevice,
} from './profiles.js';

const REPLY = HeaderFlag.VERSION | HeaderFlag.REPLY;
/** The inflight buffer GET_INFLIGHT_FD hands out. */
const INFLIGHT_SIZE = 4096;

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

/** Messages that name a vring, by how their payload carries the index. */
const STATE = new Set([
  'SET_VRING_NUM',
  'SET_VRING_BASE',
  'GET_VRING_BASE',
  'SET_VRING_ENABLE',
  'SET_VRING_ADDR',
]);
const FILE = new Set(['SET_VRING_KICK', 'SET_VRING_CALL', 'SET_VRING_ERR']);

/** What the recording back-end answers. */
export interface Offers {
  /** GET_FEATURES. */
  features: bigint;
  /** GET_PROTOCOL_FEATURES. */
  protocol: bigint;
  /** GET_QUEUE_NUM. */
  queueNum: bigint;
  /** GET_MAX_MEM_SLOTS. */
  maxMemSlots: bigint;
}

/**
 * A back-end that records every message (with the vring index, and the value of SET_VRING_ENABLE and
 * SET_STATUS) and answers what needs an answer: GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 * GET_MAX_MEM_SLOTS (from `offers`), GET_STATUS, GET_INFLIGHT_FD (a memfd), GET_VRING_BASE, and need_reply
 * with 0. Log entries read `SET_VRING_CALL 0`, `SET_VRING_ENABLE 0=1`, `SET_STATUS=8`, `GET_INFLIGHT_FD 2x16`.
 */
export class RecordingBackend {
  readonly log: string[] = [];
  readonly needReply: boolean[] = [];
  /** The values of SET_PROTOCOL_FEATURES and SET_FEATURES, the last of each. */
  readonly acked: { protocol?: bigint; features?: bigint } = {};
  status = 0n;
  readonly #decoder = new FrameDecoder();
  readonly #fds: number[] = [];
  readonly #inflight: SharedMemory[] = [];
  readonly done: Promise<void>;

  constructor(
    readonly channel: UnixChannel,
    readonly offers: Offers,
  ) {
    this.done = this.#loop();
  }

  close(): void {
    this.channel.close();
    for (const fd of this.#fds) closeFd(fd);
    for (const buffer of this.#inflight) buffer.close();
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
    this.#fds.push(...frame.fds);
    const name = frontendRequestName(frame.request);
    let entry = name;
    if (STATE.has(name)) entry += ` ${frame.payload.readUInt32LE(0)}`;
    if (FILE.has(name)) entry += ` ${Number(frame.payload.readBigUInt64LE(0) & 0xffn)}`;
    if (name === 'SET_VRING_ENABLE') entry += `=${frame.payload.readUInt32LE(4)}`;
    if (name === 'SET_STATUS') entry += `=${frame.payload.readBigUInt64LE(0)}`;
    if (name === 'SET_PROTOCOL_FEATURES') this.acked.protocol = frame.payload.readBigUInt64LE(0);
    if (name === 'SET_FEATURES') this.acked.features = frame.payload.readBigUInt64LE(0);
    if (name === 'SET_STATUS') this.status = frame.payload.readBigUInt64LE(0);
    this.log.push(entry);
    this.needReply.push((frame.flags & HeaderFlag.NEED_REPLY) !== 0);
    const reply = (payload: Buffer, fds: number[] = []) =>
      this.channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload }), fds);
    if (name === 'GET_FEATURES') await reply(u64(this.offers.features));
    else if (name === 'GET_PROTOCOL_FEATURES') await reply(u64(this.offers.protocol));
    else if (name === 'GET_QUEUE_NUM') await reply(u64(this.offers.queueNum));
    else if (name === 'GET_MAX_MEM_SLOTS') await reply(u64(this.offers.maxMemSlots));
    else if (name === 'GET_STATUS') await reply(u64(this.status));
    else if (name === 'GET_INFLIGHT_FD') {
      const asked = decodeInflightDescription(frame.payload);
      this.log[this.log.length - 1] += ` ${asked.numQueues}x${asked.queueSize}`;
      const buffer = new SharedMemory(INFLIGHT_SIZE, 'inflight');
      this.#inflight.push(buffer);
      await reply(encodeInflightDescription({ ...asked, mmapSize: BigInt(INFLIGHT_SIZE), mmapOffset: 0n }), [
        buffer.fd,
      ]);
    } else if (name === 'GET_VRING_BASE') {
      const state = Buffer.alloc(8);
      state.writeUInt32LE(frame.payload.readUInt32LE(0), 0);
      await reply(state);
    } else if (frame.flags & HeaderFlag.NEED_REPLY) await reply(u64(0n));
  }
}

/** What one phase sent: log entries (without the harness's GET_FEATURES round trips) and their need_reply. */
export interface Sent {
  log: string[];
  needReply: boolean[];
}

export interface Replay {
  /** Start-up and device start. */
  start: Sent;
  /** The device stop. */
  stop: Sent;
  /** The restart after the stop (empty unless asked). */
  restart: Sent;
  /** Whether bit 30 was negotiated. */
  protocol: boolean;
  acked: RecordingBackend['acked'];
}

export interface ReplayOptions {
  /** The device type (default block). */
  device?: string;
  offers: Offers;
  /** The virtio features the driver (the check) wants; the profile cuts what its front-end does not pass on. */
  wanted: bigint;
  /** The rings: `count` of `size` (default two of 16). */
  rings?: { count: number; size: number };
  restart?: boolean;
}

/**
 * Start-up, device start, stop and (with `restart`) restart under profile `name`, against a recording
 * back-end answering `offers`; what the back-end saw in each phase.
 */
export async function replay(name: string, options: ReplayOptions): Promise<Replay> {
  const [channel, fd] = UnixChannel.pair();
  const backend = new RecordingBackend(channel, options.offers);
  const connection = Connection.fromFd(fd, 1000);
  const session = new FrontendSession(connection);
  const scope = new Scope();
  const { count, size } = options.rings ?? { count: 2, size: 16 };
  const indices = Array.from({ length: count }, (_, i) => i);
  let mark = 0;
  const phase = (): Sent => {
    const log = backend.log.slice(mark);
    const needReply = backend.needReply.slice(mark);
    mark = backend.log.length;
    const kept = withoutSync(log, needReply);
    return { log: kept.map((i) => log[i]!), needReply: kept.map((i) => needReply[i]!) };
  };
  try {
    const started = await initSession(profileNamed(name), session, scope, {
      protocol: true,
      device: options.device ?? 'block',
    });
    const device = new FrontendDevice(session, scope);
    await startDevice(started, session, device, scope, {
      features: ackFeatures(started, options.wanted),
      rings: indices.map((index) => ({ index, size })),
      enable: true,
    });
    const start = phase();
    const bases = await stopDevice(started, device, indices);
    expect([...bases.keys()].sort()).to.deep.equal(indices);
    const stop = phase();
    if (options.restart) {
      await restartDevice(started, device, new Map([...bases].map(([i, b]) => [i, b.availIndex + 7])), true);
    }
    const restart = phase();
    return { start, stop, restart, protocol: started.protocol, acked: { ...backend.acked } };
  } finally {
    expect(await scope.close()).to.deep.equal([]);
    connection.close();
    backend.close();
    await backend.done;
  }
}

/**
 * The indices of `log` but for the GET_FEATURES round trips the harness sends after a request that has no
 * reply of its own and went without need_reply (the start-up's SET_OWNER is followed by the front-end's own
 * GET_FEATURES instead).
 */
function withoutSync(log: readonly string[], needReply: readonly boolean[]): number[] {
  const sync = (i: number) =>
    log[i] === 'GET_FEATURES' &&
    i > 0 &&
    !log[i - 1]!.startsWith('GET_') &&
    log[i - 1] !== 'SET_OWNER' &&
    !needReply[i - 1];
  return log.map((_, i) => i).filter((i) => !sync(i));
}
