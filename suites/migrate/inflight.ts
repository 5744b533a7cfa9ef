/**
 * migrate.inflight: the inflight I/O tracking of VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (vhost-user.rst
 * "Inflight I/O tracking"), split and packed rings, as a front-end that keeps the buffer uses it: it gets the
 * buffer once (GET_INFLIGHT_FD), keeps it, and after the back-end's connection goes away (a crash, a restart)
 * hands the same buffer back with SET_INFLIGHT_FD on the new connection, so that the back-end resubmits what it
 * had taken and not completed. QEMU does so for vhost-user-blk (hw/block/vhost-user-blk.c vhost_user_blk_start,
 * vhost_dev_prepare_inflight: no new buffer while it has one) and, since 8.2, vhost-user-scsi
 * (hw/scsi/vhost-scsi-common.c); cloud-hypervisor for block, fs and net. The front-end profile says which
 * (FrontendProfile.inflight): a type it keeps no buffer for is skipped, saying so, since a front-end that never
 * hands the buffer back cannot rely on it. Block devices write and read known data (this file); the other
 * kinds move their sample request (inflight-any.ts), as migrate.resume does.
 *
 * Why a reconnection and not a second launch: it is what QEMU does, it needs no second disk nor a second
 * binary, and it is one back-end's own rule (it wrote the buffer, it reads it back). A back-end that serves one
 * front-end and ends (contrib's vhost-user-blk) is launched again at the same socket with the same arguments
 * and disk: that is the restart QEMU reconnects to. In attach mode the back-end is reconnected to.
 *
 * The split ring first; then, where VIRTIO_F_RING_PACKED is offered and the profile passes it on, the same on a
 * packed ring (its skip reason is reported otherwise). What the harness judges, and how (inflight-tracks.ts):
 * - Recording, on the first connection: after requests made available together and one alone were completed,
 *   the region is initialized (version 1) and nothing is left inflight. Split: each head's counter grows in
 *   the order the heads were made available, used_idx is the used ring's idx, last_batch_head the head of the
 *   one completed alone. Packed: entries are not indexed by head but taken from a free list and given back
 *   when used, so a back-end that serves a list before it takes the next reuses them at once; what is left to
 *   judge is the entry of the one completed alone (found by its first descriptor's address and buffer id and
 *   its num): its counter the largest, it heading the free list (free_head), the free list holding every entry,
 *   used_idx and used_wrap_counter where the driver expects the next used descriptor, old_free_head,
 *   old_used_idx and old_used_wrap_counter committed to them. A back-end that records nothing fails here.
 * - Resubmission, on the second: no back-end can be made to hold a request it took without completing it
 *   (the fixture and libvhost-user complete a request before they look at the next kick, and a kill at the
 *   right instant is a race). So the harness writes the state a back-end that died between "When receiving"'s
 *   steps and the completion leaves: requests made available after the ring was stopped, never kicked, each
 *   marked taken with the next counters (packed: "When receiving"'s steps, their descriptors copied into the
 *   free list's entries from old_free_head). The back-end cannot tell this from its own crash (the buffer is
 *   all it keeps). Handed that buffer, the new connection must complete each request left inflight once, their
 *   data written or read as asked (other kinds: each completion judged, net's frame seen looped back), and
 *   clear their entries.
 * - The base, split: what the front-end profile sends after a broken connection (FrontendProfile
 *   .baseAfterBreak). QEMU sends the used ring's idx (vhost_virtqueue_stop falls back to
 *   virtio_queue_restore_last_avail_idx); cloud-hypervisor the available ring's idx. Back-ends differ in what
 *   they make of it: libvhost-user ignores it when the buffer has entries (vu_check_queue_inflights:
 *   last_avail_idx = used_idx + inuse), DPDK adds what it resubmits to it (vhost_check_queue_inflights_split:
 *   last_avail_idx += resubmit_num, right with QEMU's base). So that a back-end which ignores the buffer cannot
 *   pass by reading the ring again from the used idx, five requests are left and the second of them is
 *   completed out of order in the state written (its used element written, the used ring's idx increased):
 *   such a back-end takes it again and leaves the first behind. It is also the last batch, published and not
 *   cleared (below). A packed ring's base is past the requests left (its used position where the first is due);
 *   QEMU's packed base after a broken connection, its used position, is not played yet. A packed ring's lists
 *   are served from the entries (their descriptors may be overwritten in the ring); DPDK's vhost_blk example
 *   moves its available position past each list it resubmits (last_avail_idx += num), as if the base named the
 *   first: such a back-end would look past the four, a convention no sentence sets.
 * - Counter order is not judged: the resubmitted requests are all in flight together, and a back-end whose
 *   I/O is asynchronous may complete them in any order (the order is reported). Whether they are served before
 *   any kick (libvhost-user kicks itself "in case of I/O hang after reconnecting", since QEMU does not kick
 *   after a reconnection) is reported too, not judged: vhost-user.rst's ring states start a ring on a kick,
 *   so the harness kicks.
 * - The repair: a last batch is left as a back-end that died while supplying it leaves it. Split: the request
 *   completed out of order, inflight with used_idx one behind the used ring's idx ("When supplying used
 *   buffers" after increasing the used ring's idx, before its last two steps). Packed: the request completed
 *   last on the first connection, its supply undone,
 *   the four taken, then its entries linked back in front of free_head and used_idx moved past it, its used
 *   descriptor being in the ring, but not the last two steps (inflight 0, old_* committed); "When reconnecting"
 *   then sees, at old_used_idx, flags that are not an available descriptor's and commits it. Either way the
 *   repair clears it rather than resubmitting it: a used element for it again is a failure (the driver has not
 *   reused its descriptors: it collects that completion only after the four are posted).
 *
 * SHOULD: the spec's words are "the queue region should be processed as follows" and "back-end may need to
 * resubmit inflight I/Os"; QEMU's vhost-user-blk relies on it across a back-end reconnection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BlkRequest, describeBlkRequest, sectorPattern } from '../../harness/devices/block/blk.js';
import type { BlkCompletion } from '../../harness/devices/block/completion.js';
import { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, SkipError, TimeoutError, VhuError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { HandoverPort } from '../../harness/frontend/handover.js';
import { startDevice, stopDevice } from '../../harness/frontend/profiles.js';
import { serveOnSocketPath } from '../../harness/process/probes.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import type { PackedVirtqueue } from '../../harness/virtqueue/packed.js';
import type { DriverQueue } from '../../harness/virtqueue/port.js';
import type { SplitVirtqueue } from '../../harness/virtqueue/split.js';
import { type BlockSetup, COMPLETION_RULES, openBlock } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import { expectSectors, namingFindings, quietMs, readSectors, writeSectors } from '../vring/common.js';
import { samplesAcrossReconnection } from './inflight-any.js';
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
import { sharedDisk } from './resume.js';

const INFLIGHT_SPEC = 'vhost-user.rst#inflight-i-o-tracking';
/** Sectors of each zone of the scratch area: written on the first connection, then by the requests left. */
const ZONE = 8;

