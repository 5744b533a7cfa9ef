/**
 * migrate.resume on a device of any kind but block (whose body in resume.ts writes and reads a shared disk):
 * the kind's sample request (harness/devices/kind.ts: a frame on transmitq0, GET_DISPLAY_INFO, TEST UNIT
 * READY) moves as the ring-state checks drive it (suites/vring/any-device.ts). On the source, samples done,
 * then four made available and not kicked, every ring of the kind stopped in the profile's order; the
 * destination started with the guest's features, memory and queues, every ring at the source's base, and
 * kicked: what the source left is used there, each once and judged; where the sample has a side effect the
 * harness sees (net: the frame looped back on receiveq0), the effect of each is seen; traffic goes on.
 *
 * A kind whose samples need an opening request first (fs: FUSE_INIT) keeps a session in the back-end that
 * only the back-end's state carries to the destination: that move is migrate.device-state's, and this check
 * is skipped saying so.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { HandoverPort } from '../../harness/frontend/handover.js';
import { startDevice, stopDevice } from '../../harness/frontend/profiles.js';
import { serveOnSocketPath } from '../../harness/process/probes.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { openDevice, type SampleCompletion, SampleDriver, samplesEffect } from '../common/device.js';
import { dataPath } from '../vring/any-device.js';
import { quietMs } from '../vring/common.js';
import { destinationName, moveTarget, startDestination } from './destination.js';

/** Samples left on the source's ring, made available and not kicked. */
const LEFT = 4;

export async function resumeAnyKind(ctx: CheckContext): Promise<string> {
  const target = moveTarget(ctx);
  const source = await serveOnSocketPath(ctx);
  const a = await openDevice(ctx, { connection: source.connection });
  const { kind } = a;
  if (a.driver.needsOpening)
    throw new SkipError(
      `a ${kind.type} device's requests need an opening one first (its sample's), a session the back-end keeps: ` +
        'it moves with the back-end state (migrate.device-state), not with the rings',
    );
  const ports = new Map(kind.rings.map((index) => [index, new HandoverPort(a.device.ring(index))]));
  const port = ports.get(kind.sampleRing)!;
  const driver = new SampleDriver(kind, port, kind.samples(a.device.memory), ctx.timeoutMs);
  const effect = samplesEffect(ctx, kind, (index) => ports.get(index)!, a.device.memory);
  effect?.arm();
  await dataPath(kind, () => driver.run(2));

  // Left for the destination: made available, not kicked.
  const queue = port.queue;
  const from = queue.lastAvailIdx;
  const pending = Array.from({ length: LEFT }, () => driver.post());
  const stopped = await stopDevice(a.started, a.device, kind.rings);
  const base = stopped.get(kind.sampleRing)!.availIndex;
  const ring = `${kind.sampleRingName} (vring ${kind.sampleRing})`;
  const consumed = (base - from) & 0xffff;
  if (consumed > LEFT)
    throw new BackendError(
      `the source's GET_VRING_BASE of ${ring} returned ${base}: past the ${LEFT} requests made available from ${from}`,
    );
  // A back-end that polls may take requests never kicked: those are the source's to complete.
  const bySource = driver.collectNow();
  await sleep(quietMs(ctx));
  const late = driver.collectNow();
  if (late.length)
    throw new BackendError(
      `${late.length} ${kind.type} sample request(s) used by the source after its GET_VRING_BASE of ${ring} ` +
        `replied ${base}: its rings were stopped for the move`,
    );
  if (bySource.length !== consumed)
    throw new BackendError(
      `the source's GET_VRING_BASE of ${ring} counts ${consumed} of the requests left consumed (base ${base}, ` +
        `from ${from}), yet it used ${bySource.length}: the destination resumes at the base and would ` +
        (bySource.length < consumed ? 'never see the others (lost)' : 'do some again'),
    );

  // The destination: the same features, guest memory and queues, every ring at the source's base.
  const { session, started } = await startDestination(
    ctx,
    { features: a.features, session: a.session, started: a.started },
    [],
  );
  await kind.prepare?.(session, ctx.scope);
  const b = new FrontendDevice(session, ctx.scope, { memory: a.device.memory });
  await startDevice(started, session, b, ctx.scope, {
    features: a.features,
    rings: kind.rings.map((index) => ({
      index,
      size: a.device.ring(index).queue.size,
      base: stopped.get(index)!.availIndex,
      queue: a.device.ring(index).queue,
    })),
    enable: started.protocol,
  });
  for (const [index, p] of ports) p.handOver(b.ring(index));
  // A ring starts on a kick: the others first (net: receiveq0, where a looped frame goes), the sample ring last.
  for (const [index, p] of ports) if (index !== kind.sampleRing) p.notify();
  port.notify();

  const to = target === null ? 'the destination' : `the destination, ${destinationName(target)},`;
  const expected = LEFT - consumed;
  let got: SampleCompletion[];
  try {
    got = await driver.collect(expected);
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    throw new BackendError(
      `${to} started with SET_VRING_BASE ${base} on ${ring} and kicked, did not complete the ${expected} ` +
        `${kind.type} sample requests the source left available (avail.idx ${queue.lastAvailIdx}): ${err.message}`,
    );
  }
  await sleep(quietMs(ctx));
  const again = driver.collectNow();
  if (again.length)
    throw new BackendError(
      `${to} used ${expected + again.length} buffers for the ${expected} requests the source left: ` +
        `${again.length} done twice (used element ids ${again.map((c) => c.id).join(', ')})`,
    );
  for (const c of [...bySource, ...got]) driver.judge(c);
  if (effect) {
    const deadline = performance.now() + ctx.timeoutMs;
    let unseen = pending.filter((s) => !effect.seen(s));
    while (unseen.length && performance.now() < deadline) {
      await sleep(20);
      unseen = unseen.filter((s) => !effect.seen(s));
    }
    if (unseen.length)
      throw new BackendError(
        `${unseen.map((s) => s.what).join(', ')}, left by the source and used by ${to}: ${effect.what} not seen ` +
          `within ${ctx.timeoutMs} ms`,
      );
  }
  const on = await dataPath(kind, () => driver.run(2));
  for (const c of on) driver.judge(c);
  const end = (await stopDevice(started, b, kind.rings)).get(kind.sampleRing)!.availIndex;
  if (end !== queue.lastAvailIdx)
    throw new BackendError(
      `${to}'s GET_VRING_BASE of ${ring} at the end returned ${end}, not ${queue.lastAvailIdx}: every request ` +
        'made available was consumed',
    );
  return (
    `a ${kind.type} device: the source stopped at base ${base} of ${ring} with ${LEFT} sample requests left ` +
    `(${consumed} taken by the source itself); ${to} started at ${base} and kicked, ` +
    (expected
      ? `completed ${expected} once each${effect ? ` (${effect.what}: each seen)` : ''}`
      : 'had none left') +
    `, and traffic went on; it stopped at ${end}`
  );
}
