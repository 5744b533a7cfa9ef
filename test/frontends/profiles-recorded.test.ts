/**
 * The `qemu-7.2` and `dpdk` front-end profiles against recordings of the real front-ends
 * (test/data/frontends, made by test/frontends/record.ts through the recording relay): each profile is
 * played against a recording back-end that offers what the recorded back-end offered, for the same device
 * type, rings and guest feature choice, and must send the same messages, in the same order, with the same
 * need_reply, at start (start-up and device start), at stop and restart, and at quit (a stop). What the
 * guest decides is left out of the recording first (test/frontends/normalize.ts).
 */
import { expect } from 'chai';
import { replay, type Sent } from '../../harness/frontend/testing.js';
import { expectNoFdLeaks } from '../../harness/sys/testing.js';
import { memoryAsOne, recordedDeal, recordedPhase } from './normalize.js';
import { loadRecording, type Scenario } from './record.js';

/** Each recording, the profile it checks and the device type. */
const CASES: { scenario: Scenario; profile: string; device: string }[] = [
  { scenario: 'qemu-7.2-blk', profile: 'qemu-7.2', device: 'block' },
  { scenario: 'qemu-7.2-net', profile: 'qemu-7.2', device: 'net' },
  { scenario: 'qemu-7.2-fs', profile: 'qemu-7.2', device: 'fs' },
  { scenario: 'dpdk-net', profile: 'dpdk', device: 'net' },
];

/** Log entries with their need_reply, one line each (for a readable diff), memory regions as one. */
const lines = (sent: Sent) => {
  const one = memoryAsOne(sent);
  return one.log.map((e, i) => (one.needReply[i] ? `${e} (need_reply)` : e));
};

describe('front-end profiles against recordings of the real front-ends', () => {
  expectNoFdLeaks();

  for (const { scenario, profile, device } of CASES) {
    describe(`${profile} against ${scenario}`, () => {
      const recording = loadRecording(scenario);
      const deal = recordedDeal(recording);
      const play = () =>
        replay(profile, {
          device,
          offers: deal.offers,
          wanted: deal.features ?? deal.offers.features,
          rings: deal.rings,
          restart: true,
        });

      it('acknowledges the protocol and virtio features the front-end acknowledged', async () => {
        const played = await play();
        expect(played.acked.protocol, 'SET_PROTOCOL_FEATURES').to.equal(deal.protocol);
        if (deal.features !== undefined)
          expect(played.acked.features, 'SET_FEATURES').to.equal(deal.features);
      });

      if (deal.started) {
        it('sends the start-up and device start the front-end sent', async () => {
          const played = await play();
          expect(lines(played.start)).to.deep.equal(lines(recordedPhase(recording, 'start')));
        });

        it('stops and restarts the device as the front-end did', async () => {
          const played = await play();
          const recorded = recordedPhase(recording, 'stop');
          const restarted = recordedPhase(recording, 'restart');
          expect([...lines(played.stop), ...lines(played.restart)]).to.deep.equal([
            ...lines(recorded),
            ...lines(restarted),
          ]);
        });

        it('stops the device at quit as at a stop', async () => {
          const played = await play();
          expect(lines(played.stop)).to.deep.equal(lines(recordedPhase(recording, 'quit')));
        });
      } else {
        // The firmware has no driver for the device: the recording ends where QEMU would start it, and the
        // profile's start must begin with what it holds.
        it('begins with the start-up the front-end sent before the device start', async () => {
          const played = lines((await play()).start);
          const recorded = lines(recordedPhase(recording, 'start'));
          expect(played.slice(0, recorded.length)).to.deep.equal(recorded);
          expect(
            recordedPhase(recording, 'quit').log,
            'nothing at quit: no device was started',
          ).to.deep.equal([]);
        });
      }
    });
  }
});
