/**
 * What migrate.inflight does to a queue region of either layout, behind one interface: it notes what it made
 * available (a split ring's heads; a packed ring's lists, read back from the ring as a back-end reads them),
 * judges what the back-end recorded of requests completed, writes the state a back-end that died between two
 * of the spec's steps leaves, and says where the ring resumes. The split steps are vhost-user.rst's
 * DescStateSplit ones, the packed steps its DescStatePacked ones (inflight-region.ts holds both layouts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import type { FrontendProfile } from '../../harness/frontend/profile.js';
import type { Started } from '../../harness/frontend/profiles.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import type { FrontendSession } from '../../harness/transport/session.js';
import {
  type PackedDescriptor,
  type PackedVirtqueue,
  packedAdvance,
  packedBase,
} from '../../harness/virtqueue/packed.js';
import type { SplitVirtqueue } from '../../harness/virtqueue/split.js';
import { type InflightBufferView, PackedInflightRegion, SplitInflightRegion } from './inflight-region.js';

export const INFLIGHT_BIT = 1n << BigInt(ProtocolFeature.INFLIGHT_SHMFD);

/**
 * The inflight buffer the front-end profile got for a device of `type` and keeps: a SkipError when there is
 * none (no protocol features, INFLIGHT_SHMFD not offered, a profile that keeps none for the type, an empty
 * buffer). A front-end that never hands the buffer back cannot rely on it: nothing to judge then.
 */
export function keptBuffer(
  started: Started,
  session: FrontendSession,
  type: string,
): NonNullable<Started['inflight']> {
  const profile = started.profile;
  if (!started.protocol)
    throw new SkipError(
      `no protocol features (VHOST_USER_F_PROTOCOL_FEATURES ${
        hasBit(started.offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES)
          ? `left out by the ${profile.name} profile`
          : 'not offered'
      }): no INFLIGHT_SHMFD`,
    );
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.INFLIGHT_SHMFD))
    throw new SkipError('VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD is not offered');
  if (!profile.inflight.some((t) => t === type))
    throw new SkipError(
      `the ${profile.name} profile keeps no inflight buffer for ${type} devices` +
        (profile.inflight.length ? ` (it keeps one for ${profile.inflight.join(', ')})` : ''),
    );
  const kept = started.inflight;
  if (!kept) throw new SkipError('GET_INFLIGHT_FD answered mmap_size 0: no buffer to track requests in');
  return kept;
}

/** Waits until the device used `noted`, posted alone after every earlier request was used, within the deadline. */
export async function usedWithin(ctx: CheckContext, track: InflightTrack, noted: Noted): Promise<void> {
  const deadline = performance.now() + ctx.timeoutMs;
  while (!track.used(noted)) {
    if (performance.now() > deadline)
      throw new TimeoutError(`the request posted alone (head ${noted.head}) used, kicked`, ctx.timeoutMs);
    await sleep(5);
  }
}

/**
 * A request as the track knows it: the head it was posted at (a split ring's head descriptor, a packed ring's
 * buffer id), where (the split ring's used idx once it alone is used; the packed ring's position), and (packed)
 * its list as the ring held it.
 */
export interface Noted {
  head: number;
  at: number;
  list?: PackedDescriptor[];
}

/** What `crash` wrote. */
export interface Crash {
  /** The requests left marked taken, for messages. */
  marked: string;
  /** Those of the requests left that the state has completed (their used elements written as a device does). */
  completed: Noted[];
  /** The last batch, published and not cleared, for messages: what the spec's repair must clear. */
  lastBatch: string;
}

/**
 * Throws unless the used elements collected right after the crash state was written (`heads`, in order) are
 * those of the request completed last and of those the state completed.
 */
export function expectUsedAtCrash(heads: readonly number[], last: Noted, crash: Crash): void {
  const completed = crash.completed.map((n) => n.head);
  if (heads.join() === [last.head, ...completed].join()) return;
  throw new BackendError(
    `${heads.length} completions came (heads ${heads.join(', ') || 'none'}) for the one request completed last ` +
      `(head ${last.head}), posted alone` +
      (completed.length ? `, and head ${completed.join(', ')}, completed by the state written` : ''),
  );
}

