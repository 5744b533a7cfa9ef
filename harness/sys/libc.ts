/**
 * The only foreign-function code: libc calls Node lacks, through koffi. Every call checks its result and
 * throws a SysError with errno; callers own the fds they get and close them with `closeFd`.
 */
import koffi from 'koffi';
import { SysError } from '../errors.js';
import { parseUcred, SOCKADDR_UN_SIZE, sockaddrUn, UCRED_SIZE, type Ucred } from './layout.js';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
  getsockopt: libc.func(
    'int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)',
  ),
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, int arg)'),
  prctl: libc.func(
    'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  ),
  waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)'),
};

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
  const addr = sockaddrUn(path);
  const fd = check('socket', c.socket(AF_UNIX, typeFlags(flags), 0));
  try {
    check('bind', c.bind(fd, addr, SOCKADDR_UN_SIZE), path);
    check('listen', c.listen(fd, backlog), path);
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

/** Reaps `pid` if it is a zombie child; never blocks. Only for processes libuv did not spawn. */
export function reapIfExited(pid: number): boolean {
  const status = new Int32Array(1);
  return c.waitpid(pid, status, WNOHANG) === pid;
}
