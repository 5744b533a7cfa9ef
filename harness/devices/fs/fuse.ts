/**
 * The FUSE messages virtio-fs carries (include/uapi/linux/fuse.h, protocol 7.31: the version virtio-fs came
 * with in Linux 5.4), as field tables: one table per struct, read and written by the same two functions, so
 * a layout is typed once. Both sides use them: the harness's driver (fs.ts) and the fixture's FUSE server.
 * All fields are little-endian (vhu-conform supports little-endian hosts only, and virtio-fs is LE).
 */
import { ProtocolError } from '../../errors.js';
import type { ConfigSpace } from '../config.js';

/** Opcodes (enum fuse_opcode), spelled as fuse.h spells them without the FUSE_ prefix. */
export const FuseOpcode = {
  LOOKUP: 1,
  FORGET: 2, // no reply
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
} as const;
export type FuseOpcodeName = keyof typeof FuseOpcode;

const OPCODE_NAMES = new Map<number, FuseOpcodeName>();
for (const [name, value] of Object.entries(FuseOpcode)) OPCODE_NAMES.set(value, name as FuseOpcodeName);

export function fuseOpcodeName(opcode: number): string {
  return OPCODE_NAMES.get(opcode) ?? `opcode ${opcode}`;
}

export const FUSE_KERNEL_VERSION = 7;
/** The minor version the harness speaks: 7.31, virtio-fs's first. */
export const FUSE_KERNEL_MINOR_VERSION = 31;
/** The root directory's node id. */
export const FUSE_ROOT_ID = 1n;

/** fuse_init_in / fuse_init_out flags the harness asks for or reads. */
export const FuseInitFlag = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  FILE_OPS: 1 << 2,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  MAX_PAGES: 1 << 22,
} as const;

/** fuse_setattr_in.valid bits (FATTR_*). */
export const FattrValid = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
} as const;

/** The errno values the checks name (Linux, as FUSE carries them negated in fuse_out_header.error). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  EPROTO: 71,
  EOPNOTSUPP: 95,
} as const;

export function errnoLabel(errno: number): string {
  const name = Object.entries(Errno).find(([, v]) => v === errno)?.[0];
  return name ? `${errno} (${name})` : String(errno);
}

// ---- field tables ----

type FieldType = 'u16' | 'u32' | 'i32' | 'u64';
type FieldValue<T extends FieldType> = T extends 'u64' ? bigint : number;
type Fields = Readonly<Record<string, FieldType>>;
export type StructValue<F extends Fields> = { -readonly [K in keyof F]: FieldValue<F[K]> };

const FIELD_SIZE: Readonly<Record<FieldType, number>> = { u16: 2, u32: 4, i32: 4, u64: 8 };

/** One C struct of fuse.h: its size, and a reader and writer that agree on the layout by construction. */
export interface FuseStruct<F extends Fields> {
  readonly name: string;
  readonly size: number;
  /** The struct's bytes; fields not given are 0 (padding, unused). */
  encode(value: Partial<StructValue<F>>): Buffer;
  /** Writes the struct into `out` at `offset`. */
  write(out: Buffer, offset: number, value: Partial<StructValue<F>>): void;
  /** Reads the struct at `offset`; fewer than `size` bytes there is a ProtocolError naming `what`. */
  decode(bytes: Uint8Array, offset?: number, what?: string): StructValue<F>;
}

