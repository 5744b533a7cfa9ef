/**
 * The migrate checks through the CLI. migrate.inflight: the reference resubmits what the buffer handed back
 * says is inflight, on split and packed rings (pass, also in attach mode), the flaws that leave it (split, or
 * packed only) or skip the used_idx repair fail it, qemu-storage-daemon offers no
 * INFLIGHT_SHMFD (skip; contrib's vhost-user-blk: test/contrib.test.ts). migrate.resume: the reference back-end moves (pass), the flawed
 * destination that skips what the source left fails saying so, qemu-storage-daemon moves between two daemons
 * sharing one image (through test/qemu-storage-daemon-adapter, which gives it --socket-path and --blk-file),
 * and attach mode skips it. migrate.abi-stable: the reference, qemu-storage-daemon, vhost-user-gpu and
 * virtiofsd keep their guest ABI across a reconnection and a second launch, the flaw that flips a feature on
 * every second front-end fails it naming the bit, and attach mode compares two connections. --migrate-to and
 * --migrate-to-connect: a move to another back-end (the reference itself passes; a variant without protocol
 * features, another version that drops a feature, is skipped naming each bit), and their usage errors.
 */
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import {
  awaitListening,
  CLI,
  expectClean,
  fixture,
  messageOf,
  ROOT,
  runCli,
  startListening,
  verdicts,
} from './helpers.js';

const GREP = ['--timeout', '3000', '--grep', '^migrate\\.'];
const RESUME = ['--timeout', '3000', '--grep', '^migrate\\.resume$'];
const ABI_STABLE = ['--timeout', '3000', '--grep', '^migrate\\.abi-stable$'];
const INFLIGHT = ['--timeout', '3000', '--grep', '^migrate\\.inflight$'];
const QSD = '/usr/bin/qemu-storage-daemon';
const QSD_ADAPTER = path.join(ROOT, 'test/qemu-storage-daemon-adapter');
const GPU = '/usr/lib/qemu/vhost-user-gpu';
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

/** A pass of migrate.abi-stable over two launches; `reconnected` says what the second connection found. */
function launchesAlike(reconnected: RegExp): RegExp {
  return new RegExp(
    `^two launches with the same arguments and socket path gave the same fingerprint \\(features 0x[0-9a-f]{16}, .*\\) and the same --print-capabilities; ${reconnected.source}$`,
  );
}

