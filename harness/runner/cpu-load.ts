/**
 * How much of the machine's CPU time goes idle, from /proc/stat (the time all CPUs spent in each state, in
 * clock ticks): --jobs starts a check beyond one per core only while half a core's worth of it does, as
 * `make -l` holds jobs back by the load average. Checks waiting on a back-end (a reply, a quiet window)
 * leave the cores idle; a back-end that busy-polls (dpdk-testpmd) or another job on the machine does not,
 * and more checks would then only slow each back-end's start past the deadline.
 */
import { readFileSync } from 'node:fs';
import type { Admission } from './schedule.js';

/** Ticks spent idle (idle and iowait), and in all states, by all CPUs together. */
export interface CpuTimes {
  idle: number;
  total: number;
}

/** /proc/stat's first line ("cpu  user nice system idle iowait irq softirq steal guest guest_nice"). */
export function parseCpuTimes(text: string): CpuTimes | undefined {
  const match = /^cpu\s+([\d\s]+)$/m.exec(text);
  if (!match) return undefined;
  const ticks = match[1]!.trim().split(/\s+/).map(Number);
  if (ticks.length < 4) return undefined;
  // guest and guest_nice are counted in user and nice already; steal is time the CPU was not ours.
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = ticks;
  return { idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** The shortest window idle time is measured over: /proc/stat counts in ticks of 10 ms. */
export const IDLE_WINDOW_MS = 100;

/** The idle cores over the last window of at least IDLE_WINDOW_MS, a new window begun once that one ends. */
export class IdleMeter {
  readonly #cores: number;
  readonly #read: () => string | undefined;
  #start: { at: number; times: CpuTimes } | undefined;
  #idleCores: number | undefined;

  /** `cores`: the CPUs /proc/stat counts; `read`: its text (undefined when it cannot be read). */
  constructor(cores: number, read: () => string | undefined = readProcStat) {
    this.#cores = cores;
    this.#read = read;
  }

  /** Undefined until a window has ended, or when /proc/stat cannot be read. */
  idleCores(now = performance.now()): number | undefined {
    if (this.#start !== undefined && now - this.#start.at < IDLE_WINDOW_MS) return this.#idleCores;
    const text = this.#read();
    const times = text === undefined ? undefined : parseCpuTimes(text);
    if (times === undefined) return undefined;
    const start = this.#start;
    this.#start = { at: now, times };
    const total = start === undefined ? 0 : times.total - start.times.total;
    if (start !== undefined && total > 0)
      this.#idleCores = ((times.idle - start.times.idle) / total) * this.#cores;
    return this.#idleCores;
  }
}

function readProcStat(): string | undefined {
  try {
    return readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
}

/** The CPUs /proc/stat counts (its "cpuN" lines): the machine's, which its idle time is the idle time of. */
export function machineCpus(text: string | undefined = readProcStat()): number {
  return text?.match(/^cpu\d+\s/gm)?.length ?? 0;
}

/** The idle time that admits a check beyond one per core, in cores. */
export const MIN_IDLE_CORES = 0.5;

/**
 * Admits a check beside `cores` running ones only while at least half a core's worth of the machine's time
 * went idle over the last window, and one such at a time: the next after a window, so that the load of the
 * one started shows in the measure first.
 */
export function idleCoreAdmission(
  cores: number,
  meter: Pick<IdleMeter, 'idleCores'> = new IdleMeter(machineCpus()),
  clock: () => number = () => performance.now(),
): Admission {
  let extraAt = Number.NEGATIVE_INFINITY;
  return {
    retryMs: IDLE_WINDOW_MS,
    admit(running) {
      if (running < cores) return true;
      const now = clock();
      if (now - extraAt < IDLE_WINDOW_MS) return false;
      const idle = meter.idleCores(now);
      if (idle === undefined || idle < MIN_IDLE_CORES) return false;
      extraAt = now;
      return true;
    },
  };
}