function defineStruct<F extends Fields>(name: string, fields: F, size?: number): FuseStruct<F> {
  const layout: Array<[string, FieldType, number]> = [];
  let at = 0;
  for (const [field, type] of Object.entries(fields)) {
    // fuse.h lays out every struct without holes: each field is at its natural alignment already.
    if (at % FIELD_SIZE[type] !== 0) throw new Error(`${name}.${field} is misaligned`);
    layout.push([field, type, at]);
    at += FIELD_SIZE[type];
  }
  const total = size ?? at;
  const write = (out: Buffer, offset: number, value: Partial<StructValue<F>>): void => {
    const values = value as Record<string, number | bigint | undefined>;
    for (const [field, type, off] of layout) {
      const v = values[field];
      if (v === undefined) continue;
      const p = offset + off;
      if (type === 'u16') out.writeUInt16LE(Number(v), p);
      else if (type === 'u32') out.writeUInt32LE(Number(v) >>> 0, p);
      else if (type === 'i32') out.writeInt32LE(Number(v), p);
      else out.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)), p);
    }
  };
  return {
    name,
    size: total,
    write,
    encode(value) {
      const out = Buffer.alloc(total);
      write(out, 0, value);
      return out;
    },
    decode(bytes, offset = 0, what = name) {
      if (bytes.length - offset < total) {
        throw new ProtocolError(
          `${what}: ${Math.max(0, bytes.length - offset)} bytes, a ${name} needs ${total}`,
          Buffer.from(bytes.subarray(offset)),
        );
      }
      const view = new DataView(bytes.buffer, bytes.byteOffset + offset, total);
      const out: Record<string, number | bigint> = {};
      for (const [field, type, off] of layout) {
        if (type === 'u16') out[field] = view.getUint16(off, true);
        else if (type === 'u32') out[field] = view.getUint32(off, true);
        else if (type === 'i32') out[field] = view.getInt32(off, true);
        else out[field] = view.getBigUint64(off, true);
      }
      return out as StructValue<F>;
    },
  };
}

const IN_HEADER_FIELDS = {
  len: 'u32',
  opcode: 'u32',
  unique: 'u64',
  nodeid: 'u64',
  uid: 'u32',
  gid: 'u32',
  pid: 'u32',
  padding: 'u32',
} as const;
export const FuseInHeader = defineStruct('fuse_in_header', IN_HEADER_FIELDS);
export type FuseInHeaderValue = StructValue<typeof IN_HEADER_FIELDS>;

export const FuseOutHeader = defineStruct('fuse_out_header', { len: 'u32', error: 'i32', unique: 'u64' });

export const FuseInitIn = defineStruct('fuse_init_in', {
  major: 'u32',
  minor: 'u32',
  max_readahead: 'u32',
  flags: 'u32',
});

export const FuseInitOut = defineStruct('fuse_init_out', {
  major: 'u32',
  minor: 'u32',
  max_readahead: 'u32',
  flags: 'u32',
  max_background: 'u16',
  congestion_threshold: 'u16',
  max_write: 'u32',
  time_gran: 'u32',
  max_pages: 'u16',
  map_alignment: 'u16',
  flags2: 'u32',
  unused0: 'u32',
  unused1: 'u32',
  unused2: 'u32',
  unused3: 'u32',
  unused4: 'u32',
  unused5: 'u32',
  unused6: 'u32',
});
/** fuse_init_out before 7.23 (FUSE_COMPAT_22_INIT_OUT_SIZE): up to max_write. */
export const FUSE_COMPAT_22_INIT_OUT_SIZE = 24;

const ATTR_FIELDS = {
  ino: 'u64',
  size: 'u64',
  blocks: 'u64',
  atime: 'u64',
  mtime: 'u64',
  ctime: 'u64',
  atimensec: 'u32',
  mtimensec: 'u32',
  ctimensec: 'u32',
  mode: 'u32',
  nlink: 'u32',
  uid: 'u32',
  gid: 'u32',
  rdev: 'u32',
  blksize: 'u32',
  flags: 'u32',
} as const;
export const FuseAttr = defineStruct('fuse_attr', ATTR_FIELDS);
export type FuseAttrValue = StructValue<typeof ATTR_FIELDS>;

const ENTRY_HEAD = {
  nodeid: 'u64',
  generation: 'u64',
  entry_valid: 'u64',
  attr_valid: 'u64',
  entry_valid_nsec: 'u32',
  attr_valid_nsec: 'u32',
} as const;
const FuseEntryHead = defineStruct('fuse_entry_out', ENTRY_HEAD);
const ATTR_OUT_HEAD = { attr_valid: 'u64', attr_valid_nsec: 'u32', dummy: 'u32' } as const;
const FuseAttrOutHead = defineStruct('fuse_attr_out', ATTR_OUT_HEAD);

