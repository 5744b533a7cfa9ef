/**
 * migrate.inflight on a device of any kind but block (whose body in inflight.ts writes and reads the disk): the
 * kind's sample request (harness/devices/kind.ts) on its sample ring, as migrate.resume moves any kind
 * (resume-any.ts), where the front-end profile keeps an inflight buffer for the kind's type. The same
 * exercise: samples made available together and one alone completed and recorded in the ring's queue region;
 * the rings stopped; samples made available and marked taken, a last batch left as a back-end that died while
 * supplying it leaves it (split: a fifth, completed out of order; packed: the one completed last); the
 * connection closed; a second one handed the same buffer and the base the profile sends after a broken
 * connection, each of the four left inflight completed once and judged (where the sample has a side effect the
 * harness sees, net's frame looped back, that too), the last batch not again, their entries cleared, traffic
 * going on.
 *
 * A kind whose samples need an opening request first (fs: FUSE_INIT) keeps a session in the back-end that a
 * new connection to a restarted back-end does not have: skipped, saying so.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, SkipError, TimeoutError, VhuError } from '../../harness/errors.js';
import { FrontendDevice, type Vring } from '../../harness/frontend/device.js';
import { HandoverPort } from '../../harness/frontend/handover.js';
import { startDevice, stopDevice } from '../../harness/frontend/profiles.js';
import { serveOnSocketPath } from '../../harness/process/probes.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { type PackedVirtqueue, packedBase } from '../../harness/virtqueue/packed.js';
import type { DriverQueue, VringPort } from '../../harness/virtqueue/port.js';
import type { SplitVirtqueue } from '../../harness/virtqueue/split.js';
import {
  type DeviceSetup,
  openDevice,
  type SampleCompletion,
  SampleDriver,
  samplesEffect,
} from '../common/device.js';
import { quietMs } from '../vring/common.js';
import { mapInflightBuffer } from './inflight-region.js';
import {
  expectUsedAtCrash,
  INFLIGHT_BIT,
  keptBuffer,
  packedTrack,
  splitTrack,
  usedWithin,
} from './inflight-tracks.js';
import { reconnect, startReconnected } from './reconnect.js';

/** Samples made available together on the first connection, and left for the second. */
const TOGETHER = 4;
const LEFT = 4;

