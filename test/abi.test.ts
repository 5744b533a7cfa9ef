/**
 * `vhu-conform abi` and `vhu-conform compat` as a user meets them: fingerprints of the reference fixture and of
 * Debian's vhost-user-gpu, byte-identical across runs; compat verdicts and the reason named for each
 * difference; bad input as a one-line cause and exit 2; nothing left running or on disk.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import type { AbiFingerprint } from '../harness/abi/format.js';
import { validateAbi } from '../harness/schemas/validate.js';
import { awaitListening, boundSocketsUnder, CLI, fixture, leftovers } from './helpers.js';
import { QSD, startQsd } from './qsd.js';
import { startTestpmd, TESTPMD } from './testpmd.js';

const GPU = '/usr/lib/qemu/vhost-user-gpu';
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

interface Run {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  durationMs: number;
}

let work: { path: string; cleanup: () => Promise<void> };

/** Runs `vhu-conform ARGS` in a TMPDIR of its own, and asserts it left no process, socket or temp file. */
async function vhu(args: string[], interruptAfterMs?: number): Promise<Run> {
  const tmp = await dir({ prefix: 'vhu-selftest-tmp-', unsafeCleanup: true });
  const marker = randomUUID();
  const started = performance.now();
  try {
    const child = execa(process.execPath, [CLI, ...args], {
      reject: false,
      env: { TMPDIR: tmp.path, VHU_SELFTEST_MARKER: marker },
      timeout: 60_000,
      forceKillAfterDelay: 2000,
      stripFinalNewline: false,
    });
    if (interruptAfterMs !== undefined) setTimeout(() => child.kill('SIGINT'), interruptAfterMs);
    const result = await child;
    const run = {
      exitCode: result.exitCode,
      stdout: String(result.stdout),
      stderr: String(result.stderr),
      durationMs: performance.now() - started,
    };
    expect(leftovers(marker), `processes left by ${args.join(' ')}`).to.deep.equal([]);
    expect(boundSocketsUnder(tmp.path), 'sockets left').to.deep.equal([]);
    expect(readdirSync(tmp.path), 'temp files left').to.deep.equal([]);
    return run;
  } finally {
    await tmp.cleanup();
  }
}

/** A usage error: exit 2, one line on stderr saying `cause`, no stack trace. */
function expectUsageError(run: Run, cause: RegExp): void {
  expect(run.exitCode, run.stderr).to.equal(2);
  const lines = run.stderr.trim().split('\n');
  expect(lines, run.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^vhu-conform: error: /);
  expect(lines[0]).to.match(cause);
  expect(run.stdout).to.equal('');
}

/** Runs `body` with fixture `wrapper` (its environment plus `env`) listening at a socket of its own, then stops it. */
async function withDaemon<T>(
  wrapper: string,
  env: Record<string, string>,
  body: (socket: string) => Promise<T>,
): Promise<T> {
  const tmp = await dir({ prefix: 'vhu-selftest-attach-', unsafeCleanup: true });
  const socket = path.join(tmp.path, 'backend.sock');
  const daemon = execa(fixture(wrapper), [`--socket-path=${socket}`], { reject: false, env });
  const stop = async () => {
    daemon.kill('SIGTERM');
    await daemon;
    await tmp.cleanup();
  };
  await awaitListening(socket, wrapper, 10_000, stop);
  try {
    return await body(socket);
  } finally {
    await stop();
  }
}

async function abiFile(name: string, abi: AbiFingerprint): Promise<string> {
  const file = path.join(work.path, name);
  await writeFile(file, JSON.stringify(abi));
  return file;
}

