/**
 * migrate.device-state: a back-end offering VHOST_USER_PROTOCOL_F_DEVICE_STATE moves its internal state
 * through the front-end, as "Migrating back-end state" describes it. That section, SET_DEVICE_STATE_FD and
 * CHECK_DEVICE_STATE came with QEMU 8.2 (Hanna Czenczek's back-end state migration series, for virtiofsd):
 * the QEMU 7.2 text the other checks quote has none of them, so this check quotes QEMU 8.2's.
 *
 * On the source, a file opened through FUSE; the rings stopped as the profile stops them (GET_VRING_BASE):
 * the device suspended, the only phase the spec has; the state saved (the source back-end writes, we read to
 * the end of file) and CHECK_DEVICE_STATE. The destination is started as a front-end re-initializes one
 * ("negotiating protocol features"), given the state (we write and close our end) before its device starts,
 * as QEMU's vhost_load_backend_state does ("Must only be called while the device and all its vrings are
 * stopped"), CHECK_DEVICE_STATE; then its device starts with the guest's features and memory, its rings at the
 * source's bases. A READ through the handle the source opened must read the file: the driver "will not
 * perform any re-initialization steps" (no FUSE_INIT, no OPEN again).
 *
 * What is MUST and what is not: the channel "must generally behave like a pipe: The writing end will write
 * all the data it has into it, signalling the end of data by closing its end. The reading end must read all
 * of this data (until encountering the end of file)"; the destination "must deserialize its internal state
 * from that data and set itself up to allow the driver to seamlessly resume operation"; "The back-end must not
 * both indicate an error and return a file descriptor" (harness/frontend/device-state.ts). CHECK_DEVICE_STATE
 * has no normative word ("The value returned indicates success or error; 0 is success"): a non-zero answer to
 * a transfer that went as the spec says is the back-end saying it could not do what it must, a FAIL; but no
 * check feeds a destination a broken state to see it answer non-zero, as no sentence asks that of it. A
 * back-end that passes its own channel back is followed ("the front-end must then discard its channel and use
 * the one provided by the back-end"). That the source keeps its state after a save (a failed migration
 * resumes there) is "can", not must: not judged.
 *
 * Only an fs device's state has a proof here (a handle that reads through the destination); a back-end of
 * another type offering DEVICE_STATE is skipped, saying so.
 */
import path from 'node:path';
import { FS_MAX_IO, FsDriver, sharedDirFromArgs } from '../../harness/devices/fs/fs.js';
import { errnoLabel, FUSE_ROOT_ID, FuseOpcode, FuseReadIn } from '../../harness/devices/fs/fuse.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice } from '../../harness/frontend/device.js';
import {
  checkDeviceState,
  loadDeviceState,
  type SavedState,
  saveDeviceState,
} from '../../harness/frontend/device-state.js';
import { HandoverPort } from '../../harness/frontend/handover.js';
import { startDevice, stopDevice } from '../../harness/frontend/profiles.js';
import { serveOnSocketPath } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { openDevice, requireDevice } from '../common/device.js';
import { fuseInitRequest, lookup, prepareTree } from '../common/fs.js';
import { O_RDONLY, open, release } from '../devices/fs-ops.js';
import { destinationName, moveTarget, startDestination } from './destination.js';

