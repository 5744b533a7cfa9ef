import { expect } from 'chai';
import {
  IDLE_WINDOW_MS,
  IdleMeter,
  idleCoreAdmission,
  MIN_IDLE_CORES,
  machineCpus,
  parseCpuTimes,
} from './cpu-load.js';

/** /proc/stat's head with these totals in the aggregate line (user, system, idle, iowait, steal). */
function stat(user: number, system: number, idle: number, iowait = 0, steal = 0): string {
  return (
    `cpu  ${user} 0 ${system} ${idle} ${iowait} 0 0 ${steal} 0 0\n` +
    'cpu0 1 0 1 1 0 0 0 0 0 0\ncpu1 1 0 1 1 0 0 0 0 0 0\nintr 12 0 0\nctxt 99\n'
  );
}

describe('runner/cpu-load', () => {
  it('reads idle (with iowait) and total ticks from the aggregate line, steal counted as busy', () => {
    expect(parseCpuTimes(stat(100, 50, 800, 20, 30))).to.deep.equal({ idle: 820, total: 1000 });
    expect(parseCpuTimes('intr 1 2\n')).to.equal(undefined);
    expect(machineCpus(stat(1, 1, 1))).to.equal(2);
    expect(machineCpus('')).to.equal(0);
  });

  it('measures idle cores over a window once it has lasted IDLE_WINDOW_MS, and nothing before', () => {
    const texts = [stat(0, 0, 0), stat(50, 50, 100), stat(150, 50, 100)];
    const meter = new IdleMeter(2, () => texts.shift());
    expect(meter.idleCores(0)).to.equal(undefined);
    // Within the window: the sample is not taken yet.
    expect(meter.idleCores(IDLE_WINDOW_MS / 2)).to.equal(undefined);
    // Half of the 200 ticks idle, on two CPUs: one core idle.
    expect(meter.idleCores(IDLE_WINDOW_MS)).to.equal(1);
    expect(meter.idleCores(IDLE_WINDOW_MS + 1)).to.equal(1);
    // Then every tick busy.
    expect(meter.idleCores(2 * IDLE_WINDOW_MS)).to.equal(0);
    expect(new IdleMeter(2, () => undefined).idleCores(0)).to.equal(undefined);
  });

  it('admits up to one check per core at once, beyond that one more only while the cores are idle enough', () => {
    let idle: number | undefined = MIN_IDLE_CORES;
    let now = 10_000;
    const admission = idleCoreAdmission(2, { idleCores: () => idle }, () => now);
    expect(admission.admit(1)).to.equal(true);
    idle = 0;
    expect(admission.admit(1)).to.equal(true);
    expect(admission.admit(2)).to.equal(false);
    idle = MIN_IDLE_CORES;
    expect(admission.admit(2)).to.equal(true);
    // One at a time: the next only once the last one's load can show in a window of its own.
    now += 1;
    expect(admission.admit(3)).to.equal(false);
    now += IDLE_WINDOW_MS;
    expect(admission.admit(3)).to.equal(true);
    now += IDLE_WINDOW_MS;
    idle = undefined;
    expect(admission.admit(3)).to.equal(false);
  });
});
