/**
 * What the fs checks share: their anchors, requests that must fail, and comparisons of FUSE answers with what
 * node:fs says of the same files. The device, its tree and FUSE_INIT are `openFs` and `openInitialized`'s
 * (suites/common/fs.ts).
 */

import fs from 'node:fs';
import { expect } from 'chai';
import type { FsDriver } from '../../harness/devices/fs/fs.js';
import { errnoLabel, type FuseAttrValue, fuseOpcodeName } from '../../harness/devices/fs/fuse.js';
import { BackendError } from '../../harness/errors.js';

/** Anchors: virtio-spec labels of the File System Device (device-types/fs). */
export const FsSpec = {
  operation: 'virtio-spec#sec-device-types-file-system-device-device-operation',
  config: 'virtio-spec#sec-device-types-file-system-device-device-configuration-layout',
} as const;

export const NEEDS_INIT = 'fs.init';

/** The errno of a request that must fail (a success is a FAIL naming `what`). */
export async function expectErrno(
  fsd: FsDriver,
  request: Parameters<FsDriver['run']>[0],
  errno: number,
  what: string,
): Promise<void> {
  const reply = await fsd.run(request);
  expect(
    reply.error === 0 ? 'success' : errnoLabel(-reply.error),
    `${what}: ${fuseOpcodeName(request.opcode)}`,
  ).to.equal(errnoLabel(errno));
}

/**
 * `read` of the tree the back-end serves, as the host sees it: a file the back-end removed or made unreadable
 * is its doing, a BackendError naming it (and the errno), not a fault of the harness.
 */
export function onHost<T>(what: string, file: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err;
    throw new BackendError(
      `${what}: the host cannot read ${file} (${code}); the back-end removed or changed it`,
    );
  }
}

/** Where a FUSE attribute disagrees with lstat of the same file, or undefined. */
export function attrDiff(attr: FuseAttrValue, file: string): string | undefined {
  const st = onHost('lstat', file, () => fs.lstatSync(file, { bigint: true }));
  const fields: Array<[string, bigint | number, bigint | number]> = [
    ['ino', attr.ino, st.ino],
    ['size', attr.size, st.size],
    ['mode', attr.mode, Number(st.mode)],
    ['nlink', attr.nlink, Number(st.nlink)],
    ['uid', attr.uid, Number(st.uid)],
    ['gid', attr.gid, Number(st.gid)],
    ['mtime', attr.mtime, st.mtimeNs / 1_000_000_000n],
    ['mtimensec', attr.mtimensec, Number(st.mtimeNs % 1_000_000_000n)],
  ];
  const wrong = fields
    .filter(([, got, want]) => BigInt(got) !== BigInt(want))
    .map(([name, got, want]) => `${name} ${fmt(name, got)}, lstat says ${fmt(name, want)}`);
  return wrong.length ? wrong.join('; ') : undefined;
}

function fmt(name: string, v: bigint | number): string {
  return name === 'mode' ? `0${Number(v).toString(8)}` : String(v);
}

/** Throws unless `attr` is what lstat says of `file`. */
export function expectAttr(what: string, attr: FuseAttrValue, file: string): void {
  const diff = attrDiff(attr, file);
  if (diff) throw new BackendError(`${what}: ${diff}`);
}

/** The DT_* type of a mode (S_IFMT >> 12). */
export function direntType(mode: number): number {
  return (mode >> 12) & 0xf;
}

/** `name` with bytes shown when not printable. */
export function quote(name: string): string {
  return JSON.stringify(name);
}
