/**
 * The foreign-function code, with sys/spawn.ts (starting programs): libc calls Node lacks, through koffi.
 * Every call checks its result and throws a SysError with errno; callers own the fds they get and close them
 * with `closeFd`.
 */
import fs from 'node:fs';
import os from 'node:os';
import koffi from 'koffi';
import { SysError } from '../errors.js';
import {
  iovecArray,
  msghdr,
  parseMsghdr,
  parsePollRevents,
  parseScmRights,
  parseStat,
  parseUcred,
  pollfdArray,
  SCM_MAX_FDS,
  SOCKADDR_UN_SIZE,
  STAT_BUFFER_SIZE,
  type Stat,
  scmRights,
  scmRightsSpace,
  sockaddrUn,
  UCRED_SIZE,
  type Ucred,
} from './layout.js';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  getsockopt: libc.func(
    'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)',
  ),
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  prctl: libc.func(
    'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  ),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
  sendmsg: libc.func('intptr_t sendmsg(int fd, const void *msg, int flags)'),
  recvmsg: libc.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
  shutdown: libc.func('int shutdown(int fd, int how)'),
  memfd_create: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  ftruncate: libc.func('int ftruncate(int fd, int64_t length)'),
  mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(void *addr, size_t length)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  read: libc.func('intptr_t read(int fd, void *buf, size_t count)'),
  write: libc.func('intptr_t write(int fd, const void *buf, size_t count)'),
  poll: libc.func('int poll(void *fds, uint64_t nfds, int timeout)'),
  epoll_create1: libc.func('int epoll_create1(int flags)'),
  epoll_ctl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
  mkfifo: libc.func('int mkfifo(const char *path, uint32_t mode)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  fstat: bindFstat(),
};

/** glibc exports fstat since 2.33; before that only __fxstat(_STAT_VER, ...) (1 on x86_64, 0 on aarch64). */
function bindFstat(): (fd: number, buf: Buffer) => number {
  try {
    const fstat = libc.func('int fstat(int fd, void *buf)');
    return (fd, buf) => fstat(fd, buf);
  } catch {
    const fxstat = libc.func('int __fxstat(int ver, int fd, void *buf)');
    const statVer = process.arch === 'x64' ? 1 : 0;
    return (fd, buf) => fxstat(statVer, fd, buf);
  }
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_ACCEPTCONN = 30;
const F_GETFD = 1;
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;
const EINTR = 4;
const EAGAIN = 11;
const F_DUPFD_CLOEXEC = 1030;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x1;
const MAP_PRIVATE = 0x2;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
/** mmap's (void *)-1, as koffi 3 hands back pointers: an unsigned BigInt. */
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

function check(syscall: string, result: number, detail?: string): number {
  if (result < 0) throw new SysError(syscall, koffi.errno(), detail);
  return result;
}

/** Socket flags: a descriptor handed to a back-end must be blocking, as a management layer would pass it. */
export interface SocketFlags {
  nonblocking?: boolean;
  cloexec?: boolean;
}

function typeFlags(flags: SocketFlags): number {
  return SOCK_STREAM | (flags.nonblocking ? SOCK_NONBLOCK : 0) | (flags.cloexec === false ? 0 : SOCK_CLOEXEC);
}

/** socketpair(AF_UNIX, SOCK_STREAM): two connected ends. */
export function socketpair(flags: SocketFlags = {}): [number, number] {
  const sv = new Int32Array(2);
  check('socketpair', c.socketpair(AF_UNIX, typeFlags(flags), 0, sv));
  return [sv[0]!, sv[1]!];
}

/** A Unix stream socket bound to `path` and listening. */
export function listenUnix(path: string, flags: SocketFlags = {}, backlog = 16): number {
  const fd = bindUnix(path, flags);
  try {
    check('listen', c.listen(fd, backlog), path);
  } catch (err) {
    c.close(fd);
    throw err;
  }
  return fd;
}

/** A Unix stream socket bound at `path` (its socket file made), not listening. */
export function bindUnix(path: string, flags: SocketFlags = {}): number {
  const addr = sockaddrUn(path);
  const fd = check('socket', c.socket(AF_UNIX, typeFlags(flags), 0));
  try {
    check('bind', c.bind(fd, addr, SOCKADDR_UN_SIZE), path);
  } catch (err) {
    c.close(fd);
    throw err;
  }
  return fd;
}

/**
 * Connects a new non-blocking Unix stream socket to `path`. A Unix connect completes at once or fails:
 * ECONNREFUSED (nobody listening), ENOENT (no file), EAGAIN (backlog full).
 */
export function connectUnix(path: string): number {
  const addr = sockaddrUn(path);
  const fd = check('socket', c.socket(AF_UNIX, typeFlags({ nonblocking: true }), 0));
  if (c.connect(fd, addr, SOCKADDR_UN_SIZE) < 0) {
    const errno = koffi.errno();
    c.close(fd);
    throw new SysError('connect', errno, path);
  }
  return fd;
}

/**
 * Accepts one connection on listening socket `fd` without blocking: the new socket (non-blocking,
 * close-on-exec), or null when none is waiting.
 */
export function acceptConnection(fd: number): number | null {
  const conn = c.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn >= 0) return conn;
  const errno = koffi.errno();
  if (errno === EAGAIN || errno === EINTR) return null;
  throw new SysError('accept4', errno, `fd ${fd}`);
}

/** SO_PEERCRED: the process that created the peer end (listen() or connect() time). */
export function peerCred(fd: number): Ucred {
  const val = Buffer.alloc(UCRED_SIZE);
  const len = new Uint32Array([UCRED_SIZE]);
  check('getsockopt(SO_PEERCRED)', c.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, val, len));
  return parseUcred(val);
}