export interface FuseEntryOutValue extends StructValue<typeof ENTRY_HEAD> {
  attr: FuseAttrValue;
}
export interface FuseAttrOutValue extends StructValue<typeof ATTR_OUT_HEAD> {
  attr: FuseAttrValue;
}

/** A struct with a fuse_attr at its end: `H` is its head, before the attributes. */
export interface WithAttr<H> {
  readonly name: string;
  readonly size: number;
  encode(value: Partial<H> & { attr?: Partial<FuseAttrValue> }): Buffer;
  write(out: Buffer, offset: number, value: Partial<H> & { attr?: Partial<FuseAttrValue> }): void;
  decode(bytes: Uint8Array, offset?: number, what?: string): H & { attr: FuseAttrValue };
}

function withAttr<F extends Fields>(head: FuseStruct<F>): WithAttr<StructValue<F>> {
  const size = head.size + FuseAttr.size;
  const write = (
    out: Buffer,
    offset: number,
    value: Partial<StructValue<F>> & { attr?: Partial<FuseAttrValue> },
  ) => {
    head.write(out, offset, value);
    if (value.attr) FuseAttr.write(out, offset + head.size, value.attr);
  };
  return {
    name: head.name,
    size,
    write,
    encode(value) {
      const out = Buffer.alloc(size);
      write(out, 0, value);
      return out;
    },
    decode(bytes, offset = 0, what = head.name) {
      if (bytes.length - offset < size) {
        throw new ProtocolError(
          `${what}: ${Math.max(0, bytes.length - offset)} bytes, a ${head.name} needs ${size}`,
          Buffer.from(bytes.subarray(offset)),
        );
      }
      return { ...head.decode(bytes, offset, what), attr: FuseAttr.decode(bytes, offset + head.size, what) };
    },
  };
}

/** fuse_entry_out: node id, generation, validity, then the attributes (128 bytes). */
export const FuseEntryOut: WithAttr<StructValue<typeof ENTRY_HEAD>> = withAttr(FuseEntryHead);
/** fuse_attr_out: validity, then the attributes (104 bytes). */
export const FuseAttrOut: WithAttr<StructValue<typeof ATTR_OUT_HEAD>> = withAttr(FuseAttrOutHead);

export const FuseGetattrIn = defineStruct('fuse_getattr_in', {
  getattr_flags: 'u32',
  dummy: 'u32',
  fh: 'u64',
});
/** fuse_getattr_in.getattr_flags: fh is valid. */
export const FUSE_GETATTR_FH = 1;

export const FuseForgetIn = defineStruct('fuse_forget_in', { nlookup: 'u64' });
export const FuseOpenIn = defineStruct('fuse_open_in', { flags: 'u32', open_flags: 'u32' });
export const FuseOpenOut = defineStruct('fuse_open_out', { fh: 'u64', open_flags: 'u32', padding: 'u32' });
export const FuseCreateIn = defineStruct('fuse_create_in', {
  flags: 'u32',
  mode: 'u32',
  umask: 'u32',
  open_flags: 'u32',
});
/** fuse_mkdir_in, then the new directory's name and its NUL. */
export const FuseMkdirIn = defineStruct('fuse_mkdir_in', { mode: 'u32', umask: 'u32' });
export const FuseReleaseIn = defineStruct('fuse_release_in', {
  fh: 'u64',
  flags: 'u32',
  release_flags: 'u32',
  lock_owner: 'u64',
});
export const FuseFlushIn = defineStruct('fuse_flush_in', {
  fh: 'u64',
  unused: 'u32',
  padding: 'u32',
  lock_owner: 'u64',
});
export const FuseReadIn = defineStruct('fuse_read_in', {
  fh: 'u64',
  offset: 'u64',
  size: 'u32',
  read_flags: 'u32',
  lock_owner: 'u64',
  flags: 'u32',
  padding: 'u32',
});
export const FuseWriteIn = defineStruct('fuse_write_in', {
  fh: 'u64',
  offset: 'u64',
  size: 'u32',
  write_flags: 'u32',
  lock_owner: 'u64',
  flags: 'u32',
  padding: 'u32',
});
export const FuseWriteOut = defineStruct('fuse_write_out', { size: 'u32', padding: 'u32' });
export const FuseSetattrIn = defineStruct('fuse_setattr_in', {
  valid: 'u32',
  padding: 'u32',
  fh: 'u64',
  size: 'u64',
  lock_owner: 'u64',
  atime: 'u64',
  mtime: 'u64',
  ctime: 'u64',
  atimensec: 'u32',
  mtimensec: 'u32',
  ctimensec: 'u32',
  mode: 'u32',
  unused4: 'u32',
  uid: 'u32',
  gid: 'u32',
  unused5: 'u32',
});