describe('abi: the guest-ABI fingerprint', function () {
  this.timeout(60_000);
  let reference: string;

  before(async () => {
    work = await dir({ prefix: 'vhu-selftest-abi-', unsafeCleanup: true });
  });
  after(async () => {
    await work.cleanup();
  });

  it('of the reference fixture: schema-valid, and byte-identical across two launches', async () => {
    const first = await vhu(['abi', fixture('vhu-reference')]);
    expect(first.exitCode, first.stderr).to.equal(0);
    const second = await vhu(['abi', fixture('vhu-reference')]);
    expect(second.stdout).to.equal(first.stdout);
    reference = first.stdout;
    const abi = JSON.parse(reference) as AbiFingerprint;
    expect(validateAbi(abi)).to.deep.equal([]);
    expect(abi).to.deep.include({ type: 'block', queueCount: 1, maxMemSlots: 32 });
    expect(abi.ringSizes).to.deep.equal({ status: 'probed', method: 'reply-ack', maxPerQueue: [32768] });
    expect(abi.config).to.deep.include({ status: 'read', size: 60 });
    expect(abi.config.status === 'read' && abi.config.fields).to.deep.include({
      capacity: '2048',
      blk_size: 512,
    });
    expect(abi.profiles.qemu?.virtioFeatures.names).to.include('VIRTIO_RING_F_INDIRECT_DESC');
    expect(abi.profiles.crosvm?.virtioFeatures.names).not.to.include('VIRTIO_RING_F_INDIRECT_DESC');
  });

  it('a config space that cannot be read is recorded as such, with the reason, not guessed', async () => {
    const cases: Array<[string, string]> = [
      ['vhu-reference-net', 'GET_CONFIG of 24 bytes answered an error (an empty reply)'],
      ['vhu-flaw-config-short', 'malformed reply to GET_CONFIG: size 71, expected 72'],
    ];
    for (const [variant, reason] of cases) {
      const run = await vhu(['abi', fixture(variant)]);
      expect(run.exitCode, run.stderr).to.equal(0);
      expect((JSON.parse(run.stdout) as AbiFingerprint).config).to.deep.equal({ status: 'not-read', reason });
    }
  });

  it('--out writes the same bytes as stdout', async () => {
    const out = path.join(work.path, 'out.json');
    const run = await vhu(['abi', '--out', out, fixture('vhu-reference')]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.stdout).to.equal('');
    expect(await readFile(out, 'utf8')).to.equal(reference);
  });

  it('in attach mode: the same fingerprint but for what it was taken from', async () => {
    await withDaemon('vhu-reference', {}, async (socket) => {
      const run = await vhu(['abi', '--connect', socket, '--type', 'block']);
      expect(run.exitCode, run.stderr).to.equal(0);
      const attached = JSON.parse(run.stdout) as AbiFingerprint;
      const launched = JSON.parse(reference) as AbiFingerprint;
      expect(attached.backend).to.deep.equal({ connect: socket });
      expect({ ...attached, backend: null, capabilities: null }).to.deep.equal({
        ...launched,
        backend: null,
        capabilities: null,
      });
    });
  });

  it('without REPLY_ACK, by moving a read through each size: exactly 256 on a fixture that takes no more, launched or attached', async () => {
    // vhu-variant-ring-max-256 ignores a ring of 512 (one deadline), hangs up at more (a relaunch each).
    const launched = await vhu(['abi', '--timeout', '2000', fixture('vhu-variant-ring-max-256')]);
    expect(launched.exitCode, launched.stderr).to.equal(0);
    const abi = JSON.parse(launched.stdout) as AbiFingerprint;
    expect(validateAbi(abi)).to.deep.equal([]);
    expect(abi.protocolFeatures?.names).not.to.include('REPLY_ACK');
    expect(abi.ringSizes).to.deep.equal({
      status: 'probed',
      method: 'request',
      measured:
        'block: a one-sector read (VIRTIO_BLK_T_IN) through each queue, used with any status; null: a queue past the first 4, or one no size served',
      maxPerQueue: [256],
    });
    console.log(`      (abi by request, a launch per size tried: ${Math.round(launched.durationMs)} ms)`);
    // Attached: the hang-ups cost a connection each, nothing relaunches; the same fingerprint.
    const attached = await withDaemon('vhu-variant-ring-max-256', {}, async (socket) => {
      const run = await vhu(['abi', '--timeout', '2000', '--connect', socket, '--type', 'block']);
      expect(run.exitCode, run.stderr).to.equal(0);
      return JSON.parse(run.stdout) as AbiFingerprint;
    });
    expect({ ...attached, backend: null, capabilities: null }).to.deep.equal({
      ...abi,
      backend: null,
      capabilities: null,
    });
    // A guest with rings of 32768 entries cannot move there, and the methods differ: said once each.
    // --ring-probe reply-ack (migrate.abi-stable's choice): no size tried by use.
    const ackOnly = await vhu(['abi', '--ring-probe', 'reply-ack', fixture('vhu-variant-ring-max-256')]);
    expect(ackOnly.exitCode, ackOnly.stderr).to.equal(0);
    expect((JSON.parse(ackOnly.stdout) as AbiFingerprint).ringSizes).to.deep.equal({
      status: 'not-probed',
      reason: 'protocol feature REPLY_ACK not offered, and ring sizes by use not asked for',
    });
    const file = await abiFile('ring-256.json', abi);
    const compat = await vhu(['compat', fixture('vhu-reference'), file]);
    expect(compat.exitCode, compat.stderr).to.equal(1);
    expect(compat.stdout.trim().split('\n').slice(1)).to.deep.equal([
      'ring size of queue 0: the source accepts 32768 entries, the destination at most 256',
      'note: ring sizes of the source found by SET_VRING_NUM acknowledged with REPLY_ACK, of the destination by a request moved through the ring: a size acknowledged need not be one the back-end serves',
    ]);
  });

  it('SIGINT while ring sizes are probed by use: exit 130, no launch after it, nothing left behind', async () => {
    // Past the launches of --print-capabilities and of the first probe: among the sizes' own launches.
    const run = await vhu(['abi', fixture('vhu-variant-ring-max-256')], 3500);
    expect(run.exitCode, run.stderr).to.equal(130);
    // The sizes left (a launch each, and a deadline for 512) would take seconds more.
    expect(run.durationMs).to.be.below(6500);
    expect(run.stdout).to.equal('');
    expect(run.stderr).not.to.match(/error/);
  });

  it('attached, a back-end gone while its rings are probed by use: not probed, saying that nothing relaunches it', async () => {
    const tmp = await dir({ prefix: 'vhu-selftest-attach-', unsafeCleanup: true });
    const socket = path.join(tmp.path, 'backend.sock');
    const daemon = execa(fixture('vhu-variant-ring-max-256'), [`--socket-path=${socket}`], { reject: false });
    // Killed at its first hang-up (a ring of more than 512 entries): from then on every connection is refused.
    daemon.stderr?.on('data', (chunk: Buffer) => {
      if (String(chunk).includes('closing the connection: variant ring-max-256')) daemon.kill('SIGKILL');
    });
    const stop = async () => {
      daemon.kill('SIGKILL');
      await daemon;
      await tmp.cleanup();
    };
    await awaitListening(socket, 'the fixture', 10_000, stop);
    try {
      const run = await vhu(['abi', '--timeout', '2000', '--connect', socket, '--type', 'block']);
      expect(run.exitCode, run.stderr).to.equal(0);
      const abi = JSON.parse(run.stdout) as AbiFingerprint;
      expect(abi.ringSizes.status).to.equal('not-probed');
      expect(abi.ringSizes.status === 'not-probed' && abi.ringSizes.reason).to.match(
        /^protocol feature REPLY_ACK not offered, and the attached back-end stopped listening while its rings were probed by use \(queue 0, before a ring of \d+ entries\): attach mode relaunches nothing, so the ring sizes are unknown$/,
      );
    } finally {
      await stop();
    }
  });

  it('without REPLY_ACK, a net device: a frame through each transmit queue, the receive queues not measured', async () => {
    const abi = await withDaemon(
      'vhu-variant-ring-max-256',
      { VHU_FIXTURE_DEVICE: 'net' },
      async (socket) => {
        const run = await vhu(['abi', '--timeout', '2000', '--connect', socket, '--type', 'net']);
        expect(run.exitCode, run.stderr).to.equal(0);
        return JSON.parse(run.stdout) as AbiFingerprint;
      },
    );
    expect(validateAbi(abi)).to.deep.equal([]);
    expect(abi.queueCount).to.equal(4);
    expect(abi.ringSizes).to.deep.include({
      status: 'probed',
      method: 'request',
      maxPerQueue: [null, 256, null, 256],
    });
    expect(
      abi.ringSizes.status === 'probed' && abi.ringSizes.method === 'request' && abi.ringSizes.measured,
    ).to.match(
      /^net: one frame transmitted through each transmitq \(odd queues\); null: a receiveq \(even queues/,
    );
  });

  it('without REPLY_ACK, a device type with no request to move (gpu): not probed, naming the types that are', async () => {
    const abi = await withDaemon(
      'vhu-variant-ring-max-256',
      { VHU_FIXTURE_DEVICE: 'gpu' },
      async (socket) => {
        const run = await vhu(['abi', '--connect', socket, '--type', 'gpu']);
        expect(run.exitCode, run.stderr).to.equal(0);
        return JSON.parse(run.stdout) as AbiFingerprint;
      },
    );
    expect(abi.ringSizes).to.deep.equal({
      status: 'not-probed',
      reason:
        "protocol feature REPLY_ACK not offered, and no request is moved through a gpu device's rings to find their sizes by use (done for block and net devices)",
    });
  });

  it(`of Debian's ${GPU}, for real: byte-identical across two launches`, async () => {
    if (!existsSync(GPU)) expect.fail(`${GPU} is missing: install the Debian package qemu-system-gui`);
    const first = await vhu(['abi', GPU]);
    expect(first.exitCode, first.stderr).to.equal(0);
    const second = await vhu(['abi', GPU]);
    expect(second.stdout).to.equal(first.stdout);
    const abi = JSON.parse(first.stdout) as AbiFingerprint;
    expect(validateAbi(abi)).to.deep.equal([]);
    // As QEMU 7.2's contrib/vhost-user-gpu (libvhost-user) answers.
    expect(abi).to.deep.include({ type: 'gpu', queueCount: 2, maxMemSlots: 32 });
    expect(abi.virtioFeatures.names).to.include.members([
      'VIRTIO_RING_F_INDIRECT_DESC',
      'VIRTIO_F_VERSION_1',
    ]);
    expect(abi.protocolFeatures?.names).to.include.members(['MQ', 'LOG_SHMFD', 'REPLY_ACK', 'CONFIG']);
    expect(abi.ringSizes).to.deep.equal({
      status: 'probed',
      method: 'reply-ack',
      maxPerQueue: [32768, 32768],
    });
    expect(abi.config).to.deep.include({ status: 'read', size: 16 });
    expect(abi.config.status === 'read' && Object.keys(abi.config.fields)).to.deep.equal([
      'num_capsets',
      'num_scanouts',
    ]);
    expect((abi.capabilities as { type?: string }).type).to.equal('gpu');
    console.log(`      (abi of vhost-user-gpu: ${Math.round(first.durationMs)} ms, node start-up included)`);
    await writeFile(path.join(work.path, 'gpu.json'), first.stdout);
  });
});

describe(`abi and compat of Debian's ${VIRTIOFSD}, for real`, function () {
  this.timeout(60_000);

  it('no DEVICE_STATE on either side: a fs guest cannot move, exit 1 naming it; no CONFIG: a note', async () => {
    if (!existsSync(VIRTIOFSD))
      expect.fail(`${VIRTIOFSD} is missing: install the Debian package qemu-system-common`);
    const share = await dir({ prefix: 'vhu-selftest-share-', unsafeCleanup: true });
    try {
      const args = ['--', '-o', `source=${share.path}`];
      const run = await vhu(['abi', VIRTIOFSD, ...args]);
      expect(run.exitCode, run.stderr).to.equal(0);
      const abi = JSON.parse(run.stdout) as AbiFingerprint;
      expect(validateAbi(abi)).to.deep.equal([]);
      expect(abi).to.deep.include({ type: 'fs', queueCount: 2 });
      expect(abi.protocolFeatures?.names).not.to.include('DEVICE_STATE');
      expect(abi.config).to.deep.equal({ status: 'not-read', reason: 'protocol feature CONFIG not offered' });
      const compat = await vhu(['compat', VIRTIOFSD, VIRTIOFSD, ...args]);
      expect(compat.exitCode, compat.stderr).to.equal(1);
      expect(compat.stdout.trim().split('\n').slice(1)).to.deep.equal([
        'protocol feature DEVICE_STATE: not offered by the source, and a fs device keeps state the move must carry',
        'protocol feature DEVICE_STATE: not offered by the destination, and a fs device keeps state the move must carry',
        'note: config space of the source not read: protocol feature CONFIG not offered',
      ]);
    } finally {
      await share.cleanup();
    }
  });
});

describe(`abi and compat of Debian's ${QSD} (vhost-user-blk export), for real`, function () {
  this.timeout(60_000);

  it('a larger disk with more queues: abi reads each, compat names capacity and num_queues both ways', async () => {
    if (!existsSync(QSD)) expect.fail(`${QSD} is missing: install the Debian package qemu-system-common`);
    const folder = await dir({ prefix: 'vhu-selftest-qsd-', unsafeCleanup: true });
    const small = await startQsd({ imageMiB: 64, queues: 1 });
    const large = await startQsd({ imageMiB: 128, queues: 2 }).catch(async (err: unknown) => {
      await small.stop();
      throw err;
    });
    try {
      const files: string[] = [];
      for (const [name, side] of [
        ['small', small],
        ['large', large],
      ] as const) {
        const run = await vhu(['abi', '--connect', side.socket, '--type', 'block']);
        expect(run.exitCode, run.stderr).to.equal(0);
        const abi = JSON.parse(run.stdout) as AbiFingerprint;
        expect(validateAbi(abi)).to.deep.equal([]);
        const file = path.join(folder.path, `${name}.json`);
        await writeFile(file, run.stdout);
        files.push(file);
      }
      const [smallAbi, largeAbi] = await Promise.all(
        files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as AbiFingerprint),
      );
      // libvhost-user acks any ring size with REPLY_ACK: what it accepts, not what it is best at.
      expect(smallAbi).to.deep.include({ type: 'block', queueCount: 1 });
      expect(smallAbi!.ringSizes).to.deep.equal({
        status: 'probed',
        method: 'reply-ack',
        maxPerQueue: [32768],
      });
      expect(largeAbi).to.deep.include({ queueCount: 2 });
      expect(smallAbi!.config.status === 'read' && smallAbi!.config.fields).to.deep.include({
        capacity: String((64 * 1024 * 1024) / 512),
        num_queues: 1,
      });
      const forward = await vhu(['compat', files[0]!, files[1]!]);
      expect(forward.exitCode, forward.stderr).to.equal(1);
      expect(forward.stdout.trim().split('\n').slice(1)).to.deep.equal([
        'config field capacity: source "131072", destination "262144"',
        'config field num_queues: source 1, destination 2',
      ]);
      const back = await vhu(['compat', files[1]!, files[0]!]);
      expect(back.exitCode, back.stderr).to.equal(1);
      expect(back.stdout).to.contain('queue count: the source has 2, the destination 1');
      const same = await vhu(['compat', files[0]!, '--destination-connect', small.socket, '--type', 'block']);
      expect(same.exitCode, same.stdout + same.stderr).to.equal(0);
      // By use, what libvhost-user acks it serves: a read through the last entry of each queue at 32768.
      const byUse = await vhu([
        'abi',
        '--ring-probe',
        'request',
        '--connect',
        large.socket,
        '--type',
        'block',
      ]);
      expect(byUse.exitCode, byUse.stderr).to.equal(0);
      expect((JSON.parse(byUse.stdout) as AbiFingerprint).ringSizes).to.deep.include({
        status: 'probed',
        method: 'request',
        maxPerQueue: [32768, 32768],
      });
    } finally {
      await small.stop();
      await large.stop();
      await folder.cleanup();
    }
  });
});

