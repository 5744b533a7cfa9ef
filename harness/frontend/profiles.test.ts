import { expect } from 'chai';
import { UsageError } from '../errors.js';
import { Scope } from '../process/scope.js';
import { type DecodedFrame, FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { frontendRequestName, HeaderFlag, ProtocolFeature, VirtioFeature } from '../protocol/spec.js';
import { closeFd } from '../sys/libc.js';
import { expectNoFdLeaks } from '../sys/testing.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from '../transport/connection.js';
import { FrontendSession } from '../transport/session.js';
import { FrontendDevice } from './device.js';
import { initSession, PROFILES, profileNamed, restartDevice, startDevice, stopDevice } from './profiles.js';

const REPLY = HeaderFlag.VERSION | HeaderFlag.REPLY;
const bit = (n: number) => 1n << BigInt(n);
const OFFER = bit(VirtioFeature.VIRTIO_F_VERSION_1) | bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
const PROTOCOL =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.BACKEND_REQ) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS);

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
const FILE = new Set(['SET_VRING_KICK', 'SET_VRING_CALL']);

/**
 * A back-end that records every message (with the vring index, and the value of SET_VRING_ENABLE) and
 * answers what needs an answer: GET_FEATURES, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS,
 * GET_VRING_BASE, and need_reply with 0.
 */
class RecordingBackend {
  readonly log: string[] = [];
  readonly needReply: boolean[] = [];
  readonly #decoder = new FrameDecoder();
  readonly #fds: number[] = [];
  readonly done: Promise<void>;

  constructor(readonly channel: UnixChannel) {
    this.done = this.#loop();
  }

  close(): void {
    this.channel.close();
    for (const fd of this.#fds) closeFd(fd);
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
    this.log.push(entry);
    this.needReply.push((frame.flags & HeaderFlag.NEED_REPLY) !== 0);
    const reply = (payload: Buffer) =>
      this.channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload }));
    if (name === 'GET_FEATURES') await reply(u64(OFFER));
    else if (name === 'GET_PROTOCOL_FEATURES') await reply(u64(PROTOCOL));
    else if (name === 'GET_QUEUE_NUM') await reply(u64(2n));
    else if (name === 'GET_MAX_MEM_SLOTS') await reply(u64(8n));
    else if (name === 'GET_VRING_BASE') {
      const state = Buffer.alloc(8);
      state.writeUInt32LE(frame.payload.readUInt32LE(0), 0);
      await reply(state);
    } else if (frame.flags & HeaderFlag.NEED_REPLY) await reply(u64(0n));
  }
}

/** Start-up, device start with two rings, and stop under `name`; what the back-end saw. */
async function replay(
  name: string,
  restart = false,
): Promise<{ log: string[]; needReply: boolean[]; protocol: boolean }> {
  const [channel, fd] = UnixChannel.pair();
  const backend = new RecordingBackend(channel);
  const connection = Connection.fromFd(fd, 1000);
  const session = new FrontendSession(connection);
  const scope = new Scope();
  try {
    const profile = profileNamed(name);
    const started = await initSession(profile, session, scope, { protocolFeatures: PROTOCOL });
    const device = new FrontendDevice(session, scope);
    const features = OFFER & (started.protocol ? OFFER : ~bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES));
    await startDevice(started, session, device, scope, {
      features,
      rings: [0, 1].map((index) => ({ index, size: 16 })),
      enable: true,
    });
    const bases = await stopDevice(profile, device, [0, 1], started.protocol);
    expect([...bases.keys()].sort()).to.deep.equal([0, 1]);
    if (restart) {
      backend.log.length = 0;
      backend.needReply.length = 0;
      await restartDevice(started, device, new Map([...bases].map(([i, b]) => [i, b.availIndex + 7])), true);
    }
    return { log: [...backend.log], needReply: [...backend.needReply], protocol: started.protocol };
  } finally {
    expect(await scope.close()).to.deep.equal([]);
    connection.close();
    backend.close();
    await backend.done;
  }
}

/** The log without the GET_FEATURES round trips that follow requests sent without need_reply (all but the first). */
function withoutSync(log: string[]): string[] {
  return log.filter((m, i) => m !== 'GET_FEATURES' || log.indexOf(m) === i);
}

