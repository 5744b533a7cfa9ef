import { expect } from 'chai';
import fc from 'fast-check';
import { FrontendRequest, HEADER_SIZE } from '../protocol/spec.js';
import {
  concretize,
  concretizeAll,
  type Draw,
  drawArbitrary,
  initialModel,
  type Model,
  messageBytes,
  ringEffect,
  stopRingSteps,
} from './steps.js';

const sequence = fc.array(drawArbitrary, { maxLength: 40 });

/** A model where rings 0 and 1 have their memory table, size and addresses: a valid kick is a kick. */
function setUp(): Model {
  const model = initialModel();
  model.memTable = true;
  for (const ring of model.rings) Object.assign(ring, { num: 8, addr: true });
  return model;
}

describe('fuzz/steps', () => {
  it('starts a ring on its kick (an eventfd, or none in polling mode), stops it on GET_VRING_BASE, and stops only those', () => {
    const kick = (pick: number, valid = true) => concretize(setUp(), { op: 'SET_VRING_KICK', valid, pick });
    // pick 0: ring 0 with an eventfd; 4: ring 0 polling; 3: ring 1 with an eventfd.
    expect(ringEffect(kick(0))).to.deep.equal({ start: 0 });
    expect(ringEffect(kick(4))).to.deep.equal({ start: 0 });
    expect(ringEffect(kick(3))).to.deep.equal({ start: 1 });
    // Without its fd, bit 8 clear; with 12 fds: refused, not started.
    expect(ringEffect(kick(0, false))).to.deep.equal({});
    expect(ringEffect(kick(2, false))).to.deep.equal({});
    expect(
      ringEffect(concretize(initialModel(), { op: 'SET_VRING_CALL', valid: true, pick: 0 })),
    ).to.deep.equal({});
    const stops = stopRingSteps(new Set([1, 0]));
    expect(stops.map((s) => s.what)).to.deep.equal(['GET_VRING_BASE ring 0', 'GET_VRING_BASE ring 1']);
    expect(stops.map(ringEffect)).to.deep.equal([{ stop: 0 }, { stop: 1 }]);
    expect(stopRingSteps(new Set())).to.deep.equal([]);
  });

  it('makes the same steps from the same draws (a seed replays exactly)', () => {
    fc.assert(
      fc.property(sequence, (draws) => {
        expect(concretizeAll(draws)).to.deep.equal(concretizeAll(structuredClone(draws)));
      }),
    );
  });

  it('never sends GET_FEATURES, the oracle probe, so that every GET_FEATURES reply answers a probe', () => {
    fc.assert(
      fc.property(sequence, (draws) => {
        for (const step of concretizeAll(draws))
          if (step.kind === 'message') expect(step.request).to.not.equal(FrontendRequest.GET_FEATURES);
      }),
    );
  });

  it('frames every message: header fields as given, size = payload length unless it announces 4 GiB', () => {
    fc.assert(
      fc.property(sequence, (draws) => {
        for (const step of concretizeAll(draws)) {
          if (step.kind !== 'message') continue;
          const bytes = messageBytes(step);
          expect(bytes.readUInt32LE(0)).to.equal(step.request >>> 0);
          expect(bytes.readUInt32LE(4)).to.equal(step.flags >>> 0);
          expect(bytes.length - HEADER_SIZE).to.equal(step.payload.length / 2);
          const size = bytes.readUInt32LE(8);
          if (size !== step.payload.length / 2) expect(size, step.what).to.equal(0xffff_ffff);
          if (step.fds.length > 8) expect(step.what).to.match(/with 12 fds/);
        }
      }),
    );
  });

  it('follows the model: valid set-up steps set up ring 0, and requests then use its size', () => {
    const model = initialModel();
    const draws: Draw[] = [
      { op: 'SET_MEM_TABLE', valid: true, pick: 0 },
      { op: 'SET_VRING_NUM', valid: true, pick: 4 },
      { op: 'SET_VRING_ADDR', valid: true, pick: 0 },
      { op: 'SET_VRING_KICK', valid: true, pick: 4 },
    ];
    const steps = draws.map((d) => concretize(model, d));
    expect(steps.map((s) => s.what)).to.deep.equal([
      'SET_MEM_TABLE one region',
      'SET_VRING_NUM ring 0 num 8',
      'SET_VRING_ADDR ring 0',
      'SET_VRING_KICK ring 0',
    ]);
    expect(model.memTable).to.equal(true);
    expect(model.rings[0]).to.deep.include({ num: 8, addr: true, kick: true });
    expect(steps[3]).to.deep.include({ kickRing: 0, fds: ['eventfd'] });
    const requests = [0, 4, 8].map((pick) => concretize(model, { op: 'request', valid: true, pick }));
    expect(requests.map((r) => (r.kind === 'request' ? [r.availSlot, r.availIdx] : []))).to.deep.equal([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
    // An invalid request that moves avail.idx past the queue size, as the data-plane suite does.
    const ahead = concretize(model, { op: 'request', valid: false, pick: 5 });
    expect(ahead.what).to.match(/^avail\.idx moved 9 ahead/);
  });

  it('sends a valid ring set-up step after what a front-end sends before it: memory table, size, addresses', () => {
    const model = initialModel();
    const kick: Draw = { op: 'SET_VRING_KICK', valid: true, pick: 4 };
    const steps = [
      concretize(model, { op: 'SET_VRING_ADDR', valid: true, pick: 0 }),
      concretize(model, kick),
      concretize(model, kick),
      concretize(model, kick),
    ];
    expect(steps.map((s) => s.what)).to.deep.equal([
      'SET_MEM_TABLE one region',
      'SET_VRING_NUM ring 0 num 8',
      'SET_VRING_ADDR ring 0',
      'SET_VRING_KICK ring 0',
    ]);
    // Ring 1's kick needs ring 1's own size and addresses; the memory table is there.
    expect(concretize(model, { ...kick, pick: 3 }).what).to.equal('SET_VRING_NUM ring 1 num 256');
    // Invalid steps come in any order.
    expect(concretize(initialModel(), { op: 'SET_VRING_ADDR', valid: false, pick: 2 }).what).to.equal(
      'SET_VRING_ADDR ring 4294967295 of a vring that does not exist',
    );
    expect(concretize(initialModel(), { op: 'SET_VRING_KICK', valid: false, pick: 0 }).what).to.match(
      /^SET_VRING_KICK ring 2 without its fd/,
    );
  });
});
