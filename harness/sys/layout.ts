/** Pure builders for the C structures the libc bindings pass. Linux x86_64/aarch64 layouts, little-endian. */

/** sizeof(struct sockaddr_un) */
export const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = SOCKADDR_UN_SIZE - 2;
const AF_UNIX = 1;

/** struct sockaddr_un for a filesystem path; throws when the path does not fit sun_path with its NUL. */
export function sockaddrUn(path: string): Buffer {
  const encoded = Buffer.from(path, 'utf8');
  if (encoded.length === 0 || encoded.length >= SUN_PATH_MAX) {
    throw new RangeError(`socket path must be 1..${SUN_PATH_MAX - 1} bytes, got ${encoded.length}: ${path}`);
  }
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  encoded.copy(addr, 2);
  return addr;
}

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } as returned by SO_PEERCRED. */
export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}
export const UCRED_SIZE = 12;

export function parseUcred(buf: Uint8Array): Ucred {
  if (buf.length < UCRED_SIZE) throw new RangeError(`ucred needs ${UCRED_SIZE} bytes, got ${buf.length}`);
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { pid: view.readInt32LE(0), uid: view.readUInt32LE(4), gid: view.readUInt32LE(8) };
}

// ---------------------------------------------------------------------------------------------------------
// sendmsg/recvmsg with SCM_RIGHTS. 64-bit Linux (x86_64, aarch64): pointers and size_t are 8 bytes, and
// cmsg headers and data are aligned to sizeof(size_t) = 8.

/** sizeof(struct iovec) { void *iov_base; size_t iov_len; } */
export const IOVEC_SIZE = 16;
/**
 * sizeof(struct msghdr): msg_name @0 (ptr), msg_namelen @8 (u32, then 4 pad), msg_iov @16 (ptr),
 * msg_iovlen @24 (size_t), msg_control @32 (ptr), msg_controllen @40 (size_t), msg_flags @48 (int, then 4 pad).
 */
export const MSGHDR_SIZE = 56;
/** sizeof(struct cmsghdr) { size_t cmsg_len; int cmsg_level; int cmsg_type; }: data starts right after. */
export const CMSGHDR_SIZE = 16;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
/** recvmsg: control data was cut short for lack of room (fds beyond the room were closed by the kernel). */
export const MSG_CTRUNC = 0x8;
/** The most fds one vhost-user message carries (VHOST_MEMORY_BASELINE_NREGIONS), and so the most we pass. */
export const SCM_MAX_FDS = 8;
/** The kernel's own cap on fds in one SCM_RIGHTS message (SCM_MAX_FD): what a malformed message may carry. */
export const SCM_KERNEL_MAX_FDS = 253;
const FD_SIZE = 4;
const CMSG_ALIGNMENT = 8;

/** CMSG_ALIGN(len): rounds up to the alignment of cmsg headers and data. */
export function cmsgAlign(len: number): number {
  return (len + CMSG_ALIGNMENT - 1) & ~(CMSG_ALIGNMENT - 1);
}

/** CMSG_LEN(len): the cmsg_len of a message carrying `len` data bytes (header plus data, no tail padding). */
export function cmsgLen(len: number): number {
  return CMSGHDR_SIZE + len;
}

/** CMSG_SPACE(len): the room a message carrying `len` data bytes takes in a control buffer (with padding). */
export function cmsgSpace(len: number): number {
  return CMSGHDR_SIZE + cmsgAlign(len);
}

/** The control buffer size that holds up to `maxFds` fds in one SCM_RIGHTS message. */
export function scmRightsSpace(maxFds: number): number {
  return maxFds > 0 ? cmsgSpace(maxFds * FD_SIZE) : 0;
}

/** One struct iovec: the address of `length` bytes. */
export interface Iovec {
  base: bigint;
  length: number;
}

/** An array of struct iovec. */
export function iovecArray(iovs: readonly Iovec[]): Buffer {
  const buf = Buffer.alloc(iovs.length * IOVEC_SIZE);
  iovs.forEach((iov, i) => {
    buf.writeBigUInt64LE(iov.base, i * IOVEC_SIZE);
    buf.writeBigUInt64LE(BigInt(iov.length), i * IOVEC_SIZE + 8);
  });
  return buf;
}

/** The fields of struct msghdr; addresses are native pointers (0n for NULL). */
export interface Msghdr {
  name: bigint;
  nameLength: number;
  iov: bigint;
  iovLength: number;
  control: bigint;
  controlLength: number;
  flags: number;
}

export function msghdr(fields: Msghdr): Buffer {
  const buf = Buffer.alloc(MSGHDR_SIZE);
  buf.writeBigUInt64LE(fields.name, 0);
  buf.writeUInt32LE(fields.nameLength, 8);
  buf.writeBigUInt64LE(fields.iov, 16);
  buf.writeBigUInt64LE(BigInt(fields.iovLength), 24);
  buf.writeBigUInt64LE(fields.control, 32);
  buf.writeBigUInt64LE(BigInt(fields.controlLength), 40);
  buf.writeInt32LE(fields.flags, 48);
  return buf;
}

/** Reads back a struct msghdr, as recvmsg left it (msg_controllen and msg_flags are outputs). */
export function parseMsghdr(buf: Uint8Array): Msghdr {
  if (buf.length < MSGHDR_SIZE) throw new RangeError(`msghdr needs ${MSGHDR_SIZE} bytes, got ${buf.length}`);
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    name: view.readBigUInt64LE(0),
    nameLength: view.readUInt32LE(8),
    iov: view.readBigUInt64LE(16),
    iovLength: Number(view.readBigUInt64LE(24)),
    control: view.readBigUInt64LE(32),
    controlLength: Number(view.readBigUInt64LE(40)),
    flags: view.readInt32LE(48),
  };
}