describe('the migrate checks through the CLI', function () {
  this.timeout(120_000);

  it('the reference back-end moves: the destination completes what the source left, on the shared disk', async () => {
    const run = await runCli([...GREP, fixture('vhu-reference')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({
      'migrate.resume': 'pass',
      'migrate.inflight': 'pass',
      'migrate.device-state': 'skip',
      'migrate.abi-stable': 'pass',
      'migrate.refuse-unknown': 'pass',
    });
    expect(messageOf(run.report, 'migrate.device-state')).to.equal(
      'protocol feature DEVICE_STATE (bit 19) is not offered (GET_PROTOCOL_FEATURES 0x1b22b): the back-end moves no state of its own through the front-end',
    );
    expect(messageOf(run.report, 'migrate.refuse-unknown')).to.equal(
      'SET_FEATURES 0x0000000d70000240 to a launch of the back-end under test, with VIRTIO_F_IN_ORDER not offered by the destination (it offers 0x0000000574000240): refused, REPLY_ACK 1',
    );
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /a fresh 8 MiB file given to both with --blk-file; the source stopped at base (\d+) with 6 requests left \(0 taken by the source itself\); the destination, started at \1 and kicked, completed 6 once each/,
    );
    // It serves the next front-end: the same process is handed the buffer back, and resubmits on the kick.
    // The second left was completed out of order: the other four come back, at QEMU's base (the used idx).
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^8 requests recorded \(counters growing, none left inflight\); 5 requests marked inflight \(heads (\d+), (\d+), (\d+), (\d+), (\d+), counters (\d+)\.\.\d+\) after the ring stopped at \6, and head \2 completed out of order and left in the last batch \(used_idx \6\); reconnected to the same process, the buffer handed back, the ring at \d+ \(the used ring's idx\): each completed once \(heads in the order \1, \3, \4, \5; 0 before any kick\), the data right, the entries cleared; it stopped at \d+; packed ring: /,
    );
    // It offers VIRTIO_F_RING_PACKED: the packed queue region too, its lists resubmitted from their entries.
    const position = '\\d+ \\(wrap [01]\\)';
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      new RegExp(
        `; packed ring: 8 requests recorded \\(the entry of the one completed last holding the largest counter and heading the free list, which holds every entry, none left inflight, used_idx committed\\); 4 requests marked inflight \\(heads (\\d+), (\\d+), (\\d+), (\\d+), counters \\d+\\.\\.\\d+\\) after the ring stopped at ${position}, and head \\d+ left linked back and not committed; reconnected to the same process, the buffer handed back, the ring at available ${position}, used ${position}: each completed once \\(heads in the order \\1, \\2, \\3, \\4; 0 before any kick\\), the data right, the entries cleared; it stopped at ${position}$`,
      ),
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-resume-skips-pending fails it: the requests the source left are lost on the destination', async () => {
    const run = await runCli([...GREP, fixture('vhu-flaw-resume-skips-pending')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({
      'migrate.resume': 'fail',
      'migrate.inflight': 'pass',
      'migrate.device-state': 'skip',
      'migrate.abi-stable': 'pass',
      'migrate.refuse-unknown': 'pass',
    });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /the destination, started with SET_VRING_BASE \d+ and kicked, completed 0 of the 6 requests the source left available \(avail\.idx \d+\): 6 lost/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it('qemu-storage-daemon (two daemons, one image, locking=off) moves, and keeps its ABI, under every front-end profile', async () => {
    if (!existsSync(QSD)) expect.fail(`${QSD} is missing: run .ci/install-backends (qemu-system-common)`);
    const tmp = await dir({ prefix: 'vhu-selftest-migrate-', unsafeCleanup: true });
    try {
      // The adapter exports a file: every launch needs one (migrate.resume shares the run's with both sides).
      const image = path.join(tmp.path, 'disk.img');
      await writeFile(image, Buffer.alloc(8 * 1024 * 1024));
      const run = await runCli([...GREP, '--frontend', 'all', QSD_ADAPTER, '--', `--blk-file=${image}`], {
        env: { VHU_DESCRIPTOR_DIRS: undefined },
      });
      for (const id of [
        'migrate.resume',
        'migrate.abi-stable',
        'migrate.inflight',
        'migrate.device-state',
        'migrate.refuse-unknown',
      ]) {
        const row = run.report?.matrix?.checks[id] ?? {};
        expect(Object.keys(row), run.stdout).to.not.deep.equal([]);
        // vu_blk_get_protocol_features (block/export/vhost-user-blk-server.c) offers CONFIG only; libvhost-user's
        // vu_set_features_exec stores SET_FEATURES as it comes, a bit not offered with the rest, and acks it 0.
        // Under qemu-legacy (no protocol features, so no REPLY_ACK) a refusal could only show as a close.
        const refusal = (profile: string) => (profile === 'qemu-legacy' ? 'skip' : 'fail');
        for (const [profile, verdict] of Object.entries(row))
          expect(verdict, `${id}@${profile}\n${run.stdout}`).to.equal(
            id === 'migrate.inflight' || id === 'migrate.device-state'
              ? 'skip'
              : id === 'migrate.refuse-unknown'
                ? refusal(profile)
                : 'pass',
          );
      }
      expect(messageOf(run.report, 'migrate.inflight')).to.match(/INFLIGHT_SHMFD is not offered/);
      // libvhost-user 7.2 predates DEVICE_STATE (QEMU 8.2); the legacy profile negotiates no protocol features.
      expect(messageOf(run.report, 'migrate.device-state')).to.match(
        /^(protocol feature DEVICE_STATE \(bit 19\) is not offered \(GET_PROTOCOL_FEATURES 0x[0-9a-f]+\)|VHOST_USER_F_PROTOCOL_FEATURES is not negotiated)/,
      );
      // libvhost-user's server takes the next front-end once one leaves: the reconnection is compared too.
      expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
        launchesAlike(/a second connection to launch 1 gave it too/),
      );
      // A SHOULD: the run still exits 0.
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    } finally {
      await tmp.cleanup();
    }
  });

  it('vhu-flaw-inflight-not-resubmitted fails migrate.inflight: at the used idx (qemu) it takes the request completed out of order again', async () => {
    const run = await runCli([...INFLIGHT, fixture('vhu-flaw-inflight-not-resubmitted')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    // It reads the ring from SET_VRING_BASE, QEMU's used idx after a broken connection: the second left,
    // completed out of order in the state written, comes first.
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^resubmitting the requests inflight in the buffer \(heads \d+, (\d+), \d+, \d+, \d+; head \1 completed out of order \(its used element at used idx \d+\), inflight too with used_idx one behind the used ring's idx: the last batch, which the spec's repair clears rather than resubmits\): used\.ring\[\d+\] \(used index \d+\) has id \1, which is not the head of a chain in flight/,
    );
    // A SHOULD: the run still exits 0.
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-inflight-not-resubmitted fails it under cloud-hypervisor too: at the available idx, what the buffer says is inflight is lost', async () => {
    const run = await runCli([
      ...INFLIGHT,
      '--frontend',
      'cloud-hypervisor',
      fixture('vhu-flaw-inflight-not-resubmitted'),
    ]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^reconnected to the same process, the inflight buffer handed back \(heads \d+, \d+, \d+, \d+, \d+ inflight, counters \d+ to \d+\) and SET_VRING_BASE \d+, then kicked: it completed 0 of the 4 requests the buffer says were taken and not completed: 4 lost; head \d+ completed out of order .*; timed out/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it("vhu-variant-inflight-base-plus-resubmitted (DPDK's base + resubmitted) passes at QEMU's base, and fails cloud-hypervisor's", async () => {
    const qemu = await runCli([...INFLIGHT, fixture('vhu-variant-inflight-base-plus-resubmitted')]);
    expect(verdicts(qemu.report), qemu.stdout).to.deep.equal({ 'migrate.inflight': 'pass' });
    expect(messageOf(qemu.report, 'migrate.inflight')).to.match(
      /the ring at \d+ \(the used ring's idx\): each completed once \(heads in the order \d+, \d+, \d+, \d+; 0 before any kick\), the data right/,
    );
    expectClean(qemu);
    // cloud-hypervisor sends the available ring's idx: from there plus four, it is past what comes next.
    const ch = await runCli([
      ...INFLIGHT,
      '--frontend',
      'cloud-hypervisor',
      fixture('vhu-variant-inflight-base-plus-resubmitted'),
    ]);
    expect(verdicts(ch.report), ch.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    expect(messageOf(ch.report, 'migrate.inflight')).to.match(
      /^the 4 requests inflight in the buffer resubmitted, the next one made available was not completed: the ring resumed past it, not where the requests taken end, from SET_VRING_BASE \d+ \(the available ring's idx\); timed out after 3000 ms waiting for 1 used buffer/,
    );
    expectClean(ch);
  });

  it('the same variant as a net device under cloud-hypervisor: the next frames are not completed, and the message says why', async () => {
    const run = await runCli([...INFLIGHT, '--frontend', 'cloud-hypervisor', fixture('vhu-reference-net')], {
      env: { VHU_FIXTURE_VARIANT: 'inflight-base-plus-resubmitted' },
    });
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^the 4 net sample requests inflight in the buffer resubmitted, the next ones made available were not completed: the ring resumed past them, not where the requests taken end, from SET_VRING_BASE \d+ \(the available ring's idx\); timed out after 3000 ms waiting for 2 used buffers/,
    );
    expectClean(run);
  });

  it('vhu-flaw-inflight-no-repair fails migrate.inflight: the last batch, published and not cleared, is done twice', async () => {
    const run = await runCli([...INFLIGHT, fixture('vhu-flaw-inflight-no-repair')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    // The five used elements seen at once (used.idx 5 ahead), or (under load) the repeated head seen first.
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^resubmitting the requests inflight in the buffer \(heads \d+, (\d+), \d+, \d+, \d+; head \1 completed out of order \(its used element at used idx \d+\), inflight too with used_idx one behind the used ring's idx: the last batch, which the spec's repair clears rather than resubmits\): (used\.idx advanced by 5, but only 4 buffers are in flight|used\.ring\[\d+\] \(used index \d+\) has id \1, which is not the head of a chain in flight)/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-inflight-packed-not-resubmitted fails migrate.inflight on the packed ring only: the lists its packed region says are inflight are lost', async () => {
    const run = await runCli([...INFLIGHT, fixture('vhu-flaw-inflight-packed-not-resubmitted')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.inflight': 'fail' });
    expect(messageOf(run.report, 'migrate.inflight')).to.match(
      /^packed ring: reconnected to the same process, the inflight buffer handed back \(head entries \d+, \d+, \d+, \d+ inflight \(buffer ids \d+, \d+, \d+, \d+\), counters \d+ to \d+\) and SET_VRING_BASE available \d+ \(wrap [01]\), used \d+ \(wrap [01]\), then kicked: it completed 0 of the 4 requests the buffer says were taken and not completed: 4 lost; head \d+, completed last on the first connection, its entries linked back to the free list and used_idx moved past its used descriptor, not committed \(old_used_idx behind\): the spec's repair commits it \(the used descriptor is written\) and clears it rather than resubmits it; timed out/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('under cloud-hypervisor, which keeps the buffer for net and fs too: the net reference resubmits its frames, fs is skipped', async () => {
    const net = await runCli([...INFLIGHT, '--frontend', 'cloud-hypervisor', fixture('vhu-reference-net')]);
    expect(verdicts(net.report), net.stdout).to.deep.equal({ 'migrate.inflight': 'pass' });
    expect(messageOf(net.report, 'migrate.inflight')).to.match(
      /^a net device, transmitq0 \(vring 1\): 5 sample requests recorded \(counters growing, none left inflight\); 5 marked inflight .*the ring at \d+ \(the available ring's idx\): 4 each completed once .*\(the frame coming back on receiveq0 .*: each seen\), judged, the entries cleared; it stopped at \d+; packed ring not checked: the cloud-hypervisor front-end profile does not pass VIRTIO_F_RING_PACKED on to a net device/,
    );
    expectClean(net);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      const fs = await runCli([
        ...INFLIGHT,
        '--frontend',
        'cloud-hypervisor',
        fixture('vhu-reference-fs'),
        '--',
        `--shared-dir=${share.path}`,
      ]);
      expect(verdicts(fs.report), fs.stdout).to.deep.equal({ 'migrate.inflight': 'skip' });
      expect(messageOf(fs.report, 'migrate.inflight')).to.match(
        /^a fs device's requests need an opening one first/,
      );
      expectClean(fs);
    } finally {
      await share.cleanup();
    }
  });

  it('vhu-flaw-reconnect-features-flip fails migrate.abi-stable, naming the bit the second front-end was offered', async () => {
    const run = await runCli([...ABI_STABLE, fixture('vhu-flaw-reconnect-features-flip')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.abi-stable': 'fail' });
    expect(messageOf(run.report, 'migrate.abi-stable')).to.equal(
      'a second connection to launch 1 differs from the first: virtioFeatures: connection 1 0x0000000574000240, connection 2 0x0000000575000240 (VIRTIO_F_NOTIFY_ON_EMPTY offered on connection 2 only)',
    );
    // A SHOULD: the run still exits 0.
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it(`Debian's ${GPU} and ${VIRTIOFSD} keep their ABI across two launches (each ends when its front-end leaves)`, async () => {
    for (const binary of [GPU, VIRTIOFSD])
      if (!existsSync(binary))
        expect.fail(`${binary} is missing: run .ci/install-backends (qemu-system-gui, qemu-system-common)`);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      for (const args of [[GPU], [VIRTIOFSD, '--', '-o', `source=${share.path}`]]) {
        const run = await runCli([...ABI_STABLE, ...args], { env: { VHU_DESCRIPTOR_DIRS: undefined } });
        expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.abi-stable': 'pass' });
        expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
          launchesAlike(/it ended once its front-end left \(exit status 0\): no reconnection to compare/),
        );
        expect(run.exitCode, run.stderr).to.equal(0);
        expectClean(run);
      }
    } finally {
      await share.cleanup();
    }
  });

  it('attach mode skips migrate.resume (one back-end, and nothing launches a second) and compares two connections', async () => {
    const { socket, stop } = await startListening(fixture('vhu-reference'));
    try {
      const run = await runCli([...GREP, '--connect', socket, '--type', 'block']);
      expect(verdicts(run.report), run.stdout).to.deep.equal({
        'migrate.resume': 'skip',
        'migrate.inflight': 'pass',
        'migrate.device-state': 'skip',
        'migrate.abi-stable': 'pass',
        'migrate.refuse-unknown': 'pass',
      });
      expect(messageOf(run.report, 'migrate.resume')).to.match(/attach mode: the check needs two back-ends/);
      expect(messageOf(run.report, 'migrate.inflight')).to.match(
        /; reconnected to the back-end, the buffer handed back, the ring at \d+ \(the used ring's idx\): each completed once/,
      );
      expect(messageOf(run.report, 'migrate.abi-stable')).to.match(
        /^two connections gave the same fingerprint \(features 0x0000000574000240, .*\); attach mode: the launches are not compared/,
      );
      expect(run.exitCode, run.stderr).to.equal(0);
    } finally {
      await stop();
    }
  });
});

describe('migrate.refuse-unknown: a feature set with a bit the destination does not offer', function () {
  this.timeout(120_000);
  const REFUSE = ['--timeout', '3000', '--grep', '^migrate\\.refuse-unknown$'];

  it('vhu-flaw-unknown-feature-accepted fails it: the set is acked 0, the bit named', async () => {
    const run = await runCli([...REFUSE, fixture('vhu-flaw-unknown-feature-accepted')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.refuse-unknown': 'fail' });
    expect(messageOf(run.report, 'migrate.refuse-unknown')).to.equal(
      'SET_FEATURES 0x0000000d70000240 to a launch of the back-end under test, with VIRTIO_F_IN_ORDER not offered by the destination (it offers 0x0000000574000240): acked 0, as if it could honour VIRTIO_F_IN_ORDER; the guest would go on with what the device does not do instead of the move failing',
    );
    // A SHOULD: the run still exits 0.
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('--migrate-to a destination that lacks a bit the guest has: that bit is the one given, and refused', async () => {
    // A guest of the net reference has VIRTIO_NET_F_MQ (the qemu profile passes it on); the variant offers none.
    const run = await runCli([
      ...REFUSE,
      '--migrate-to',
      fixture('vhu-variant-net-no-mq'),
      fixture('vhu-reference-net'),
    ]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.refuse-unknown': 'pass' });
    expect(messageOf(run.report, 'migrate.refuse-unknown')).to.match(
      /^SET_FEATURES 0x[0-9a-f]{16} to .*vhu-variant-net-no-mq \(--migrate-to\), with VIRTIO_NET_F_MQ negotiated on the source, not offered by the destination \(it offers 0x[0-9a-f]{16}\): refused, REPLY_ACK 1$/,
    );
    expectClean(run);
  });

  it(`Debian's ${GPU} and ${VIRTIOFSD} (libvhost-user 7.2) ack it with 0: vu_set_features_exec keeps any set`, async () => {
    for (const binary of [GPU, VIRTIOFSD])
      if (!existsSync(binary))
        expect.fail(`${binary} is missing: run .ci/install-backends (qemu-system-gui, qemu-system-common)`);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      for (const args of [[GPU], [VIRTIOFSD, '--', '-o', `source=${share.path}`]]) {
        const run = await runCli([...REFUSE, ...args], { env: { VHU_DESCRIPTOR_DIRS: undefined } });
        expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.refuse-unknown': 'fail' });
        expect(messageOf(run.report, 'migrate.refuse-unknown')).to.match(
          /^SET_FEATURES 0x[0-9a-f]{16} to a launch of the back-end under test, with VIRTIO_F_RING_PACKED not offered by the destination \(it offers 0x0000000175000000\): acked 0, as if it could honour VIRTIO_F_RING_PACKED/,
        );
        expect(run.exitCode, run.stderr).to.equal(0);
        expectClean(run);
      }
    } finally {
      await share.cleanup();
    }
  });
});

describe("migrate.resume on other device kinds: the kind's sample request moves", function () {
  this.timeout(120_000);
  const TESTPMD_ADAPTER = path.join(ROOT, 'test/dpdk-testpmd-adapter');

  it('the net reference: the frames the source left go out from the destination and come back', async () => {
    const run = await runCli([...RESUME, fixture('vhu-reference-net')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /^a net device: the source stopped at base (\d+) of transmitq0 \(vring 1\) with 4 sample requests left \(0 taken by the source itself\); the destination started at \1 and kicked, completed 4 once each \(the frame coming back on receiveq0 \(a back-end that loops frames back\): each seen\), and traffic went on; it stopped at \d+$/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('vhu-flaw-resume-skips-pending as a net device fails it: the frames the source left are lost', async () => {
    const run = await runCli([...RESUME, fixture('vhu-flaw-resume-skips-pending')], {
      env: { VHU_FIXTURE_DEVICE: 'net' },
    });
    expect(run.report?.backend.type).to.equal('net');
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'fail' });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /^the destination started with SET_VRING_BASE \d+ on transmitq0 \(vring 1\) and kicked, did not complete the 4 net sample requests the source left available/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it('dpdk-testpmd (through test/dpdk-testpmd-adapter) moves: it polls, so the source took what was left', async () => {
    if (!existsSync('/usr/bin/dpdk-testpmd')) expect.fail('/usr/bin/dpdk-testpmd is missing: install dpdk');
    const runtime = () =>
      existsSync('/var/run/dpdk')
        ? readdirSync('/var/run/dpdk').filter((d) => d.startsWith('vhu-adapter-'))
        : [];
    const before = runtime();
    // testpmd's start-up (EAL, 16384 mbufs) takes seconds on a loaded machine: a longer deadline per wait.
    const run = await runCli(['--timeout', '10000', '--grep', '^migrate\\.resume$', TESTPMD_ADAPTER]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
    // testpmd polls its transmit queue: the four are taken before the stop, and GET_VRING_BASE counts them.
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      /^a net device: the source stopped at base (\d+) of transmitq0 \(vring 1\) with 4 sample requests left \((\d) taken by the source itself\); the destination started at \1 and kicked, (completed \d once each \(the frame coming back on receiveq0 .*: each seen\)|had none left), and traffic went on; it stopped at \d+$/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
    expect(runtime(), 'testpmd runtime folders left').to.deep.equal(before);
  });

  it('the fs reference is skipped: its FUSE session moves with the back-end state', async () => {
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      const run = await runCli([...RESUME, fixture('vhu-reference-fs'), '--', `--shared-dir=${share.path}`]);
      expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'skip' });
      expect(messageOf(run.report, 'migrate.resume')).to.equal(
        "a fs device's requests need an opening one first (its sample's), a session the back-end keeps: it moves with the back-end state (migrate.device-state), not with the rings",
      );
      expectClean(run);
    } finally {
      await share.cleanup();
    }
  });
});

describe('migrate.device-state: the fs device moves its open files through SET_DEVICE_STATE_FD', function () {
  this.timeout(120_000);
  const STATE = ['--timeout', '3000', '--grep', '^migrate\\.device-state$'];

  /** A run of migrate.device-state on `wrapper` serving a fresh directory; the directory is left empty. */
  async function stateRun(wrapper: string, extra: string[] = []) {
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      const run = await runCli([...STATE, ...extra, fixture(wrapper), '--', `--shared-dir=${share.path}`]);
      expect(readdirSync(share.path), 'trees left in the shared directory').to.deep.equal([]);
      return run;
    } finally {
      await share.cleanup();
    }
  }

  it('the fs reference: a file opened through the source reads through the destination', async () => {
    const run = await stateRun('vhu-reference-fs');
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.device-state': 'pass' });
    expect(messageOf(run.report, 'migrate.device-state')).to.match(
      /^big\.bin opened on the source \(fh (\d+)\) and read; its rings stopped at 0 and \d+, the state saved \(\d+ bytes to the end of file\), CHECK_DEVICE_STATE 0; loaded into the destination before its device started, CHECK_DEVICE_STATE 0; started at the same bases, it read the 100000 bytes through fh \1$/,
    );
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('--migrate-to the fs reference itself, given the directory: the move passes, the destination named', async () => {
    const run = await stateRun('vhu-reference-fs', ['--migrate-to', fixture('vhu-reference-fs')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.device-state': 'pass' });
    expect(messageOf(run.report, 'migrate.device-state')).to.contain(
      `loaded into the destination, ${fixture('vhu-reference-fs')} (--migrate-to), before its device started`,
    );
    expectClean(run);
  });

  it('vhu-flaw-fs-state-not-restored fails it: the load is taken, the handle is gone on the destination', async () => {
    const run = await stateRun('vhu-flaw-fs-state-not-restored');
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.device-state': 'fail' });
    expect(messageOf(run.report, 'migrate.device-state')).to.match(
      /^READ of big\.bin at 0 through fh \d+, opened on the source, failed on the destination \(the driver opens nothing again\): it "must deserialize its internal state from that data": errno 9 \(EBADF\)$/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it('vhu-flaw-fs-state-save-no-eof fails it: the state comes, the end of file never does', async () => {
    const run = await stateRun('vhu-flaw-fs-state-save-no-eof');
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.device-state': 'fail' });
    expect(messageOf(run.report, 'migrate.device-state')).to.match(
      /^SET_DEVICE_STATE_FD \(save\) on the source: \d+ bytes of state read, then nothing and no end of file within 3000 ms: "The writing end will write all the data it has into it, signalling the end of data by closing its end"$/,
    );
    expect(run.exitCode, run.stderr).to.equal(1);
    expectClean(run);
  });

  it(`Debian's ${VIRTIOFSD} (libvhost-user 7.2, before QEMU 8.2) offers no DEVICE_STATE: skipped, saying so`, async () => {
    if (!existsSync(VIRTIOFSD))
      expect.fail(`${VIRTIOFSD} is missing: run .ci/install-backends (qemu-system-common)`);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      const run = await runCli([...STATE, VIRTIOFSD, '--', '-o', `source=${share.path}`], {
        env: { VHU_DESCRIPTOR_DIRS: undefined },
      });
      expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.device-state': 'skip' });
      expect(messageOf(run.report, 'migrate.device-state')).to.match(
        /^protocol feature DEVICE_STATE \(bit 19\) is not offered \(GET_PROTOCOL_FEATURES 0x[0-9a-f]+\): the back-end moves no state of its own through the front-end$/,
      );
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    } finally {
      await share.cleanup();
    }
  });
});

describe('migrate.resume to another back-end: --migrate-to and --migrate-to-connect', function () {
  this.timeout(120_000);

  it('--migrate-to the reference itself: the move passes, the destination named, recorded in report.json', async () => {
    const run = await runCli([...RESUME, '--migrate-to', fixture('vhu-reference'), fixture('vhu-reference')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
    expect(messageOf(run.report, 'migrate.resume')).to.match(
      new RegExp(
        `^a fresh 8 MiB file given to both with --blk-file; the source stopped at base (\\d+) with 6 requests left \\(0 taken by the source itself\\); the destination, ${fixture('vhu-reference')} \\(--migrate-to\\), started at \\1 and kicked, completed 6 once each`,
      ),
    );
    expect(run.report?.options.migrateTo).to.deep.equal({ binary: fixture('vhu-reference'), extraArgs: [] });
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });

  it('--migrate-to with --migrate-to-arg: each side names the disk file, the move goes through it', async () => {
    const tmp = await dir({ prefix: 'vhu-selftest-migrate-', unsafeCleanup: true });
    try {
      const image = path.join(tmp.path, 'disk.img');
      await writeFile(image, Buffer.alloc(8 * 1024 * 1024));
      const run = await runCli([
        ...RESUME,
        '--migrate-to',
        fixture('vhu-reference'),
        '--migrate-to-arg',
        '--blk-file',
        '--migrate-to-arg',
        image,
        fixture('vhu-reference'),
        '--',
        `--blk-file=${image}`,
      ]);
      expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
      expect(messageOf(run.report, 'migrate.resume')).to.match(
        /^the --blk-file of the run for the source, its --migrate-to-arg one for the destination; .* completed 6 once each/,
      );
      expect(run.report?.options.migrateTo).to.deep.equal({
        binary: fixture('vhu-reference'),
        extraArgs: ['--blk-file', image],
      });
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    } finally {
      await tmp.cleanup();
    }
  });

  it('--migrate-to a variant without protocol features (another version that drops one): skipped naming each bit, as compat says no', async () => {
    const flawed = fixture('vhu-flaw-no-protocol-features');
    const run = await runCli([...RESUME, '--migrate-to', flawed, fixture('vhu-reference')]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'skip' });
    expect(messageOf(run.report, 'migrate.resume')).to.equal(
      `the destination, ${flawed} (--migrate-to), cannot take this guest from the source, ${fixture('vhu-reference')}: ` +
        'virtio feature VHOST_USER_F_PROTOCOL_FEATURES: negotiated on the source, not offered by the destination; ' +
        'protocol feature MQ: negotiated on the source, not offered by the destination; ' +
        'protocol feature CONFIG: negotiated on the source, not offered by the destination; ' +
        'no front-end moves a guest there (it does not renegotiate), and no rule asks a back-end to offer what ' +
        'another offers: vhu-conform compat judges the pair',
    );
    // Not a defect of either back-end: the run does not fail on it.
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
    // compat answers the pair's question with a no, naming the same bit.
    const compat = await execa(process.execPath, [CLI, 'compat', fixture('vhu-reference'), flawed], {
      reject: false,
    });
    expect(compat.exitCode, compat.stderr).to.equal(1);
    expect(compat.stdout).to.match(
      /^virtio feature VHOST_USER_F_PROTOCOL_FEATURES: negotiated on the source, not offered by the destination$/m,
    );
  });

  it("--migrate-to-connect a back-end someone else started on the run's --blk-file: the move passes", async () => {
    let image = '';
    const { socket, stop } = await startListening(fixture('vhu-reference'), {
      socketName: 'destination.sock',
      args: async (folder) => {
        image = path.join(folder, 'disk.img');
        await writeFile(image, Buffer.alloc(8 * 1024 * 1024));
        return [`--blk-file=${image}`];
      },
    });
    try {
      const run = await runCli([
        ...RESUME,
        '--migrate-to-connect',
        socket,
        fixture('vhu-reference'),
        '--',
        `--blk-file=${image}`,
      ]);
      expect(verdicts(run.report), run.stdout).to.deep.equal({ 'migrate.resume': 'pass' });
      expect(messageOf(run.report, 'migrate.resume')).to.match(
        new RegExp(
          `^the --blk-file of the run, which the destination at ${socket} is taken to serve; .*the destination, the back-end at ${socket} \\(--migrate-to-connect\\), started at \\d+ and kicked, completed 6 once each`,
        ),
      );
      expect(run.report?.options.migrateTo).to.deep.equal({ connect: socket });
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    } finally {
      await stop();
    }
  });

  it('usage errors exit 2 before any check, the cause named, nothing left behind', async () => {
    if (!existsSync(GPU)) expect.fail(`${GPU} is missing: run .ci/install-backends (qemu-system-gui)`);
    const tmp = await dir({ prefix: 'vhu-selftest-migrate-', unsafeCleanup: true });
    // A socket file nothing listens at any more: its back-end was killed before it could remove it.
    const dead = path.join(tmp.path, 'dead.sock');
    const killed = execa(fixture('vhu-reference'), [`--socket-path=${dead}`], {
      reject: false,
      stdin: 'ignore',
    });
    try {
      await awaitListening(dead, 'the reference back-end', 10_000, async () => {
        killed.kill('SIGKILL');
        await killed;
      });
      killed.kill('SIGKILL');
      await killed;
      expect(existsSync(dead)).to.equal(true);
      const readme = path.join(ROOT, 'README.md');
      const cases: Array<[string[], RegExp]> = [
        [['--migrate-to', path.join(tmp.path, 'nope')], /--migrate-to binary not found: .*nope$/],
        [['--migrate-to', readme], /--migrate-to binary is not executable: .*README\.md$/],
        [
          ['--migrate-to-connect', path.join(tmp.path, 'none.sock')],
          /--migrate-to-connect .*none\.sock: no such file/,
        ],
        [
          ['--migrate-to-connect', readme],
          /--migrate-to-connect .*README\.md: not a socket but a regular file/,
        ],
        [
          ['--migrate-to-connect', dead],
          /--migrate-to-connect .*dead\.sock: nothing listens at this socket.*\(--migrate-to <binary>\)/,
        ],
        [
          ['--migrate-to', fixture('vhu-reference'), '--migrate-to-connect', dead],
          /--migrate-to launches the destination of the move and --migrate-to-connect attaches to a running one: name one of them/,
        ],
        [
          ['--migrate-to-arg', '--blk-file=x'],
          /--migrate-to-arg --blk-file=x: arguments for the --migrate-to binary, and none is named/,
        ],
        [
          ['--migrate-to', GPU],
          /--migrate-to .*vhost-user-gpu: a gpu back-end \(its --print-capabilities\), the back-end under test a block one: no guest moves between them/,
        ],
      ];
      for (const [args, cause] of cases) {
        const run = await runCli([...RESUME, ...args, fixture('vhu-reference')]);
        expect(run.exitCode, `${args.join(' ')}\n${run.stdout}${run.stderr}`).to.equal(2);
        expect(run.stderr.trim().split('\n').at(-1)).to.match(
          new RegExp(`^vhu-conform: error: ${cause.source}`),
        );
        expect(run.report, args.join(' ')).to.equal(undefined);
        expectClean(run);
      }
    } finally {
      killed.kill('SIGKILL');
      await killed;
      await tmp.cleanup();
    }
  });
});
