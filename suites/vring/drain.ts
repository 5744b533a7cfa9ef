/**
 * The rounds of vring.get-vring-base.drain, for any driver: a batch kicked and the ring stopped at once,
 * judged the same way on every device (a completion after the reply fails; a request counted consumed but
 * used neither by the reply nor after it is lost, and reported).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { BackendError } from '../../harness/errors.js';

/** What one device's driver does in a round. */
export interface DrainRig<C> {
  /** The requests, for the summary ("reads", "block sample requests"). */
  readonly requests: string;
  /** The sample ring's name, for messages ("vring 0"). */
  readonly ring: string;
  /** The index after the last request made available. */
  lastAvail(): number;
  /** Posts `batch` requests and kicks the ring. */
  postBatch(batch: number): void;
  /** Stops the ring (every ring of the device, as the profile stops it); the base GET_VRING_BASE gave. */
  stop(round: number, batch: number): Promise<number>;
  /** Completions used by now. */
  collectNow(): readonly C[];
  /** Judges completions of requests done (throws a BackendError for one that is not). */
  judge(done: readonly C[]): void;
  /** Why the connection is gone, or undefined while it holds. */
  gone(): Promise<string | undefined>;
  /** Restarts the ring at `base` and kicks it; then waits for and judges `rest` completions. */
  restart(base: number, rest: number): Promise<void>;
}

/** Runs `rounds` rounds of `batch` requests; the summary of what the stops consumed. */
export async function drainRounds<C>(
  rig: DrainRig<C>,
  rounds: number,
  batch: number,
  quiet: number,
): Promise<string> {
  const consumedAt: number[] = [];
  const undrained: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    const before = rig.lastAvail();
    rig.postBatch(batch);
    const base = await rig.stop(round, batch);
    const used = rig.collectNow();
    const atReply = used.length;
    const consumed = (base - before) & 0xffff;
    expect(
      consumed <= batch,
      `round ${round}: GET_VRING_BASE returned ${base}, outside the ${before}..${rig.lastAvail()} made available`,
    ).to.equal(true);
    await sleep(quiet);
    const late = rig.collectNow().length;
    const gone = await rig.gone();
    // Used after the reply: the ring was processed while stopped. Counted consumed and used neither by the
    // reply nor after it: lost, which no sentence of 7.2 forbids (reported in the summary).
    if (late || gone) {
      throw new BackendError(
        `round ${round}: GET_VRING_BASE of ${rig.ring} replied with base ${base}: ${consumed} of the ${batch} ` +
          `requests just kicked were consumed, ${atReply} of them used by the reply` +
          (late ? `; ${late} more completed after the reply, on the stopped ring` : '') +
          (gone ? `; then ${gone}` : ''),
      );
    }
    if (atReply > consumed) {
      throw new BackendError(
        `round ${round}: ${atReply} requests were used, yet GET_VRING_BASE counts ${consumed} consumed (base ${base})`,
      );
    }
    rig.judge(used);
    consumedAt.push(consumed);
    if (atReply < consumed) undrained.push(`round ${round}: ${consumed - atReply}`);
    try {
      await rig.restart(base, batch - consumed);
    } catch (err) {
      if (!(err instanceof BackendError)) throw err;
      throw new BackendError(
        `round ${round}: restarting at base ${base} after GET_VRING_BASE (${consumed} consumed, ` +
          `${atReply} used by the reply): ${err.message}`,
        { cause: err },
      );
    }
    // The lost requests keep their descriptors: stop before the driver runs out of them.
    if (undrained.length) break;
  }
  const summary = `${consumedAt.length} rounds of ${batch} ${rig.requests} kicked and GET_VRING_BASE at once: ${consumedAt.join(', ')} consumed at the stop`;
  if (undrained.length === 0) return `${summary}, each used by the reply, none after`;
  return (
    `${summary}, none used after the reply; but requests counted consumed were used neither by the reply nor ` +
    `after it, so lost (7.2 does not make a back-end complete them before it replies): ${undrained.join('; ')}`
  );
}
