/**
 * migrate.resume: the harness is both front-ends of a VM that moves. The source back-end serves a block
 * device, is left with requests made available and not yet kicked, and is stopped as the front-end stops it at
 * migration; a second launch of the same binary (or the destination the run names: --migrate-to, another
 * version, or --migrate-to-connect), sharing the disk and the guest's memory, is started with the same features
 * and SET_VRING_BASE at the base the source returned, and kicked. What the source left must be done by the
 * destination, each request once, in the same used ring. A destination that cannot take the guest is skipped
 * (destination.ts says why). A device of another kind moves with its kind's sample request (resume-any.ts).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BlkRequest, describeBlkRequest, sectorPattern } from '../../harness/devices/block/blk.js';
import type { BlkCompletion } from '../../harness/devices/block/completion.js';
import { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import { HandoverPort } from '../../harness/frontend/handover.js';
import { startDevice, stopDevice } from '../../harness/frontend/profiles.js';
import { serveOnSocketPath } from '../../harness/process/probes.js';
import { type CheckContext, defineChecks, type MigrationDestination } from '../../harness/runner/check.js';
import { COMPLETION_RULES, openBlock } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import {
  expectSectors,
  namingFindings,
  quietMs,
  readSectors,
  VringRule,
  writeSectors,
} from '../vring/common.js';
import { destinationName, startDestination } from './destination.js';
import { resumeAnyKind } from './resume-any.js';

/** Where the Migration section of vhost-user.rst is. */
const MIGRATION = 'vhost-user.rst#migration';

/** The size of the disk file the check makes when it gives both launches one. */
const DISK_BYTES = 8 * 1024 * 1024;

/** Sectors of each zone of the scratch area: written through the source, then by the requests it leaves. */
const ZONE = 8;

/** Whether `args` name a disk file (`--blk-file=F` or `--blk-file F`). */
function namesBlkFile(args: readonly string[]): boolean {
  return args.some((a) => a === '--blk-file' || a.startsWith('--blk-file='));
}

/** The file `args` name with --blk-file, undefined when none (or the option ends the list). */
function blkFileIn(args: readonly string[]): string | undefined {
  for (const [i, a] of args.entries()) {
    if (a.startsWith('--blk-file=')) return a.slice('--blk-file='.length);
    if (a === '--blk-file') return args[i + 1];
  }
  return undefined;
}

/** Whether a --print-capabilities document advertises the `blk-file` feature. */
function advertisesBlkFile(capabilities: unknown): boolean {
  const features = (capabilities as { features?: unknown } | null)?.features;
  return Array.isArray(features) && features.includes('blk-file');
}

/** The disk the source and the destination share: the arguments each launch adds, and what to call it. */
export interface SharedDisk {
  source: string[];
  destination: string[];
  what: string;
}

/**
 * The arguments that give the source and the destination the same disk: none for a launch whose own
 * arguments name a file (`--blk-file`: the run's after --, the destination's --migrate-to-arg), else the file
 * the other side names, else a fresh file of the check's when each side advertises the `blk-file` feature; a
 * destination someone else started serves its own disk, which the run's --blk-file must name. Else a
 * SkipError (two RAM disks share nothing to compare).
 */
export async function sharedDisk(
  ctx: CheckContext,
  destination: MigrationDestination | null,
): Promise<SharedDisk> {
  const run = ctx.target.extraArgs;
  const named = namesBlkFile(run);
  if (!named && !advertisesBlkFile(ctx.target.capabilities)) {
    throw new SkipError(
      'the source and the destination need one disk: the back-end advertises no blk-file feature and the ' +
        'arguments after -- name no --blk-file',
    );
  }
  const fresh = `a fresh ${DISK_BYTES >> 20} MiB file given to both with --blk-file`;
  if (destination === null) {
    if (named) return { source: [], destination: [], what: 'the --blk-file of the run, given to both' };
    const args = [`--blk-file=${await diskFile(ctx)}`];
    return { source: args, destination: args, what: fresh };
  }
  if ('connect' in destination) {
    if (!named)
      throw new SkipError(
        `the source and the destination need one disk: the destination at ${destination.connect} serves its own, ` +
          'and the arguments after -- name no --blk-file for the source to share it',
      );
    return {
      source: [],
      destination: [],
      what: `the --blk-file of the run, which the destination at ${destination.connect} is taken to serve`,
    };
  }
  const own = namesBlkFile(destination.extraArgs);
  if (named && own)
    return {
      source: [],
      destination: [],
      what: 'the --blk-file of the run for the source, its --migrate-to-arg one for the destination',
    };
  if (!own && !advertisesBlkFile(destination.capabilities))
    throw new SkipError(
      `the source and the destination need one disk: the --migrate-to binary ${destination.binary} advertises ` +
        'no blk-file feature and its --migrate-to-arg arguments name no --blk-file',
    );
  const file = named ? blkFileIn(run) : own ? blkFileIn(destination.extraArgs) : await diskFile(ctx);
  if (file === undefined)
    throw new SkipError('--blk-file is named without a file after it: nothing to give the other side');
  return {
    source: named ? [] : [`--blk-file=${file}`],
    destination: own ? [] : [`--blk-file=${file}`],
    what: named
      ? 'the --blk-file of the run, given to the destination too'
      : own
        ? 'the --blk-file of the destination (--migrate-to-arg), given to the source too'
        : fresh,
  };
}

