/**
 * What the vring checks share: the spec sentences they enforce, how vring.blk.read-write's completion rules
 * are judged once, sector reads and writes of the scratch area (restored when done), and stopping and
 * restarting rings as the front-end profile does. The block device itself is started by `openBlock`
 * (suites/common/block.ts).
 */

import { expect } from 'chai';
import { BlkError, BlkErrorCode, describeSectorDiff } from '../../harness/devices/block/blk.js';
import type { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, TimeoutError } from '../../harness/errors.js';
import type { FrontendDevice } from '../../harness/frontend/device.js';
import { restartDevice, type Started, stopDevice } from '../../harness/frontend/profiles.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { COMPLETION_RULES } from '../common/block.js';

/** Anchors: vhost-user.rst sections, and virtio-spec labels (content.tex, device-types/blk). */
export const VringSpec = {
  ringStates: 'vhost-user.rst#ring-states',
  memoryAccess: 'vhost-user.rst#memory-access',
  messages: 'vhost-user.rst#front-end-message-types',
  blkOperation: 'virtio-spec#sec-device-types-block-device-device-operation',
  usedRing: 'virtio-spec#sec-virtqueues-the-virtqueue-used-ring',
  indirect: 'virtio-spec#sec-virtqueues-the-virtqueue-descriptor-table-indirect-descriptors',
  notifications: 'virtio-spec#sec-virtqueues-used-buffer-notification-suppression',
} as const;

/** Where the sentences the vring checks enforce stand (`CheckInfo.rule`). */
const V72 = 'vhost-user.rst (QEMU 7.2)';

/** The sentences several vring checks enforce, quoted as the spec words them. */
export const VringRule = {
  usedLen:
    'virtio spec, Device Requirements: The Virtqueue Used Ring: "The device MUST write at least len bytes to ' +
    'descriptor, beginning at the first device-writable buffer, prior to updating the used idx."',
  readable:
    'virtio spec, Device Requirements: The Virtqueue Descriptor Table: "A device MUST NOT write to a ' +
    'device-readable buffer"',
  guestAddresses: `${V72}, Memory access: "Guest addresses map to the vhost memory region containing that guest address."`,
  stopped: `${V72}, Ring states: "stopped: the back-end must not process the ring at all."`,
  disabled: `${V72}, Ring states: "started but disabled: the back-end must process the ring without causing any side effects."`,
  startOnKick:
    `${V72}, Ring states: "The back-end must start ring upon receiving a kick (that is, detecting that file ` +
    'descriptor is readable) on the descriptor specified by ``VHOST_USER_SET_VRING_KICK`` or receiving the ' +
    'in-band message ``VHOST_USER_VRING_KICK`` if negotiated, and stop ring upon receiving ' +
    '``VHOST_USER_GET_VRING_BASE``."',
  setVringBase: `${V72}, VHOST_USER_SET_VRING_BASE: "Sets the base offset in the available vring." (no normative word)`,
  indirect:
    'virtio spec, Device Requirements: Indirect Descriptors: "The device MUST handle the case of zero or more ' +
    'normal chained descriptors followed by a single descriptor with flags&VIRTQ_DESC_F_INDIRECT."',
  blkIn:
    'virtio spec, Block Device, Device Operation: "VIRTIO_BLK_T_IN requests populate data with the contents of ' +
    'sectors read from the block device (in multiples of 512 bytes)." (no normative word)',
} as const;

/** The check every data-path check builds on. */
export const NEEDS_DATA_PATH = 'vring.blk.read-write';

/**
 * Runs a check's `body`; when it fails on a completion rule (used.len, a write into a readable buffer),
 * requests still complete and do their work, which is what the checks needing this one rely on: the gate
 * holds (CheckContext.gateHeld) and they run, giving verdicts of their own. A refused request (status), wrong
 * data, a hang or a crash means data does not move: they are skipped, naming this check.
 */
