/**
 * One input tried on a lane of its own: written, published and kicked, what the device made of it awaited,
 * the out-of-bounds oracle (bounds.ts) and the crash/hang oracle (oracle.ts, with the well-formed request
 * after it as the probe) asked, and a line saying what the device did.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError } from '../../../harness/errors.js';
import type { CheckContext } from '../../../harness/runner/check.js';
import {
  dataView,
  descTableSize,
  type RawDescriptor,
  type RawUsedElement,
  writeRawDescriptor,
} from '../../../harness/virtqueue/split-layout.js';
import { requireKind } from '../../common/device.js';
import { quietMs } from '../../vring/common.js';
import { crashReport, exitNote, outcomeAfter, releaseSubject, type Tried, tryInputs } from '../oracle.js';
import {
  outOfBounds,
  outOfBoundsError,
  partsNotWritable,
  publishedTo,
  readableBuffers,
  type Snapshot,
  snapshot,
} from './bounds.js';
import { chain, F, placed } from './chains.js';
import type { Input, Plan } from './inputs.js';
import { type Lane, SIZE, setUp, TABLE_ENTRIES } from './lane.js';

/** Writes `plan`'s descriptors into the ring's table and the indirect tables. */
function write(lane: Lane, plan: Plan): void {
  for (const [n, descs] of plan.tables ?? []) {
    const view = dataView(lane.memory.gpaToBytes(lane.tables[n], descTableSize(TABLE_ENTRIES)));
    descs.forEach((d, i) => {
      writeRawDescriptor(view, i, d);
    });
  }
  for (const [i, d] of plan.descs) lane.queue.setRawDescriptor(i, d);
}

/** Makes `plan`'s heads available (the kick is the caller's). */
function publish(lane: Lane, plan: Plan): void {
  const heads = plan.heads ?? [0];
  lane.queue.publishRaw(
    heads,
    plan.ahead === undefined ? {} : { availIdx: (lane.queue.lastAvailIdx + plan.ahead) & 0xffff },
  );
}

/**
 * Waits up to `ms` for what the device makes of the request: used elements, the connection closed, or
 * nothing. `until` ends the wait early on the elements it wants.
 */
async function awaitUsed(
  lane: Lane,
  ms: number,
  until: (elements: RawUsedElement[]) => boolean = (e) => e.length > 0,
): Promise<{ elements: RawUsedElement[]; moved: number; closed: boolean }> {
  const end = performance.now() + ms;
  const elements: RawUsedElement[] = [];
  let moved = 0;
  for (;;) {
    lane.ring.drainCalls();
    const before = lane.queue.lastUsedIdx;
    const taken = lane.queue.takeRawUsed();
    moved += (taken.usedIdx - before) & 0xffff;
    elements.push(...taken.elements);
    if (until(elements)) return { elements, moved, closed: false };
    if (lane.closed()) return { elements, moved, closed: true };
    const left = end - performance.now();
    if (left <= 0) return { elements, moved, closed: false };
    await sleep(Math.min(5, left));
  }
}

function describeAnswer(
  lane: Lane,
  got: { elements: RawUsedElement[]; moved: number; closed: boolean },
  ms: number,
): string {
  if (!got.elements.length) return got.closed ? 'closed the connection' : `used nothing within ${ms} ms`;
  const shown = got.elements
    .slice(0, 3)
    .map((e) => `id ${e.id} len ${e.len}`)
    .join(', ');
  const more = got.moved > 3 ? ` (used.idx moved by ${got.moved})` : '';
  return `used ${shown}${more}, the reply: ${judged(lane, got.elements[0]!.len)}`;
}

/**
 * What the device made of the well-formed request's buffers, as its kind judges a completion of `usedLen`
 * (Sample.judge): a note, or what is not that of the request done (a malformed request's reply may well not be).
 */
