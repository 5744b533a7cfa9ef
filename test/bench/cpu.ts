/** What the benches share: the CPU time of the back-end under test. */
import { CLOCK_TICKS_PER_SECOND, descendantsOf } from '../../harness/process/procfs.js';

/** CPU time of every process below this one (the back-end the bench launched), in microseconds. */
export function backendCpuUs(): number {
  const ticks = descendantsOf(process.pid).reduce((sum, p) => sum + p.cpuTicks, 0);
  return (ticks * 1_000_000) / CLOCK_TICKS_PER_SECOND;
}