describe(`abi of Debian's ${TESTPMD} (net_vhost port), for real: ring sizes acked and by use`, function () {
  this.timeout(60_000);

  it('REPLY_ACK acks 32768 on every queue; a frame through each transmit queue the port polls at 32768 too', async () => {
    if (!existsSync(TESTPMD)) expect.fail(`${TESTPMD} is missing: install the Debian package dpdk-dev`);
    const testpmd = await startTestpmd({ queues: 2, statsPeriod: 10 });
    try {
      const acked = await vhu(['abi', '--connect', testpmd.socket, '--type', 'net']);
      expect(acked.exitCode, acked.stderr).to.equal(0);
      const byUse = await vhu([
        'abi',
        '--ring-probe',
        'request',
        '--connect',
        testpmd.socket,
        '--type',
        'net',
      ]);
      expect(byUse.exitCode, byUse.stderr).to.equal(0);
      const [a, b] = [acked, byUse].map((r) => JSON.parse(r.stdout) as AbiFingerprint);
      // GET_QUEUE_NUM 128, whatever --rxq/--txq say.
      expect(a!.queueCount).to.equal(128);
      expect(a!.ringSizes).to.deep.equal({
        status: 'probed',
        method: 'reply-ack',
        maxPerQueue: Array(128).fill(32768),
      });
      // Both transmit queues of the first 4 queues (the 2 pairs testpmd polls); the rest not measured.
      expect(b!.ringSizes).to.deep.include({
        status: 'probed',
        method: 'request',
        maxPerQueue: [null, 32768, null, 32768, ...Array(124).fill(null)],
      });
      expect(validateAbi(b)).to.deep.equal([]);
    } finally {
      await testpmd.stop();
    }
  });
});