/** A fresh zero-filled disk file in a folder the check owns, for both launches. */
async function diskFile(ctx: CheckContext): Promise<string> {
  const file = path.join(await ctx.scope.tempDir('vhu-migrate-'), 'disk.img');
  writeFileSync(file, new Uint8Array(DISK_BYTES));
  return file;
}

/** Everything used on the port within the quiet window. */
async function usedWithin(blk: BlkDriver, ms: number): Promise<BlkCompletion[]> {
  await sleep(ms);
  return blk.collectNow();
}

export const resumeChecks = defineChecks('migrate', [
  {
    id: 'migrate.resume',
    title:
      'a ring stopped on the source back-end resumes on the destination at the base it returned: what the source left is done there, each request once',
    detail:
      "two launches sharing the disk and the guest memory (with `--migrate-to`, the destination is that binary, launched with its `--migrate-to-arg` arguments; with `--migrate-to-connect`, the back-end listening there, serving the run's `--blk-file`): on the source, writes and reads completed, then three reads and three writes made available and not kicked, and the ring stopped in the front-end profile's order (GET_VRING_BASE); nothing more is used after the reply; the destination started with the same features, the same memory and SET_VRING_BASE at the source's base, then kicked: every request the source left completes once (no used element for a request done already, none lost), the reads return what was written through the source, the writes are on the disk, and traffic goes on; a destination that lacks a virtio feature the source negotiated (or MQ, CONFIG, NET_MTU) is skipped, each bit named (no front-end moves that guest; `compat` judges the pair); in attach mode it is skipped (one back-end only). A device of another kind: the same move with its kind's sample request (a frame on transmitq0, GET_DISPLAY_INFO, TEST UNIT READY...), four left on the source, every ring of the kind stopped and started again at its base: each used once on the destination, judged, its side effect seen where the harness sees one (net: the frame looped back on receiveq0); an fs device is skipped (its FUSE session moves with the back-end state: `migrate.device-state`)",
    severity: 'MUST',
    spec: MIGRATION,
    rule:
      'vhost-user.rst (QEMU 7.2), Migration: "Once the source has finished migration, rings will be stopped by ' +
      'the source. No further update must be done before rings are restarted."; and ' +
      `${VringRule.startOnKick}; the destination's ring started where ${VringRule.setVringBase}`,
    // A source that goes on after GET_VRING_BASE replied cannot be moved; whether one request of a single
    // batch is used late is a race, which vring.get-vring-base.drain's rounds catch: it is the gate.
    needs: ['vring.get-vring-base', 'vring.restart', 'vring.get-vring-base.drain'],
    launchOnly:
      'attach mode: the check needs two back-ends, the source and the destination of the move, and ' +
      '--connect names one someone else started',
    // Two launches, two start-ups, the quiet window, the requests on each side.
    budgetMs: (timeoutMs) => 16 * timeoutMs + 5000,
    async run(ctx) {
      if (ctx.target.type !== 'block') return await resumeAnyKind(ctx);
      const target = ctx.target.destination ?? null;
      const shared = await sharedDisk(ctx, target);
      const disk = shared.what;

      // The source: a device started as the profile starts one, and a driver whose port moves.
      const source = await serveOnSocketPath(ctx, shared.source);
      const a = await openBlock(ctx, { connection: source.connection, writes: true });
      const queue = a.ring.queue;
      const port = new HandoverPort(a.ring);
      // The completion rules (used.len, readable parts) are vring.blk.read-write's: this check judges the move.
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
      const left = sectorPattern(zone1, ZONE, seed ^ 0x5a5a);
      const original = await readSectors(blk, scratch, 2 * ZONE);
      await writeSectors(blk, scratch, written);
      expectSectors('read back through the source', written, await readSectors(blk, scratch, ZONE), scratch);

      // Left for the destination: made available, not kicked. Reads of what the source wrote, writes of more.
      const pending: BlkRequest[] = [
        ...[0, 3, 6].map((i) => ({ type: 'IN', sector: scratch + BigInt(i), count: 2 }) as const),
        ...[0, 1, 2].map(
          (i) =>
            ({
              type: 'OUT',
              sector: zone1 + BigInt(3 * i),
              data: left.subarray(3 * i * 512, Math.min(3 * (i + 1), ZONE) * 512),
            }) as const,
        ),
      ];
      const from = queue.lastAvailIdx;
      for (const request of pending) blk.post(request);
      const stopped = await stopDevice(a.started, a.device, [0]);
      const base = stopped.get(0)!.availIndex;
      const consumed = (base - from) & 0xffff;
      if (consumed > pending.length) {
        throw new BackendError(
          `the source's GET_VRING_BASE returned ${base}: past the ${pending.length} requests made available ` +
            `from ${from} (avail.idx ${queue.lastAvailIdx})`,
        );
      }
      // A back-end that polls may take requests never kicked: those are the source's to complete.
      const bySource = blk.collectNow();
      const late = await usedWithin(blk, quietMs(ctx));
      if (late.length) {
        throw new BackendError(
          `${late.length} request(s) (${late.map((c) => describeBlkRequest(c.request)).join(', ')}) used by the ` +
            `source after its GET_VRING_BASE replied ${base}: its ring was stopped for the move`,
        );
      }
      if (bySource.length !== consumed) {
        throw new BackendError(
          `the source's GET_VRING_BASE counts ${consumed} of the requests left consumed (base ${base}, from ` +
            `${from}), yet it used ${bySource.length}: the destination resumes at the base and would ` +
            (bySource.length < consumed ? 'never see the others (lost)' : 'do some again'),
        );
      }

      // The destination: same binary (or the one named), same disk, the same guest memory and queue, the same
      // features.
      const { session, started } = await startDestination(
        ctx,
        { features: a.features, session: a.session, started: a.started },
        shared.destination,
      );
      const b = new FrontendDevice(session, ctx.scope, { memory: a.device.memory });
      await startDevice(started, session, b, ctx.scope, {
        features: a.features,
        rings: [{ index: 0, size: queue.size, base, queue }],
        enable: started.protocol,
      });
      port.handOver(b.ring(0));
      port.notify();

      const expected = pending.length - consumed;
      const got: BlkCompletion[] = [];
      try {
        while (got.length < expected) got.push(...(await blk.collect(expected - got.length)).completions);
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        throw new BackendError(
          `the destination, started with SET_VRING_BASE ${base} and kicked, completed ${got.length} of the ` +
            `${expected} requests the source left available (avail.idx ${queue.lastAvailIdx}): ` +
            `${expected - got.length} lost; ${err.message}`,
        );
      }
      for (const c of [...bySource, ...got]) {
        blk.expectOk(c);
        if (c.request.type !== 'IN') continue;
        const at = Number(c.request.sector - scratch) * 512;
        expectSectors(
          `${describeBlkRequest(c.request)}, left by the source, read by the destination`,
          written.subarray(at, at + c.request.count * 512),
          c.data,
          c.request.sector,
        );
      }
      expectSectors(
        'the writes the source left, read back through the destination',
        left,
        await readSectors(blk, zone1, ZONE),
        zone1,
      );
      await writeSectors(blk, scratch, original);
      const end = (await stopDevice(started, b, [0])).get(0)!.availIndex;
      if (end !== queue.lastAvailIdx) {
        throw new BackendError(
          `the destination's GET_VRING_BASE at the end returned ${end}, not ${queue.lastAvailIdx}: every request ` +
            'made available was consumed',
        );
      }
      const to = target === null ? 'the destination,' : `the destination, ${destinationName(target)},`;
      return await namingFindings(
        ctx,
        `${disk}; the source stopped at base ${base} with ${pending.length} requests left (${consumed} taken by ` +
          `the source itself); ${to} started at ${base} and kicked, completed ${expected} once each, ` +
          `the data right; it stopped at ${end}`,
        blk,
      );
    },
  },
]);
