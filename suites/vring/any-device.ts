/**
 * The ring-state checks on a device of any kind but block (net, fs, gpu): the same rules as their block
 * bodies in lifecycle.ts and memory.ts, judged with the kind's sample request (harness/devices/kind.ts): a
 * frame on transmitq0, GETATTR of the root after FUSE_INIT, GET_DISPLAY_INFO. The checks of a disabled ring
 * judge a side effect, with the requests of the kind's watch where its samples have none the harness sees
 * (fs: MKDIR, gpu: SET_SCANOUT). Block keeps its own bodies, whose writes and sector contents judge more (a
 * side effect on the disk, the data read back).
 *
 * A sample's completion that is not well-formed (used.len, the reply) on a ring the check has not touched
 * yet is the data path's defect, which the kind's data-path check judges: the check is skipped naming it
 * (as `needs` skips the block bodies when vring.blk.read-write failed; the data-path checks of net, fs and
 * gpu run after the vring checks, so `needs` cannot name them).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type { DeviceKind, EffectWatch, Sample } from '../../harness/devices/kind.js';
import { SampleError } from '../../harness/devices/kind.js';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import type { CheckContext } from '../../harness/runner/check.js';
import {
  type DeviceSetup,
  openDevice,
  requireKind,
  type SampleCompletion,
  samplesEffect,
} from '../common/device.js';
import { connectionLost, hex, NEAR_WRAP, quietMs, restart, stopRings } from './common.js';
import { drainRounds } from './drain.js';
import { expectMoved, MOVED_REGION, MOVED_TO, staleOldMapping } from './memory-moves.js';

/** The vring checks that run on every device kind: a body here besides their block one. */
export const ANY_DEVICE: ReadonlySet<string> = new Set([
  'vring.get-vring-base',
  'vring.get-vring-base.drain',
  'vring.restart',
  'vring.restart.pending-kick',
  'vring.enable-gates',
  'vring.disable-stops',
  'vring.legacy-start',
  'vring.mem-table.replace',
]);

/** Whether the device under test is a block device (its checks keep their block bodies); skips a type with no kind. */
export function onBlock(ctx: CheckContext): boolean {
  return requireKind(ctx).type === 'block';
}

/**
 * Runs `body` (sample traffic on a running ring the check has not stopped or disabled yet): a SampleError
 * there is the data path's, a skip naming the kind's data-path check.
 */
export async function dataPath<T>(kind: DeviceKind, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof SampleError)) throw err;
    throw new SkipError(
      `the ${kind.type} sample request did not complete as the request done on a running ring (${err.message}): ` +
        `the data path is ${kind.dataPath}'s to judge, and this check needs it`,
    );
  }
}

function judgeAll(setup: DeviceSetup, got: readonly SampleCompletion[]): void {
  for (const c of got) setup.driver.judge(c);
}

/** Stops every ring of the kind; the sample ring's base. */
async function stopSampleRing(setup: DeviceSetup): Promise<{ base: number; bases: Map<number, number> }> {
  const bases = await stopRings(setup.started, setup.device, setup.kind.rings);
  return { base: bases.get(setup.kind.sampleRing)!, bases };
}

/**
 * Restarts every ring of the kind at its base, the sample ring's at `base`, and kicks the others: a ring
 * starts on a kick (net: receiveq0, whose buffers a looped frame goes to); the sample ring's kick is the
 * check's.
 */
async function restartAt(
  setup: DeviceSetup,
  bases: ReadonlyMap<number, number>,
  base: number,
): Promise<void> {
  const all = new Map(bases);
  all.set(setup.kind.sampleRing, base);
  await restart(setup.started, setup.device, all);
  for (const index of setup.kind.rings)
    if (index !== setup.kind.sampleRing) setup.device.ring(index).notify();
}

const ring = (setup: DeviceSetup) => `${setup.kind.sampleRingName} (vring ${setup.kind.sampleRing})`;

export async function getVringBase(ctx: CheckContext): Promise<string> {
  const setup = await openDevice(ctx);
  const count = 5;
  await dataPath(setup.kind, () => setup.driver.run(count));
  const { base } = await stopSampleRing(setup);
  const posted = setup.driver.posted;
  expect(
    base,
    `GET_VRING_BASE of ${ring(setup)} after ${posted} requests made available from index 0 and used: the next available index to process`,
  ).to.equal(posted);
  return `${ring(setup)} stopped at available index ${base} after ${posted} ${setup.kind.type} sample requests`;
}

