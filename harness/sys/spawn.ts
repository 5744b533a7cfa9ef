/**
 * Starting a program without copying the harness's page tables, and learning of its end on the event loop.
 *
 * libuv's uv_spawn (under child_process and execa) forks: the kernel copies the page tables of the whole
 * harness, its heap and the guest memory it maps, on the main thread, before the child execs. Measured on a
 * 2-core machine: 4 ms for a fresh Node, 15-25 ms for the harness during a run, paid at every launch (a run
 * launches a back-end a hundred times, robust.fuzz once per sequence against a back-end that exits on close).
 * glibc's posix_spawn runs the child on the parent's memory until it execs (CLONE_VM | CLONE_VFORK): under a
 * millisecond whatever the harness holds. A pidfd (Linux 5.3) becomes readable when the child ends, so the
 * end is waited on with an FdWaiter like any fd, and reaped with waitpid on its pid only (libuv reaps only the
 * pids it spawned itself).
 *
 * The child gets what uv_spawn gives one: every signal at its default action and none blocked (Node ignores
 * SIGPIPE, and an ignored signal stays ignored across exec; only glibc's own 32 and 33, which every program's
 * libc sets up again, stay ignored), the harness's environment and working folder, /dev/null on whichever of
 * fds 0-2 it is not handed, and no other fd of the harness (all are close-on-exec).
 */
import koffi from 'koffi';
import { SysError } from '../errors.js';
import { closeFd, dup, reapChild } from './libc.js';

const libc = koffi.load('libc.so.6');

const c = {
  posix_spawn: libc.func(
    'int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)',
  ),
  posix_spawnp: libc.func(
    'int posix_spawnp(_Out_ int *pid, const char *file, void *actions, void *attr, const char **argv, const char **envp)',
  ),
  actionsInit: libc.func('int posix_spawn_file_actions_init(void *actions)'),
  actionsDestroy: libc.func('int posix_spawn_file_actions_destroy(void *actions)'),
  addDup2: libc.func('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
  addOpen: libc.func(
    'int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, uint32_t mode)',
  ),
  attrInit: libc.func('int posix_spawnattr_init(void *attr)'),
  attrDestroy: libc.func('int posix_spawnattr_destroy(void *attr)'),
  attrSetFlags: libc.func('int posix_spawnattr_setflags(void *attr, short flags)'),
  attrSetSigDefault: libc.func('int posix_spawnattr_setsigdefault(void *attr, const void *sigset)'),
  attrSetSigMask: libc.func('int posix_spawnattr_setsigmask(void *attr, const void *sigset)'),
  sigfillset: libc.func('int sigfillset(void *sigset)'),
  sigemptyset: libc.func('int sigemptyset(void *sigset)'),
  syscall: libc.func('long syscall(long number, ...)'),
};

/** Larger than glibc's posix_spawn_file_actions_t (80 bytes), posix_spawnattr_t (336) and sigset_t (128). */
const OPAQUE_BYTES = 512;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const O_RDWR = 2;
/** pidfd_open's number on x86_64 and aarch64 alike (the syscalls from 424 on are numbered the same everywhere). */
const SYS_PIDFD_OPEN = 434;

export interface SpawnRequest {
  /** A path, or a name looked up in PATH. */
  file: string;
  args: readonly string[];
  /** Child fd number -> the harness's fd it gets (dup2 in the child). Fds 0-2 not named get /dev/null. */
  fds: ReadonlyMap<number, number>;
}

export interface Spawned {
  pid: number;
  /** Readable once the child has ended; close-on-exec. The caller owns it. */
  pidfd: number;
}

function check(call: string, result: number, detail?: string): void {
  // posix_spawn and its helpers return the error number itself; the rest return -1 and set errno.
  if (result > 0) throw new SysError(call, result, detail);
  if (result < 0) throw new SysError(call, koffi.errno(), detail);
}

/** A pidfd for `pid` (Linux 5.3 and later); throws a SysError (ENOSYS on an older kernel). */
export function pidfdOpen(pid: number): number {
  const fd = Number(c.syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (fd < 0) throw new SysError('pidfd_open', koffi.errno(), `pid ${pid}`);
  return fd;
}

let pidfdWorks: boolean | undefined;

/** Whether this kernel gives pidfds (and a seccomp policy lets it): asked once, on this process's own pid. */
export function pidfdSupported(): boolean {
  if (pidfdWorks === undefined) {
    try {
      closeFd(pidfdOpen(process.pid));
      pidfdWorks = true;
    } catch {
      pidfdWorks = false;
    }
  }
  return pidfdWorks;
}

/**
 * Starts `request.file` with posix_spawn and opens its pidfd. Throws a SysError naming the errno when the
 * program cannot be started (ENOENT, EACCES, ENOEXEC: glibc reports the exec's failure).
 */
export function spawnProgram(request: SpawnRequest): Spawned {
  const targets = [...request.fds.keys()];
  // Each fd handed over is first copied above every target number, so that no dup2 overwrites a source
  // another one still needs, and dup2(fd, fd), which would leave close-on-exec set, never happens.
  const above = Math.max(3, ...targets) + 1;
  const copies: number[] = [];
  const actions = Buffer.alloc(OPAQUE_BYTES);
  const attr = Buffer.alloc(OPAQUE_BYTES);
  const all = Buffer.alloc(OPAQUE_BYTES);
  const none = Buffer.alloc(OPAQUE_BYTES);
  check('posix_spawn_file_actions_init', c.actionsInit(actions));
  check('posix_spawnattr_init', c.attrInit(attr));
  try {
    for (const [target, source] of request.fds) {
      const copy = dup(source, above);
      copies.push(copy);
      check('posix_spawn_file_actions_adddup2', c.addDup2(actions, copy, target), `fd ${target}`);
    }
    for (const stdio of [0, 1, 2]) {
      if (!request.fds.has(stdio))
        check('posix_spawn_file_actions_addopen', c.addOpen(actions, stdio, '/dev/null', O_RDWR, 0));
    }
    check('sigfillset', c.sigfillset(all));
    check('sigemptyset', c.sigemptyset(none));
    check('posix_spawnattr_setsigdefault', c.attrSetSigDefault(attr, all));
    check('posix_spawnattr_setsigmask', c.attrSetSigMask(attr, none));
    check('posix_spawnattr_setflags', c.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
    const argv = [request.file, ...request.args, null];
    const envp = [...Object.entries(process.env).map(([name, value]) => `${name}=${value}`), null];
    const pid = [0];
    const start = request.file.includes('/') ? c.posix_spawn : c.posix_spawnp;
    check('posix_spawn', start(pid, request.file, actions, attr, argv, envp), request.file);
    const spawned = pid[0]!;
    try {
      return { pid: spawned, pidfd: pidfdOpen(spawned) };
    } catch (err) {
      // Not reachable after pidfdSupported(); end the child rather than leave it unwatched.
      process.kill(spawned, 'SIGKILL');
      reapChild(spawned, { block: true });
      throw err;
    }
  } finally {
    for (const copy of copies) closeFd(copy);
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
  }
}