/** SO_ACCEPTCONN: whether `fd` is a listening socket. */
export function isListening(fd: number): boolean {
  const val = Buffer.alloc(4);
  const len = new Uint32Array([4]);
  check('getsockopt(SO_ACCEPTCONN)', c.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, val, len));
  return val.readInt32LE(0) !== 0;
}

/** Whether `fd` is an open descriptor of this process. */
export function isOpenFd(fd: number): boolean {
  return c.fcntl(fd, F_GETFD, 0) >= 0;
}

export function closeFd(fd: number): void {
  // close() is not retried on EINTR on Linux: the fd is gone either way.
  const rc = c.close(fd);
  if (rc < 0 && koffi.errno() !== EINTR) throw new SysError('close', koffi.errno(), `fd ${fd}`);
}

/**
 * Makes this process the reaper of orphaned descendants, so that a back-end that daemonizes (forks and lets
 * its parent exit) stays visible to us as our child and can be found and killed.
 */
export function becomeChildSubreaper(): void {
  check('prctl(PR_SET_CHILD_SUBREAPER)', c.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
}

/** How a child ended, as waitpid(2) tells. */
export interface ChildEnd {
  code: number | null;
  signal: string | null;
}

/**
 * Each signal's name, the first of its aliases as Node lists them (SIGABRT, not SIGIOT; SIGIO, not
 * SIGPOLL).
 */
const SIGNAL_NAMES = new Map<number, string>();
for (const [name, number] of Object.entries(os.constants.signals))
  if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name);

/**
 * Reaps `pid`, a child of ours: how it ended, or undefined while it has not (`block`: waits until it has).
 * Only for processes libuv did not spawn (libuv reaps its own).
 */
export function reapChild(pid: number, options: { block?: boolean } = {}): ChildEnd | undefined {
  const status = [0];
  if (c.waitpid(pid, status, options.block ? 0 : WNOHANG) !== pid) return undefined;
  const raw = status[0]!;
  const termsig = raw & 0x7f;
  if (termsig === 0) return { code: (raw >> 8) & 0xff, signal: null };
  return { code: null, signal: SIGNAL_NAMES.get(termsig) ?? `signal ${termsig}` };
}

