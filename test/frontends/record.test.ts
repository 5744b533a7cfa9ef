/**
 * The recordings of test/data/frontends are still what the real front-ends on this machine send: each
 * scenario is recorded again (QEMU 7.2 TCG through QMP, dpdk-testpmd through its stdin; see record.ts) and
 * compared, phase by phase and less what the guest decides (normalize.ts), with the stored one. A missing
 * qemu-system-x86_64 or dpdk-testpmd fails, naming its package. Every process, socket and file a recording
 * makes is gone after it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { leftovers } from '../helpers.js';
import { recordedDeal, recordedPhase } from './normalize.js';
import { loadRecording, type Phase, record, SCENARIOS } from './record.js';

const PHASES: Phase[] = ['start', 'stop', 'restart', 'quit'];

describe('recordings of the real front-ends, recorded again', function () {
  this.timeout(60_000);

  for (const scenario of SCENARIOS) {
    it(`${scenario}: the same messages in the same order as the stored recording`, async () => {
      const stored = loadRecording(scenario);
      const parent = await dir({ prefix: 'vhu-selftest-frontrec-', unsafeCleanup: true });
      const marker = `frontrec-${process.pid}-${scenario}`;
      try {
        const live = await record(scenario, { parent: parent.path, marker });
        expect(recordedDeal(live), 'offers, acknowledged features, rings').to.deep.equal(
          recordedDeal(stored),
        );
        for (const phase of PHASES) {
          expect(recordedPhase(live, phase), phase).to.deep.equal(recordedPhase(stored, phase));
        }
        expect(
          live.messages.filter((m) => m.channel === 'backend'),
          'back-end requests',
        ).to.deep.equal(stored.messages.filter((m) => m.channel === 'backend'));
        expect(leftovers(marker), 'processes left').to.deep.equal([]);
        expect(readdirSync(parent.path), 'files left').to.deep.equal([]);
        const dpdk = existsSync('/var/run/dpdk') ? readdirSync('/var/run/dpdk') : [];
        expect(
          dpdk.filter((d) => d.startsWith(`vhu-frontrec-${process.pid}-`)),
          'testpmd runtime left',
        ).to.deep.equal([]);
      } finally {
        await parent.cleanup();
      }
    });
  }
});