export async function holdingGate<T>(ctx: CheckContext, body: () => Promise<T>): Promise<T> {
  const state = await judging(ctx);
  try {
    const value = await body();
    // Its own requests broke no completion rule; a check before it found one broken (namingFindings):
    // that is read-write's failure, the one this defect gets.
    const earlier = state.pending[0];
    if (earlier)
      throw new BlkError(
        earlier.code,
        `${earlier.message} (a request of an earlier check, on ${state.pending.length} completion${state.pending.length === 1 ? '' : 's'} in all; read-write's own requests were fine)`,
      );
    return value;
  } catch (err) {
    if (err instanceof BlkError && COMPLETION_RULES.includes(err.code)) {
      ctx.gateHeld();
      state.failedOn.add(err.code);
    }
    throw err;
  } finally {
    state.ran = true;
  }
}

/** What vring.blk.read-write made of the completion rules in this run, under this profile. */
interface Judging {
  /** Whether it ran yet: the checks before it leave their findings to it (`pending`). */
  ran: boolean;
  /** The completion rules it failed on: the findings the other checks name instead of failing on. */
  failedOn: Set<BlkErrorCode>;
  /** The findings of the checks that ran before it, for it to judge. */
  pending: BlkError[];
}

/** The run's (this profile's) one Judging, a fact several checks share. */
function judging(ctx: CheckContext): Promise<Judging> {
  return ctx.memo(
    'completion-rules-judged',
    async (): Promise<Judging> => ({
      ran: false,
      failedOn: new Set(),
      pending: [],
    }),
  );
}

/**
 * Said in the rule of a check that cites used.len's sentence for where the bytes go (the buffer's guest
 * address), not for how many: the rest is vring.blk.read-write's.
 */
export const COMPLETIONS_LEFT =
  "how many bytes used.len counts, and the device-readable parts left alone, are vring.blk.read-write's to judge";

/** How the findings of each completion rule are counted in a message. */
const FINDING_COUNTED: Readonly<Record<string, string>> = {
  [BlkErrorCode.USED_LEN]: 'used.len over-reported',
  [BlkErrorCode.READONLY_WRITTEN]: 'a device-readable part written',
};

/**
 * A passing check's `message`, naming the completion rules its drivers' findings broke (kept, not failed:
 * they are vring.blk.read-write's, see COMPLETION_RULES): "... (used.len over-reported on 3 completions:
 * vring.blk.read-write's finding; the first: OUT sector 64 x1 (head 0): used.len 513 is more than ...)".
 * Before read-write ran, they are left to it (it fails on them if its own requests do not). After it, a
 * finding of a rule it did not fail on is a defect of this check's path, which read-write's requests do not
 * take: thrown, failing the check.
 */
export async function namingFindings(
  ctx: CheckContext,
  message: string,
  ...drivers: Array<Pick<BlkDriver, 'findings'>>
): Promise<string> {
  const findings = drivers.flatMap((d) => d.findings);
  const first = findings[0];
  if (!first) return message;
  const state = await judging(ctx);
  if (!state.ran) state.pending.push(...findings);
  const own = state.ran ? findings.find((f) => !state.failedOn.has(f.code)) : undefined;
  if (own)
    throw new BlkError(
      own.code,
      `${own.message} (${NEEDS_DATA_PATH} did not find this in this run: a defect on this check's path)`,
    );
  const counted = COMPLETION_RULES.flatMap((code) => {
    const n = findings.filter((f) => f.code === code).length;
    return n ? [`${FINDING_COUNTED[code]} on ${n} completion${n === 1 ? '' : 's'}`] : [];
  });
  return (
    `${message} (${counted.join(', ')}: ${NEEDS_DATA_PATH}'s finding${counted.length > 1 ? 's' : ''}; ` +
    `the first: ${first.message})`
  );
}

/** How long a "nothing must happen" window lasts: long enough for a back-end to react, short for the run. */
export function quietMs(ctx: CheckContext): number {
  return Math.round(Math.min(500, Math.max(100, ctx.timeoutMs / 6)));
}

