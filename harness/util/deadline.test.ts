import { expect } from 'chai';
import { TimeoutError } from '../errors.js';
import { pollUntil } from './deadline.js';

/** A probe that answers once `ms` have passed since it was made. */
function answersAfter(ms: number): () => string | undefined {
  const at = performance.now() + ms;
  return () => (performance.now() >= at ? 'up' : undefined);
}

describe('util/deadline pollUntil', () => {
  it('times out at the deadline, naming what it waited for and the last error', async () => {
    let tries = 0;
    const err = await pollUntil(
      () => {
        tries++;
        throw new Error('ECONNREFUSED');
      },
      20,
      'a listening socket at /x',
    ).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
    expect((err as Error).message).to.equal(
      'timed out after 20 ms waiting for a listening socket at /x: last attempt: ECONNREFUSED',
    );
    expect(tries).to.be.above(1);
  });

  it('moves the deadline by the time the peer waited for a CPU, at most the deadline again', async () => {
    // Without it, a peer answering after 200 ms misses a 30 ms deadline; one answering after 45 ms, having
    // waited 40 ms for a CPU, is in time (30 + 30 ms: the grace is capped at the deadline).
    const late = await pollUntil(answersAfter(200), 30, 'x').catch((e: unknown) => e);
    expect(late).to.be.instanceOf(TimeoutError);
    expect(await pollUntil(answersAfter(45), 30, 'x', 5, () => 40)).to.equal('up');
    const starved = await pollUntil(
      () => undefined,
      20,
      'x',
      5,
      () => 1000,
    ).catch((e: unknown) => e);
    expect((starved as Error).message).to.equal(
      'timed out after 20 ms waiting for x: 20 ms more, the time it waited for a CPU',
    );
  });
});
