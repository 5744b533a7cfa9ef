/**
 * The load mode (harness/load, `vhu-conform load`) against the fixture back-ends: it keeps the queues full
 * with every completion judged, the counts agree with each other, and a back-end that completes wrongly,
 * dies or stops completing mid-run ends it with an error naming that, in bounded time, nothing left behind.
 * No timing is asserted: the rates are the bench's (test/bench/load.bench.ts).
 */
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { BackendError } from '../harness/errors.js';
import { type LoadReport, runLoad } from '../harness/load/load.js';
import { readStat, socketOwner } from '../harness/process/procfs.js';
import { fixture, runCli, startListening } from './helpers.js';
import { startQsd } from './qsd.js';
import { startTestpmd, TESTPMD } from './testpmd.js';

function expectConsistent(report: LoadReport, unit: string): void {
  expect(report.unit).to.equal(unit);
  expect(report.completed).to.be.above(0);
  expect(report.perSecond).to.equal(Math.round((report.completed / report.elapsedMs) * 1000));
  const { p50, p90, p99, p999, max } = report.latencyUs;
  expect([p50, p90, p99, p999]).to.deep.equal([p50, p90, p99, p999].sort((a, b) => a - b));
  expect(p999).to.be.at.most(max);
  // EVENT_IDX is offered by both fixtures: kicks go only where avail_event asks, never more than one a post.
  expect(report.eventIdx).to.equal(true);
  expect(report.kicks).to.be.at.most(report.completed + report.depth);
  expect(report.backendPid).to.be.a('number');
  expect(report.harnessUsPer).to.be.above(0);
}

/** Runs `action` on the pid of the back-end listening at `socket`, 200 ms into the load. */
function midRun(socket: string, action: (pid: number) => void): () => void {
  return () =>
    setTimeout(() => {
      const pid = socketOwner(socket);
      if (pid !== undefined) action(pid);
    }, 200);
}

describe('load mode', () => {
  it('keeps a block queue full of reads, each checked, and counts them consistently', async () => {
    const report = await runLoad({ type: 'block', binary: fixture('vhu-reference'), durationMs: 500 });
    expectConsistent(report, 'requests');
    expect(report.depth).to.equal(64);
    expect(report.bytes).to.equal(4096);
  });

  it('loops frames through a net device, each checked in order, and counts them consistently', async () => {
    const report = await runLoad({
      type: 'net',
      binary: fixture('vhu-reference-net'),
      durationMs: 500,
      depth: 32,
      bytes: 1514,
    });
    expectConsistent(report, 'frames');
  });

  it('ends at a frame that did not come back, naming it (net-drops-frames drops every 7th)', async () => {
    const err = await runLoad({
      type: 'net',
      binary: fixture('vhu-flaw-net-drops-frames'),
      durationMs: 5000,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).to.be.instanceOf(BackendError);
    expect(err!.message).to.match(/frames were lost, duplicated or reordered/);
  });

  it('ends when the back-end dies mid-run, saying so, and leaves nothing running', async () => {
    const backend = await startListening(fixture('vhu-reference'));
    let pid: number | undefined;
    try {
      const err = await runLoad({
        onStart: midRun(backend.socket, (p) => {
          pid = p;
          process.kill(p, 'SIGKILL');
        }),
        type: 'block',
        connect: backend.socket,
        durationMs: 30_000,
        timeoutMs: 2000,
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(pid, 'the back-end was killed').to.be.a('number');
      expect(err).to.be.instanceOf(BackendError);
      expect(err!.message).to.match(/closed the connection.*during the load/);
    } finally {
      await backend.stop();
    }
    expect(readStat(pid!)?.state ?? 'gone').to.be.oneOf(['gone', 'Z']);
  });

  it('ends when the back-end stops completing (SIGSTOP), within its deadline', async () => {
    const backend = await startListening(fixture('vhu-reference-net'));
    let pid: number | undefined;
    try {
      const err = await runLoad({
        onStart: midRun(backend.socket, (p) => {
          pid = p;
          process.kill(p, 'SIGSTOP');
        }),
        type: 'net',
        connect: backend.socket,
        durationMs: 30_000,
        timeoutMs: 1000,
      }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(pid, 'the back-end was stopped').to.be.a('number');
      expect(err).to.be.instanceOf(BackendError);
      expect(err!.message).to.match(
        /timed out after 1000 ms waiting for a completion \(the back-end stopped completing/,
      );
    } finally {
      if (pid !== undefined) process.kill(pid, 'SIGCONT');
      await backend.stop();
    }
  });

  it('CLI: prints the rate, latency and CPU; refuses bad input with status 2', async () => {
    const run = await runCli(['load', '--type', 'block', '--duration', '0.3', fixture('vhu-reference')]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/requests\/s: [\d,]+ requests, every one checked/);
    expect(run.stdout).to.match(/latency \(post to completion\): p50 \d+ us/);
    expect(run.stdout).to.match(/CPU, share of one core: harness \d+%, back-end \d+% \(pid \d+\)/);
    const bad = await runCli(['load', '--type', 'net', '--size', '10', fixture('vhu-reference-net')]);
    expect(bad.exitCode).to.equal(2);
    expect(bad.stderr).to.match(/--size 10: a frame of 60 to 1514 bytes/);
    const help = await runCli(['load', '--help']);
    expect(help.exitCode).to.equal(0);
    expect(help.stdout).to.match(/--duration <seconds>/);
  });

  it('qemu-storage-daemon (null-co): reads at depth 64, every one right, kicked where avail_event asks', async () => {
    const qsd = await startQsd();
    try {
      const report = await runLoad({ type: 'block', connect: qsd.socket, durationMs: 500 });
      expectConsistent(report, 'requests');
    } finally {
      await qsd.stop();
    }
  });

  it('dpdk-testpmd (io forwarding): frames back in order, byte for byte; it polls, so kicks almost never go', async () => {
    if (!existsSync(TESTPMD)) expect.fail(`${TESTPMD} is missing: install the Debian package dpdk-dev`);
    const testpmd = await startTestpmd({ queues: 1, statsPeriod: 10 });
    try {
      const report = await runLoad({ type: 'net', connect: testpmd.socket, durationMs: 500 });
      expectConsistent(report, 'frames');
      // DPDK's vhost PMD turns guest notifications off (rte_vhost_enable_guest_notification 0): with EVENT_IDX
      // avail_event stays where it was, so a kick is due only when avail.idx passes it, once in 65536.
      expect(report.kicks).to.be.below(report.completed / 100 + 10);
    } finally {
      await testpmd.stop();
    }
  });
});
