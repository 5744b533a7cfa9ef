/**
 * The dirty page log of SET_LOG_BASE (vhost-user.rst: Migration), and proto.log.dirty: with logging on, every
 * guest page the device writes is marked, on a device of any kind (harness/devices/kind.ts): the parts of its
 * sample requests' buffers it wrote (a block read's data and status, an fs reply, a gpu response), the frames a
 * net device receives (from a back-end that loops them back: the kind's effect), and the used ring entries
 * and used.idx of every ring it used, at the ring's log_guest_addr.
 */

import { expect } from 'chai';
import { SampleError } from '../../harness/devices/kind.js';
import { SkipError } from '../../harness/errors.js';
import type { FrontendDevice } from '../../harness/frontend/device.js';
import { encodeLogDescription, encodeU64 } from '../../harness/protocol/messages.js';
import { hasBit, ProtocolFeature, VHOST_LOG_PAGE, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { closeFd } from '../../harness/sys/libc.js';
import { SharedMemory } from '../../harness/sys/memfd.js';
import { checkReply } from '../../harness/transport/connection.js';
import type { FrontendSession } from '../../harness/transport/session.js';
import { openDevice, requireKind, type SampleCompletion, samplesEffect } from '../common/device.js';
import { NEEDS_DATA_PATH } from '../vring/common.js';
import { offeredFeatures } from './common.js';

const MIGRATION = 'vhost-user.rst#migration';
const bit = (b: number): bigint => 1n << BigInt(b);
const hex = (n: bigint | number): string => `0x${n.toString(16)}`;
const PAGE = BigInt(VHOST_LOG_PAGE);
/** Sample requests made with logging on. */
const SAMPLES = 4;

/**
 * A log of `size` bytes at `offset` of a fresh memfd (owned by the check's scope), and SET_LOG_BASE with it,
 * sent as QEMU sends it (no need_reply). The back-end must answer (Communication: "SET_LOG_BASE (if
 * VHOST_USER_PROTOCOL_F_LOG_SHMFD)"); QEMU reads the reply whatever its size, and back-ends answer with a u64
 * (libvhost-user) or nothing (DPDK), so both sizes pass. Returns the log's bytes and the reply's size.
 */
export async function setLogBase(
  ctx: CheckContext,
  session: FrontendSession,
  size: number,
  offset = 0,
): Promise<{ log: Uint8Array; replySize: number; replyValue: bigint | undefined }> {
  const memory = new SharedMemory(offset + size, 'vhu-conform dirty log');
  ctx.scope.defer('dirty log memfd', () => memory.close());
  const { connection } = session;
  await connection.send('SET_LOG_BASE', {
    payload: encodeLogDescription({ size: BigInt(size), offset: BigInt(offset) }),
    fds: [memory.fd],
  });
  const reply = await connection.nextFrame('the reply to SET_LOG_BASE');
  try {
    checkReply('SET_LOG_BASE', reply, reply.payload.length === 0 ? 0 : 8, 0, connection.recent());
  } finally {
    for (const fd of reply.fds) closeFd(fd);
  }
  return {
    log: memory.bytes.subarray(offset, offset + size),
    replySize: reply.payload.length,
    replyValue: reply.payload.length === 8 ? reply.payload.readBigUInt64LE() : undefined,
  };
}

function isMarked(log: Uint8Array, gpa: bigint): boolean {
  const page = gpa / BigInt(VHOST_LOG_PAGE);
  const byte = log[Number(page / 8n)];
  return byte !== undefined && ((byte >> Number(page % 8n)) & 1) === 1;
}

function markedPages(log: Uint8Array): number {
  let count = 0;
  for (const byte of log) for (let b = byte; b; b &= b - 1) count++;
  return count;
}

/** Bytes of log that cover every guest page of the device's memory, rounded up to whole pages. */
function logSizeFor(device: FrontendDevice): number {
  const end = device.memory.regions.reduce((max, r) => {
    const last = r.guestAddress + r.size;
    return last > max ? last : max;
  }, 0n);
  const bytes = Number((end + BigInt(VHOST_LOG_PAGE) * 8n - 1n) / (BigInt(VHOST_LOG_PAGE) * 8n));
  return Math.ceil(bytes / VHOST_LOG_PAGE) * VHOST_LOG_PAGE;
}

/** What the device wrote: a range of guest memory, and what it is. */
interface Written {
  what: string;
  gpa: bigint;
  len: number;
}

/** The parts of a sample's writable buffers the device wrote, as far as used.len says (in chain order). */
function sampleWrites(c: SampleCompletion): Written[] {
  const out: Written[] = [];
  let left = c.len;
  for (const [k, e] of c.sample.chain.entries()) {
    if (!e.write || left <= 0) continue;
    const len = Math.min(e.len, left);
    out.push({ what: `${c.sample.what}, its writable descriptor ${k}`, gpa: e.gpa, len });
    left -= len;
  }
  return out;
}

/** The used ring entries from `from` (free-running) to `to`, and used.idx, of a ring logged at `logAddress`. */
function usedWrites(name: string, logAddress: bigint, size: number, from: number, to: number): Written[] {
  const out: Written[] = [];
  for (let i = from; i !== to; i = (i + 1) & 0xffff) {
    const slot = i & (size - 1);
    out.push({
      what: `${name}'s used ring element ${slot}`,
      gpa: logAddress + 4n + 8n * BigInt(slot),
      len: 8,
    });
  }
  if (from !== to) out.push({ what: `${name}'s used.idx`, gpa: logAddress + 2n, len: 2 });
  return out;
}

/** Each page of `w` not marked in `log`, named. */
function unmarked(log: Uint8Array, w: Written): string[] {
  const missing: string[] = [];
  for (let page = w.gpa / PAGE; page <= (w.gpa + BigInt(w.len) - 1n) / PAGE; page++)
    if (!isMarked(log, page * PAGE)) missing.push(`${w.what} (guest ${hex(w.gpa)}, page ${hex(page)})`);
  return missing;
}

/** After the vring checks: it builds on the data path of each kind. */
export const logDirtyChecks = defineChecks('protocol', [
  {
    id: 'proto.log.dirty',
    detail:
      "with `LOG_SHMFD`, `VHOST_F_LOG_ALL` and `VHOST_VRING_F_LOG` set on every running ring of a device of any kind (as QEMU starts logging: `SET_LOG_BASE`, then `SET_FEATURES` with `LOG_ALL`, then `SET_VRING_ADDR` with the log address), four of the kind's sample requests: every page of their buffers the device wrote (as far as used.len says: a block read's data and status, an fs reply, a gpu response), of the receive buffers a net device filled with the frames it looped back, and of the used ring entries and used.idx it wrote on each ring (at `log_guest_addr`) is marked in the log, each missing one named; pages it did not write may be marked",
    title:
      'with VHOST_F_LOG_ALL, every page the device writes (data buffers, used ring entries, used.idx) is marked in the log',
    severity: 'SHOULD',
    spec: MIGRATION,
    rule: 'vhost-user.rst (QEMU 7.2), Migration: "All the modifications to memory pointed by vring "descriptor" should be marked. Modifications to "used" vring should be marked if ``VHOST_VRING_F_LOG`` is part of ring\'s flags."',
    // A block device's data path first (vring.blk.read-write, which runs before): one broken there would
    // fail this too. Another kind's data-path check runs after; its failures name it (dataPath).
    needs: ['proto.log.set-base', NEEDS_DATA_PATH],
    async run(ctx) {
      const kind = requireKind(ctx);
      if (!hasBit(await offeredFeatures(ctx), VirtioFeature.VHOST_F_LOG_ALL))
        throw new SkipError('VHOST_F_LOG_ALL is not offered');
      const { session, device, ring, driver, features } = await openDevice(ctx, {
        protocolFeatures: 'require',
        requiredProtocolFeatures: bit(ProtocolFeature.LOG_SHMFD),
      });
      if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.LOG_SHMFD))
        throw new SkipError('VHOST_USER_PROTOCOL_F_LOG_SHMFD is not offered');
      // The opening request (fs: FUSE_INIT) before logging starts: the samples are what is judged.
      await driver.open();
      // As QEMU starts logging on a running device: the log, VHOST_F_LOG_ALL, then each ring's address.
      const { log } = await setLogBase(ctx, session, logSizeFor(device));
      await session.expectAck('SET_FEATURES', encodeU64(features | bit(VirtioFeature.VHOST_F_LOG_ALL)));
      const logAddresses = new Map<number, bigint>();
      for (const i of kind.rings) logAddresses.set(i, await device.setRingLogging(i, true));
      const watch = samplesEffect(ctx, kind, (i) => device.ring(i), device.memory);
      const from = new Map(kind.rings.map((i) => [i, device.ring(i).queue.lastUsedIdx]));
      watch?.arm();
      let done: SampleCompletion[];
      try {
        done = await driver.run(SAMPLES);
      } catch (err) {
        if (!(err instanceof SampleError)) throw err;
        throw new SkipError(
          `the ${kind.type} sample request did not complete as the request done (${err.message}): the data path is ${kind.dataPath}'s to judge`,
        );
      }
      // A back-end that loops frames back: each comes back on receiveq0 within the deadline (or is not judged).
      const deadline = performance.now() + ctx.timeoutMs;
      let looped = watch !== undefined;
      while (watch && !done.every((c) => watch.seen(c.sample))) {
        if (performance.now() > deadline) {
          looped = false;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const written: Written[] = [
        ...done.flatMap(sampleWrites),
        ...(looped ? (watch?.written?.() ?? []) : []),
      ];
      for (const i of kind.rings) {
        const queue = device.ring(i).queue;
        written.push(
          ...usedWrites(`vring ${i}`, logAddresses.get(i)!, queue.size, from.get(i)!, queue.lastUsedIdx),
        );
      }
      const missing = written.flatMap((w) => unmarked(log, w));
      const marked = markedPages(log);
      if (missing.length)
        expect.fail(
          `the device wrote ${missing.join('; ')} but did not mark it in the log (${marked} page${marked === 1 ? '' : 's'} marked in all)`,
        );
      const dataPages = new Set(
        written
          .filter((w) => !w.what.includes('used'))
          .flatMap((w) => [w.gpa / PAGE, (w.gpa + BigInt(w.len) - 1n) / PAGE]),
      );
      const effect = watch
        ? looped
          ? `, the frames looped back into receive buffers on receiveq0 with them`
          : `; ${watch.what} not seen within ${ctx.timeoutMs} ms, so not judged`
        : '';
      return (
        `${SAMPLES} ${kind.type} sample requests on ${kind.sampleRingName} (${ring.index})${effect}: every page ` +
        `written was marked (${dataPages.size} data page${dataPages.size === 1 ? '' : 's'} and the used rings of ` +
        `vring ${kind.rings.join(', ')}; ${marked} pages marked in all)`
      );
    },
  },
]);
