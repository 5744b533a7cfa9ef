/**
 * The FUSE operations and judgements the fs checks (fs.ts) share: GETATTR, OPEN and RELEASE with their
 * replies checked, a whole file read back, a listing compared with the tree, the config space read.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { FsDriver } from '../../harness/devices/fs/fs.js';
import {
  decodeDirents,
  decodeDirentsPlus,
  FuseAttrOut,
  type FuseAttrValue,
  type FuseDirent,
  type FuseDirentPlus,
  FuseGetattrIn,
  FuseOpcode,
  FuseOpenIn,
  FuseOpenOut,
  FuseReadIn,
  FuseReleaseIn,
} from '../../harness/devices/fs/fuse.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { openFs } from '../common/fs.js';
import { direntType, onHost, quote } from './fs-common.js';

export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const S_IFREG = 0o100000;
/** An opcode no FUSE version defines. */
export const UNKNOWN_OPCODE = 4242;

export async function getattr(fsd: FsDriver, nodeid: bigint, what: string): Promise<FuseAttrValue> {
  const body = await fsd.call(
    { opcode: FuseOpcode.GETATTR, nodeid, args: FuseGetattrIn.encode({}), outArgs: FuseAttrOut.size },
    what,
  );
  return FuseAttrOut.decode(body, 0, `${what}'s fuse_attr_out`).attr;
}

export async function open(
  fsd: FsDriver,
  nodeid: bigint,
  flags: number,
  what: string,
  dir = false,
): Promise<bigint> {
  const body = await fsd.call(
    {
      opcode: dir ? FuseOpcode.OPENDIR : FuseOpcode.OPEN,
      nodeid,
      args: FuseOpenIn.encode({ flags }),
      outArgs: FuseOpenOut.size,
    },
    what,
  );
  return FuseOpenOut.decode(body, 0, `${what}'s fuse_open_out`).fh;
}

export async function release(
  fsd: FsDriver,
  nodeid: bigint,
  fh: bigint,
  flags: number,
  what: string,
  dir = false,
) {
  await fsd.call(
    {
      opcode: dir ? FuseOpcode.RELEASEDIR : FuseOpcode.RELEASE,
      nodeid,
      args: FuseReleaseIn.encode({ fh, flags }),
    },
    what,
  );
}

/** Every entry of a directory through READDIR or READDIRPLUS, `size` bytes a request, following `off`. */
export async function readAll<P extends boolean>(
  fsd: FsDriver,
  nodeid: bigint,
  fh: bigint,
  plus: P,
  size: number,
): Promise<P extends true ? FuseDirentPlus[] : FuseDirent[]> {
  const op = plus ? 'READDIRPLUS' : 'READDIR';
  const out: FuseDirent[] = [];
  let offset = 0n;
  for (let round = 0; round < 200; round++) {
    const body = await fsd.call(
      {
        opcode: plus ? FuseOpcode.READDIRPLUS : FuseOpcode.READDIR,
        nodeid,
        args: FuseReadIn.encode({ fh, offset, size }),
        outData: size,
      },
      `${op} at offset ${offset}`,
    );
    if (body.length === 0) return out as P extends true ? FuseDirentPlus[] : FuseDirent[];
    if (body.length > size) throw new BackendError(`${op} of ${size} bytes returned ${body.length}`);
    const entries = plus ? decodeDirentsPlus(body) : decodeDirents(body);
    for (const e of entries) {
      if (out.some((o) => o.name === e.name)) {
        throw new BackendError(`${op}: ${quote(e.name)} came twice (the second time after offset ${offset})`);
      }
    }
    out.push(...entries);
    offset = entries.at(-1)!.off;
  }
  throw new BackendError(`${op} never came to an empty reply in 200 requests`);
}

/** The names READDIR must list (node:fs) against those it did, and each type and inode. */
export function expectListing(op: string, dir: string, entries: FuseDirent[]): string[] {
  const listed = entries.map((e) => e.name).filter((n) => n !== '.' && n !== '..');
  const actual = onHost(op, dir, () => fs.readdirSync(dir));
  const missing = actual.filter((n) => !listed.includes(n));
  const extra = listed.filter((n) => !actual.includes(n));
  if (missing.length || extra.length) {
    throw new BackendError(
      `${op} of ${dir}: ` +
        [
          missing.length ? `missing ${missing.map(quote).join(', ')}` : '',
          extra.length ? `not in the directory: ${extra.map(quote).join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; '),
    );
  }
  for (const e of entries) {
    if (e.name === '.' || e.name === '..') continue;
    const entry = path.join(dir, e.name);
    const st = onHost(op, entry, () => fs.lstatSync(entry, { bigint: true }));
    expect(e.type, `${op}: the type of ${quote(e.name)}`).to.equal(direntType(Number(st.mode)));
    expect(e.ino, `${op}: the inode of ${quote(e.name)}`).to.equal(st.ino);
  }
  return listed;
}

/** The config space read with CONFIG negotiated; skip when CONFIG is not offered. */
export async function readFsConfig(ctx: CheckContext) {
  const setup = await openFs(ctx, { config: true });
  const { config } = setup;
  if (!config)
    throw new SkipError('VHOST_USER_PROTOCOL_F_CONFIG is not offered: the config space cannot be read');
  return { ...setup, config };
}