/** The section, in the QEMU release that brought it. */
const MIGRATING_STATE = 'vhost-user.rst@8.2#migrating-back-end-state';
const DEVICE_STATE = 1n << BigInt(ProtocolFeature.DEVICE_STATE);
/** The file the source opens: larger than one READ, random bytes. */
const FILE = 'big.bin';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * What a launch of the destination adds to its arguments so that it serves the directory the source does: none
 * for a second launch (the run's own arguments) or a back-end someone started (taken to serve it); for a
 * --migrate-to binary, the run's directory unless its arguments name one, which must be the same.
 */
function destinationArgs(ctx: CheckContext, shared: string): string[] {
  const target = moveTarget(ctx);
  if (target === null || 'connect' in target) return [];
  const own = sharedDirFromArgs(target.extraArgs);
  if (own === undefined) return [`--shared-dir=${shared}`];
  if (path.resolve(own) !== path.resolve(shared))
    throw new SkipError(
      `the destination serves ${own}, the source ${shared}: the file a handle names must be on both sides ` +
        '(give both the same directory)',
    );
  return [];
}

/** FUSE_INIT as a 7.31 kernel sends it, which must succeed. */
async function fuseInit(fsd: FsDriver): Promise<void> {
  await fsd.call(fuseInitRequest(), 'FUSE_INIT on the source');
}

/** The file read whole through `fh`, READ by READ; an error reply is a BackendError naming `where`. */
async function readThrough(
  fsd: FsDriver,
  node: bigint,
  fh: bigint,
  size: number,
  where: string,
): Promise<Buffer> {
  const got: Buffer[] = [];
  for (let offset = 0; offset < size; ) {
    const piece = Math.min(FS_MAX_IO, size - offset);
    const reply = await fsd.run({
      opcode: FuseOpcode.READ,
      nodeid: node,
      args: FuseReadIn.encode({ fh, offset: BigInt(offset), size: piece }),
      outData: piece,
    });
    if (reply.error !== 0)
      throw new BackendError(
        `READ of ${FILE} at ${offset} through fh ${fh}, opened on the source, ${where}: errno ${errnoLabel(-reply.error)}`,
      );
    if (reply.body.length === 0) break;
    got.push(Buffer.from(reply.body));
    offset += reply.body.length;
  }
  return Buffer.concat(got);
}

/** A save that did not end as the spec says, or the source's CHECK_DEVICE_STATE, as a FAIL. */
function judgeSave(saved: SavedState, timeoutMs: number): void {
  if (saved.end === 'timeout')
    throw new BackendError(
      `SET_DEVICE_STATE_FD (save) on the source: ${saved.data.length} bytes of state read, then nothing and no end ` +
        `of file within ${timeoutMs} ms: "The writing end will write all the data it has into it, signalling the ` +
        'end of data by closing its end"',
    );
  if (saved.end === 'limit')
    throw new BackendError(
      `SET_DEVICE_STATE_FD (save) on the source: more than ${saved.data.length - 1} bytes of state and no end of file`,
    );
}

export const deviceStateChecks = defineChecks('migrate', [
  {
    id: 'migrate.device-state',
    title:
      "the back-end's state moves through SET_DEVICE_STATE_FD, read to its end on the source and loaded on the destination: a file opened through the source reads through the destination",
    detail:
      "where DEVICE_STATE is offered (a protocol feature of QEMU 8.2): two launches serving one directory (or `--migrate-to`, `--migrate-to-connect`); on the source, FUSE_INIT, a file opened and read, the rings stopped in the front-end profile's order (GET_VRING_BASE), SET_DEVICE_STATE_FD (save, stopped phase) with a pipe's writing end, the state read until the back-end closes its end, CHECK_DEVICE_STATE 0; on the destination, before its device starts, SET_DEVICE_STATE_FD (load) with the reading end, the state written and our end closed, CHECK_DEVICE_STATE 0; then its device started with the same features and memory, the rings at the source's bases, and the file read through the handle the source opened (no FUSE_INIT, no OPEN again): its bytes; a channel of the back-end's own is used when it passes one; an fs device only (the handle is the proof); skipped where DEVICE_STATE is not offered; in attach mode it is skipped (one back-end only)",
    severity: 'MUST',
    spec: MIGRATING_STATE,
    rule:
      'vhost-user.rst (QEMU 8.2), Migrating back-end state: "The nature of the channel is implementation-defined, ' +
      'but it must generally behave like a pipe: The writing end will write all the data it has into it, ' +
      'signalling the end of data by closing its end. The reading end must read all of this data (until ' +
      'encountering the end of file) and process it." and "After reading the state data from the channel, the ' +
      'destination back-end must deserialize its internal state from that data and set itself up to allow the ' +
      'driver to seamlessly resume operation on the VIRTIO level."; SET_DEVICE_STATE_FD: "The back-end must not ' +
      'both indicate an error and return a file descriptor."',
    // The rings stop and start again at their bases on every device kind (any-device.ts): the move needs both.
    needs: ['vring.get-vring-base', 'vring.restart'],
    launchOnly:
      'attach mode: the check needs two back-ends, the source and the destination of the move, and ' +
      '--connect names one someone else started',
    // Two launches, two start-ups, the transfers, the requests on each side.
    budgetMs: (timeoutMs) => 16 * timeoutMs + 5000,
    async run(ctx) {
      const target = moveTarget(ctx);
      const source = await serveOnSocketPath(ctx);
      const a = await openDevice(ctx, {
        connection: source.connection,
        requiredProtocolFeatures: DEVICE_STATE,
      });
      const offered = a.session.protocolFeatures;
      if (!a.started.protocol)
        throw new SkipError(
          'VHOST_USER_F_PROTOCOL_FEATURES is not negotiated: DEVICE_STATE, a protocol feature, cannot be',
        );
      if (offered === undefined || !hasBit(offered, ProtocolFeature.DEVICE_STATE))
        throw new SkipError(
          `protocol feature DEVICE_STATE (bit ${ProtocolFeature.DEVICE_STATE}) is not offered (GET_PROTOCOL_FEATURES ` +
            `${hex(offered ?? 0n)}): the back-end moves no state of its own through the front-end`,
        );
      requireDevice(
        ctx,
        'fs',
        'the check proves the state moved with a file opened through an fs device, and has no proof for this type',
      );
      const tree = prepareTree(ctx);
      const args = destinationArgs(ctx, tree.shared);
      const content = tree.files.find((f) => f.name === FILE)!.content;

      // The source: a file opened and read through FUSE, on request queue ports that move with the guest.
      const ports = a.kind.rings.map((index) => new HandoverPort(a.device.ring(index)));
      const fsd = new FsDriver(ports, {
        timeoutMs: ctx.timeoutMs,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        pid: process.pid,
      });
      await fuseInit(fsd);
      const treeNode = (await lookup(fsd, FUSE_ROOT_ID, tree.name)).nodeid;
      const node = (await lookup(fsd, treeNode, FILE)).nodeid;
      const fh = await open(fsd, node, O_RDONLY, `OPEN ${FILE} on the source`);
      if (!(await readThrough(fsd, node, fh, content.length, 'on the source')).equals(content))
        throw new BackendError(
          `${FILE} read through the source is not the file's bytes (fs.read judges that)`,
        );

      // Suspended: every ring stopped, then the state saved and checked.
      const bases = await stopDevice(a.started, a.device, a.kind.rings);
      const saved = await saveDeviceState(a.session, { timeoutMs: ctx.timeoutMs });
      judgeSave(saved, ctx.timeoutMs);
      const sourceCheck = await checkDeviceState(a.session);
      if (sourceCheck !== 0n)
        throw new BackendError(
          `CHECK_DEVICE_STATE on the source answered ${sourceCheck} after its ${saved.data.length}-byte state was ` +
            'read to the end of file: the source says its state did not go',
        );

      // The destination: the state loaded before its device starts, then the device as the source had it.
      const { session, started } = await startDestination(
        ctx,
        { features: a.features, session: a.session, started: a.started },
        args,
        DEVICE_STATE,
      );
      const to = target === null ? 'the destination' : `the destination, ${destinationName(target)},`;
      if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.DEVICE_STATE))
        throw new SkipError(
          `${to} offers no DEVICE_STATE: the state cannot move there (vhu-conform compat says so)`,
        );
      const loaded = await loadDeviceState(session, saved.data, { timeoutMs: ctx.timeoutMs });
      if (loaded.end !== 'done')
        throw new BackendError(
          `SET_DEVICE_STATE_FD (load) on ${to}: ${loaded.written} of the ${saved.data.length} bytes of state ` +
            `written, then ${loaded.end === 'closed' ? 'its end was closed' : `no room within ${ctx.timeoutMs} ms`}: ` +
            '"The reading end must read all of this data (until encountering the end of file)"',
        );
      const destinationCheck = await checkDeviceState(session);
      if (destinationCheck !== 0n)
        throw new BackendError(
          `CHECK_DEVICE_STATE on ${to} answered ${destinationCheck} after the source's ${saved.data.length}-byte ` +
            'state was written and our end closed: it says it could not take the state it "must deserialize"',
        );
      const b = new FrontendDevice(session, ctx.scope, { memory: a.device.memory });
      await startDevice(started, session, b, ctx.scope, {
        features: a.features,
        rings: a.kind.rings.map((index) => ({
          index,
          size: a.device.ring(index).queue.size,
          base: bases.get(index)!.availIndex,
          queue: a.device.ring(index).queue,
        })),
        enable: started.protocol,
      });
      for (const port of ports) port.handOver(b.ring(port.index));

      const read = await readThrough(
        fsd,
        node,
        fh,
        content.length,
        `failed on ${to} (the driver opens nothing again): it "must deserialize its internal state from that data"`,
      );
      if (!read.equals(content))
        throw new BackendError(
          `${FILE} read through fh ${fh} on ${to}: ${read.length} bytes, not the file's ${content.length}` +
            (read.length === content.length ? ' (other bytes)' : ''),
        );
      await release(fsd, node, fh, O_RDONLY, `RELEASE of fh ${fh} on ${to}`);
      const ringBases = a.kind.rings.map((i) => bases.get(i)!.availIndex).join(' and ');
      return (
        `${FILE} opened on the source (fh ${fh}) and read; its rings stopped at ${ringBases}, the state saved ` +
        `(${saved.data.length} bytes to the end of file${saved.backendChannel ? ', on a channel of its own' : ''}), ` +
        `CHECK_DEVICE_STATE 0; loaded into ${to} before its device started${loaded.backendChannel ? ' (its own channel)' : ''}, ` +
        `CHECK_DEVICE_STATE 0; started at the same bases, it read the ${content.length} bytes through fh ${fh}`
      );
    },
  },
]);