/** The exercise on one ring layout (packed with `packed`): what it saw. */
type Exercise = (ctx: CheckContext, packed: boolean) => Promise<string>;

/**
 * The whole exercise on a block device whose ring is split, or packed (`packed`): recording on a first
 * connection, the state of a crash written, resubmission on a second. Returns what it saw.
 */
async function blockAcrossReconnection(ctx: CheckContext, packed: boolean): Promise<string> {
  // Launched: on a disk both launches share, should the back-end end with its first front-end.
  const attach = ctx.target.connect !== null;
  const disk = attach ? [] : (await sharedDisk(ctx, null)).source;
  const served = attach ? null : await serveOnSocketPath(ctx, disk);
  const options = {
    ...(served ? { connection: served.connection } : {}),
    writes: true,
    requiredProtocolFeatures: INFLIGHT_BIT,
  };
  const a: BlockSetup<DriverQueue<unknown>> = packed
    ? await openBlock(ctx, { ...options, packed: true })
    : await openBlock(ctx, options);
  const kept = keptBuffer(a.started, a.session, 'block');
  const queue = a.ring.queue;
  const buffer = mapInflightBuffer(
    ctx.scope,
    kept.fd,
    Number(kept.description.mmapSize),
    Number(kept.description.mmapOffset),
    kept.description.numQueues,
  );
  const track = packed
    ? packedTrack(buffer, 0, queue as PackedVirtqueue<unknown>, ctx.timeoutMs)
    : splitTrack(buffer, 0, queue as SplitVirtqueue<unknown>, a.started.profile);
  const port = new HandoverPort<unknown, DriverQueue<unknown>>(a.ring);
  const blk = new BlkDriver(port, {
    timeoutMs: ctx.timeoutMs,
    maxSectors: a.blk.maxSectors,
    slots: 12,
    keep: COMPLETION_RULES,
  });
  const scratch = a.scratch;
  const zone1 = scratch + BigInt(ZONE);
  const seed = freshSeed();
  const written = sectorPattern(scratch, ZONE, seed);
  const left = sectorPattern(zone1, ZONE, seed ^ 0x3c3c);
  const original = await readSectors(blk, scratch, 2 * ZONE);

  // Recording: eight requests made available together, their heads in that order.
  const together: BlkRequest[] = [
    ...[0, 2, 4, 6].map(
      (i) =>
        ({
          type: 'OUT',
          sector: scratch + BigInt(i),
          data: written.subarray(i * 512, (i + 2) * 512),
        }) as const,
    ),
    ...[0, 2, 4, 6].map((i) => ({ type: 'IN', sector: scratch + BigInt(i), count: 2 }) as const),
  ];
  const notedTogether = together.map((r) => track.note(() => blk.post(r)));
  blk.kick();
  const byHead = new Map<number, BlkCompletion>();
  while (byHead.size < together.length)
    for (const c of (await blk.collect(together.length - byHead.size)).completions) byHead.set(c.head, c);
  const done = notedTogether.map((n) => byHead.get(n.head)!);
  for (const c of done) blk.expectOk(c);
  expectSectors('read back on the first connection', written, await readSectors(blk, scratch, ZONE), scratch);
  // One request alone last: its head is the last batch's ("Set last_batch_head to i"; packed: free_head).
  // Its completion is collected only once the next requests are posted, so that the driver does not reuse
  // its descriptors.
  const last = track.note(() => blk.post({ type: 'IN', sector: scratch, count: 2 }));
  port.notify();
  await usedWithin(ctx, track, last);
  const recording = await track.recorded(notedTogether, last);
  if (recording.length)
    throw new BackendError(
      `after ${done.length} requests made available together and completed on the first connection, the ` +
        `inflight buffer does not record them as the spec's steps do: ${recording.join('; ')}`,
    );

  // The ring stopped; then four requests made available, not kicked: taken, as far as the buffer says.
  const base = (await stopDevice(a.started, a.device, [0])).get(0)!.availIndex;
  if (base !== track.consumedMark())
    throw new BackendError(
      `GET_VRING_BASE returned ${track.describeBase(base)}, not ${track.describeBase(track.consumedMark())}: ` +
        'every request made available was completed',
    );
  const toResubmit: BlkRequest[] = [
    { type: 'IN', sector: scratch, count: 3 },
    { type: 'OUT', sector: zone1, data: left.subarray(0, 4 * 512) },
    { type: 'IN', sector: scratch + 4n, count: 4 },
    { type: 'OUT', sector: zone1 + 4n, data: left.subarray(4 * 512) },
  ];
  // The one the crash completes (split: the second, out of order): a read, which changes nothing if done again.
  const pending = track.completesAtCrash
    ? [toResubmit[0]!, { type: 'IN', sector: scratch + 6n, count: 2 } as const, ...toResubmit.slice(1)]
    : toResubmit;
  const notedPending = pending.map((r) => track.note(() => blk.post(r)));
  const pendingHeads = notedPending.map((n) => n.head);
  const from = track.maxCounter() + 1n;
  // And a last batch published and not cleared, as a back-end that died between the spec's steps leaves it:
  // the spec's repair must clear it, not resubmit it.
  const crash = track.crash(notedPending, from);
  const marked = crash.marked;
  const completedHeads = crash.completed.map((n) => n.head);
  const final = blk.collectNow();
  expectUsedAtCrash(
    final.map((c) => c.head),
    last,
    crash,
  );
  blk.expectOk(final[0]!);
  const { base: resumeAt, note: baseWhat } = track.resume();
  const expected = pending.length - completedHeads.length;
  a.session.connection.close();
  if (blk.collectNow().length)
    throw new BackendError(
      `the back-end used requests after GET_VRING_BASE stopped the ring (at ${track.describeBase(base)}): none was kicked`,
    );

  // The second connection: the same buffer, the same memory, the ring past the four.
  const again = await reconnect(
    ctx,
    served
      ? { socket: served.socket, alive: () => served.backend.alive, exited: served.backend.exited }
      : null,
    disk,
  );
  const { session, started } = await startReconnected(ctx, again, a);
  const b = new FrontendDevice(session, ctx.scope, { memory: a.device.memory });
  await startDevice(started, session, b, ctx.scope, {
    features: a.features,
    rings: [{ index: 0, size: queue.size, base: resumeAt, queue: queue as SplitVirtqueue<unknown>, packed }],
    enable: started.protocol,
    inflight: kept,
  });
  port.handOver(packed ? b.packedRing(0) : b.ring(0));
  const what = (c: BlkCompletion) => `${describeBlkRequest(c.request)} (head ${c.head})`;
  const repairNote = `; ${crash.lastBatch}`;
  const got: BlkCompletion[] = [];
  const collect = async (): Promise<void> => {
    try {
      while (got.length < expected) got.push(...(await blk.collect(expected - got.length)).completions);
    } catch (err) {
      if (err instanceof TimeoutError)
        throw new BackendError(
          `${again.how}, the inflight buffer handed back (${marked}) and SET_VRING_BASE ${track.describeBase(resumeAt)}, ` +
            `then kicked: it completed ${got.length} of the ${expected} requests the buffer says were ` +
            `taken and not completed: ${expected - got.length} lost${repairNote}; ${err.message}`,
        );
      if (err instanceof VhuError)
        throw new BackendError(
          `resubmitting the requests inflight in the buffer (heads ${pendingHeads.join(', ')}${repairNote}): ` +
            err.message,
          { cause: err },
        );
      throw err;
    }
  };
  // Before any kick: what a back-end resubmits of its own accord (reported).
  await sleep(quietMs(ctx));
  got.push(...blk.collectNow());
  const beforeKick = got.length;
  port.notify();
  await collect();
  await sleep(quietMs(ctx));
  try {
    const extra = blk.collectNow();
    if (extra.length)
      throw new BackendError(
        `${extra.map(what).join(', ')} used again after the ${expected} resubmitted requests completed`,
      );
  } catch (err) {
    if (err instanceof BackendError || !(err instanceof VhuError)) throw err;
    throw new BackendError(
      `after the ${expected} requests inflight in the buffer completed once each, more used elements came: ` +
        err.message,
      { cause: err },
    );
  }
  for (const c of got) {
    blk.expectOk(c);
    if (c.request.type !== 'IN') continue;
    const at = Number(c.request.sector - scratch) * 512;
    expectSectors(
      `${what(c)}, inflight in the buffer, resubmitted`,
      written.subarray(at, at + c.request.count * 512),
      c.data,
      c.request.sector,
    );
  }
  const uncleared = track.uncleared(notedPending, last);
  if (uncleared.length)
    throw new BackendError(
      `heads ${uncleared.join(', ')} are still inflight in the buffer after they were resubmitted and ` +
        'completed: a further reconnection would do them again',
    );
  // Traffic goes on: the next request is made available where the resubmitted ones end.
  const readBack = await readSectors(blk, zone1, ZONE).catch((err: unknown) => {
    if (!(err instanceof TimeoutError)) throw err;
    throw new BackendError(
      `the ${expected} requests inflight in the buffer resubmitted, the next one made available was not ` +
        'completed: the ring resumed past it, not where the requests taken end, from SET_VRING_BASE ' +
        `${track.describeBase(resumeAt)}${baseWhat}; ${err.message}`,
      { cause: err },
    );
  });
  expectSectors(
    'the writes inflight in the buffer, read back after they were resubmitted',
    left,
    readBack,
    zone1,
  );
  await writeSectors(blk, scratch, original);
  const end = (await stopDevice(started, b, [0])).get(0)!.availIndex;
  if (end !== track.consumedMark())
    throw new BackendError(
      `GET_VRING_BASE at the end returned ${track.describeBase(end)}, not ${track.describeBase(track.consumedMark())}: ` +
        'every request made available was consumed',
    );
  const order = got.map((c) => c.head).join(', ');
  const leftInBatch = packed
    ? `head ${last.head} left linked back and not committed`
    : `head ${completedHeads.join(', ')} completed out of order and left in the last batch (used_idx ${last.at})`;
  return await namingFindings(
    ctx,
    `${done.length} requests recorded (${track.recordedWhat}); ${pending.length} requests ` +
      `marked inflight (heads ${pendingHeads.join(', ')}, counters ${from}..${from + BigInt(pending.length - 1)}) ` +
      `after the ring stopped at ${track.describeBase(base)}, and ${leftInBatch}; ` +
      `${again.how}, the buffer handed back, the ring at ` +
      `${track.describeBase(resumeAt)}${baseWhat}: each completed once (heads in the order ${order}; ${beforeKick} before any kick), the ` +
      `data right, the entries cleared; it stopped at ${track.describeBase(end)}`,
    blk,
  );
}