export async function drain(ctx: CheckContext): Promise<string> {
  const quiet = Math.min(quietMs(ctx), 50);
  const setup = await openDevice(ctx);
  const { driver, kind } = setup;
  const queue = setup.ring.queue;
  await dataPath(kind, () => driver.run(1));
  let bases: ReadonlyMap<number, number> = new Map();
  return await drainRounds(
    {
      requests: `${kind.type} sample requests`,
      ring: ring(setup),
      lastAvail: () => queue.lastAvailIdx,
      postBatch(batch) {
        for (let i = 0; i < batch; i++) driver.post();
        driver.kick();
      },
      async stop(round, batch) {
        try {
          const stopped = await stopSampleRing(setup);
          bases = stopped.bases;
          return stopped.base;
        } catch (err) {
          if (!(err instanceof BackendError)) throw err;
          // The connection lost while the rings stop: a back-end completing a request after GET_VRING_BASE of
          // its ring dies of it when it closed the ring's call fd there (libvhost-user: "Error writing eventfd").
          throw new BackendError(
            `round ${round}: ${batch} requests kicked on ${ring(setup)} and every ring stopped at once ` +
              `(GET_VRING_BASE of vring ${kind.rings.join(', ')}): ${err.message}`,
            { cause: err },
          );
        }
      },
      collectNow: () => driver.collectNow(),
      judge: (done) => judgeAll(setup, done),
      gone: () => connectionLost(setup.device),
      async restart(base, rest) {
        setup.ring.kickFd.drain();
        await restartAt(setup, bases, base);
        driver.kick();
        if (rest) judgeAll(setup, await driver.collect(rest));
      },
    },
    10,
    8,
    quiet,
  );
}

export async function restartRing(ctx: CheckContext): Promise<string> {
  const quiet = quietMs(ctx);
  const setup = await openDevice(ctx, { base: NEAR_WRAP });
  const { driver } = setup;
  const queue = setup.ring.queue;
  await dataPath(setup.kind, () => driver.run(3));
  judgeAll(setup, await driver.run(4));
  const { base, bases } = await stopSampleRing(setup);
  expect(
    base,
    `GET_VRING_BASE of ${ring(setup)} after ${(queue.lastAvailIdx - NEAR_WRAP) & 0xffff} requests from ${NEAR_WRAP}, all used`,
  ).to.equal(queue.lastAvailIdx);
  driver.post();
  driver.post();
  driver.kick();
  await sleep(quiet);
  const stray = driver.collectNow();
  if (stray.length) throw new BackendError(`${stray.length} request(s) processed on the stopped ring`);
  setup.ring.kickFd.drain();
  await restartAt(setup, bases, base);
  driver.kick();
  const outstanding = driver.inFlight;
  try {
    judgeAll(setup, await driver.collect(outstanding));
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    throw new BackendError(
      `after the restart at base ${base}, not all of the ${outstanding} requests left in the ring completed ` +
        `(lost): ${err.message}`,
    );
  }
  judgeAll(setup, await driver.run(3));
  const { base: final } = await stopSampleRing(setup);
  expect(
    final,
    `GET_VRING_BASE at the end: every request made available from ${NEAR_WRAP} was consumed`,
  ).to.equal(queue.lastAvailIdx);
  return (
    `${setup.kind.type} sample requests on ${ring(setup)}: started at ${NEAR_WRAP}; stopped at ${base}; 2 requests ` +
    `posted and kicked while stopped stayed untouched; restarted at ${base}, they and 3 more completed once each; ` +
    `stopped again at ${final} past the 16-bit wrap`
  );
}

export async function pendingKick(ctx: CheckContext): Promise<string> {
  const quiet = quietMs(ctx);
  const setup = await openDevice(ctx);
  const { driver, started } = setup;
  await dataPath(setup.kind, () => driver.run(2));
  const { base, bases } = await stopSampleRing(setup);
  driver.post();
  driver.post();
  driver.kick();
  await sleep(quiet);
  const stray = driver.collectNow();
  if (stray.length) throw new BackendError(`${stray.length} request(s) processed on the stopped ring`);
  try {
    await restartAt(setup, bases, base);
    judgeAll(setup, await driver.collect(2));
  } catch (err) {
    const setUp =
      `restarted at base ${base} in the ${started.profile.name} profile's order with 2 requests made ` +
      `available on ${ring(setup)} and kicked while stopped (the kick eventfd handed over still readable), no kick after`;
    if (err instanceof TimeoutError) {
      throw new BackendError(`${setUp}: the pending kick was lost, ${err.message}`, { cause: err });
    }
    if (!(err instanceof BackendError)) throw err;
    throw new BackendError(`${setUp}: ${err.message}`, { cause: err });
  }
  const { base: final } = await stopSampleRing(setup);
  expect(final, 'GET_VRING_BASE once both completed').to.equal(setup.ring.queue.lastAvailIdx);
  return (
    `the 2 ${setup.kind.type} sample requests kicked while stopped completed after the restart at ${base} on the ` +
    `kick left pending, with no new one; stopped again at ${final}`
  );
}