describe('compat: can a guest move', function () {
  this.timeout(60_000);
  let referenceFile: string;
  let reference: AbiFingerprint;

  before(async () => {
    work = await dir({ prefix: 'vhu-selftest-compat-', unsafeCleanup: true });
    referenceFile = path.join(work.path, 'reference.json');
    const run = await vhu(['abi', '--out', referenceFile, fixture('vhu-reference')]);
    expect(run.exitCode, run.stderr).to.equal(0);
    reference = JSON.parse(await readFile(referenceFile, 'utf8')) as AbiFingerprint;
  });
  after(async () => {
    await work.cleanup();
  });

  it('a file against itself, and against the binary it came from: compatible, exit 0', async () => {
    for (const destination of [referenceFile, fixture('vhu-reference')]) {
      const run = await vhu(['compat', referenceFile, destination]);
      expect(run.exitCode, run.stdout + run.stderr).to.equal(0);
      expect(run.stdout).to.match(/^compatible: /);
    }
  });

  it('a dropped virtio feature: exit 1 naming it, in text and in --json', async () => {
    const without = structuredClone(reference);
    without.virtioFeatures.hex = `0x${(BigInt(reference.virtioFeatures.hex) & ~(1n << 28n)).toString(16).padStart(16, '0')}`;
    without.virtioFeatures.names = without.virtioFeatures.names.filter(
      (n) => n !== 'VIRTIO_RING_F_INDIRECT_DESC',
    );
    const file = await abiFile('no-indirect.json', without);
    const run = await vhu(['compat', referenceFile, file]);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.stdout.split('\n')).to.include(
      'virtio feature VIRTIO_RING_F_INDIRECT_DESC: negotiated on the source, not offered by the destination',
    );
    const json = await vhu(['compat', '--json', referenceFile, file]);
    expect(json.exitCode).to.equal(1);
    expect(JSON.parse(json.stdout)).to.deep.include({
      compatible: false,
      frontend: 'qemu',
      reasons: [
        'virtio feature VIRTIO_RING_F_INDIRECT_DESC: negotiated on the source, not offered by the destination',
      ],
    });
    // crosvm never passes INDIRECT_DESC on, so its guest never had it; but it negotiates no LOG_SHMFD either.
    const crosvm = await vhu(['compat', '--frontend', 'crosvm', referenceFile, file]);
    expect(crosvm.exitCode).to.equal(1);
    expect(crosvm.stdout).not.to.match(/INDIRECT_DESC/);
    expect(crosvm.stdout).to.match(/^protocol feature LOG_SHMFD: not negotiated on the source/m);
  });

  it('a differing config field, with the destination launched with its own arguments: exit 1 naming it', async () => {
    const disk = path.join(work.path, 'disk.img');
    await writeFile(disk, Buffer.alloc(4 << 20));
    const run = await vhu(['compat', referenceFile, fixture('vhu-reference'), '--', '--blk-file', disk]);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.stdout.trim().split('\n').slice(1)).to.deep.equal([
      'config field capacity: source "2048", destination "8192"',
    ]);
  });

  it('a destination without protocol features (a fixture variant): exit 1, each reason on its own line', async () => {
    const run = await vhu(['compat', referenceFile, fixture('vhu-flaw-no-protocol-features')]);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.stdout).to.match(
      /^virtio feature VHOST_USER_F_PROTOCOL_FEATURES: negotiated on the source, not offered by the destination$/m,
    );
    expect(run.stdout).to.match(
      /^queue count: the source has 1, the destination does not say \(MQ not offered\)$/m,
    );
    // Its rings by use (no REPLY_ACK without protocol features): every size up to 32768 serves a read.
    expect(run.stdout).to.match(
      /^note: ring sizes of the source found by SET_VRING_NUM acknowledged with REPLY_ACK, of the destination by a request moved through the ring: /m,
    );
    expect(run.stdout).not.to.match(/^ring size/m);
  });

  it('--common: what every host supports, and which host limits it', async () => {
    const small = structuredClone(reference);
    small.ringSizes = { status: 'probed', method: 'reply-ack', maxPerQueue: [256] };
    const file = await abiFile('small.json', small);
    const run = await vhu(['compat', '--common', referenceFile, file]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(run.stdout).to.include(`ring size: 256 (limited by ${file})\n`);
    const json = await vhu(['compat', '--common', '--json', referenceFile, file]);
    expect(JSON.parse(json.stdout).ringSize).to.deep.equal({ value: 256, limitedBy: [file], unknown: [] });
  });

  it('bad input: a one-line cause and exit 2, nothing left behind', async () => {
    const truncated = path.join(work.path, 'truncated.json');
    await writeFile(truncated, (await readFile(referenceFile, 'utf8')).slice(0, 300));
    const gpu = await abiFile('gpu.json', { ...reference, type: 'gpu' });
    const version = await abiFile('v9.json', { ...reference, formatVersion: 9 } as unknown as AbiFingerprint);
    const dead = path.join(work.path, 'dead.sock');
    // A socket file nothing listens at: bound by a process that is gone.
    await execa(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(dead)}, function () { process.exit(0); })`,
    ]);
    const cases: Array<[string[], RegExp]> = [
      [['abi', '/nonexistent/backend'], /back-end binary not found: \/nonexistent\/backend/],
      [['abi', '--connect', dead, '--type', 'block'], /nothing listens at this socket/],
      [['abi', '--connect', dead], /--connect needs --type/],
      [['compat', truncated, referenceFile], /truncated\.json: not an ABI file: not JSON/],
      [['compat', referenceFile, fixture('../README.md')], /README\.md: not an ABI file: not JSON/],
      [['compat', version, referenceFile], /ABI format version 9/],
      [['compat', referenceFile, gpu], /a block device and .*gpu\.json a gpu device/],
      [['compat', referenceFile], /name the destination/],
      [['compat', referenceFile, referenceFile, '--frontend', 'bhyve'], /no such front-end profile/],
      [
        ['compat', '--timeout', '500', referenceFile, fixture('vhu-flaw-socket-path-ignored')],
        // On a loaded machine the 500 ms may run out on --print-capabilities already: said as such.
        /timed out after 500 ms waiting for a listening socket|--print-capabilities did not exit within 500 ms/,
      ],
    ];
    for (const [args, cause] of cases) expectUsageError(await vhu(args), cause);
  });

  it('SIGINT while waiting for a destination that never listens: exit 130, nothing left behind', async () => {
    const args = ['compat', '--timeout', '30000', referenceFile, fixture('vhu-flaw-socket-path-ignored')];
    const run = await vhu(args, 4000);
    expect(run.exitCode, run.stderr).to.equal(130);
    expect(run.stderr).not.to.match(/error/);
  });
});
