/**
 * Attach mode against DPDK's vhost-user net back-end: Debian's dpdk-testpmd (package dpdk-dev) with a
 * net_vhost port in io forwarding, which sends every frame it receives from the port back to it, so the
 * net checks' frames loop. The verdicts are what testpmd 22.11 was seen to do by hand.
 */
import { expect } from 'chai';
import type { Verdict } from '../harness/runner/types.js';
import { allChecks } from '../suites/index.js';
import { ANY_DEVICE } from '../suites/vring/any-device.js';
import { PACKED_RING_CHECKS } from '../suites/vring/packed.js';
import { expectClean, messageOf, verdicts } from './helpers.js';
import { testpmdRun } from './testpmd.js';

/** What testpmd 22.11 breaks or skips among the protocol and net checks; every other one of them passes. */
const EXPECTED: Record<string, Verdict> = {
  // SET_VRING_NUM for vring 257 (GET_QUEUE_NUM 128: past 2 x 128 + 1) gets no ack: it closes the connection
  // (SET_VRING_NUM of 0 or 3 entries is refused, acked 1). Vring 200, which it has, it acked 0.
  'proto.reply-ack.invalid': 'fail',
  // Without MRG_RXBUF the 12-byte header's num_buffers is never written (the guard bytes stay).
  'net.rx.num-buffers': 'fail',
  // Protocol features it does not offer.
  'proto.config.get': 'skip',
  'proto.config.window': 'skip',
  'proto.config.set': 'skip',
  'proto.config.set.refused': 'skip',
  'proto.inflight.get-fd': 'skip',
  'proto.reply.get-max-mem-slots': 'skip',
  'proto.reset-device': 'skip',
  // Checks that carry block traffic.
  'proto.mem-slots.add-rem': 'skip',
  // proto.log.dirty drives every device kind: the frames it loops back into receive buffers, and both used rings,
  // are marked in the log (lib/vhost/virtio_net.c logs each write through vhost_log_cache_write_iova).
  // Generated sequences: every step answered or the connection closed.
  'robust.fuzz': 'pass',
  // The ring-state checks drive every device kind (a frame on transmitq0, looped back on receiveq0): it holds
  // a ring's frames until SET_VRING_ENABLE 1 (rte_vhost_dequeue_burst skips a disabled queue), stops and
  // restarts where GET_VRING_BASE says, and reads the frames through a replaced memory table.
  ...Object.fromEntries([...ANY_DEVICE].map((id) => [id, 'pass' as const])),
  // The packed-ring checks drive every device kind too: it offers VIRTIO_F_RING_PACKED, INDIRECT_DESC and
  // EVENT_IDX (DPDK lib/vhost VIRTIO_NET_SUPPORTED_FEATURES), uses its transmit descriptors in place with its
  // ring wrap counter lap after lap, follows indirect tables (fill_vec_buf_packed_indirect), and notifies at
  // the descriptor the driver event suppression names (vhost_vring_call_packed).
  ...Object.fromEntries([...PACKED_RING_CHECKS].map((id) => [id, 'pass' as const])),
  // migrate.inflight (skipped, as any check of the migrate area not listed): VHOST_USER_PROTOCOL_FEATURES
  // (lib/vhost/vhost_user.h) leaves INFLIGHT_SHMFD out, and the net PMD's enqueue and dequeue record nothing
  // in a buffer (only an application calling rte_vhost_set_inflight_desc_*, the vhost_blk example, does).
  // Of any device type: two connections give one fingerprint (it serves the next front-end).
  'migrate.abi-stable': 'pass',
  // A feature set with a bit it does not offer is refused: vhost_user_set_features (lib/vhost/vhost_user.c,
  // "received invalid negotiated features") returns RTE_VHOST_MSG_RESULT_ERR, acked 1 to need_reply.
  'migrate.refuse-unknown': 'pass',
};