/** Reads `count` sectors in requests of at most the driver's largest. */
export async function readSectors(blk: BlkDriver, sector: bigint, count: number): Promise<Uint8Array> {
  const out = new Uint8Array(count * 512);
  for (let done = 0; done < count; done += blk.maxSectors) {
    const n = Math.min(blk.maxSectors, count - done);
    out.set(await blk.read(sector + BigInt(done), n), done * 512);
  }
  return out;
}

/** Writes whole sectors in requests of at most the driver's largest. */
export async function writeSectors(blk: BlkDriver, sector: bigint, data: Uint8Array): Promise<void> {
  const step = blk.maxSectors * 512;
  for (let at = 0; at < data.length; at += step) {
    await blk.write(sector + BigInt(at / 512), data.subarray(at, Math.min(at + step, data.length)));
  }
}

/**
 * Runs `body`, which may write `count` sectors from `sector`, and writes back what they held before: also
 * when `body` fails, as long as the device still takes the write (that failure is then not reported over
 * the body's own). Attach mode checks someone else's disk.
 */
export async function preserving<T>(
  blk: BlkDriver,
  sector: bigint,
  count: number,
  body: () => Promise<T>,
): Promise<T> {
  const original = await readSectors(blk, sector, count);
  let result: T;
  try {
    result = await body();
  } catch (err) {
    await writeSectors(blk, sector, original).catch(() => undefined);
    throw err;
  }
  await writeSectors(blk, sector, original);
  return result;
}

/** Throws a BackendError describing the first wrong sector unless `actual` is `expected`. */
export function expectSectors(what: string, expected: Uint8Array, actual: Uint8Array, sector: bigint): void {
  const diff = describeSectorDiff(expected, actual, sector);
  if (diff) throw new BackendError(`${what}: ${diff}`);
}

export const hex = (n: bigint | number): string => `0x${n.toString(16)}`;

/**
 * Starts vring 0 again at `base` (or each ring at its base in `bases`) in the run's front-end profile's
 * order: every front-end sends SET_VRING_CALL before the ring can run again (QEMU for every ring before any is
 * started), and a back-end may drop its call fd at GET_VRING_BASE (libvhost-user does), so a restart in another
 * order would judge what no front-end does.
 */
export function restart(
  started: Started,
  device: FrontendDevice,
  base: number | ReadonlyMap<number, number>,
): Promise<void> {
  return restartDevice(started, device, typeof base === 'number' ? new Map([[0, base]]) : base, true);
}

/** The available index the restart check starts at: four requests short of the 16-bit wrap. */
export const NEAR_WRAP = 0xfffc;

/**
 * Stops vring 0 as the run's front-end profile stops a device (SET_VRING_ENABLE 0 where it sends it,
 * GET_VRING_BASE, the status as it sets it) and checks the reply's reserved bits.
 */
export async function stop(started: Started, device: FrontendDevice): Promise<number> {
  return (await stopRings(started, device, [0])).get(0)!;
}

/** Stops `rings` as `stop` stops vring 0: each ring's base. */
export async function stopRings(
  started: Started,
  device: FrontendDevice,
  rings: readonly number[],
): Promise<Map<number, number>> {
  const bases = new Map<number, number>();
  for (const [index, base] of await stopDevice(started, device, rings)) {
    expect(
      base.reserved,
      `GET_VRING_BASE of vring ${index}: bits 16-31 are reserved for a split ring, yet hold ${hex(base.reserved)}`,
    ).to.equal(0);
    bases.set(index, base.availIndex);
  }
  return bases;
}

/** Undefined while the back-end still answers GET_FEATURES; else what went wrong. */
export async function connectionLost(device: FrontendDevice): Promise<string | undefined> {
  try {
    await device.session.connection.requestU64('GET_FEATURES');
    return undefined;
  } catch (err) {
    if (err instanceof BackendError || err instanceof TimeoutError) return err.message;
    throw err;
  }
}
