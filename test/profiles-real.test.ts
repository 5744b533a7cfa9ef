/**
 * The front-end profiles against real back-ends, each profile with its own feature lists
 * (harness/frontend/profiles.ts): dpdk-testpmd runs the net checks under all five, and gives each the same
 * verdict under every profile that can run it; the ones a profile's lists rule out are skipped, naming it.
 * With the dpdk profile, testpmd negotiates STATUS and starts its device only on the DRIVER_OK that profile
 * sets. The verdicts are what testpmd 22.11 was seen to do by hand.
 */
import { expect } from 'chai';
import { PROFILES } from '../harness/frontend/profiles.js';
import type { Verdict } from '../harness/runner/types.js';
import { expectClean } from './helpers.js';
import { testpmdRun } from './testpmd.js';

/** Checks a profile cannot run against testpmd, and the reason it gives. */
const RULED_OUT: Record<string, Record<string, RegExp>> = {
  // Neither asks GET_QUEUE_NUM: DPDK takes its queue count from devargs, qemu-legacy has no protocol features.
  'net.mq.pairs': {
    dpdk: /no GET_QUEUE_NUM answer \(MQ not offered, or the dpdk front-end does not ask\)/,
    'qemu-legacy': /no GET_QUEUE_NUM answer/,
  },
  'net.mq.steering': {
    dpdk: /no GET_QUEUE_NUM answer \(MQ not offered, or the dpdk front-end does not ask\)/,
    'qemu-legacy': /no GET_QUEUE_NUM answer/,
  },
  'net.packed.loopback': {
    'cloud-hypervisor':
      /cloud-hypervisor front-end profile does not pass VIRTIO_F_RING_PACKED on to a net device/,
    crosvm: /crosvm front-end profile does not pass VIRTIO_F_RING_PACKED on to a net device/,
  },
  // QEMU passes IN_ORDER on since 9.1.
  'net.in-order': {
    'qemu-7.2': /qemu-7.2 front-end profile does not pass VIRTIO_F_IN_ORDER/,
    crosvm: /crosvm front-end profile does not pass VIRTIO_F_IN_ORDER/,
  },
  'net.in-order.packed': {
    'qemu-7.2': /qemu-7.2 front-end profile does not pass VIRTIO_F_IN_ORDER on/,
    'cloud-hypervisor': /cloud-hypervisor front-end profile does not pass VIRTIO_F_RING_PACKED on/,
    crosvm: /crosvm front-end profile does not pass VIRTIO_F_RING_PACKED, VIRTIO_F_IN_ORDER on/,
  },
};

/** Verdicts testpmd earns under every profile that runs the check; every other net check passes. */
const SAME_EVERYWHERE: Record<string, Verdict> = {
  // Without MRG_RXBUF the 12-byte header's num_buffers is never written (see test/dpdk.test.ts).
  'net.rx.num-buffers': 'fail',
};

describe('front-end profiles: dpdk-testpmd under each profile, with its feature lists', function () {
  this.timeout(180_000);
  const pmd = testpmdRun(['--frontend', 'all', '--grep', '^net\\.'], { limitMs: 170_000 });

  it('gives each net check one verdict under every profile that can run it', () => {
    const matrix = pmd.run.report?.matrix?.checks ?? {};
    expect(Object.keys(matrix), pmd.run.stdout).to.include('net.loopback');
    for (const [check, row] of Object.entries(matrix)) {
      expect(Object.keys(row), check).to.have.members(PROFILES.map((p) => p.name));
      for (const [profile, verdict] of Object.entries(row)) {
        const expected = RULED_OUT[check]?.[profile] ? 'skip' : (SAME_EVERYWHERE[check] ?? 'pass');
        expect(verdict, `${check} under ${profile}: ${pmd.run.stdout}`).to.equal(expected);
      }
    }
    // net.rx.num-buffers is a MUST: exit 1.
    expect(pmd.run.exitCode, pmd.run.stderr).to.equal(1);
    expectClean(pmd.run);
  });

  it('says which profile rules a check out, and why', () => {
    for (const [check, profiles] of Object.entries(RULED_OUT)) {
      for (const [profile, reason] of Object.entries(profiles)) {
        const result = pmd.run.report?.checks.find((c) => c.id === check && c.frontend === profile);
        expect(result?.message, `${check}@${profile}`).to.match(reason);
      }
    }
  });
});
