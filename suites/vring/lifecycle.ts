/**
 * Ring states (vhost-user.rst: Ring states, GET_VRING_BASE): a ring starts on a kick, runs only once
 * enabled when VHOST_USER_F_PROTOCOL_FEATURES was negotiated, stops on GET_VRING_BASE and restarts where
 * that left it. Requests are virtio-blk ones (the only driver yet).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { blkStatusName, describeBlkRequest, sectorPattern } from '../../harness/devices/block/blk.js';
import type { BlkCompletion } from '../../harness/devices/block/completion.js';
import type { BlkDriver } from '../../harness/devices/block/driver.js';
import { BackendError, TimeoutError } from '../../harness/errors.js';
import type { FrontendDevice } from '../../harness/frontend/device.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { openBlock } from '../common/block.js';
import { freshSeed } from '../common/seed.js';
import {
  disableStops,
  drain,
  enableGates,
  getVringBase,
  legacyStart,
  onBlock,
  pendingKick,
  restartRing,
} from './any-device.js';
import {
  connectionLost,
  expectSectors,
  hex,
  NEAR_WRAP,
  NEEDS_DATA_PATH,
  namingFindings,
  preserving,
  quietMs,
  restart,
  stop,
  VringRule,
  VringSpec,
} from './common.js';
import { drainRounds } from './drain.js';

/**
 * Posts a write of `data` over `sector` on a ring that must not run, kicks, and reports what the device did
 * within the quiet window: nothing (undefined), or the completion it returned.
 */
async function postWhileHeld(
  blk: BlkDriver,
  sector: bigint,
  data: Uint8Array,
  quiet: number,
): Promise<BlkCompletion | undefined> {
  blk.post({ type: 'OUT', sector, data });
  blk.port.notify();
  await sleep(quiet);
  return blk.collectNow()[0];
}

/**
 * After a write was posted while the ring was disabled: enables it, and tells how the write went. Held and
 * executed after the enable, or consumed while disabled and discarded, pass; executed while disabled fails.
 * The pattern posted is fresh, so finding it on the disk proves the write was executed.
 */
async function judgeHeldWrite(
  phase: string,
  device: FrontendDevice,
  blk: BlkDriver,
  early: BlkCompletion | undefined,
  sector: bigint,
  posted: Uint8Array,
): Promise<string> {
  await device.enable(0, true);
  if (!early) {
    blk.port.notify();
    blk.expectOk((await blk.collect(1)).completions[0]!);
    expectSectors(
      `${phase}: the write held while disabled, once enabled`,
      posted,
      await blk.read(sector, 1),
      sector,
    );
    return `${phase}: held until SET_VRING_ENABLE 1, then done`;
  }
  const now = await blk.read(sector, 1);
  if (Buffer.from(now).equals(Buffer.from(posted))) {
    throw new BackendError(
      `${phase}: the write posted and kicked on the disabled ring was executed before SET_VRING_ENABLE 1 ` +
        `(status ${blkStatusName(early.status)}): a disabled ring must be processed without side effects`,
    );
  }
  return `${phase}: consumed while disabled without side effect (status ${blkStatusName(early.status)})`;
}

/** qemu-storage-daemon 7.2 panics on these and drops the connection: in attach mode, every later check with it. */
const LATE = 'qemu-storage-daemon 7.2 panics on it and drops the connection';