function judged(lane: Lane, usedLen: number): string {
  try {
    return lane.request.judge(usedLen);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * A well-formed request after the bad one, on descriptors at the top of the table: what the device made of it
 * (its kind's judgement) when it used it within `ms`, else undefined. The connection closed is a
 * BackendError, which the oracle takes as `closed`.
 */
async function queueStillWorks(
  lane: Lane,
  ms: number,
  posted: (before: Snapshot) => void,
): Promise<string | undefined> {
  lane.refill();
  const first = SIZE - lane.parts.length;
  const descs = chain(lane.parts, first);
  for (const [i, d] of placed(descs, first)) lane.queue.setRawDescriptor(i, d);
  const before = snapshot(lane, readableBuffers(lane, descs));
  lane.queue.publishRaw([first]);
  lane.trigger?.post();
  posted(publishedTo(lane, before));
  lane.ring.notify();
  lane.trigger?.kick();
  const got = await awaitUsed(lane, ms, (elements) => elements.some((e) => e.id === first));
  if (got.closed) throw new BackendError('the back-end closed the connection');
  const used = got.elements.find((e) => e.id === first);
  return used && judged(lane, used.len);
}

/** Inputs tried at once, each on a back-end of its own (tryInputs: one at a time in attach mode). */
const PARALLEL = 3;

/**
 * One input on a fresh subject: posted and kicked, its answer awaited (used, or nothing within half the quiet
 * window), the guard bytes checked, then the oracle with a well-formed request as the probe (and GET_VRING_BASE
 * when the queue does not take it), the guard bytes checked again. Throws on a crash, a hang or a write out
 * of bounds; returns the outcome and a line saying what the device did.
 */
async function tryInput(ctx: CheckContext, { input: named, build, writes }: Input): Promise<Tried> {
  // Half the quiet window for each wait: a device that takes a request at all takes it within milliseconds.
  const window = Math.round(quietMs(ctx) / 2);
  const { subject, lane } = await setUp(ctx, writes ?? false);
  try {
    const plan = build(lane);
    write(lane, plan);
    const descs = descriptorsOf(plan);
    // Without VIRTIO_RING_F_INDIRECT_DESC an indirect descriptor is malformed by itself: said wherever the
    // input is named, so that what the back-end did with it is read as such.
    const input =
      !lane.indirect && descs.some((d) => (d.flags & F.INDIRECT) !== 0)
        ? `${named} (VIRTIO_RING_F_INDIRECT_DESC not negotiated)`
        : named;
    const readable = readableBuffers(lane, descs);
    let before = snapshot(lane, [...readable, ...partsNotWritable(lane, descs, readable)]);
    publish(lane, plan);
    lane.trigger?.post();
    before = publishedTo(lane, before);
    lane.ring.notify();
    lane.trigger?.kick();
    const answer = describeAnswer(lane, await awaitUsed(lane, window), window);
    const bad = outOfBounds(lane, before);
    if (bad.length) throw outOfBoundsError(input, bad);
    let after = '';
    const outcome = await outcomeAfter(ctx, subject, input, async () => {
      if (lane.closed()) throw new BackendError('the back-end closed the connection');
      const works = await queueStillWorks(lane, window, (posted) => {
        before = posted;
      });
      after =
        works === undefined
          ? 'the queue stopped (GET_VRING_BASE answered)'
          : `the queue still works (${works})`;
      // A device that stopped the queue must still answer for it: a data plane stuck in a loop does not.
      if (works === undefined) await lane.device.stopRing(lane.ring.index);
    });
    // A second look at stderr: a child that died (virtiofsd's sandbox) may have said so after its parent closed.
    const report = crashReport(subject.backend?.stderrTail ?? '');
    if (report) throw new BackendError(`it crashed after ${input}: ${report}`);
    const later = outOfBounds(lane, before);
    if (later.length) throw outOfBoundsError(`a well-formed request after ${input}`, later);
    const note = exitNote(subject);
    return {
      outcome,
      line: `${input}: ${answer}${outcome === 'answered' ? `; ${after}` : answer.includes('closed') ? '' : '; then closed the connection'}${note ? `; ${note}` : ''}`,
    };
  } finally {
    await releaseSubject(subject);
  }
}

/**
 * Runs every input on the target's device kind, a few at once, each to its end (tryInputs), so that one report
 * names every input the device fails on.
 */
export function runInputs(ctx: CheckContext, inputs: readonly Input[]): Promise<string> {
  requireKind(ctx);
  return tryInputs(ctx, inputs, { parallel: PARALLEL, attempt: (input) => tryInput(ctx, input) });
}

/** Every descriptor `plan` writes, tables included. */
function descriptorsOf(plan: Plan): RawDescriptor[] {
  return [...plan.descs.map(([, d]) => d), ...(plan.tables ?? []).flatMap(([, t]) => t)];
}