/** The fixed part of struct fuse_dirent: ino, off, namelen, type; the name follows (FUSE_NAME_OFFSET). */
const FuseDirentHead = defineStruct('fuse_dirent', { ino: 'u64', off: 'u64', namelen: 'u32', type: 'u32' });
export const FUSE_NAME_OFFSET = FuseDirentHead.size;
/** fuse_direntplus: a fuse_entry_out, then a fuse_dirent. */
export const FUSE_NAME_OFFSET_DIRENTPLUS = FuseEntryOut.size + FUSE_NAME_OFFSET;

/** FUSE_DIRENT_ALIGN: records are padded to 8 bytes. */
export function direntAlign(length: number): number {
  return (length + 7) & ~7;
}

export interface FuseDirent {
  ino: bigint;
  /** The offset to ask for to continue after this entry. */
  off: bigint;
  /** DT_* (the S_IFMT bits of the mode >> 12). */
  type: number;
  name: string;
}
export interface FuseDirentPlus extends FuseDirent {
  entry: FuseEntryOutValue;
}

/** The bytes of one fuse_dirent record, padded. */
export function encodeDirent(dirent: FuseDirent): Buffer {
  const name = Buffer.from(dirent.name, 'utf8');
  const out = Buffer.alloc(direntAlign(FUSE_NAME_OFFSET + name.length));
  FuseDirentHead.write(out, 0, { ino: dirent.ino, off: dirent.off, namelen: name.length, type: dirent.type });
  name.copy(out, FUSE_NAME_OFFSET);
  return out;
}

/** The bytes of one fuse_direntplus record, padded. */
export function encodeDirentPlus(dirent: FuseDirentPlus): Buffer {
  const name = Buffer.from(dirent.name, 'utf8');
  const out = Buffer.alloc(direntAlign(FUSE_NAME_OFFSET_DIRENTPLUS + name.length));
  FuseEntryOut.write(out, 0, dirent.entry);
  FuseDirentHead.write(out, FuseEntryOut.size, {
    ino: dirent.ino,
    off: dirent.off,
    namelen: name.length,
    type: dirent.type,
  });
  name.copy(out, FUSE_NAME_OFFSET_DIRENTPLUS);
  return out;
}

/** The records of a READDIR reply; a record that runs past the end is a ProtocolError. */
export function decodeDirents(bytes: Uint8Array): FuseDirent[] {
  const out: FuseDirent[] = [];
  for (let at = 0; at < bytes.length; ) {
    const head = FuseDirentHead.decode(bytes, at, `READDIR record at byte ${at}`);
    const end = at + FUSE_NAME_OFFSET + head.namelen;
    if (end > bytes.length || head.namelen === 0) {
      throw new ProtocolError(
        `READDIR record at byte ${at}: name of ${head.namelen} bytes in a reply of ${bytes.length}`,
        Buffer.from(bytes.subarray(at)),
      );
    }
    out.push({
      ino: head.ino,
      off: head.off,
      type: head.type,
      name: Buffer.from(bytes.subarray(at + FUSE_NAME_OFFSET, end)).toString('utf8'),
    });
    at += direntAlign(FUSE_NAME_OFFSET + head.namelen);
  }
  return out;
}

