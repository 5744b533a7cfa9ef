import { getPriority } from 'node:os';
import { expect } from 'chai';
import { TimeoutError } from '../errors.js';
import { BackendProcess, YIELD_AFTER_CPU_MS } from './backend.js';

/** A child that spins for `cpuMs` of its own CPU time, then ends with its nice value as its exit status. */
function spinner(cpuMs: number): BackendProcess {
  const script = `const t = process.cpuUsage(); while ((process.cpuUsage(t).user + process.cpuUsage(t).system) / 1000 < ${cpuMs}) {} process.exitCode = require('node:os').getPriority();`;
  return new BackendProcess(process.execPath, { args: ['-e', script], graceMs: 1000 });
}

describe('process/backend', () => {
  it('makes a back-end that stays busy while the harness waits for its exit yield the CPU (nice 19)', async function () {
    this.timeout(60_000);
    const backend = spinner(YIELD_AFTER_CPU_MS + 800);
    const exit = await backend.waitExit(50_000);
    expect(exit.code, 'its nice value when it ended').to.equal(19);
    expect(backend.yielded).to.equal(true);
  });

  it('leaves the priority of one that ends with little CPU', async function () {
    this.timeout(30_000);
    const backend = spinner(50);
    const exit = await backend.waitExit(20_000);
    expect(exit.code).to.equal(getPriority());
    expect(backend.yielded).to.equal(false);
  });

  it('gives the CPU time of one still running, and nothing once it is gone', async function () {
    this.timeout(30_000);
    const backend = new BackendProcess('sleep', { args: ['30'], graceMs: 1000 });
    try {
      await backend.waitExit(200);
      expect.fail('sleep 30 ended early');
    } catch (err) {
      expect(err).to.be.instanceOf(TimeoutError);
    }
    expect(backend.cpuMs()).to.be.a('number').within(0, YIELD_AFTER_CPU_MS);
    await backend.terminate();
    expect(backend.cpuMs()).to.equal(undefined);
  });
});