export const lifecycleChecks = defineChecks('vring', [
  {
    id: 'vring.get-vring-base',
    title: 'GET_VRING_BASE replies with the vring index and the count of requests consumed',
    // The message's text has no normative word: a wrong base is what breaks QEMU, which restores from it.
    severity: 'SHOULD',
    interop: true,
    spec: VringSpec.messages,
    rule:
      'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_VRING_BASE: "Get the available vring base offset." (no normative ' +
      'word; bits 16-31 of the reply are not described): interoperability, QEMU 7.2 (hw/virtio/vhost.c ' +
      "vhost_virtqueue_stop) takes the reply as the ring's last available index, where the guest's ring resumes",
    needs: [NEEDS_DATA_PATH],
    async run(ctx) {
      if (!onBlock(ctx)) return await getVringBase(ctx);
      const { device, blk, scratch, started } = await openBlock(ctx);
      const count = 5;
      for (let i = 0; i < count; i++) await blk.read(scratch + BigInt(i), 1);
      const base = await stop(started, device);
      expect(
        base,
        `GET_VRING_BASE after ${count} requests made available from index 0 and used: the next available index to process`,
      ).to.equal(count);
      return await namingFindings(
        ctx,
        `vring 0 stopped at available index ${base} after ${count} requests`,
        blk,
      );
    },
  },
  {
    id: 'vring.get-vring-base.drain',
    detail:
      "GET_VRING_BASE right after a kick, ten rounds: no request is used after its reply, on the stopped ring, and the requests not counted consumed complete once the ring restarts; requests counted consumed yet used neither by the reply nor after it (lost) are reported, as QEMU 7.2's vhost-user.rst does not make a back-end complete them before it replies",
    title: 'after GET_VRING_BASE, no request in flight is completed on the stopped ring',
    severity: 'MUST',
    spec: VringSpec.messages,
    // 7.2 does not say a back-end drains at GET_VRING_BASE (a sentence saying so was proposed in 2026): what
    // fails is a completion after the reply, on a ring that is stopped.
    rule:
      `${VringRule.startOnKick}; and ${VringRule.stopped} (a request counted consumed but used neither by the reply ` +
      'nor after it is reported, not failed: no sentence of 7.2 makes the back-end complete in-flight requests ' +
      'before it replies)',
    // Each round restarts the ring at the base: vring.restart must hold.
    needs: ['vring.get-vring-base', 'vring.restart'],
    late: LATE,
    async run(ctx) {
      // Not a block device: rounds of 8 sample requests, every ring of the kind stopped at once as QEMU stops
      // a device; the same judging (a completion after the reply fails, one lost is reported).
      if (!onBlock(ctx)) return await drain(ctx);
      // A ring stopped by GET_VRING_BASE "must not" be processed: a request used after the reply fails. (A
      // sentence making the back-end complete in-flight requests before it replies is proposed, not in 7.2.)
      // Large reads, several rounds: a back-end that does not drain shows it in most rounds, not in all.
      const quiet = Math.min(quietMs(ctx), 50);
      const { device, blk, ring, scratch, started } = await openBlock(ctx, { maxSectors: 128 });
      const summary = await drainRounds(
        {
          requests: 'reads',
          ring: 'vring 0',
          lastAvail: () => ring.queue.lastAvailIdx,
          postBatch(batch) {
            for (let i = 0; i < batch; i++) {
              blk.post({ type: 'IN', sector: scratch + BigInt(i * 8), count: blk.maxSectors });
            }
            ring.notify();
          },
          stop: () => stop(started, device),
          collectNow: () => blk.collectNow(),
          judge: (done) => {
            for (const c of done) blk.expectOk(c);
          },
          gone: () => connectionLost(device),
          async restart(base, rest) {
            ring.kickFd.drain();
            await restart(started, device, base);
            ring.notify();
            if (rest) for (const c of (await blk.collect(rest)).completions) blk.expectOk(c);
          },
        },
        10,
        8,
        quiet,
      );
      return await namingFindings(ctx, summary, blk);
    },
  },
  {
    id: 'vring.enable-gates',
    title: 'with VHOST_USER_F_PROTOCOL_FEATURES, a kicked ring has no effect until SET_VRING_ENABLE 1',
    severity: 'MUST',
    spec: VringSpec.ringStates,
    rule:
      'vhost-user.rst (QEMU 7.2), Ring states: "If ``VHOST_USER_F_PROTOCOL_FEATURES`` has been negotiated, the ring ' +
      'is initialized in a disabled state and is enabled by ``VHOST_USER_SET_VRING_ENABLE`` with parameter 1."; and ' +
      VringRule.disabled,
    needs: [NEEDS_DATA_PATH],
    async run(ctx) {
      // Not a block device: the kind's sample request, posted and kicked on the never-enabled sample ring
      // (the kind's other rings enabled). Held, then done once enabled: pass. Its side effect seen while
      // disabled (net: the frame looped back on receiveq0; fs: the directory a MKDIR makes, in the folder
      // served; gpu: the scanout a SET_SCANOUT sets, on the display): fail. Used while disabled with no
      // effect seen: pass where the back-end shows the effect for a sample on the enabled ring, else a skip
      // saying why (scsi's TEST UNIT READY has none the harness sees; fs attached: the folder is unknown;
      // processing without side effects is what a disabled ring may do). See any-device.ts judgeHeld.
      if (!onBlock(ctx)) return await enableGates(ctx);
      const quiet = quietMs(ctx);
      const seed = freshSeed();
      // A first connection keeps what the sector holds, to put it back at the end (the ring under test
      // cannot read before it is enabled).
      const first = await openBlock(ctx, { protocolFeatures: 'require', writes: true });
      const sector = first.scratch;
      const original = await first.blk.read(sector, 1);
      first.session.connection.close();

      // A fresh connection: the ring is set up and kicked, never enabled.
      const { device, blk } = await openBlock(ctx, {
        protocolFeatures: 'require',
        writes: true,
        enable: false,
      });
      const notes: string[] = [];
      try {
        const initial = sectorPattern(sector, 1, seed);
        const early = await postWhileHeld(blk, sector, initial, quiet);
        notes.push(await judgeHeldWrite('never enabled', device, blk, early, sector, initial));
        // SET_VRING_ENABLE 0 on a running ring has a check of its own, vring.disable-stops.
      } catch (err) {
        // Put the sector back if the device still takes a write; the failure is the verdict either way.
        await device
          .enable(0, true)
          .then(() => blk.write(sector, original))
          .catch(() => undefined);
        throw err;
      }
      await blk.write(sector, original);
      return await namingFindings(ctx, `${notes.join('; ')} (quiet window ${quiet} ms)`, first.blk, blk);
    },
  },
  {
    id: 'vring.legacy-start',
    title: 'without VHOST_USER_F_PROTOCOL_FEATURES, the ring runs on the kick with no SET_VRING_ENABLE',
    severity: 'MUST',
    spec: VringSpec.ringStates,
    rule:
      'vhost-user.rst (QEMU 7.2), Ring states: "If ``VHOST_USER_F_PROTOCOL_FEATURES`` has not been negotiated, the ' +
      `ring starts directly in the enabled state."; and ${VringRule.startOnKick}`,
    needs: [NEEDS_DATA_PATH],
    async run(ctx) {
      // Not a block device: sample requests complete with no SET_VRING_ENABLE (no write: nothing to restore).
      if (!onBlock(ctx)) return await legacyStart(ctx);
      const { blk, scratch, features } = await openBlock(ctx, { protocolFeatures: 'none', writes: true });
      const count = 4;
      const data = sectorPattern(scratch, count, freshSeed());
      await preserving(blk, scratch, count, async () => {
        await blk.write(scratch, data);
        expectSectors('read back on a ring never enabled', data, await blk.read(scratch, count), scratch);
      });
      const bit30 = hasBit(features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
      return await namingFindings(
        ctx,
        `features ${hex(features)}${bit30 ? '' : ' (no bit 30)'}: written and read back without SET_VRING_ENABLE`,
        blk,
      );
    },
  },
  {
    id: 'vring.restart',
    title: 'GET_VRING_BASE stops the ring; restarted at that base, no request is lost or completed twice',
    severity: 'MUST',
    spec: VringSpec.ringStates,
    rule: `${VringRule.startOnKick}; and ${VringRule.stopped}; the ring restarted where ${VringRule.setVringBase}`,
    needs: ['vring.get-vring-base'],
    async run(ctx) {
      if (!onBlock(ctx)) return await restartRing(ctx);
      const quiet = quietMs(ctx);
      const { device, blk, ring, scratch, started } = await openBlock(ctx, {
        base: NEAR_WRAP,
        writes: true,
      });
      const queue = ring.queue;
      const count = 16;
      const data = sectorPattern(scratch, count, freshSeed());
      const read = (i: number) => ({ type: 'IN', sector: scratch + BigInt(i), count: 1 }) as const;
      const check = (c: BlkCompletion) => {
        blk.expectOk(c);
        if (c.request.type !== 'IN') return;
        const offset = Number(c.request.sector - scratch);
        expectSectors(
          describeBlkRequest(c.request),
          data.subarray(offset * 512, (offset + 1) * 512),
          c.data,
          c.request.sector,
        );
      };
      let base = 0;
      await preserving(blk, scratch, count, async () => {
        await blk.write(scratch, data);
        for (let i = 0; i < 3; i++) check(await blk.run(read(i)));

        // Four requests in flight at once, all used, then GET_VRING_BASE (draining has a check of its own).
        for (const c of await blk.runAll([3, 4, 5, 6].map(read))) check(c);
        base = await stop(started, device);
        expect(
          base,
          `GET_VRING_BASE after ${queue.lastAvailIdx - NEAR_WRAP} requests from ${NEAR_WRAP}, all used`,
        ).to.equal(queue.lastAvailIdx);

        // Stopped: two more requests and a kick must stay untouched.
        for (let i = 7; i < 9; i++) blk.post(read(i));
        ring.notify();
        const stray = await sleepAndCollect(blk, quiet);
        if (stray.length) throw new BackendError(`${stray.length} request(s) processed on the stopped ring`);

        // Restart in the profile's order at the returned base, then kick. The kick sent while stopped is
        // taken back first: the back-end is to start on the kick that follows the restart.
        ring.kickFd.drain();
        await restart(started, device, base);
        ring.notify();
        const outstanding = blk.inFlight;
        try {
          const got: BlkCompletion[] = [];
          while (got.length < outstanding)
            got.push(...(await blk.collect(outstanding - got.length)).completions);
          got.forEach(check);
        } catch (err) {
          if (!(err instanceof TimeoutError)) throw err;
          throw new BackendError(
            `after the restart at base ${base}, not all of the ${outstanding} requests left in the ring completed ` +
              `(lost): ${err.message}`,
          );
        }
        for (let i = 9; i < 12; i++) check(await blk.run(read(i)));
      });
      const final = await stop(started, device);
      expect(
        final,
        `GET_VRING_BASE at the end: every request made available from ${NEAR_WRAP} was consumed`,
      ).to.equal(queue.lastAvailIdx);
      return await namingFindings(
        ctx,
        `started at ${NEAR_WRAP}; stopped at ${base}; 2 requests posted and kicked while stopped stayed ` +
          `untouched; restarted at ${base}, they and 3 more completed once each; ` +
          `stopped again at ${final} past the 16-bit wrap`,
        blk,
      );
    },
  },
  {
    id: 'vring.restart.pending-kick',
    detail:
      "a kick left pending on the kick eventfd while stopped starts the ring restarted in the profile's order: its requests complete with no new kick",
    title: 'a kick already pending when a stopped ring is restarted starts it without breaking it',
    severity: 'MUST',
    spec: VringSpec.ringStates,
    rule: VringRule.startOnKick,
    needs: ['vring.restart'],
    late: LATE,
    async run(ctx) {
      if (!onBlock(ctx)) return await pendingKick(ctx);
      // "The back-end must start a ring upon receiving a kick (that is, detecting that file descriptor is
      // readable)": a kick eventfd handed over readable is such a kick. So
      // the kick sent while stopped is left pending and no new one follows: the requests it announced must
      // complete all the same (a back-end that only waits for the next kick loses them).
      const quiet = quietMs(ctx);
      const { device, blk, ring, scratch, started } = await openBlock(ctx);
      const read = (i: number) => ({ type: 'IN', sector: scratch + BigInt(i), count: 1 }) as const;
      for (const c of await blk.runAll([0, 1].map(read))) blk.expectOk(c);
      const base = await stop(started, device);
      for (const i of [2, 3]) blk.post(read(i));
      ring.notify();
      const stray = await sleepAndCollect(blk, quiet);
      if (stray.length) throw new BackendError(`${stray.length} request(s) processed on the stopped ring`);
      try {
        await restart(started, device, base);
        const got: BlkCompletion[] = [];
        while (got.length < 2) got.push(...(await blk.collect(2 - got.length)).completions);
        for (const c of got) blk.expectOk(c);
      } catch (err) {
        const setUp =
          `restarted at base ${base} in the ${started.profile.name} profile's order with 2 requests made ` +
          'available and kicked while stopped (the kick eventfd handed over still readable), no kick after';
        if (err instanceof TimeoutError) {
          throw new BackendError(`${setUp}: the pending kick was lost, ${err.message}`, { cause: err });
        }
        if (!(err instanceof BackendError)) throw err;
        throw new BackendError(`${setUp}: ${err.message}`, { cause: err });
      }
      const final = await stop(started, device);
      expect(final, 'GET_VRING_BASE once both completed').to.equal(ring.queue.lastAvailIdx);
      return await namingFindings(
        ctx,
        `the 2 requests kicked while stopped completed after the restart at ${base} on the kick left pending, ` +
          `with no new one; stopped again at ${final}`,
        blk,
      );
    },
  },
  {
    id: 'vring.disable-stops',
    detail:
      'after traffic, SET_VRING_ENABLE 0: a request posted and kicked has no effect until SET_VRING_ENABLE 1 (block: a write leaves the disk as it was; net: the frame does not come back on receiveq0; fs: a MKDIR makes no directory in the folder served; gpu: a SET_SCANOUT sets no scanout on the display; a device with no side effect the harness sees passes only where the back-end holds the request, else is skipped saying so)',
    title:
      'SET_VRING_ENABLE 0 on a running ring: requests kicked while disabled have no effect until re-enabled',
    severity: 'MUST',
    spec: VringSpec.ringStates,
    rule: VringRule.disabled,
    needs: [NEEDS_DATA_PATH],
    async run(ctx) {
      // Not a block device: as enable-gates, after a sample ran on the enabled ring and SET_VRING_ENABLE 0
      // of the sample ring (any-device.ts judgeHeld).
      if (!onBlock(ctx)) return await disableStops(ctx);
      // "started but disabled: the back-end must process the ring without causing any side effects", as
      // QEMU disables the rings of a device it stops. The ring ran traffic first, so it is started.
      const quiet = quietMs(ctx);
      const seed = freshSeed();
      const { device, blk, scratch } = await openBlock(ctx, { protocolFeatures: 'require', writes: true });
      const sector = scratch;
      const original = await blk.read(sector, 1);
      let note: string;
      try {
        const before = sectorPattern(sector, 1, seed);
        await blk.write(sector, before);
        expectSectors('written on the enabled ring', before, await blk.read(sector, 1), sector);
        await device.enable(0, false);
        const posted = sectorPattern(sector, 1, seed + 1);
        const early = await postWhileHeld(blk, sector, posted, quiet);
        note = await judgeHeldWrite('after SET_VRING_ENABLE 0', device, blk, early, sector, posted);
      } catch (err) {
        await device
          .enable(0, true)
          .then(() => blk.write(sector, original))
          .catch(() => undefined);
        throw err;
      }
      await blk.write(sector, original);
      return await namingFindings(
        ctx,
        `a write and a read ran, then ${note} (quiet window ${quiet} ms)`,
        blk,
      );
    },
  },
]);

async function sleepAndCollect(blk: BlkDriver, ms: number): Promise<BlkCompletion[]> {
  await sleep(ms);
  return blk.collectNow();
}