/** The exercise with the kind's sample request, every ring of the device split or packed (`packed`). */
export async function samplesAcrossReconnection(ctx: CheckContext, packed: boolean): Promise<string> {
  const attach = ctx.target.connect !== null;
  const served = attach ? null : await serveOnSocketPath(ctx);
  const options = {
    ...(served ? { connection: served.connection } : {}),
    requiredProtocolFeatures: INFLIGHT_BIT,
  };
  const a: DeviceSetup<DriverQueue<unknown>> = packed
    ? await openDevice(ctx, { ...options, packed: true })
    : await openDevice(ctx, options);
  const { kind } = a;
  const kept = keptBuffer(a.started, a.session, kind.type);
  if (a.driver.needsOpening)
    throw new SkipError(
      `a ${kind.type} device's requests need an opening one first (its sample's), a session the back-end keeps ` +
        'and a restarted one has not: no request of the kind to leave inflight across a reconnection',
    );
  const buffer = mapInflightBuffer(
    ctx.scope,
    kept.fd,
    Number(kept.description.mmapSize),
    Number(kept.description.mmapOffset),
    kept.description.numQueues,
  );
  const ring = kind.sampleRing;
  const vringOf = (device: FrontendDevice, index: number) =>
    (packed ? device.packedRing(index) : device.ring(index)) as unknown as Vring<
      unknown,
      DriverQueue<unknown>
    >;
  const ports = new Map(
    kind.rings.map((index) => [
      index,
      new HandoverPort<unknown, DriverQueue<unknown>>(vringOf(a.device, index)),
    ]),
  );
  const port = ports.get(ring)!;
  const queue = port.queue;
  const track = packed
    ? packedTrack(buffer, ring, queue as PackedVirtqueue<unknown>, ctx.timeoutMs)
    : splitTrack(buffer, ring, queue as SplitVirtqueue<unknown>, a.started.profile);
  const driver = new SampleDriver(kind, port, kind.samples(a.device.memory), ctx.timeoutMs);
  // The kind's effect drives its other rings through what every queue has (DriverQueue).
  const effect = samplesEffect(
    ctx,
    kind,
    (index) => ports.get(index)! as unknown as VringPort<unknown>,
    a.device.memory,
  );
  effect?.arm();
  const where = `${kind.sampleRingName} (vring ${ring})`;

  // Recording: samples made available together, then one alone.
  const together = Array.from({ length: TOGETHER }, () => track.note(() => driver.postHead().head));
  driver.kick();
  for (const c of await driver.collect(TOGETHER)) driver.judge(c);
  const last = track.note(() => driver.postHead().head);
  driver.kick();
  await usedWithin(ctx, track, last);
  const recording = await track.recorded(together, last);
  if (recording.length)
    throw new BackendError(
      `after ${TOGETHER} ${kind.type} sample requests made available together on ${where} and one alone were ` +
        `completed on the first connection, the inflight buffer does not record them as the spec's steps do: ` +
        recording.join('; '),
    );

  const stopped = await stopDevice(a.started, a.device, kind.rings);
  const base = stopped.get(ring)!.availIndex;
  if (base !== track.consumedMark())
    throw new BackendError(
      `GET_VRING_BASE of ${where} returned ${track.describeBase(base)}, not ` +
        `${track.describeBase(track.consumedMark())}: every request made available was completed`,
    );
  // LEFT come back; the crash completes the rest (split: one, out of order).
  const pending = Array.from({ length: LEFT + track.completesAtCrash }, () =>
    track.note(() => driver.postHead().head),
  );
  const from = track.maxCounter() + 1n;
  const crash = track.crash(pending, from);
  const { marked } = crash;
  const final = driver.collectNow();
  expectUsedAtCrash(
    final.map((c) => c.id),
    last,
    crash,
  );
  driver.judge(final[0]!);
  const { base: resumeAt, note: baseWhat } = track.resume();
  a.session.connection.close();
  if (driver.collectNow().length)
    throw new BackendError(
      `the back-end used requests after GET_VRING_BASE stopped ${where} (at ${track.describeBase(base)}): none was kicked`,
    );

  const again = await reconnect(
    ctx,
    served
      ? { socket: served.socket, alive: () => served.backend.alive, exited: served.backend.exited }
      : null,
    [],
  );
  const { session, started } = await startReconnected(ctx, again, a);
  await kind.prepare?.(session, ctx.scope);
  const b = new FrontendDevice(session, ctx.scope, { memory: a.device.memory });
  // Every other ring resumes where its stop left it (a packed ring: its used position too, bits 16-31).
  const baseOf = (index: number): number => {
    if (index === ring) return resumeAt;
    const s = stopped.get(index)!;
    return packed ? packedBase(s.availIndex, s.reserved) : s.availIndex;
  };
  await startDevice(started, session, b, ctx.scope, {
    features: a.features,
    rings: kind.rings.map((index) => ({
      index,
      size: ports.get(index)!.queue.size,
      base: baseOf(index),
      queue: ports.get(index)!.queue as SplitVirtqueue<unknown>,
      packed,
    })),
    enable: started.protocol,
    inflight: kept,
  });
  for (const [index, p] of ports) p.handOver(vringOf(b, index));
  for (const [index, p] of ports) if (index !== ring) p.notify();
  const repair = crash.lastBatch;
  // Before any kick of the sample ring: what a back-end resubmits of its own accord (reported).
  await sleep(quietMs(ctx));
  const got: SampleCompletion[] = driver.collectNow();
  const beforeKick = got.length;
  driver.kick();
  try {
    if (got.length < LEFT) got.push(...(await driver.collect(LEFT - got.length)));
  } catch (err) {
    if (err instanceof TimeoutError)
      throw new BackendError(
        `${again.how}, the inflight buffer handed back (${marked}; ${repair}) and SET_VRING_BASE ` +
          `${track.describeBase(resumeAt)} on ${where}, then kicked: it completed ${got.length} of the ${LEFT} ` +
          `${kind.type} sample requests the buffer says were taken and not completed: ${LEFT - got.length} lost; ` +
          err.message,
      );
    if (err instanceof VhuError)
      throw new BackendError(
        `resubmitting the ${kind.type} sample requests inflight in the buffer (${marked}; ${repair}): ${err.message}`,
        { cause: err },
      );
    throw err;
  }
  await sleep(quietMs(ctx));
  const extra = driver.collectNow();
  if (extra.length)
    throw new BackendError(
      `used elements ${extra.map((c) => c.id).join(', ')} came again after the ${LEFT} resubmitted requests completed`,
    );
  for (const c of got) driver.judge(c);
  if (effect) {
    const deadline = performance.now() + ctx.timeoutMs;
    const unseen = () => got.filter((c) => !effect.seen(c.sample));
    while (unseen().length && performance.now() < deadline) await sleep(20);
    if (unseen().length)
      throw new BackendError(
        `${unseen()
          .map((c) => c.sample.what)
          .join(
            ', ',
          )}, resubmitted from the inflight buffer: ${effect.what} not seen within ${ctx.timeoutMs} ms`,
      );
  }
  const uncleared = track.uncleared(pending, last);
  if (uncleared.length)
    throw new BackendError(
      `heads ${uncleared.join(', ')} are still inflight in the buffer after they were resubmitted and ` +
        'completed: a further reconnection would do them again',
    );
  // Traffic goes on: the next requests are made available where the resubmitted ones end.
  const next = await driver.run(2).catch((err: unknown) => {
    if (!(err instanceof TimeoutError)) throw err;
    throw new BackendError(
      `the ${LEFT} ${kind.type} sample requests inflight in the buffer resubmitted, the next ones made ` +
        'available were not completed: the ring resumed past them, not where the requests taken end, from ' +
        `SET_VRING_BASE ${track.describeBase(resumeAt)}${baseWhat}; ${err.message}`,
      { cause: err },
    );
  });
  for (const c of next) driver.judge(c);
  const end = (await stopDevice(started, b, kind.rings)).get(ring)!.availIndex;
  if (end !== track.consumedMark())
    throw new BackendError(
      `GET_VRING_BASE of ${where} at the end returned ${track.describeBase(end)}, not ` +
        `${track.describeBase(track.consumedMark())}: every request made available was consumed`,
    );
  return (
    `a ${kind.type} device, ${where}: ${TOGETHER + 1} sample requests recorded (${track.recordedWhat}); ` +
    `${pending.length} marked inflight (${marked}) after the rings stopped, and ${repair}; ${again.how}, the ` +
    `buffer handed back, the ring at ${track.describeBase(resumeAt)}${baseWhat}: ${LEFT} each completed once (heads in the order ` +
    `${got.map((c) => c.id).join(', ')}; ${beforeKick} before any kick)` +
    `${effect ? ` (${effect.what}: each seen)` : ''}, judged, the entries cleared; it stopped at ` +
    track.describeBase(end)
  );
}