const RING = (i: number, steps: string[]) => steps.map((s) => `SET_VRING_${s} ${i}`);

describe('frontend/profiles', () => {
  expectNoFdLeaks();

  it('names five profiles, qemu first; an unknown name is a usage error listing them', () => {
    expect(PROFILES.map((p) => p.name)).to.deep.equal([
      'qemu',
      'qemu-legacy',
      'dpdk',
      'cloud-hypervisor',
      'crosvm',
    ]);
    expect(() => profileNamed('bochs')).to.throw(
      UsageError,
      /qemu, qemu-legacy, dpdk, cloud-hypervisor, crosvm/,
    );
  });

  // QEMU hw/virtio/vhost-user.c vhost_user_backend_init, hw/virtio/vhost.c vhost_dev_init/start/stop.
  it('qemu: protocol features, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_BACKEND_REQ_FD, SET_OWNER, GET_FEATURES; calls before SET_FEATURES; ENABLE 0 before GET_VRING_BASE', async () => {
    const { log, needReply } = await replay('qemu');
    expect(log).to.deep.equal([
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'GET_QUEUE_NUM',
      'GET_MAX_MEM_SLOTS',
      'SET_BACKEND_REQ_FD',
      'SET_OWNER',
      'GET_FEATURES',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
    expect(needReply[log.indexOf('SET_MEM_TABLE')], 'need_reply with REPLY_ACK').to.equal(true);
  });

  it('qemu-legacy: the same order without any protocol feature message or SET_VRING_ENABLE', async () => {
    const { log, protocol } = await replay('qemu-legacy');
    expect(protocol).to.equal(false);
    expect(withoutSync(log)).to.deep.equal([
      'GET_FEATURES',
      'SET_OWNER',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
  });

  // DPDK drivers/net/virtio/virtio_user/virtio_user_dev.c virtio_user_dev_init, virtio_user_start_device,
  // virtio_user_stop_device; vhost_user.c.
  it('dpdk: SET_OWNER first; SET_VRING_CALL for all queues before SET_FEATURES; KICK last per ring, no call after', async () => {
    const { log } = await replay('dpdk');
    expect(log).to.deep.equal([
      'SET_OWNER',
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'GET_QUEUE_NUM',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
  });

  it('dpdk sets up rx queues (even) before tx queues (odd)', () => {
    expect(profileNamed('dpdk').ringOrder?.([0, 1, 2, 3])).to.deep.equal([0, 2, 1, 3]);
  });

  // cloud-hypervisor virtio-devices/src/vhost_user/vu_common_ctrl.rs.
  it('cloud-hypervisor: SET_OWNER first; every SET_VRING_NUM first, then ADDR, BASE, CALL, KICK; SET_BACKEND_REQ_FD last', async () => {
    const { log } = await replay('cloud-hypervisor');
    expect(log).to.deep.equal([
      'SET_OWNER',
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      'SET_VRING_NUM 0',
      'SET_VRING_NUM 1',
      ...RING(0, ['ADDR', 'BASE', 'CALL', 'KICK']),
      ...RING(1, ['ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_BACKEND_REQ_FD',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
  });

  // crosvm devices/src/virtio/vhost_user_frontend/mod.rs.
  it('crosvm: SET_BACKEND_REQ_FD then GET_QUEUE_NUM; each ring enabled as it starts, stopped one by one; no need_reply', async () => {
    const { log, needReply } = await replay('crosvm');
    expect(withoutSync(log)).to.deep.equal([
      'SET_OWNER',
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'SET_BACKEND_REQ_FD',
      'GET_QUEUE_NUM',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      ...RING(1, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 1=1',
      'SET_VRING_ENABLE 0=0',
      'GET_VRING_BASE 0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 1',
    ]);
    expect(needReply.some(Boolean), 'REPLY_ACK negotiated, need_reply never set').to.equal(false);
  });

  it('restarts stopped rings with the ring steps of the profile start, each at its base', async () => {
    expect((await replay('qemu', true)).log).to.deep.equal([
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
    ]);
    // crosvm sets no need_reply: every GET_FEATURES here is the harness's round trip.
    expect((await replay('crosvm', true)).log.filter((m) => m !== 'GET_FEATURES')).to.deep.equal([
      ...RING(0, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      ...RING(1, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 1=1',
    ]);
  });
});
