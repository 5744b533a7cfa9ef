/**
 * A virtio-fs device started as the run's front-end profile starts one (`openFs`), over a tree of known files
 * the harness makes in the directory the back-end serves; FUSE_INIT and the LOOKUP of the tree
 * (`openInitialized`): what the fs checks and the fs bench drive.
 */

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FsDriver, type FuseRequest, readFsConfig, sharedDirFromArgs } from '../../harness/devices/fs/fs.js';
import {
  encodeName,
  errnoLabel,
  FUSE_COMPAT_22_INIT_OUT_SIZE,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_ROOT_ID,
  FuseEntryOut,
  FuseInitFlag,
  FuseInitIn,
  FuseInitOut,
  FuseOpcode,
  type VirtioFsConfig,
} from '../../harness/devices/fs/fuse.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { FrontendDevice, type Vring } from '../../harness/frontend/device.js';
import { ackFeatures, initTargetSession, startDevice } from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import { requireDevice } from './device.js';

/** Ring size the fs checks use. */
const QUEUE_SIZE = 64;

/** One file of the prepared tree: its path under the tree, mode bits and content. */
export interface TreeFile {
  name: string;
  mode: number;
  content: Buffer;
}

/** The files the harness makes, at the tree's top (a subdirectory `sub` holds one more). */
export function treeFiles(): TreeFile[] {
  return [
    { name: 'hello.txt', mode: 0o644, content: Buffer.from('Hello, virtio-fs!\n'.repeat(300)) },
    { name: 'empty', mode: 0o600, content: Buffer.alloc(0) },
    // Larger than one READ of the driver: read in several, at offsets.
    { name: 'big.bin', mode: 0o640, content: randomBytes(100_000) },
    { name: 'run.sh', mode: 0o755, content: Buffer.from('#!/bin/sh\necho hi\n') },
    { name: 'doomed.txt', mode: 0o644, content: Buffer.from('to be unlinked\n') },
    { name: 'resize.dat', mode: 0o664, content: randomBytes(6000) },
  ];
}
export const SUBDIR = 'sub';
export const SUBDIR_MODE = 0o750;
export const INNER = { name: 'inner.txt', mode: 0o600, content: Buffer.from('inside the subdirectory\n') };

export interface Tree {
  /** The shared directory the back-end serves. */
  shared: string;
  /** The tree's name in it, and its full path. */
  name: string;
  path: string;
  files: TreeFile[];
}

/** The shared directory, or a skip saying how to name it. */
export function sharedDir(ctx: CheckContext): string {
  if (ctx.target.connect !== null) {
    throw new SkipError('attach mode: the directory the back-end serves is unknown (no back-end arguments)');
  }
  const shared = sharedDirFromArgs(ctx.target.extraArgs);
  if (shared === undefined) {
    throw new SkipError(
      'the directory the back-end serves is unknown: give it after --, as `-o source=DIR` or `--shared-dir=DIR`',
    );
  }
  return shared;
}

/** Makes a fresh tree in the shared directory, removed when the check ends. */
export function prepareTree(ctx: CheckContext): Tree {
  const shared = sharedDir(ctx);
  const full = fs.mkdtempSync(path.join(shared, 'vhu-conform-fs-'));
  ctx.scope.defer(`fs tree ${full}`, () => fs.rmSync(full, { recursive: true, force: true }));
  fs.chmodSync(full, 0o755);
  const files = treeFiles();
  for (const f of files) {
    fs.writeFileSync(path.join(full, f.name), f.content);
    fs.chmodSync(path.join(full, f.name), f.mode);
  }
  fs.mkdirSync(path.join(full, SUBDIR));
  fs.chmodSync(path.join(full, SUBDIR), SUBDIR_MODE);
  fs.writeFileSync(path.join(full, SUBDIR, INNER.name), INNER.content);
  fs.chmodSync(path.join(full, SUBDIR, INNER.name), INNER.mode);
  return { shared, name: path.basename(full), path: full, files };
}

export interface FsSetup {
  session: FrontendSession;
  device: FrontendDevice;
  fs: FsDriver;
  rings: Vring[];
  features: bigint;
  /** GET_CONFIG's view, when CONFIG was negotiated. */
  config: VirtioFsConfig | undefined;
  /** The virtqueues the device has: GET_QUEUE_NUM with MQ, else 1 + num_request_queues, else 2. */
  queueCount: number;
  tree: Tree;
}

export interface FsOptions {
  /** Set up every request queue the device has (default: hiprio and the first request queue). */
  allQueues?: boolean;
  /** Negotiate CONFIG when offered, whether or not the front-end profile would (the config space check). */
  config?: boolean;
}

