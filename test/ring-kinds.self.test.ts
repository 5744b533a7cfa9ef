/**
 * The ring-state checks on the net, fs, gpu, scsi and input fixture devices (VHU_FIXTURE_DEVICE): the ring flaws of
 * fixtures/backend/rings.ts and session.ts are of no device type, and each fails its own check there as it
 * does on the block device (test/conventions.self.test.ts), judged with the kind's sample request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ANY_DEVICE } from '../suites/vring/any-device.js';
import { broken, type CliRun, expectClean, fixture, messageOf, runCli, verdicts } from './helpers.js';

const RING_STATE = `^(${[...ANY_DEVICE].map((id) => id.replaceAll('.', '\\.')).join('|')})$`;

/** A ring flaw on a fixture device of `type`: the check it fails, and what its message says. */
const FLAWS: Array<{ type: string; flaw: string; fails: string; message: RegExp }> = [
  {
    type: 'net',
    flaw: 'ignores-enable',
    fails: 'vring.enable-gates',
    message:
      /^never enabled: test frame 0 .* was executed before SET_VRING_ENABLE 1: the frame coming back on receiveq0/,
  },
  {
    type: 'net',
    flaw: 'ignores-disable',
    fails: 'vring.disable-stops',
    message: /^after SET_VRING_ENABLE 0: test frame 1 .* was executed before SET_VRING_ENABLE 1/,
  },
  {
    type: 'net',
    flaw: 'pending-kick-lost',
    fails: 'vring.restart.pending-kick',
    message: /kicked while stopped .*: the pending kick was lost/,
  },
  {
    type: 'net',
    flaw: 'vring-base-early',
    fails: 'vring.get-vring-base.drain',
    message: /^round 1: .* more completed after the reply, on the stopped ring/,
  },
  {
    type: 'net',
    flaw: 'mem-table-kept',
    fails: 'vring.mem-table.replace',
    message: /the back-end still uses the old mapping of guest 0x0/,
  },
  {
    type: 'fs',
    flaw: 'vring-base-off-by-one',
    fails: 'vring.get-vring-base',
    // FUSE_INIT, then five GETATTRs.
    message: /^GET_VRING_BASE of the first request queue \(vring 1\) after 6 requests .*: expected 6, saw 7/,
  },
  {
    type: 'gpu',
    flaw: 'restart-from-zero',
    fails: 'vring.restart',
    // Requests served again from index 0: seen as used.idx running ahead, or (by timing) a used element
    // naming a request done before the stop.
    message: /used\.idx advanced by|used\.ring\[\d+\] \(used index \d+\) has id \d+/,
  },
  {
    type: 'scsi',
    flaw: 'vring-base-early',
    fails: 'vring.get-vring-base.drain',
    message: /^round 1: .* more completed after the reply, on the stopped ring/,
  },
  {
    type: 'input',
    flaw: 'vring-base-early',
    fails: 'vring.get-vring-base.drain',
    message: /^round 1: .* more completed after the reply, on the stopped ring/,
  },
];

/** The ring-state checks of `wrapper` as a `type` device (fs: a shared directory of its own). */
async function ringStates(wrapper: string, type: string): Promise<CliRun> {
  const shared = type === 'fs' ? mkdtempSync(path.join(tmpdir(), 'vhu-selftest-shared-')) : undefined;
  try {
    return await runCli(
      [
        '--type',
        type,
        '--grep',
        RING_STATE,
        fixture(wrapper),
        ...(shared ? ['--', `--shared-dir=${shared}`] : []),
      ],
      { env: { VHU_FIXTURE_DEVICE: type }, limitMs: 90_000 },
    );
  } finally {
    if (shared) rmSync(shared, { recursive: true, force: true });
  }
}

describe('the ring-state checks on net, fs, gpu, scsi and input fixture devices', function () {
  this.timeout(120_000);

  for (const type of ['net', 'fs', 'gpu', 'scsi', 'input']) {
    it(`pass on the reference ${type} device, each with a verdict (none skipped)`, async () => {
      const run = await ringStates('vhu-reference', type);
      expect(verdicts(run.report), run.stdout).to.deep.equal(
        Object.fromEntries([...ANY_DEVICE].map((id) => [id, 'pass'])),
      );
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    });
  }

  for (const { type, flaw, fails, message } of FLAWS) {
    it(`vhu-flaw-${flaw} as a ${type} device fails ${fails} only`, async () => {
      const run = await ringStates(`vhu-flaw-${flaw}`, type);
      expect(broken(run.report), run.stdout).to.deep.equal([fails]);
      expect(messageOf(run.report, fails)).to.match(message);
      expectClean(run);
    });
  }
});