export async function legacyStart(ctx: CheckContext): Promise<string> {
  const setup = await openDevice(ctx, { protocolFeatures: 'none' });
  const count = 4;
  await setup.driver.run(count);
  return `features ${hex(setup.features)}: ${setup.driver.posted} ${setup.kind.type} sample requests on ${ring(setup)} done without SET_VRING_ENABLE`;
}

/** Waits up to `ms` until `watch` saw the side effect of each of `samples`; whether it did. */
async function effectsWithin(watch: EffectWatch, samples: readonly Sample[], ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  for (;;) {
    if (samples.every((sample) => watch.seen(sample))) return true;
    if (performance.now() >= end) return false;
    await sleep(10);
  }
}

/** The watch of `setup`, when the kind has a side effect the harness can see here. */
const watchOf = (setup: DeviceSetup) => (typeof setup.watch === 'object' ? setup.watch : undefined);

/**
 * A sample posted and kicked on the sample ring while it is disabled (`phase` says how), with the opening
 * request before it when still due (fs: FUSE_INIT, gpu: the watch's resource; a ring never enabled has not
 * answered one), judged once it is enabled again: held until then and done after passes; executed while
 * disabled, its side effect seen (net: the frame came back; fs: the directory made; gpu: the scanout set),
 * fails; consumed while disabled with no side effect passes where the harness would have seen one (the
 * back-end shows its effect for a sample on the enabled ring), and is a skip where it would not (attach mode's
 * fs, whose folder is unknown; a net back-end that does not loop frames back): "started but disabled: the
 * back-end must process the ring without causing any side effects" allows processing, and nothing then tells
 * it from executing.
 */
async function judgeHeld(ctx: CheckContext, setup: DeviceSetup, phase: string): Promise<string> {
  const quiet = quietMs(ctx);
  const { driver, device, kind } = setup;
  const watch = watchOf(setup);
  const held = driver.needsOpening ? [driver.post()] : [];
  const sample = driver.post();
  held.push(sample);
  driver.kick();
  await sleep(quiet);
  const early = driver.collectNow();
  const usedEarly = early.find((c) => c.sample === sample);
  if (watch?.seen(sample)) {
    throw new BackendError(
      `${phase}: ${sample.what}, posted and kicked on ${ring(setup)} while it was disabled, was executed before ` +
        `SET_VRING_ENABLE 1: ${watch.what} was seen${usedEarly ? '' : ' (its buffer not yet used)'}; a disabled ring must be processed without side effects`,
    );
  }
  await device.enable(kind.sampleRing, true);
  const rest = held.length - early.length;
  const late: SampleCompletion[] = [];
  if (rest > 0) {
    driver.kick();
    late.push(
      ...(await dataPath(kind, async () => {
        const got = await driver.collect(rest);
        judgeAll(setup, got);
        return got;
      })),
    );
  }
  if (!usedEarly) {
    const done = late.find((c) => c.sample === sample)!;
    const opening = early.length ? `; ${held[0]!.what}, before it, was used while disabled` : '';
    return `${phase}: ${sample.what} held until SET_VRING_ENABLE 1, then done (${driver.judge(done)})${opening}`;
  }
  // Consumed while disabled, no effect seen in the window: is there one to see? A sample on the enabled ring
  // shows whether the back-end's samples have an effect the harness sees at all.
  const what = `${phase}: ${sample.what} was used (used.len ${usedEarly.len}) while ${ring(setup)} was disabled`;
  if (!watch) {
    const why =
      typeof setup.watch === 'string'
        ? `no side effect can be seen (${setup.watch})`
        : `a ${kind.type} sample has no side effect the harness can see`;
    throw new SkipError(
      `${what}; ${why}, and a disabled ring may be processed without side effects ("started but disabled: the ` +
        'back-end must process the ring without causing any side effects"): executed and discarded cannot be told apart',
    );
  }
  const [probe] = await dataPath(kind, () => driver.run(1));
  const shows = await effectsWithin(watch, [probe!.sample], ctx.timeoutMs);
  // Its effect came late, after the window: executed while disabled all the same.
  if (watch.seen(sample)) {
    throw new BackendError(
      `${what}, and executed: ${watch.what} was seen for it after SET_VRING_ENABLE 1, late; a disabled ring must ` +
        'be processed without side effects',
    );
  }
  if (!shows) {
    throw new SkipError(
      `${what}; the back-end does not show ${watch.what} for a sample on the enabled ring either, so executed and ` +
        'discarded cannot be told apart',
    );
  }
  return `${what} without side effect (${watch.what} not seen for it, seen for a sample once enabled)`;
}