/** One layout's region, as the check drives it. */
export interface InflightTrack {
  /** 'split' or 'packed', for messages. */
  readonly layout: string;
  /** Posts a request with `post` and notes it (before the device can take it). */
  note(post: () => number): Noted;
  /** Whether the device has used `noted`, posted alone after every earlier request was used, not yet collected. */
  used(noted: Noted): boolean;
  /**
   * What the region should say once `together` (made available together, in that order) and then `last`
   * (alone) were completed: each finding one line, none for a region kept as the spec says.
   */
  recorded(together: readonly Noted[], last: Noted): Promise<string[]>;
  /** What `recorded` found right, for the message of a pass. */
  readonly recordedWhat: string;
  /** The largest counter in the region. */
  maxCounter(): bigint;
  /** How many of the requests left `crash` completes: the caller leaves that many more than it expects back. */
  readonly completesAtCrash: number;
  /**
   * The state a back-end that took `pending` (with counters from `from`) and died while supplying a last batch
   * leaves. Split: the second of `pending` completed out of order, alone, its used element written and the
   * used ring's idx increased, and it still inflight with used_idx one behind (the spec's steps cut before
   * their last two). Packed: the request completed last on the first connection, its entries linked back,
   * used_idx moved, not committed.
   */
  crash(pending: readonly Noted[], from: bigint): Crash;
  /** A GET_VRING_BASE/SET_VRING_BASE value, for messages. */
  describeBase(base: number): string;
  /**
   * SET_VRING_BASE's value for the ring after the crash, and a note on it to follow it in messages. Split: as
   * the front-end profile sends it after a broken connection, the used ring's idx or the available ring's.
   * Packed: past the requests left, the used position where the first is due (no note: the value says it).
   */
  resume(): { base: number; note: string };
  /** What a stop's GET_VRING_BASE must say once every request made available was consumed. */
  consumedMark(): number;
  /** The heads of `pending` and of `last` still marked inflight. */
  uncleared(pending: readonly Noted[], last: Noted): number[];
}

/** The split layout of vring `index`'s region: heads index the entries. */
export function splitTrack(
  buffer: InflightBufferView,
  index: number,
  queue: SplitVirtqueue<unknown>,
  profile: FrontendProfile,
): InflightTrack {
  const region = new SplitInflightRegion(buffer, index, queue.size);
  // Every profile that keeps a buffer says (harness/frontend/profiles.test.ts); QEMU's otherwise.
  const byUsedIdx = (profile.baseAfterBreak ?? 'used-idx') === 'used-idx';
  return {
    layout: 'split',
    recordedWhat: 'counters growing, none left inflight',
    note(post) {
      const at = (queue.rawUsedIdx + 1) & 0xffff;
      return { head: post(), at };
    },
    used: (noted) => queue.rawUsedIdx === noted.at,
    async recorded(together, last) {
      const usedIdx = last.at;
      const findings: string[] = [];
      if (region.lastBatchHead !== last.head)
        findings.push(
          `last_batch_head is ${region.lastBatchHead}, not ${last.head}, the head of the request completed last, alone`,
        );
      if (region.version !== 1)
        findings.push(`the region's version is ${region.version}, not 1 (0 is an uninitialized buffer)`);
      if (region.usedIdx !== usedIdx)
        findings.push(`used_idx is ${region.usedIdx}, the used ring's idx ${usedIdx}`);
      const stillInflight = region.inflightHeads();
      if (stillInflight.length)
        findings.push(`heads ${stillInflight.join(', ')} are inflight, though every request was completed`);
      // Each head's last use, in the order made available: its counter must grow.
      const heads = together.map((n) => n.head);
      const lastUse = heads.filter((h, i) => heads.lastIndexOf(h) === i);
      const counters = lastUse.map((h) => region.desc(h).counter);
      if (counters.some((c, i) => i > 0 && c <= counters[i - 1]!))
        findings.push(
          `the counters of heads ${lastUse.join(', ')}, made available in that order, are ${counters.join(', ')}: ` +
            'not growing as the global counter does',
        );
      return findings;
    },
    maxCounter: () => region.maxCounter(),
    completesAtCrash: 1,
    crash(pending, from) {
      for (const [k, n] of pending.entries()) region.markTaken(n.head, from + BigInt(k));
      // Completed before the first was: a back-end that resumes at the used ring's idx without the buffer
      // takes it again, and leaves the first behind.
      const done = pending[1]!;
      region.batchAlone(done.head);
      queue.supplyUsedRaw(done.head);
      return {
        marked:
          `heads ${pending.map((n) => n.head).join(', ')} inflight, counters ${from} to ` +
          `${from + BigInt(pending.length - 1)}`,
        completed: [done],
        lastBatch:
          `head ${done.head} completed out of order (its used element at used idx ${(queue.rawUsedIdx - 1) & 0xffff}), ` +
          "inflight too with used_idx one behind the used ring's idx: the last batch, which the spec's repair " +
          'clears rather than resubmits',
      };
    },
    describeBase: (base) => `${base}`,
    resume: () =>
      byUsedIdx
        ? { base: queue.rawUsedIdx, note: " (the used ring's idx)" }
        : { base: queue.lastAvailIdx, note: " (the available ring's idx)" },
    consumedMark: () => queue.lastAvailIdx,
    uncleared: (pending, last) =>
      [...pending, last].map((n) => n.head).filter((h) => region.desc(h).inflight !== 0),
  };
}

