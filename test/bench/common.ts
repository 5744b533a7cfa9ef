/** What the benches share: the target a bench checks, and the CPU time of the back-end under test. */
import { CLOCK_TICKS_PER_SECOND, descendantsOf } from '../../harness/process/procfs.js';
import type { Target } from '../../harness/runner/check.js';

/** A target of device `type`, launched (`binary`) or attached (`connect`), as the CLI would make it. */
export function benchTarget(type: string, over: Partial<Target>): Target {
  return {
    binary: '',
    connect: null,
    extraArgs: [],
    type,
    capabilities: { type },
    descriptorDirs: [],
    memo: new Map(),
    backendMemo: new Map(),
    ...over,
  };
}

/** CPU time of every process below this one (the back-end the bench launched), in microseconds. */
export function backendCpuUs(): number {
  const ticks = descendantsOf(process.pid).reduce((sum, p) => sum + p.cpuTicks, 0);
  return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}
