import { expect } from 'chai';
import { SkipError, UsageError } from '../errors.js';
import { Scope } from '../process/scope.js';
import { ProtocolFeature, protocolFeatureList, VirtioFeature } from '../protocol/spec.js';
import { expectNoFdLeaks } from '../sys/testing.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from '../transport/connection.js';
import { FrontendSession } from '../transport/session.js';
import { ackFeatures, initSession, PROFILES, profileNamed, virtioFeatureList } from './profiles.js';
import { type Offers, RecordingBackend, type Replay, replay as replayProfile } from './testing.js';

const bit = (n: number) => 1n << BigInt(n);
const P = ProtocolFeature;
/** Ring features every profile treats alike, and two that some leave out (EVENT_IDX, RING_PACKED). */
const OFFER =
  bit(VirtioFeature.VIRTIO_F_VERSION_1) |
  bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES) |
  bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX) |
  bit(VirtioFeature.VIRTIO_F_RING_PACKED);
/** Every protocol feature a profile reacts to, and GPA_ADDRESSES, which none acknowledges. */
const PROTOCOL = [
  P.MQ,
  P.LOG_SHMFD,
  P.REPLY_ACK,
  P.BACKEND_REQ,
  P.CONFIG,
  P.INFLIGHT_SHMFD,
  P.CONFIGURE_MEM_SLOTS,
  P.STATUS,
  P.GPA_ADDRESSES,
].reduce((acc, n) => acc | bit(n), 0n);
const OFFERS: Offers = { features: OFFER, protocol: PROTOCOL, queueNum: 2n, maxMemSlots: 8n };

/**
 * Start-up, device start with two rings of 16, and stop under `name` for a `device` (default block); what
 * the back-end saw (with `restart`: what the restart after the stop sent). The driver wants every ring
 * feature offered.
 */
async function replay(
  name: string,
  options: { restart?: boolean; device?: string } = {},
): Promise<{ log: string[]; needReply: boolean[]; protocol: boolean; acked: Replay['acked'] }> {
  const played = await replayProfile(name, {
    offers: OFFERS,
    wanted: OFFER,
    ...(options.device ? { device: options.device } : {}),
    ...(options.restart ? { restart: true } : {}),
  });
  const { protocol, acked } = played;
  if (options.restart) return { ...played.restart, protocol, acked };
  return {
    log: [...played.start.log, ...played.stop.log],
    needReply: [...played.start.needReply, ...played.stop.needReply],
    protocol,
    acked,
  };
}

const RING = (i: number, steps: string[]) => steps.map((s) => `SET_VRING_${s} ${i}`);
/** ADD_MEM_REG for each of the device's three regions. */
const ADD_MEM_REG = ['ADD_MEM_REG', 'ADD_MEM_REG', 'ADD_MEM_REG'];
const names = (bits: bigint | undefined) => protocolFeatureList(bits ?? 0n);