/**
 * The packed layout: a list's entries come from the free list, so a request's head entry is found by its
 * first descriptor (address and buffer id) and its length.
 */
export function packedTrack(
  buffer: InflightBufferView,
  index: number,
  queue: PackedVirtqueue<unknown>,
  timeoutMs: number,
): InflightTrack {
  const region = new PackedInflightRegion(buffer, index, queue.size);
  const entryOf = (n: Noted) => region.headOf(n.list![0]!, n.list!.length);
  const at = (position: number) => `${position & 0x7fff} (wrap ${position >> 15})`;
  let lastEntry: number | undefined;
  let lastHead = 0;
  return {
    layout: 'packed',
    recordedWhat:
      'the entry of the one completed last holding the largest counter and heading the free list, which holds ' +
      'every entry, none left inflight, used_idx committed',
    note(post) {
      const at = queue.availPosition;
      const head = post();
      return { head, at, list: queue.listAt(at) };
    },
    used: (noted) => queue.usedAt(noted.at),
    async recorded(_together, last) {
      // A back-end clears and commits right after it publishes: it is given a moment to.
      const settled = () => region.inflightEntries().length === 0 && region.oldUsed === region.used;
      const deadline = performance.now() + Math.min(timeoutMs, 500);
      while (!settled() && performance.now() < deadline) await sleep(5);
      const findings: string[] = [];
      if (region.version !== 1)
        findings.push(`the region's version is ${region.version}, not 1 (0 is an uninitialized buffer)`);
      const expected = packedAdvance(last.at, last.list!.length, queue.size);
      if (region.used !== expected)
        findings.push(
          `used_idx with used_wrap_counter is ${at(region.used)}, not ${at(expected)}, where the driver expects the next used descriptor`,
        );
      if (region.oldUsed !== region.used || region.oldFreeHead !== region.freeHead)
        findings.push(
          `old_used_idx ${at(region.oldUsed)} and old_free_head ${region.oldFreeHead} are not used_idx ` +
            `${at(region.used)} and free_head ${region.freeHead}, though every request was completed`,
        );
      const stillInflight = region.inflightEntries();
      if (stillInflight.length)
        findings.push(`entries ${stillInflight.join(', ')} are inflight, though every request was completed`);
      lastHead = last.head;
      lastEntry = entryOf(last);
      if (lastEntry === undefined)
        findings.push(`no entry records the request completed last (buffer id ${last.head})`);
      else if (region.freeHead !== lastEntry)
        findings.push(
          `free_head is ${region.freeHead}, not ${lastEntry}, the head entry of the request completed last, alone`,
        );
      const free = region.freeList().length;
      if (free !== queue.size)
        findings.push(
          `the free list from free_head holds ${free} entries, not every one of the ${queue.size} with nothing in flight`,
        );
      // A back-end that serves a list before it takes the next reuses the entries at once: of the lists made
      // available together only the latest can be left. The one completed last was taken last: its counter is
      // the largest.
      if (lastEntry !== undefined) {
        const counter = region.desc(lastEntry).counter;
        if (counter < region.maxCounter())
          findings.push(
            `the counter of head entry ${lastEntry}, the request taken last, is ${counter}, below the ` +
              `${region.maxCounter()} of an entry taken before it: not growing as the global counter does`,
          );
      }
      return findings;
    },
    maxCounter: () => region.maxCounter(),
    completesAtCrash: 0,
    crash(pending, from) {
      const entry = lastEntry!;
      region.unsupply(entry, queue.size);
      const heads = pending.map((n, k) => region.markTaken(n.list!, from + BigInt(k)));
      region.supplyUncommitted(entry, queue.size);
      return {
        marked:
          `head entries ${heads.join(', ')} inflight (buffer ids ${pending.map((n) => n.head).join(', ')}), ` +
          `counters ${from} to ${from + BigInt(pending.length - 1)}`,
        completed: [],
        lastBatch:
          `head ${lastHead}, completed last on the first connection, its entries linked back to the free list ` +
          "and used_idx moved past its used descriptor, not committed (old_used_idx behind): the spec's repair " +
          'commits it (the used descriptor is written) and clears it rather than resubmits it',
      };
    },
    describeBase: (base) =>
      base > 0xffff ? `available ${at(base & 0xffff)}, used ${at(base >>> 16)}` : at(base),
    // QEMU's packed base after a broken connection is its used position, as the split ring's (not played yet).
    resume: () => ({ base: packedBase(queue.availPosition, queue.usedPosition), note: '' }),
    consumedMark: () => queue.availPosition,
    uncleared(pending, last) {
      const heads = pending.flatMap((n) => {
        const e = entryOf(n);
        return e !== undefined && region.desc(e).inflight !== 0 ? [n.head] : [];
      });
      if (lastEntry !== undefined && region.desc(lastEntry).inflight !== 0) heads.push(last.head);
      return heads;
    },
  };
}