/** Reaps `pid` if it is a zombie child; never blocks. Only for processes libuv did not spawn. */
export function reapIfExited(pid: number): boolean {
  return reapChild(pid) !== undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Liveness of memory named only by address. sendmsg/recvmsg take a msghdr whose pointers koffi never sees
// (they are numbers written into a Buffer), so nothing else keeps the Buffers behind them reachable while
// the call runs; the optimizer may treat a local as dead after its last use. A module variable it cannot
// reason about holds them until the call returns.
const pinned: { buffers: readonly unknown[] } = { buffers: [] };

function callPinned<T>(buffers: readonly unknown[], call: () => T): { result: T; errno: number } {
  pinned.buffers = buffers;
  try {
    const result = call();
    return { result, errno: koffi.errno() };
  } finally {
    pinned.buffers = [];
  }
}

const SHUT_RD = 0;
const SHUT_WR = 1;
const SHUT_RDWR = 2;
/** shutdown(2) `how` values. */
export const Shutdown = { SHUT_RD, SHUT_WR, SHUT_RDWR } as const;

/** A msghdr over one data buffer and a control buffer (which may be empty); keep all three alive for the call. */
function oneBufferMsghdr(data: Uint8Array, length: number, control: Buffer): { iov: Buffer; msg: Buffer } {
  const iov = iovecArray([{ base: koffi.address(data), length }]);
  const msg = msghdr({
    name: 0n,
    nameLength: 0,
    iov: koffi.address(iov),
    iovLength: 1,
    control: control.length > 0 ? koffi.address(control) : 0n,
    controlLength: control.length,
    flags: 0,
  });
  return { iov, msg };
}

/**
 * sendmsg(MSG_NOSIGNAL | MSG_DONTWAIT): sends what the socket buffer takes of `data` (possibly less than all
 * of it) with `fds` attached to its first byte. Returns the byte count, or null when nothing could be sent
 * now (EAGAIN; the fds were not sent either). Never blocks and never raises SIGPIPE (EPIPE is thrown).
 * The fds stay ours: the peer gets its own copies. `maxFds` may be raised up to SCM_KERNEL_MAX_FDS to send
 * what no vhost-user peer may: hostile fixtures and tests do.
 */
export function sendmsgFds(
  fd: number,
  data: Uint8Array,
  fds: readonly number[] = [],
  maxFds = SCM_MAX_FDS,
): number | null {
  // A stream socket attaches control data to bytes; with no byte to carry them, they would not be sent.
  if (fds.length > 0 && data.length === 0) throw new RangeError('sending fds needs at least one data byte');
  const control = scmRights(fds, maxFds);
  const { iov, msg } = oneBufferMsghdr(data, data.length, control);
  const { result, errno } = callPinned([data, iov, control], () =>
    Number(c.sendmsg(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT)),
  );
  if (result >= 0) return result;
  if (errno === EAGAIN) return null;
  throw new SysError('sendmsg', errno, `fd ${fd}, ${data.length} bytes, ${fds.length} fds`);
}

/** What one recvmsg returned. */
export interface ReceivedMessage {
  /** The bytes read; empty means end of stream (the peer closed or shut down its write side). */
  data: Buffer;
  /** Fds that arrived with these bytes, close-on-exec; they belong to the caller, who must close them. */
  fds: number[];
  /** MSG_CTRUNC: the peer sent more fds than `maxFds`; the kernel closed the ones that did not fit. */
  truncated: boolean;
}

/**
 * recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT): up to `maxBytes` bytes and up to `maxFds` fds. Returns null when
 * nothing is there yet (EAGAIN). Never blocks, whatever the fd's O_NONBLOCK.
 */
export function recvmsgFds(fd: number, maxBytes: number, maxFds = SCM_MAX_FDS): ReceivedMessage | null {
  if (!Number.isInteger(maxBytes) || maxBytes < 1)
    throw new RangeError(`maxBytes must be >= 1, got ${maxBytes}`);
  if (!Number.isInteger(maxFds) || maxFds < 0) throw new RangeError(`maxFds must be >= 0, got ${maxFds}`);
  // One scratch buffer, grown as asked and reused: receiving is synchronous and what was read is copied out,
  // so a channel polled with a large maxBytes (and often EAGAIN) does not allocate it every time.
  if (receiveScratch.length < maxBytes) receiveScratch = Buffer.allocUnsafe(maxBytes);
  const data = receiveScratch;
  const control = Buffer.alloc(scmRightsSpace(maxFds));
  const { iov, msg } = oneBufferMsghdr(data, maxBytes, control);
  const { result, errno } = callPinned([data, iov, control], () =>
    Number(c.recvmsg(fd, msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)),
  );
  if (result < 0) {
    if (errno === EAGAIN) return null;
    throw new SysError('recvmsg', errno, `fd ${fd}`);
  }
  const out = parseMsghdr(msg);
  const { fds, truncated } = parseScmRights(control, out.controlLength, out.flags);
  return { data: Buffer.from(data.subarray(0, result)), fds, truncated };
}

/** recvmsgFds's buffer (see there). */
let receiveScratch = Buffer.allocUnsafe(64 * 1024);

/** shutdown(2); `how` is one of `Shutdown`. */
export function shutdown(fd: number, how: number = SHUT_RDWR): void {
  check('shutdown', c.shutdown(fd, how), `fd ${fd}`);
}

export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;

/** memfd_create(2): an anonymous file for guest memory. The caller owns the fd. */
export function memfdCreate(name: string, flags = MFD_CLOEXEC | MFD_ALLOW_SEALING): number {
  return check('memfd_create', c.memfd_create(name, flags), name);
}

export function ftruncate(fd: number, length: number): void {
  check('ftruncate', c.ftruncate(fd, length), `fd ${fd}, ${length} bytes`);
}

/** A MAP_SHARED mapping of a file; `unmap()` releases it. */
export interface Mapping {
  /** Where the mapping starts in this process (what QEMU sends as a region's userspace_addr). */
  readonly address: bigint;
  readonly length: number;
  /** The file offset the mapping starts at. */
  readonly offset: number;
  /** The mapped bytes, without copy. After `unmap()` it reads zeros and writes go nowhere (see `unmap`). */
  readonly buffer: ArrayBuffer;
  readonly unmapped: boolean;
  /**
   * Releases the shared mapping; idempotent. A koffi view cannot be detached, and touching unmapped memory
   * through one is a SIGSEGV that kills the harness, so the range is not left empty: the shared pages are
   * swapped for private zero pages in one step (mmap MAP_FIXED), and those go when `buffer` is collected.
   */
  unmap(): void;
}

// Returns a mapping's address range to the kernel once no JS object can reach its bytes, whether or not
// unmap() swapped it for the placeholder first. Also the net under a Mapping dropped without unmap().
const addressRanges = new FinalizationRegistry<{ address: bigint; length: number }>((range) => {
  c.munmap(range.address, range.length);
});

class SharedMapping implements Mapping {
  readonly buffer: ArrayBuffer;
  #unmapped = false;

  constructor(
    readonly address: bigint,
    readonly length: number,
    readonly offset: number,
  ) {
    this.buffer = koffi.view(address, length);
    addressRanges.register(this.buffer, { address, length });
  }

  get unmapped(): boolean {
    return this.#unmapped;
  }

  unmap(): void {
    if (this.#unmapped) return;
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
    const ptr: bigint = c.mmap(this.address, this.length, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (ptr === MAP_FAILED) {
      throw new SysError('mmap(MAP_FIXED placeholder)', koffi.errno(), `unmapping ${this.length} bytes`);
    }
    this.#unmapped = true;
  }
}

/** mmap(PROT_READ | PROT_WRITE, MAP_SHARED) of `length` bytes of `fd` from `offset` (page-aligned). */
export function mmapShared(fd: number, length: number, offset = 0): Mapping {
  const ptr: bigint | null = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
  if (ptr === null || ptr === MAP_FAILED) {
    throw new SysError('mmap', koffi.errno(), `fd ${fd}, ${length} bytes at offset ${offset}`);
  }
  return new SharedMapping(ptr, length, offset);
}

export const EFD_SEMAPHORE = 0x1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
const EVENTFD_MAX = 0xffff_ffff_ffff_fffen;

/** eventfd(2), non-blocking and close-on-exec unless `flags` says otherwise. The caller owns the fd. */
export function eventfd(initval = 0, flags = EFD_CLOEXEC | EFD_NONBLOCK): number {
  return check('eventfd', c.eventfd(initval, flags));
}

/**
 * The 8 bytes every eventfd read and write goes through: the calls are synchronous, so one buffer serves
 * them all (a kick and a drain per wake of the traffic engine would otherwise allocate two).
 */
const eventfdScratch = Buffer.alloc(8);
const eventfdWords = new Uint32Array(eventfdScratch.buffer, eventfdScratch.byteOffset, 2);

/** Adds `value` (1..2^64-2) to an eventfd counter. Throws EAGAIN if the counter would overflow. */
export function eventfdWrite(fd: number, value: number | bigint = 1n): void {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1) {
    // No BigInt for the usual small count: two 32-bit words (little-endian host, see the codec).
    eventfdWords[0] = value % 0x1_0000_0000;
    eventfdWords[1] = Math.floor(value / 0x1_0000_0000);
  } else {
    const n = BigInt(value);
    if (n < 1n || n > EVENTFD_MAX) throw new RangeError(`eventfd value must be 1..2^64-2, got ${n}`);
    eventfdScratch.writeBigUInt64LE(n, 0);
  }
  const written = Number(c.write(fd, eventfdScratch, 8));
  if (written !== 8) throw new SysError('write(eventfd)', written < 0 ? koffi.errno() : 0, `fd ${fd}`);
}

/** Reads and resets an eventfd counter (or takes 1 in semaphore mode); null when it is zero (EAGAIN). */
export function eventfdRead(fd: number): bigint | null {
  return eventfdReadInto(fd) ? eventfdScratch.readBigUInt64LE(0) : null;
}

/**
 * `eventfdRead` as a number, 0 when the counter is zero (EAGAIN): exact up to 2^53, which no count of
 * signals reaches. No allocation: what a vring's call fd is drained with on every wake.
 */
export function eventfdReadCount(fd: number): number {
  return eventfdReadInto(fd) ? eventfdWords[0]! + eventfdWords[1]! * 0x1_0000_0000 : 0;
}

/** read(2) of the counter into eventfdScratch: true when read, false on EAGAIN. */
function eventfdReadInto(fd: number): boolean {
  const got = Number(c.read(fd, eventfdScratch, 8));
  if (got === 8) return true;
  const errno = got < 0 ? koffi.errno() : 0;
  if (errno === EAGAIN) return false;
  throw new SysError('read(eventfd)', errno, `fd ${fd}`);
}

/** poll(2) event bits. */
export const PollEvent = {
  POLLIN: 0x1,
  POLLPRI: 0x2,
  POLLOUT: 0x4,
  POLLERR: 0x8,
  POLLHUP: 0x10,
  POLLNVAL: 0x20,
  POLLRDHUP: 0x2000,
} as const;

function describeFds(fds: readonly number[]): string {
  return fds.length <= 8 ? `fds ${fds.join(',')}` : `${fds.length} fds`;
}

/**
 * poll(2) on the calling thread: the revents of each fd, in order. It blocks for up to `timeoutMs`, so on
 * the main thread use 0 (a readiness check) and FdWaiter (fd-waiter.ts) to wait. EINTR counts as no event.
 */
export function poll(
  fds: readonly number[],
  events: number | readonly number[],
  timeoutMs: number,
): number[] {
  const buf = pollfdArray(fds, events);
  const rc = c.poll(buf, fds.length, timeoutMs);
  if (rc < 0) {
    const errno = koffi.errno();
    if (errno === EINTR) return fds.map(() => 0);
    throw new SysError('poll', errno, describeFds(fds));
  }
  return parsePollRevents(buf);
}

/** The one struct pollfd `pollOne` uses: fd @0 (i32), events @4 (i16), revents @6 (i16). */
const pollOneScratch = Buffer.alloc(8);
const pollOneFields = new Int32Array(pollOneScratch.buffer, pollOneScratch.byteOffset, 2);

/**
 * `poll` for one fd, without allocating: the revents (0 on EINTR). What the fd waiters ask on every wake.
 */
export function pollOne(fd: number, events: number, timeoutMs: number): number {
  pollOneFields[0] = fd;
  pollOneFields[1] = events & 0xffff; // events in the low half, revents (high half) cleared
  const rc = c.poll(pollOneScratch, 1, timeoutMs);
  if (rc < 0) {
    const errno = koffi.errno();
    if (errno === EINTR) return 0;
    throw new SysError('poll', errno, `fd ${fd}`);
  }
  return pollOneFields[1]! >>> 16;
}

const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
/** struct epoll_event: u32 events and u64 data, 12 bytes packed on x86_64, 16 on aarch64; room for both. */
const EPOLL_EVENT_SIZE = 16;

/**
 * Throws unless epoll can watch `fd`, as libuv's uv_poll needs: EBADF for a closed fd, EPERM for a regular
 * file, a directory or a device without poll support. Checked on a throwaway epoll instance, the same test
 * libuv makes on its own (where a failure aborts the whole process instead of throwing).
 */
export function checkPollable(fd: number): void {
  const epfd = check('epoll_create1', c.epoll_create1(EPOLL_CLOEXEC));
  try {
    const event = Buffer.alloc(EPOLL_EVENT_SIZE);
    event.writeUInt32LE(PollEvent.POLLIN, 0);
    check('epoll_ctl(EPOLL_CTL_ADD)', c.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, event), `fd ${fd}`);
  } finally {
    c.close(epfd);
  }
}

/** Sets or clears O_NONBLOCK. */
export function setNonBlocking(fd: number, nonblocking = true): void {
  const flags = check('fcntl(F_GETFL)', c.fcntl(fd, F_GETFL, 0), `fd ${fd}`);
  const wanted = nonblocking ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (wanted !== flags) check('fcntl(F_SETFL)', c.fcntl(fd, F_SETFL, wanted), `fd ${fd}`);
}

export function isNonBlocking(fd: number): boolean {
  return (check('fcntl(F_GETFL)', c.fcntl(fd, F_GETFL, 0), `fd ${fd}`) & O_NONBLOCK) !== 0;
}

/**
 * A new fd for the same open file, the lowest free number from `lowest` on, close-on-exec (F_DUPFD_CLOEXEC)
 * so it leaks into no child; hand fds to a child through its stdio, which dup2()s them and so clears the
 * flag there. The caller owns the new fd.
 */
export function dup(fd: number, lowest = 0): number {
  return check('fcntl(F_DUPFD_CLOEXEC)', c.fcntl(fd, F_DUPFD_CLOEXEC, lowest), `fd ${fd}`);
}

/**
 * ioctl(2) with a pointer argument (a Buffer the kernel reads or fills) or an int one; returns its result.
 * The request numbers are the caller's (uinput's, evdev's): `_IOC` encodes the same on x86_64 and aarch64.
 */
export function ioctl(
  fd: number,
  request: number,
  arg: Buffer | number,
  what = `0x${request.toString(16)}`,
): number {
  const rc =
    typeof arg === 'number' ? c.ioctl(fd, request, 'long', arg) : c.ioctl(fd, request, 'void *', arg);
  return check(`ioctl(${what})`, rc, `fd ${fd}`);
}

/** mkfifo(3): a named pipe at `path`. */
export function mkfifo(path: string, mode = 0o600): void {
  check('mkfifo', c.mkfifo(path, mode), path);
}

/** pipe2(2), close-on-exec: [read end, write end], both blocking. The caller owns both fds. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check('pipe2', c.pipe2(fds, O_CLOEXEC));
  return [fds[0]!, fds[1]!];
}

/** fstat(2): st_mode and st_size. */
export function fstat(fd: number): Stat {
  const buf = Buffer.alloc(STAT_BUFFER_SIZE);
  check('fstat', c.fstat(fd, buf), `fd ${fd}`);
  return parseStat(buf);
}

/** st_size of what `fd` refers to: the size of a memfd, for instance. */
export function fstatSize(fd: number): number {
  return fstat(fd).size;
}

/** What `fd` refers to, as /proc/self/fd shows it (a path, `socket:[inode]`, `anon_inode:[eventfd]`...). */
export function readlinkFd(fd: number): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    throw new SysError(
      'readlink',
      Math.abs((err as NodeJS.ErrnoException).errno ?? 0),
      `/proc/self/fd/${fd}`,
    );
  }
}

/** The fds open in this process now, ascending (the directory fd used to list them is left out). */
export function openFds(): number[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => isOpenFd(fd))
    .sort((a, b) => a - b);
}