/** The packed-ring part: what it saw, or why it was not done (a SkipError's reason), for the message. */
async function packedPart(ctx: CheckContext, exercise: Exercise): Promise<string> {
  try {
    return `packed ring: ${await exercise(ctx, true)}`;
  } catch (err) {
    if (err instanceof SkipError) return `packed ring not checked: ${err.message}`;
    if (err instanceof VhuError) {
      err.message = `packed ring: ${err.message}`;
      throw err;
    }
    throw err;
  }
}

export const inflightChecks = defineChecks('migrate', [
  {
    id: 'migrate.inflight',
    title:
      'with INFLIGHT_SHMFD, the back-end records the requests it takes in the inflight buffer and, handed it back after a reconnection, resubmits those left inflight',
    detail:
      "where INFLIGHT_SHMFD is offered and the front-end profile keeps an inflight buffer for the device type (qemu: block and scsi; qemu-7.2: block; cloud-hypervisor: block, fs, net), on a split ring, then on a packed one where VIRTIO_F_RING_PACKED is offered and passed on: on a first connection, requests made available together and one alone completed (block: writes and reads of known data; other kinds their sample request), then the ring's queue region read: version 1, nothing left inflight; split: counters growing in the order the heads were made available, used_idx the used ring's idx, last_batch_head the one completed alone; packed: the entry of the one completed alone with the largest counter heading the free list (free_head), the free list holding every entry, used_idx and used_wrap_counter the driver's next used position, old_* committed; the rings stopped (GET_VRING_BASE), requests made available and not kicked, marked taken in the buffer with the next counters as a back-end that took them and died would have left them (split: five, the second completed out of order, its used element written, and left as a back-end that died while supplying it leaves it, inflight with used_idx one behind; packed: four, their descriptors copied into the free list's entries, and the one completed last on the first connection linked back, used_idx moved, old_* not committed); the connection closed; a second connection (the same process, or the back-end launched again at the same socket and disk when it ended, as QEMU reconnects to a restarted one; in attach mode the same back-end) started with the same features and memory, the same buffer handed back with SET_INFLIGHT_FD (no GET_INFLIGHT_FD) and SET_VRING_BASE as the profile sends it after a broken connection (split: qemu the used ring's idx, cloud-hypervisor the available ring's; packed: past the four, the used position at the first), then kicked: each of the four completes once, the last batch is not done again (the spec's repair clears it), block reads return what was written and writes are on the disk (other kinds: each completion judged, net's frame seen), their entries are no longer inflight, and traffic goes on; the completion order and whether they came before the kick are reported, not judged; an fs device (its requests need a FUSE session first) is skipped",
    severity: 'SHOULD',
    spec: INFLIGHT_SPEC,
    rule:
      'vhost-user.rst (QEMU 7.2), Inflight I/O tracking: "To support reconnecting after restart or crash, ' +
      'back-end may need to resubmit inflight I/Os."; "To track inflight I/O, the queue region should be ' +
      'processed as follows:"; split ("When receiving available buffers from the driver: ... Set desc[i].counter to ' +
      'the value of global counter ... Set desc[i].inflight to 1"; "When supplying used buffers ...: Set last_batch_head to i ... Set the ' +
      'inflight field of each DescStateSplit entry in the batch to 0 ... Set used_idx to the idx value of used ' +
      'ring"; "When reconnecting: If the value of used_idx does not match the idx value of used ring ... Set ' +
      'the inflight field of each DescStateSplit entry to 0 in last batch list which starts from ' +
      'last_batch_head ... Resubmit inflight DescStateSplit entries in order of their counter ' +
      'value"); packed ("When receiving ...: If d is head descriptor, Set desc[old_free_head].num to 0 ... ' +
      'Set desc[old_free_head].counter to the value of global counter ... Set desc[old_free_head].inflight to 1 ' +
      '... Set desc[free_head].addr, desc[free_head].len, desc[free_head].flags, desc[free_head].id to d.addr, ' +
      'd.len, d.flags, d.id ... Set free_head to desc[free_head].next"; "When supplying ...: Set desc[e.last].next ' +
      'to free_head; Set free_head to the index of e ... Increase used_idx by the size of the batch and update ' +
      'used_wrap_counter if needed ... Set old_free_head, old_used_idx, old_used_wrap_counter to free_head, ' +
      'used_idx, used_wrap_counter"; "When reconnecting: If used_idx does not match old_used_idx ... If d.flags is ' +
      'not equal to the calculated flags value ... set old_free_head, old_used_idx, old_used_wrap_counter to ' +
      'free_head, used_idx, used_wrap_counter ... Set the inflight field of each DescStatePacked entry in free ' +
      'list to 0 ... Resubmit inflight DescStatePacked entries in order of their counter value"); no MUST. ' +
      "Interoperability: QEMU's vhost-user-blk relies on it across a back-end reconnection (hw/block/vhost-user-blk.c " +
      'keeps the buffer and hands it back with SET_INFLIGHT_FD), as do its vhost-user-scsi since 8.2 and ' +
      "cloud-hypervisor's block, fs and net devices",
    // A back-end that serves no second front-end is proto.lifecycle.reconnect's finding (it runs later): skipped.
    needs: ['proto.inflight.get-fd', 'vring.get-vring-base'],
    // Twice (split, then packed): two connections (maybe two launches), the start-ups, the quiet windows, the
    // requests on each side.
    budgetMs: (timeoutMs) => 32 * timeoutMs + 10000,
    async run(ctx) {
      const exercise = ctx.target.type === 'block' ? blockAcrossReconnection : samplesAcrossReconnection;
      const split = await exercise(ctx, false);
      return `${split}; ${await packedPart(ctx, exercise)}`;
    },
  },
]);