describe('attach mode: dpdk-testpmd with a vhost-user net port (io forwarding)', function () {
  this.timeout(90_000);
  // The data-plane robustness checks run on a testpmd of their own (below): every other check runs here.
  const pmd = testpmdRun([
    '--grep',
    '^(conv|proto|vring|migrate|net|fs|gpu|scsi|input|robust\\.(?!data\\.))',
  ]);

  it("has exactly the protocol and net verdicts seen by hand, the other devices' checks skipped", () => {
    const seen = Object.fromEntries(
      Object.entries(verdicts(pmd.run.report)).filter(([id]) => !id.startsWith('conv.')),
    );
    const expected = Object.fromEntries(
      allChecks
        .filter((c) => c.area !== 'conventions' && !c.id.startsWith('robust.data.'))
        // The robustness checks too: it survives every bad input, and leaks nothing.
        .map((c) => [
          c.id,
          EXPECTED[c.id] ?? (['protocol', 'net', 'robustness'].includes(c.area) ? 'pass' : 'skip'),
        ]),
    );
    expect(seen, pmd.run.stdout).to.deep.equal(expected);
    // net.rx.num-buffers is a MUST ("the device MUST set num_buffers to 1"): exit 1.
    expect(pmd.run.exitCode, pmd.run.stderr).to.equal(1);
  });

  it('offers no INFLIGHT_SHMFD: migrate.inflight is skipped, saying so', () => {
    expect(messageOf(pmd.run.report, 'migrate.inflight')).to.equal(
      'VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD is not offered',
    );
  });

  it('loops 200 frames back intact, on both queue pairs at once, and leaves num_buffers unwritten', () => {
    expect(messageOf(pmd.run.report, 'net.loopback')).to.match(/200 frames .* came back intact/);
    expect(messageOf(pmd.run.report, 'net.mq.pairs')).to.match(/^2 queue pairs \(of 4 tried\)/);
    expect(messageOf(pmd.run.report, 'net.rx.num-buffers')).to.match(/never written/);
  });

  it('spreads frames over mergeable buffers, completes partial checksums itself, and uses buffers in order', () => {
    // Offered and negotiated: MRG_RXBUF, CSUM with GUEST_CSUM, IN_ORDER. It completes every checksum in
    // software and sends the frames back unmarked; with IN_ORDER it writes a used element for every buffer
    // on split rings, and on packed rings one used descriptor for a batch of transmit buffers (how many are
    // batched depends on the timing: from one to most of them), receive buffers one each.
    expect(messageOf(pmd.run.report, 'net.rx.mergeable')).to.match(
      /^120 frames .* spread over up to 6 buffers/,
    );
    expect(messageOf(pmd.run.report, 'net.csum')).to.match(
      /^14 UDP and TCP frames .*: 14 completed, 0 still marked/,
    );
    expect(messageOf(pmd.run.report, 'net.in-order')).to.match(/^300 frames looped in order/);
    expect(messageOf(pmd.run.report, 'net.in-order.packed')).to.match(
      /^300 frames looped in order through packed rings of 48 descriptors; used descriptors covering batches: \d+ transmit and 0 receive buffers/,
    );
  });

  it('takes test frames round a packed ring of 19 descriptors, through indirect tables, and notifies where asked', () => {
    expect(messageOf(pmd.run.report, 'vring.packed.used')).to.match(
      /^\d+ net sample requests \(test frame \d+ \(128 bytes\) on transmitq0\) on transmitq0 \(vring 1\), 3 at a time, through a packed ring of 19 descriptors: \d+ descriptors used, [4-9] laps/,
    );
    expect(messageOf(pmd.run.report, 'vring.packed.indirect')).to.match(/each an indirect table/);
    expect(messageOf(pmd.run.report, 'vring.packed.event-idx')).to.match(
      /^38 net sample requests round a packed ring of 19 descriptors, a used buffer notification asked at each one's descriptor: each came/,
    );
  });

  it('holds a frame on a disabled transmitq0 until SET_VRING_ENABLE 1, and loops frames read through a new memory table', () => {
    for (const id of ['vring.enable-gates', 'vring.disable-stops'])
      expect(messageOf(pmd.run.report, id), id).to.match(
        /test frame \d+ \(128 bytes\) on transmitq0 held until SET_VRING_ENABLE 1, then done \(used\.len 0\)/,
      );
    expect(messageOf(pmd.run.report, 'vring.mem-table.replace')).to.match(
      /4 net sample requests with their buffers there completed well \(the frame coming back on receiveq0 .*: each seen\)/,
    );
  });

  it('answers or closes after every bad control message, and leaks no fd per reconnect', () => {
    expect(messageOf(pmd.run.report, 'robust.ctl.vring')).to.match(/^\d+ of 19 inputs answered/);
    // Its fdset thread closes a departed front-end's fds a while later: a few may still be open at the end.
    expect(messageOf(pmd.run.report, 'robust.leaks')).to.match(
      /reconnects \(negotiation, set-up, leave\): fds \d+ -> \d+ \([+-]0\.\d+\/iteration\)/,
    );
  });

  it('leaves nothing behind', () => {
    expectClean(pmd.run);
  });
});

describe('attach mode: dpdk-testpmd, malformed virtqueue content (robust.data.*) on a testpmd of its own', function () {
  this.timeout(90_000);
  const pmd = testpmdRun(['--grep', '^robust\\.data\\.']);

  it('takes every malformed chain without crashing or hanging', () => {
    expect(verdicts(pmd.run.report)['robust.data.chain'], pmd.run.stdout).to.equal('pass');
    expect(messageOf(pmd.run.report, 'robust.data.chain')).to.match(/^11 of 11 inputs answered\./);
  });

  it('writes a received frame into a receive buffer the driver marked device-readable', () => {
    expect(verdicts(pmd.run.report)['robust.data.buffers'], pmd.run.stdout).to.equal('fail');
    expect(messageOf(pmd.run.report, 'robust.data.buffers')).to.match(
      /^after the buffers the device writes marked device-readable, the device wrote where it may not .*: at guest 0x[0-9a-f]+: 00 00 00 00 00 00 00 00 00 00 .* of the device-readable buffer at guest 0x[0-9a-f]+ \(1526 bytes\), which the device only reads \(10 of 10 inputs answered\)$/,
    );
    expect(pmd.testpmd.process.exitCode, 'testpmd is still running').to.equal(null);
    expect(pmd.run.exitCode, pmd.run.stderr).to.equal(1);
  });

  it('leaves nothing behind', () => {
    expectClean(pmd.run);
  });
});