/**
 * The control data of one SCM_RIGHTS message passing `fds` (CMSG_SPACE bytes, zero padding); an empty buffer
 * for no fds. At most `maxFds` fds (SCM_MAX_FDS unless a malformed message asks for more).
 */
export function scmRights(fds: readonly number[], maxFds = SCM_MAX_FDS): Buffer {
  if (fds.length > maxFds) throw new RangeError(`at most ${maxFds} fds per message, got ${fds.length}`);
  if (fds.length === 0) return Buffer.alloc(0);
  const buf = Buffer.alloc(scmRightsSpace(fds.length));
  buf.writeBigUInt64LE(BigInt(cmsgLen(fds.length * FD_SIZE)), 0);
  buf.writeInt32LE(SOL_SOCKET, 8);
  buf.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((fd, i) => {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not an fd: ${fd}`);
    buf.writeInt32LE(fd, CMSGHDR_SIZE + i * FD_SIZE);
  });
  return buf;
}

/** What recvmsg's control data carried. */
export interface ReceivedRights {
  /** Every fd of every SCM_RIGHTS message, in order; the kernel installed them, so someone must close them. */
  fds: number[];
  /** MSG_CTRUNC: the peer sent more control data than there was room for; the fds that did not fit are lost. */
  truncated: boolean;
}

/**
 * Walks the cmsghdrs in the first `controlLength` bytes of `control` (msg_controllen after recvmsg) and
 * collects the fds of SCM_RIGHTS messages; other messages are skipped. `msgFlags` is msg_flags after recvmsg.
 */
export function parseScmRights(control: Uint8Array, controlLength: number, msgFlags = 0): ReceivedRights {
  const view = Buffer.from(control.buffer, control.byteOffset, Math.min(controlLength, control.byteLength));
  const fds: number[] = [];
  let offset = 0;
  while (offset + CMSGHDR_SIZE <= view.length) {
    const len = Number(view.readBigUInt64LE(offset));
    // A header shorter than itself or running past the data ends the walk, as CMSG_NXTHDR does.
    if (len < CMSGHDR_SIZE || offset + len > view.length) break;
    if (view.readInt32LE(offset + 8) === SOL_SOCKET && view.readInt32LE(offset + 12) === SCM_RIGHTS) {
      const count = Math.floor((len - CMSGHDR_SIZE) / FD_SIZE);
      for (let i = 0; i < count; i++) fds.push(view.readInt32LE(offset + CMSGHDR_SIZE + i * FD_SIZE));
    }
    offset += cmsgAlign(len);
  }
  return { fds, truncated: (msgFlags & MSG_CTRUNC) !== 0 };
}

// ---------------------------------------------------------------------------------------------------------
// struct stat, for st_mode and st_size. The two layouts differ before st_size:
//   x86_64 (144 bytes):  st_dev u64 @0, st_ino u64 @8, st_nlink u64 @16, st_mode u32 @24, st_uid @28,
//                        st_gid @32, pad @36, st_rdev u64 @40, st_size i64 @48
//   aarch64 (generic, 128 bytes): st_dev u64 @0, st_ino u64 @8, st_mode u32 @16, st_nlink u32 @20,
//                        st_uid @24, st_gid @28, st_rdev u64 @32, pad u64 @40, st_size i64 @48

/** A buffer size that holds struct stat on every supported architecture. */
export const STAT_BUFFER_SIZE = 256;
const STAT_LAYOUTS: Record<string, { size: number; mode: number; total: number }> = {
  x64: { size: 48, mode: 24, total: 144 },
  arm64: { size: 48, mode: 16, total: 128 },
};

/** The parts of struct stat the harness looks at. */
export interface Stat {
  mode: number;
  size: number;
}

/** Reads st_mode and st_size from a struct stat filled by fstat(); `arch` is a `process.arch` value. */
export function parseStat(buf: Uint8Array, arch: string = process.arch): Stat {
  const layout = STAT_LAYOUTS[arch];
  if (!layout) throw new RangeError(`struct stat layout unknown for ${arch} (x64 and arm64 are supported)`);
  if (buf.length < layout.total) throw new RangeError(`stat needs ${layout.total} bytes, got ${buf.length}`);
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { mode: view.readUInt32LE(layout.mode), size: Number(view.readBigInt64LE(layout.size)) };
}

// ---------------------------------------------------------------------------------------------------------
// poll(2)

/** sizeof(struct pollfd) { int fd; short events; short revents; } */
export const POLLFD_SIZE = 8;

/** An array of struct pollfd, one per fd; `events` is one mask for all or one per fd. */
export function pollfdArray(fds: readonly number[], events: number | readonly number[]): Buffer {
  if (typeof events !== 'number' && events.length !== fds.length) {
    throw new RangeError(`poll: ${fds.length} fds but ${events.length} event masks`);
  }
  const buf = Buffer.alloc(fds.length * POLLFD_SIZE);
  fds.forEach((fd, i) => {
    buf.writeInt32LE(fd, i * POLLFD_SIZE);
    buf.writeInt16LE(typeof events === 'number' ? events : events[i]!, i * POLLFD_SIZE + 4);
  });
  return buf;
}

/** The revents of each struct pollfd, in order. */
export function parsePollRevents(buf: Uint8Array): number[] {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const revents: number[] = [];
  for (let off = 0; off + POLLFD_SIZE <= view.length; off += POLLFD_SIZE)
    revents.push(view.readUInt16LE(off + 6));
  return revents;
}