/** The records of a READDIRPLUS reply. */
export function decodeDirentsPlus(bytes: Uint8Array): FuseDirentPlus[] {
  const out: FuseDirentPlus[] = [];
  for (let at = 0; at < bytes.length; ) {
    const entry = FuseEntryOut.decode(bytes, at, `READDIRPLUS record at byte ${at}`);
    const head = FuseDirentHead.decode(bytes, at + FuseEntryOut.size, `READDIRPLUS record at byte ${at}`);
    const end = at + FUSE_NAME_OFFSET_DIRENTPLUS + head.namelen;
    if (end > bytes.length || head.namelen === 0) {
      throw new ProtocolError(
        `READDIRPLUS record at byte ${at}: name of ${head.namelen} bytes in a reply of ${bytes.length}`,
        Buffer.from(bytes.subarray(at)),
      );
    }
    out.push({
      entry,
      ino: head.ino,
      off: head.off,
      type: head.type,
      name: Buffer.from(bytes.subarray(at + FUSE_NAME_OFFSET_DIRENTPLUS, end)).toString('utf8'),
    });
    at += direntAlign(FUSE_NAME_OFFSET_DIRENTPLUS + head.namelen);
  }
  return out;
}

/** A NUL-terminated name, as LOOKUP, UNLINK and CREATE carry it. */
export function encodeName(name: string): Buffer {
  return Buffer.concat([Buffer.from(name, 'utf8'), Buffer.alloc(1)]);
}

/** The name at the start of `bytes`, up to its NUL; none is a ProtocolError. */
export function decodeName(bytes: Uint8Array, what: string): string {
  const nul = bytes.indexOf(0);
  if (nul < 0) throw new ProtocolError(`${what}: the name has no terminating NUL`, Buffer.from(bytes));
  return Buffer.from(bytes.subarray(0, nul)).toString('utf8');
}

/** struct virtio_fs_config: tag[36] (UTF-8, NUL-padded unless all 36 bytes are used), num_request_queues. */
export const VIRTIO_FS_TAG_SIZE = 36;
export const VIRTIO_FS_CONFIG_SIZE = 40;

export interface VirtioFsConfig {
  tag: Uint8Array;
  numRequestQueues: number;
}

export function encodeVirtioFsConfig(tag: string, numRequestQueues: number): Buffer {
  const out = Buffer.alloc(VIRTIO_FS_CONFIG_SIZE);
  const bytes = Buffer.from(tag, 'utf8');
  if (bytes.length > VIRTIO_FS_TAG_SIZE) throw new RangeError(`tag of ${bytes.length} bytes`);
  bytes.copy(out, 0);
  out.writeUInt32LE(numRequestQueues, VIRTIO_FS_TAG_SIZE);
  return out;
}

/** struct virtio_fs_config as the harness reads it (see ../config.ts). */
export const FS_CONFIG: ConfigSpace = {
  struct: 'virtio_fs_config',
  size: VIRTIO_FS_CONFIG_SIZE,
  fields(bytes) {
    const c = decodeVirtioFsConfig(bytes);
    const nul = c.tag.indexOf(0);
    return {
      tag: Buffer.from(c.tag.subarray(0, nul < 0 ? c.tag.length : nul)).toString('utf8'),
      num_request_queues: c.numRequestQueues,
    };
  },
};

export function decodeVirtioFsConfig(bytes: Uint8Array): VirtioFsConfig {
  if (bytes.length < VIRTIO_FS_CONFIG_SIZE) {
    throw new ProtocolError(`virtio-fs config of ${bytes.length} bytes`, Buffer.from(bytes));
  }
  return {
    tag: bytes.slice(0, VIRTIO_FS_TAG_SIZE),
    numRequestQueues: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).readUInt32LE(
      VIRTIO_FS_TAG_SIZE,
    ),
  };
}