/**
 * A virtio-fs device on a fresh connection, over a fresh tree, started as the run's front-end profile starts
 * one: the protocol features it acknowledges, SET_FEATURES (VERSION_1 and bit 30 when offered), the memory,
 * the hiprio queue and request queues set up and enabled. No FUSE request yet.
 */
export async function openFs(ctx: CheckContext, options: FsOptions = {}): Promise<FsSetup> {
  requireDevice(ctx, 'fs');
  const tree = prepareTree(ctx);
  const session = new FrontendSession(await frontendConnection(ctx));
  const started = await initTargetSession(ctx, session, {
    protocol: true,
    ...(options.config ? { extra: 1n << BigInt(ProtocolFeature.CONFIG) } : {}),
  });
  const version1 = 1n << BigInt(VirtioFeature.VIRTIO_F_VERSION_1);
  const features = ackFeatures(started, version1);
  const config = hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG)
    ? await readFsConfig(session)
    : undefined;
  // QEMU and crosvm ask at start-up; a profile that does not ask there asks here.
  const queueNum =
    started.queueNum ??
    (hasBit(session.ackedProtocolFeatures, ProtocolFeature.MQ)
      ? Number(await session.connection.requestU64('GET_QUEUE_NUM'))
      : undefined);
  const queueCount = queueNum ?? (config ? 1 + config.numRequestQueues : 2);
  if (queueCount < 2) {
    throw new BackendError(
      `the device has ${queueCount} virtqueue(s): virtio-fs needs hiprio and a request queue`,
    );
  }
  const device = new FrontendDevice(session, ctx.scope);
  const count = options.allQueues ? queueCount : 2;
  const indices = Array.from({ length: count }, (_, i) => i);
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: indices.map((index) => ({ index, size: QUEUE_SIZE })),
    enable: true,
  });
  const rings: Vring[] = indices.map((i) => device.ring(i));
  const fs = new FsDriver(rings, {
    timeoutMs: ctx.timeoutMs,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    pid: process.pid,
  });
  return { session, device, fs, rings, features, config, queueCount, tree };
}

export interface Initialized extends FsSetup {
  init: ReturnType<typeof FuseInitOut.decode>;
  /** The tree's node id (LOOKUP of its name in the root). */
  treeNode: bigint;
}

/** The INIT flags the harness offers, as a 7.31 kernel would ask for the features it uses here. */
export const INIT_FLAGS =
  FuseInitFlag.ASYNC_READ | FuseInitFlag.BIG_WRITES | FuseInitFlag.DO_READDIRPLUS | FuseInitFlag.MAX_PAGES;

/** FUSE_INIT as a 7.31 kernel sends it. */
export function fuseInitRequest(): FuseRequest {
  return {
    opcode: FuseOpcode.INIT,
    nodeid: 0n,
    args: FuseInitIn.encode({
      major: FUSE_KERNEL_VERSION,
      minor: FUSE_KERNEL_MINOR_VERSION,
      max_readahead: 0x20000,
      flags: INIT_FLAGS,
    }),
    outArgs: FuseInitOut.size,
  };
}

/** FUSE_INIT as a 7.31 kernel sends it; the reply's fields decoded (a short or failed reply is a FAIL). */
export async function fuseInit(setup: FsSetup): Promise<ReturnType<typeof FuseInitOut.decode>> {
  const reply = await setup.fs.run(fuseInitRequest());
  if (reply.error !== 0) throw new BackendError(`FUSE_INIT failed with errno ${errnoLabel(-reply.error)}`);
  if (reply.body.length < FUSE_COMPAT_22_INIT_OUT_SIZE) {
    throw new BackendError(`FUSE_INIT's reply has ${reply.body.length} bytes of fuse_init_out`);
  }
  const body = Buffer.alloc(FuseInitOut.size);
  reply.body.copy(body);
  return FuseInitOut.decode(body);
}

/** openFs, FUSE_INIT, and LOOKUP of the tree. */
export async function openInitialized(ctx: CheckContext, options: FsOptions = {}): Promise<Initialized> {
  const setup = await openFs(ctx, options);
  const init = await fuseInit(setup);
  const entry = await lookup(setup.fs, FUSE_ROOT_ID, setup.tree.name);
  return { ...setup, init, treeNode: entry.nodeid };
}

/** LOOKUP that must succeed. */
export async function lookup(fsd: FsDriver, parent: bigint, name: string) {
  const body = await fsd.call(
    { opcode: FuseOpcode.LOOKUP, nodeid: parent, args: encodeName(name), outArgs: FuseEntryOut.size },
    `LOOKUP ${name}`,
  );
  return FuseEntryOut.decode(body, 0, `LOOKUP ${name}'s fuse_entry_out`);
}
