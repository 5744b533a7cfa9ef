/**
 * The ring-state and packed-ring checks on the net, fs, gpu, scsi and input fixture devices (VHU_FIXTURE_DEVICE):
 * the ring flaws of fixtures/backend/rings.ts, session.ts and packed-vring.ts are of no device type, and each
 * fails its own check there as it does on the block device (test/conventions.self.test.ts), judged with the
 * kind's sample request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ANY_DEVICE } from '../suites/vring/any-device.js';
import { PACKED_RING_CHECKS } from '../suites/vring/packed.js';
import { broken, type CliRun, expectClean, fixture, messageOf, runCli, verdicts } from './helpers.js';

/** A --grep of exactly `ids`. */
const only = (ids: Iterable<string>) => `^(${[...ids].map((id) => id.replaceAll('.', '\\.')).join('|')})$`;
const RING_STATE = only(ANY_DEVICE);
const PACKED = only(PACKED_RING_CHECKS);

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
    // The round the early reply shows in depends on timing: the first, on a quiet machine.
    message: /^round \d+: .* more completed after the reply, on the stopped ring/,
  },
  {
    type: 'net',
    flaw: 'mem-table-kept',
    fails: 'vring.mem-table.replace',
    message: /the back-end still uses the old mapping of guest 0x0/,
  },
  {
    type: 'fs',
    flaw: 'ignores-enable',
    fails: 'vring.enable-gates',
    message:
      /^never enabled: MKDIR of vhu-effect-\w+-0 in the root .* was executed before SET_VRING_ENABLE 1: the directory MKDIR makes appearing in /,
  },
  {
    type: 'gpu',
    flaw: 'ignores-disable',
    fails: 'vring.disable-stops',
    message:
      /^after SET_VRING_ENABLE 0: SET_SCANOUT of scanout 0 to 17x16 .* was executed before SET_VRING_ENABLE 1: the scanout set on the display/,
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
    // The round the early reply shows in depends on timing: the first, on a quiet machine.
    message: /^round \d+: .* more completed after the reply, on the stopped ring/,
  },
  {
    type: 'input',
    flaw: 'vring-base-early',
    fails: 'vring.get-vring-base.drain',
    // The round the early reply shows in depends on timing: the first, on a quiet machine.
    message: /^round \d+: .* more completed after the reply, on the stopped ring/,
  },
];

/**
 * A packed-ring flaw on a fixture device of `type`: the check it fails (the checks needing it skipped), and
 * what its message says.
 */
const PACKED_FLAWS: Array<{ type: string; flaw: string; fails: string; message: RegExp }> = [
  {
    type: 'gpu',
    flaw: 'packed-used-len-unwritten',
    fails: 'vring.packed.used',
    // The used descriptor keeps the length of the list's first descriptor, the 24-byte command.
    message: /^GET_DISPLAY_INFO on the control queue: used\.len 24, not the 408 bytes/,
  },
  {
    type: 'scsi',
    flaw: 'packed-wrap-not-flipped',
    fails: 'vring.packed.used',
    message: /where the next used descriptor is due .* is still as the driver made it available/,
  },
  {
    type: 'fs',
    flaw: 'packed-indirect-ignored',
    fails: 'vring.packed.indirect',
    // The table taken for the request itself: nothing the device can write, no reply.
    message: /^FUSE_INIT \(unique \d+\): used\.len 0, not a reply of 16\.\.80 bytes/,
  },
  {
    type: 'net',
    flaw: 'packed-event-desc-ignored',
    fails: 'vring.packed.event-idx',
    message:
      /^request 1 \(test frame \d+ .* on transmitq0\) was used at descriptor 0 .*but no used buffer notification came/,
  },
];

/** The checks `grep` selects of `wrapper` as a `type` device (fs: a shared directory of its own). */
async function ringStates(wrapper: string, type: string, grep = RING_STATE): Promise<CliRun> {
  const shared = type === 'fs' ? mkdtempSync(path.join(tmpdir(), 'vhu-selftest-shared-')) : undefined;
  try {
    return await runCli(
      ['--type', type, '--grep', grep, fixture(wrapper), ...(shared ? ['--', `--shared-dir=${shared}`] : [])],
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

describe('the packed-ring checks on net, fs, gpu and scsi fixture devices', function () {
  this.timeout(120_000);

  for (const type of ['net', 'fs', 'gpu', 'scsi']) {
    it(`pass on the reference ${type} device, which offers VIRTIO_F_RING_PACKED`, async () => {
      const run = await ringStates('vhu-reference', type, PACKED);
      expect(verdicts(run.report), run.stdout).to.deep.equal(
        Object.fromEntries([...PACKED_RING_CHECKS].map((id) => [id, 'pass'])),
      );
      expect(messageOf(run.report, 'vring.packed.used')).to.match(
        new RegExp(
          `^\\d+ ${type} sample requests .* through a packed ring of 19 descriptors: \\d+ descriptors used, [4-9] laps`,
        ),
      );
      expectClean(run);
    });
  }

  for (const { type, flaw, fails, message } of PACKED_FLAWS) {
    it(`vhu-flaw-${flaw} as a ${type} device fails ${fails} only`, async () => {
      const run = await ringStates(`vhu-flaw-${flaw}`, type, PACKED);
      expect(broken(run.report), run.stdout).to.deep.equal([fails]);
      expect(messageOf(run.report, fails)).to.match(message);
      expectClean(run);
    });
  }
});
