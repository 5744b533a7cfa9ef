/** Reading the process table from /proc: parents, sessions, start times, open fds. */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, Z (zombie), T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** Start time in clock ticks since boot: with pid, identifies a process across pid reuse. */
  starttime: number;
  /** CPU time used so far, user plus system, in clock ticks (USER_HZ: 100 a second on Linux). */
  cpuTicks: number;
}

/** The unit of the times in /proc/PID/stat: fixed at 100 a second by the kernel ABI on x86 and arm64. */
export const CLOCK_TICKS_PER_SECOND = 100;

/** Parses /proc/PID/stat; comm may hold spaces and parentheses, so fields are counted after the last ')'. */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    session: Number(fields[3]),
    starttime: Number(fields[19]),
    cpuTicks: Number(fields[11]) + Number(fields[12]),
  };
}

/**
 * How long `pid`'s main thread has waited for a CPU while runnable, in ms (/proc/PID/schedstat's second
 * field, in ns); undefined once it is gone, or where the kernel keeps no such count.
 */
export function runQueueWaitMs(pid: number): number | undefined {
  try {
    const waitedNs = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    return Number.isFinite(waitedNs) ? waitedNs / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A function giving how long `pid`, or the one of its descendants that waited longest (a wrapper script's
 * program), has waited for a CPU since now, in ms (0 where that is not known). It reads the process tree:
 * ask it once a deadline has passed, not on every poll.
 */
export function cpuWaitSince(pid: number): () => number {
  const waitedOf = (pids: number[]) => new Map(pids.map((p) => [p, runQueueWaitMs(p) ?? 0]));
  // What each process of the tree had waited already; one started since had waited nothing.
  const before = waitedOf([pid, ...descendantsOf(pid).map((d) => d.pid)]);
  let last = 0;
  return () => {
    const now = waitedOf([pid, ...descendantsOf(pid).map((d) => d.pid)]);
    for (const [p, waited] of now) last = Math.max(last, waited - (before.get(p) ?? 0));
    return last;
  };
}

export function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export function allProcesses(): ProcStat[] {
  const stats: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) stats.push(stat);
  }
  return stats;
}

/**
 * Whether the kernel lists each thread's children (/proc/PID/task/TID/children, CONFIG_PROC_CHILDREN): then a
 * process's descendants are found without reading every process's stat (2-3 ms on a machine of 100 processes,
 * paid at every back-end's teardown: robust.fuzz tears down hundreds).
 */
const CHILDREN_LISTED = (() => {
  try {
    readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8');
    return true;
  } catch {
    return false;
  }
})();

/** The children of `pid`, from each of its threads' children list (a child's parent is the thread that made it). */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // gone
  }
  const pids: number[] = [];
  for (const tid of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' '))
        if (child) pids.push(Number(child));
    } catch {
      // The thread ended since: its children went to another.
    }
  }
  return pids;
}

/**
 * This process's children, zombies too: from its threads' children lists where the kernel keeps them, else
 * from every process's stat (the sweep after each check read the whole table twice: most of its cost).
 */
export function ownChildren(): ProcStat[] {
  if (!CHILDREN_LISTED) return allProcesses().filter((s) => s.ppid === process.pid);
  return childrenOf(process.pid).flatMap((pid) => {
    const stat = readStat(pid);
    return stat?.ppid === process.pid ? [stat] : [];
  });
}

/** Every live descendant of `pid` (children, grandchildren, ...), zombies excluded. */
export function descendantsOf(pid: number, table?: ProcStat[]): ProcStat[] {
  if (table === undefined && CHILDREN_LISTED) {
    const found: ProcStat[] = [];
    const queue = [pid];
    while (queue.length) {
      for (const child of childrenOf(queue.shift()!)) {
        const stat = readStat(child);
        if (!stat) continue;
        if (stat.state !== 'Z') found.push(stat);
        queue.push(child);
      }
    }
    return found;
  }
  return descendantsIn(pid, table ?? allProcesses());
}

/** `descendantsOf` from a table of every process. */
function descendantsIn(pid: number, table: ProcStat[]): ProcStat[] {
  const children = new Map<number, ProcStat[]>();
  for (const stat of table) {
    const list = children.get(stat.ppid) ?? [];
    list.push(stat);
    children.set(stat.ppid, list);
  }
  const found: ProcStat[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      if (child.state !== 'Z') found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Whether the process `stat` describes still runs (same pid and start time, not a zombie). */
export function stillRunning(stat: ProcStat): boolean {
  const now = readStat(stat.pid);
  return now !== undefined && now.starttime === stat.starttime && now.state !== 'Z';
}

/** Whether `pid` is `ancestor` or one of its descendants. */
export function isSelfOrDescendant(pid: number, ancestor: number): boolean {
  for (let cur = pid, hops = 0; cur > 1 && hops < 64; hops++) {
    if (cur === ancestor) return true;
    const stat = readStat(cur);
    if (!stat) return false;
    cur = stat.ppid;
  }
  return false;
}

/** The open fd numbers of `pid`, or undefined when /proc does not tell. */
export function openFds(pid: number): number[] | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).map(Number);
  } catch {
    return undefined;
  }
}

const SO_ACCEPTCON = 0x10000;

/** Parses /proc/net/unix text into the paths of listening sockets. */
export function parseListeningUnix(text: string): Set<string> {
  const paths = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    if (Number.parseInt(cols[3]!, 16) & SO_ACCEPTCON) paths.add(cols.slice(7).join(' '));
  }
  return paths;
}

/**
 * Whether some process listens on a Unix socket bound at `path`, seen in /proc/net/unix without connecting,
 * so that the probe itself is not a front-end connection. Only sockets in our network namespace show.
 */
export function isListeningAt(path: string): boolean {
  try {
    return parseListeningUnix(readFileSync('/proc/net/unix', 'utf8')).has(path);
  } catch {
    return false;
  }
}

/** The inodes of the listening Unix sockets bound at `path`, from /proc/net/unix text. */
export function listeningInodes(text: string, path: string): Set<number> {
  const inodes = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8 || cols.slice(7).join(' ') !== path) continue;
    if (Number.parseInt(cols[3]!, 16) & SO_ACCEPTCON) inodes.add(Number(cols[6]));
  }
  return inodes;
}

/**
 * The process that holds the listening socket bound at `path` open (the lowest pid when several share it),
 * found through /proc/net/unix and /proc/PID/fd; undefined when none can be seen (another network namespace,
 * or processes whose fds we may not read).
 */
export function socketOwner(path: string): number | undefined {
  let inodes: Set<number>;
  try {
    inodes = listeningInodes(readFileSync('/proc/net/unix', 'utf8'), path);
  } catch {
    return undefined;
  }
  if (!inodes.size) return undefined;
  const links = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const pids = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (links.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return pid;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}