export async function enableGates(ctx: CheckContext): Promise<string> {
  const quiet = quietMs(ctx);
  const setup = await openDevice(ctx, { protocolFeatures: 'require', enable: false, watch: true });
  const { device, kind } = setup;
  // The rings other than the sample ring are enabled (net: receiveq0, for the frame to come back in, where a
  // frame executed on the disabled transmitq0 would show).
  for (const index of kind.rings) if (index !== kind.sampleRing) await device.enable(index, true);
  watchOf(setup)?.arm();
  const note = await judgeHeld(ctx, setup, 'never enabled');
  return `${note} (quiet window ${quiet} ms)`;
}

export async function disableStops(ctx: CheckContext): Promise<string> {
  const quiet = quietMs(ctx);
  const setup = await openDevice(ctx, { protocolFeatures: 'require', watch: true });
  const { device, driver, kind } = setup;
  const watch = watchOf(setup);
  watch?.arm();
  // The ring ran traffic first, so it is started.
  const [first] = await dataPath(kind, () => driver.run(1));
  if (watch) await effectsWithin(watch, [first!.sample], quiet);
  await device.enable(kind.sampleRing, false);
  const note = await judgeHeld(ctx, setup, 'after SET_VRING_ENABLE 0');
  return `a ${kind.type} sample request ran, then ${note} (quiet window ${quiet} ms)`;
}

export async function memTableReplace(ctx: CheckContext): Promise<string> {
  const setup = await openDevice(ctx, { sampleRegion: MOVED_REGION });
  const { device, driver, kind } = setup;
  // The samples' own effect (net): fs and gpu samples show which mapping the device used by their replies.
  const watch = samplesEffect(ctx, kind, (i) => device.ring(i), device.memory);
  watch?.arm();
  const before = await dataPath(kind, () => driver.run(2));
  // A net sample is only read by the device: without its frame coming back, nothing shows which mapping the
  // device read it from.
  const loops = watch
    ? await effectsWithin(
        watch,
        before.map((c) => c.sample),
        ctx.timeoutMs,
      )
    : undefined;
  if (loops === false) {
    throw new SkipError(
      `${kind.type} sample requests have nothing the device writes, and ${watch!.what} did not come: nothing shows ` +
        'which mapping the device reads',
    );
  }
  const { base, bases } = await stopSampleRing(setup);
  const old = device.replaceRegion(MOVED_REGION, MOVED_TO);
  await device.setMemTable();
  staleOldMapping(old);
  await restartAt(setup, bases, base);
  // Fresh receive buffers too: what the stop did to those posted before is not this check's.
  watch?.arm();
  const how =
    `GET_VRING_BASE, SET_MEM_TABLE with guest ${hex(MOVED_REGION)} in a new memfd at user ` +
    `${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}, and the restart at base ${base}`;
  const count = 4;
  await expectMoved(old, how, async () => {
    const after = (await driver.run(count)).map((c) => c.sample);
    if (watch && !(await effectsWithin(watch, after, ctx.timeoutMs))) {
      throw new BackendError(
        `${watch.what}: ${after.filter((sample) => watch.seen(sample)).length} of ${count} frames read from the ` +
          'moved region came back intact',
      );
    }
  });
  return (
    `stopped at base ${base}; SET_MEM_TABLE moved guest ${hex(MOVED_REGION)} to a new memfd (user ` +
    `${hex(MOVED_TO.userAddress)}, mmap offset ${hex(MOVED_TO.mmapOffset)}); after the restart ${count} ${kind.type} ` +
    `sample requests with their buffers there completed well` +
    (watch ? ` (${watch.what}: each seen)` : '') +
    ', and the old mapping was not touched'
  );
}
