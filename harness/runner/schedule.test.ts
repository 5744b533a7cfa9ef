import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { type ScheduledStep, schedule, spreadLane } from './schedule.js';

/** Runs `steps` with `jobs`, each taking `ms[i]`; the order they started and ended in, and the most at once. */
async function trace(steps: ScheduledStep[], jobs: number, ms: number[], stopAfter?: number) {
  const events: string[] = [];
  let running = 0;
  let most = 0;
  let ended = 0;
  const results = await Promise.all(
    schedule(
      steps,
      jobs,
      async (i) => {
        running++;
        most = Math.max(most, running);
        events.push(`start ${i}`);
        await sleep(ms[i]!);
        events.push(`end ${i}`);
        running--;
        ended++;
        return i * 10;
      },
      () => stopAfter !== undefined && ended >= stopAfter,
    ),
  );
  return { events, most, results };
}

describe('runner/schedule', () => {
  it('one job: every step in plan order, one after the other', async () => {
    const steps = [0, 1, 2].map((i) => ({ lane: `own ${i}`, needs: [] }));
    const { events, most, results } = await trace(steps, 1, [5, 1, 1]);
    expect(events).to.deep.equal(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
    expect(most).to.equal(1);
    expect(results).to.deep.equal([0, 10, 20]);
  });

  it('runs steps of different lanes side by side, never more than `jobs`, each lane in order', async () => {
    const steps = [
      { lane: 'main', needs: [] },
      { lane: 'a', needs: [] },
      { lane: 'main', needs: [] },
      { lane: 'b', needs: [] },
    ];
    const { events, most } = await trace(steps, 2, [30, 5, 5, 5]);
    expect(most).to.equal(2);
    // Step 2 waits for step 0, its lane's; step 3 takes the slot step 1 frees.
    expect(events.slice(0, 2)).to.deep.equal(['start 0', 'start 1']);
    expect(events.indexOf('start 3')).to.be.below(events.indexOf('end 0'));
    expect(events.indexOf('start 2')).to.be.above(events.indexOf('end 0'));
  });

  it('gives a free slot to the lane with the most steps left first: the run waits on it', async () => {
    const steps = [
      { lane: 'a', needs: [] },
      { lane: 'b', needs: [] },
      { lane: 'c', needs: [] },
      { lane: 'main', needs: [] },
      { lane: 'main', needs: [] },
      { lane: 'main', needs: [] },
    ];
    const { events } = await trace(steps, 2, [5, 5, 5, 5, 5, 5]);
    // The main lane starts at once, though a, b and c come first in the plan; they share the other slot,
    // in plan order, and the main lane's next step is never left behind them.
    expect(events.slice(0, 2)).to.deep.equal(['start 3', 'start 0']);
    expect(events.indexOf('start 4')).to.be.below(events.indexOf('start 2'));
    expect(events.indexOf('start 1')).to.be.below(events.indexOf('start 2'));
  });

  it('starts first the step of a lane of its own that a long lane needs, before those nothing waits on', async () => {
    const steps = [
      { lane: 'a', needs: [] },
      { lane: 'b', needs: [] },
      { lane: 'c', needs: [] },
      { lane: 'gate', needs: [] },
      { lane: 'main', needs: [3] },
      { lane: 'main', needs: [] },
    ];
    const { events } = await trace(steps, 2, [5, 5, 5, 5, 5, 5]);
    expect(events.slice(0, 2)).to.deep.equal(['start 3', 'start 0']);
    expect(events.indexOf('start 4')).to.be.below(events.indexOf('start 2'));
  });

  it('of the steps as many wait on, starts first the one that may take longest (its weight)', async () => {
    const steps = [
      { lane: 'a', needs: [], weight: 1 },
      { lane: 'b', needs: [], weight: 1 },
      { lane: 'c', needs: [], weight: 9 },
    ];
    const { events } = await trace(steps, 1, [1, 1, 1]);
    // One job keeps plan order; two start the heavy one first.
    expect(events[0]).to.equal('start 0');
    const two = await trace(steps, 2, [1, 1, 1]);
    expect(two.events.slice(0, 2)).to.deep.equal(['start 2', 'start 0']);
  });

  it("spreadLane: the lane's steps side by side, a judging step after those before it, those after it after it", async () => {
    const steps: ScheduledStep[] = [
      { lane: 'main', needs: [] },
      { lane: 'own', needs: [] },
      { lane: 'main', needs: [1], weight: 7 },
      { lane: 'main', needs: [] },
      { lane: 'main', needs: [] },
      { lane: 'main', needs: [] },
    ];
    const spread = spreadLane(steps, 'main', (i) => i === 3);
    expect(spread).to.deep.equal([
      { lane: 'main#0', needs: [] },
      { lane: 'own', needs: [] },
      { lane: 'main#2', needs: [1], weight: 7 },
      { lane: 'main#3', needs: [0, 2] },
      { lane: 'main#4', needs: [3] },
      { lane: 'main#5', needs: [3] },
    ]);
    const { events } = await trace(spread, 3, [10, 1, 10, 5, 10, 10]);
    expect(events.indexOf('start 2')).to.be.below(events.indexOf('end 0'));
    expect(events.indexOf('start 3')).to.be.above(events.indexOf('end 0'));
    expect(events.indexOf('start 3')).to.be.above(events.indexOf('end 2'));
    expect(events.indexOf('start 4')).to.be.above(events.indexOf('end 3'));
    expect(events.indexOf('start 5')).to.be.below(events.indexOf('end 4'));
    // Two judging steps in a row: the second after the first.
    const judges = spreadLane(steps, 'main', (i) => i === 3 || i === 4);
    expect(judges[4]!.needs).to.deep.equal([3]);
    expect(judges[5]!.needs).to.deep.equal([4]);
  });

  it('starts a step beside running ones only when the admission lets it, asking again after retryMs', async () => {
    const asked: number[] = [];
    let open = false;
    const admission = {
      retryMs: 5,
      admit(running: number) {
        asked.push(running);
        return open;
      },
    };
    setTimeout(() => {
      open = true;
    }, 30);
    const steps = [0, 1, 2].map((i) => ({ lane: `own ${i}`, needs: [] }));
    const events: string[] = [];
    await Promise.all(
      schedule(
        steps,
        3,
        async (i) => {
          events.push(`start ${i}`);
          await sleep(i === 0 ? 60 : 1);
          events.push(`end ${i}`);
        },
        () => false,
        admission,
      ),
    );
    // The first starts unasked; the others wait for the admission, while the first still runs.
    expect(events.slice(0, 1)).to.deep.equal(['start 0']);
    expect(events.indexOf('start 1')).to.be.below(events.indexOf('end 0'));
    expect(asked.length).to.be.above(2);
    expect(asked.every((running) => running >= 1)).to.equal(true);
  });

  it('starts a step only once the steps it needs have ended, whatever their lane', async () => {
    const steps = [
      { lane: 'main', needs: [] },
      { lane: 'x', needs: [0] },
      { lane: 'y', needs: [] },
    ];
    const { events } = await trace(steps, 3, [20, 1, 1]);
    expect(events.indexOf('start 1')).to.be.above(events.indexOf('end 0'));
    expect(events.indexOf('start 2')).to.be.below(events.indexOf('end 0'));
  });

  it('starts nothing more once stopped: the steps not started resolve with undefined', async () => {
    const steps = [0, 1, 2, 3].map(() => ({ lane: 'main', needs: [] }));
    const { events, results } = await trace(steps, 2, [1, 1, 1, 1], 2);
    expect(events).to.deep.equal(['start 0', 'end 0', 'start 1', 'end 1']);
    expect(results).to.deep.equal([0, 10, undefined, undefined]);
  });

  it('a step that throws ends all the same: its promise rejects, the next starts', async () => {
    const promises = schedule(
      [
        { lane: 'main', needs: [] },
        { lane: 'main', needs: [0] },
      ],
      1,
      async (i) => {
        if (i === 0) throw new Error('boom');
        return 'second';
      },
    );
    const [first, second] = await Promise.allSettled(promises);
    expect(first!.status).to.equal('rejected');
    expect(second).to.deep.equal({ status: 'fulfilled', value: 'second' });
  });
});