describe('frontend/profiles', () => {
  expectNoFdLeaks();

  it('names five profiles, qemu first; an unknown name is a usage error listing them', () => {
    expect(PROFILES.map((p) => p.name)).to.deep.equal([
      'qemu',
      'qemu-7.2',
      'qemu-legacy',
      'dpdk',
      'cloud-hypervisor',
      'crosvm',
    ]);
    expect(() => profileNamed('bochs')).to.throw(
      UsageError,
      /qemu, qemu-7.2, qemu-legacy, dpdk, cloud-hypervisor, crosvm/,
    );
  });

  // QEMU: vhost_virtqueue_stop falls back to virtio_queue_restore_last_avail_idx; cloud-hypervisor:
  // setup_vhost_user sends queue.avail_idx at every start.
  it('each profile that keeps an inflight buffer says which base it sends after a broken connection', () => {
    const bases = Object.fromEntries(
      PROFILES.filter((p) => p.inflight.length).map((p) => [p.name, p.baseAfterBreak]),
    );
    expect(bases).to.deep.equal({
      qemu: 'used-idx',
      'qemu-7.2': 'used-idx',
      'qemu-legacy': 'used-idx',
      'cloud-hypervisor': 'avail-idx',
    });
  });

  // QEMU hw/virtio/vhost-user.c vhost_user_backend_init, hw/virtio/vhost.c vhost_dev_init/start/stop,
  // hw/block/vhost-user-blk.c vhost_user_blk_start.
  it('qemu: protocol features, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_BACKEND_REQ_FD, SET_OWNER, GET_FEATURES; calls before SET_FEATURES; a block device gets the inflight buffer; ADD_MEM_REG; the status; ENABLE 0 before GET_VRING_BASE', async () => {
    const { log, needReply, acked } = await replay('qemu');
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
      'GET_STATUS',
      'SET_STATUS=8',
      'GET_INFLIGHT_FD 2x16',
      'SET_INFLIGHT_FD',
      'SET_FEATURES',
      'GET_STATUS',
      ...ADD_MEM_REG,
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
      'SET_STATUS=0',
    ]);
    // need_reply as QEMU sets it: on the memory and SET_VRING_ENABLE, not on the ring set-up or the status.
    const flagged = log.filter((_, i) => needReply[i]);
    expect([...new Set(flagged)]).to.deep.equal([
      'SET_BACKEND_REQ_FD',
      'ADD_MEM_REG',
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
    ]);
    expect(names(acked.protocol), 'everything offered up to DEVICE_STATE').to.deep.equal([
      'MQ',
      'LOG_SHMFD',
      'REPLY_ACK',
      'BACKEND_REQ',
      'CONFIG',
      'INFLIGHT_SHMFD',
      'CONFIGURE_MEM_SLOTS',
      'STATUS',
    ]);
    expect(acked.features, 'every ring feature offered').to.equal(OFFER);
  });

  it("names a device type's own feature bits by its kind, and the transport's for any type", () => {
    const features = (1n << 1n) | (1n << 32n);
    expect(virtioFeatureList(features, 'scsi')).to.deep.equal([
      'VIRTIO_SCSI_F_HOTPLUG',
      'VIRTIO_F_VERSION_1',
    ]);
    expect(virtioFeatureList(features, 'block')).to.deep.equal([
      'VIRTIO_BLK_F_SIZE_MAX',
      'VIRTIO_F_VERSION_1',
    ]);
    expect(virtioFeatureList(features, 'vsock')).to.deep.equal(['bit 1', 'VIRTIO_F_VERSION_1']);
    expect(virtioFeatureList(features, null)).to.deep.equal(['bit 1', 'VIRTIO_F_VERSION_1']);
  });

  it('qemu: a net device gets no CONFIG and no inflight buffer', async () => {
    const { log, acked } = await replay('qemu', { device: 'net' });
    expect(names(acked.protocol)).to.not.include('CONFIG');
    expect(log.filter((m) => m.includes('INFLIGHT'))).to.deep.equal([]);
    expect(log.slice(log.indexOf('SET_FEATURES'), log.indexOf('SET_FEATURES') + 6)).to.deep.equal([
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      ...ADD_MEM_REG,
    ]);
  });

  // vhost_input_realize sets a config notifier before it connects: vhost_user_backend_init keeps CONFIG.
  it('qemu, qemu-7.2 and crosvm keep CONFIG for an input device; dpdk and cloud-hypervisor, with no input device, do not', async () => {
    for (const name of ['qemu', 'qemu-7.2', 'crosvm']) {
      const { acked } = await replay(name, { device: 'input' });
      expect(names(acked.protocol), name).to.include('CONFIG');
    }
    for (const name of ['dpdk', 'cloud-hypervisor']) {
      const { acked } = await replay(name, { device: 'input' });
      expect(names(acked.protocol), name).to.not.include('CONFIG');
    }
  });

  // QEMU v7.2.0 hw/virtio/vhost-user.c vhost_user_dev_start, VHOST_USER_PROTOCOL_FEATURE_MASK; the orders
  // as recorded (test/data/frontends/qemu-7.2-*.json, checked by test/frontends/profiles-recorded.test.ts).
  it('qemu-7.2 (block): calls and errs at connect, the unmasked calls after the inflight buffer, no call per ring; SET_STATUS 0 first at stop; protocol features up to STATUS, no IN_ORDER', async () => {
    const current = await replay('qemu');
    const { log, acked } = await replay('qemu-7.2');
    const init = log.indexOf('SET_VRING_CALL 0');
    expect(log.slice(0, init)).to.deep.equal(current.log.slice(0, init));
    expect(log.slice(init)).to.deep.equal([
      'SET_VRING_CALL 0',
      'SET_VRING_ERR 0',
      'SET_VRING_CALL 1',
      'SET_VRING_ERR 1',
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      'GET_INFLIGHT_FD 2x16',
      'SET_INFLIGHT_FD',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'GET_STATUS',
      ...ADD_MEM_REG,
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
      'SET_STATUS=0',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
    expect(acked.protocol).to.equal(current.acked.protocol);
    const started = {
      profile: profileNamed('qemu-7.2'),
      device: 'net' as const,
      offered: OFFER,
      protocol: true,
    };
    expect(() => ackFeatures(started, OFFER, bit(VirtioFeature.VIRTIO_F_IN_ORDER))).to.not.throw();
    expect(() =>
      ackFeatures(
        { ...started, offered: OFFER | bit(VirtioFeature.VIRTIO_F_IN_ORDER) },
        0n,
        bit(VirtioFeature.VIRTIO_F_IN_ORDER),
      ),
    ).to.throw(SkipError, /qemu-7.2 front-end profile does not pass VIRTIO_F_IN_ORDER on to a net device/);
  });

  it('qemu-7.2 (block): a restart sends SET_FEATURES, the kept inflight buffer, the calls, SET_FEATURES again, the rings; no memory', async () => {
    expect((await replay('qemu-7.2', { restart: true })).log).to.deep.equal([
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      'SET_INFLIGHT_FD',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'GET_STATUS',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
    ]);
  });

  it('qemu-7.2 (net): rings enabled before SET_FEATURES, a call after each kick, no SET_VRING_ENABLE 0 at stop', async () => {
    const { log } = await replay('qemu-7.2', { device: 'net' });
    expect(log.slice(log.indexOf('SET_VRING_ERR 1') + 1)).to.deep.equal([
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      ...ADD_MEM_REG,
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'GET_STATUS',
      'SET_STATUS=15',
      'SET_STATUS=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
  });

  // vuf_start/vuf_stop (hw/virtio/vhost-user-fs.c), read in the source: the recording ends before the start.
  it('qemu-7.2 (fs): calls unmasked before and after the start, masked again after the stop', async () => {
    const { log } = await replay('qemu-7.2', { device: 'fs' });
    expect(log.slice(log.indexOf('SET_VRING_ERR 1') + 1)).to.deep.equal([
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      ...ADD_MEM_REG,
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_STATUS=0',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
    ]);
  });

  // vhost_user_backend_start/_stop (backends/vhost-user.c) for vhost-user-input, which has no guest_notifier_mask.
  it('qemu-7.2 (input): no call before the start, the unmasking calls after DRIVER_OK, none after the stop', async () => {
    const { log, acked } = await replay('qemu-7.2', { device: 'input' });
    expect(names(acked.protocol)).to.include('CONFIG');
    expect(log.slice(log.indexOf('SET_VRING_ERR 1') + 1)).to.deep.equal([
      'SET_FEATURES',
      'GET_STATUS',
      'SET_STATUS=8',
      ...ADD_MEM_REG,
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_STATUS=0',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
  });

  it('qemu-legacy: the same order without any protocol feature message or SET_VRING_ENABLE', async () => {
    const { log, protocol, acked } = await replay('qemu-legacy');
    expect(protocol).to.equal(false);
    expect(log).to.deep.equal([
      'GET_FEATURES',
      'SET_OWNER',
      'GET_FEATURES',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
    expect(acked.features, 'bit 30 left out').to.equal(
      OFFER & ~bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES),
    );
  });

  // DPDK drivers/net/virtio/virtio_user/virtio_user_dev.c virtio_user_dev_init, virtio_user_dev_set_features,
  // virtio_user_start_device, virtio_user_stop_device; vhost_user.c; virtio_user_ethdev.c set_status.
  it('dpdk: SET_OWNER first, no GET_QUEUE_NUM; SET_VRING_CALL for all queues before SET_FEATURES; status 0x0b and 0x0f, never 0; KICK last per ring', async () => {
    const { log, needReply, acked } = await replay('dpdk', { device: 'net' });
    expect(log).to.deep.equal([
      'SET_OWNER',
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_STATUS=11',
      'GET_STATUS',
      'GET_STATUS',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_STATUS=15',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
    expect(names(acked.protocol)).to.deep.equal(['MQ', 'REPLY_ACK', 'STATUS']);
    expect(
      log.filter((_, i) => needReply[i]),
      'need_reply only on the memory table and the status',
    ).to.deep.equal(['SET_STATUS=11', 'SET_MEM_TABLE', 'SET_STATUS=15']);
    expect(acked.features, 'no EVENT_IDX through virtio-user').to.equal(
      OFFER & ~bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX),
    );
  });

  it('dpdk sets up rx queues (even) before tx queues (odd)', () => {
    expect(profileNamed('dpdk').ringOrder?.([0, 1, 2, 3])).to.deep.equal([0, 2, 1, 3]);
  });

  // cloud-hypervisor virtio-devices/src/vhost_user/vu_common_ctrl.rs, blk.rs.
  it('cloud-hypervisor: SET_OWNER first; SET_MEM_TABLE even with memory slots; every SET_VRING_NUM, then the inflight buffer, then ADDR, BASE, CALL, KICK; no status', async () => {
    const { log, acked } = await replay('cloud-hypervisor');
    expect(log).to.deep.equal([
      'SET_OWNER',
      'GET_FEATURES',
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'GET_QUEUE_NUM',
      'SET_FEATURES',
      'SET_MEM_TABLE',
      'SET_VRING_NUM 0',
      'SET_VRING_NUM 1',
      'GET_INFLIGHT_FD 2x16',
      'SET_INFLIGHT_FD',
      ...RING(0, ['ADDR', 'BASE', 'CALL', 'KICK']),
      ...RING(1, ['ADDR', 'BASE', 'CALL', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_VRING_ENABLE 0=0',
      'SET_VRING_ENABLE 1=0',
      'GET_VRING_BASE 0',
      'GET_VRING_BASE 1',
    ]);
    expect(names(acked.protocol)).to.deep.equal([
      'MQ',
      'LOG_SHMFD',
      'REPLY_ACK',
      'CONFIG',
      'INFLIGHT_SHMFD',
      'CONFIGURE_MEM_SLOTS',
    ]);
    expect(acked.features, 'no packed rings').to.equal(OFFER & ~bit(VirtioFeature.VIRTIO_F_RING_PACKED));
  });

  // crosvm devices/src/virtio/vhost_user_frontend/mod.rs.
  it('crosvm: SET_BACKEND_REQ_FD then GET_QUEUE_NUM; each ring enabled as it starts, stopped one by one; no need_reply', async () => {
    const { log, needReply, acked } = await replay('crosvm');
    expect(log).to.deep.equal([
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
    expect(names(acked.protocol)).to.deep.equal(['MQ', 'REPLY_ACK', 'BACKEND_REQ', 'CONFIG']);
    expect(acked.features, 'packed rings removed').to.equal(OFFER & ~bit(VirtioFeature.VIRTIO_F_RING_PACKED));
  });

  it('skips, naming the profile, a check that needs what the front-end does not negotiate', async () => {
    const [channel, fd] = UnixChannel.pair();
    const backend = new RecordingBackend(channel, OFFERS);
    const connection = Connection.fromFd(fd, 1000);
    const scope = new Scope();
    try {
      const needsSlots = await initSession(profileNamed('dpdk'), new FrontendSession(connection), scope, {
        protocol: true,
        device: 'block',
        required: bit(ProtocolFeature.CONFIGURE_MEM_SLOTS),
      }).catch((e: unknown) => e);
      expect(needsSlots).to.be.instanceOf(SkipError);
      expect((needsSlots as Error).message).to.match(
        /dpdk front-end profile does not negotiate CONFIGURE_MEM_SLOTS/,
      );
      const started = {
        profile: profileNamed('dpdk'),
        device: 'net' as const,
        offered: OFFER,
        protocol: true,
      };
      expect(() => ackFeatures(started, OFFER, bit(VirtioFeature.VIRTIO_RING_F_EVENT_IDX))).to.throw(
        SkipError,
        /dpdk front-end profile does not pass VIRTIO_RING_F_EVENT_IDX on to a net device/,
      );
      // A bit not offered is the check's to report, not the profile's.
      expect(ackFeatures(started, 0n, bit(VirtioFeature.VIRTIO_F_IN_ORDER))).to.equal(
        bit(VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES),
      );
    } finally {
      expect(await scope.close()).to.deep.equal([]);
      connection.close();
      backend.close();
      await backend.done;
    }
  });

  it('restarts stopped rings with the ring steps of the profile start, each at its base, the status again', async () => {
    expect((await replay('qemu', { restart: true })).log).to.deep.equal([
      'GET_STATUS',
      'SET_STATUS=8',
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK', 'CALL']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'GET_STATUS',
      'SET_STATUS=15',
    ]);
    // DPDK's restart is a reset and a start again (recorded: test/data/frontends/dpdk-net.json).
    expect((await replay('dpdk', { restart: true, device: 'net' })).log).to.deep.equal([
      'SET_VRING_CALL 0',
      'SET_VRING_CALL 1',
      'SET_FEATURES',
      'SET_STATUS=11',
      'GET_STATUS',
      'GET_STATUS',
      'SET_MEM_TABLE',
      ...RING(0, ['NUM', 'BASE', 'ADDR', 'KICK']),
      ...RING(1, ['NUM', 'BASE', 'ADDR', 'KICK']),
      'SET_VRING_ENABLE 0=1',
      'SET_VRING_ENABLE 1=1',
      'SET_STATUS=15',
    ]);
    // crosvm sets no need_reply: every GET_FEATURES here is the harness's round trip.
    expect((await replay('crosvm', { restart: true })).log.filter((m) => m !== 'GET_FEATURES')).to.deep.equal(
      [
        ...RING(0, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
        'SET_VRING_ENABLE 0=1',
        ...RING(1, ['NUM', 'ADDR', 'BASE', 'CALL', 'KICK']),
        'SET_VRING_ENABLE 1=1',
      ],
    );
  });
});
