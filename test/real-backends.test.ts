/**
 * The CLI against Debian's own back-ends, vhost-user-gpu (qemu-system-gui) and virtiofsd (qemu-system-common),
 * with the standard descriptor folders. The expected verdicts are what these binaries were seen to do when
 * run by hand; a missing binary fails the suite, naming the package to install.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { PNG } from 'pngjs';
import { dir } from 'tmp-promise';
import { failsRun, type RunResult, type Verdict } from '../harness/runner/types.js';
import { allChecks } from '../suites/index.js';
import { ANY_DEVICE } from '../suites/vring/any-device.js';
import { PACKED_RING_CHECKS } from '../suites/vring/packed.js';
import { type CliRun, expectClean, messageOf, runCli, verdicts, xmllintErrors } from './helpers.js';

const GPU = { binary: '/usr/lib/qemu/vhost-user-gpu', pkg: 'qemu-system-gui' };
const VIRTIOFSD = { binary: '/usr/lib/qemu/virtiofsd', pkg: 'qemu-system-common' };

/** The standard folders, not ones our own environment may name. */
const STANDARD_DESCRIPTOR_DIRS = { VHU_DESCRIPTOR_DIRS: undefined };

function requireBinary({ binary, pkg }: { binary: string; pkg: string }): void {
  if (!existsSync(binary))
    expect.fail(`${binary} is missing: install the Debian package ${pkg} (apt-get install ${pkg})`);
}

function hasRenderNode(): boolean {
  try {
    return readdirSync('/dev/dri').some((name) => name.startsWith('renderD'));
  } catch {
    return false;
  }
}

/**
 * Areas whose checks drive block and net traffic (migrate: a block device moved, but for migrate.abi-stable):
 * for gpu and fs they are skipped, saying so; but the ring-state checks, which drive every device kind
 * (ANY_DEVICE). migrate.resume moves any kind, but is skipped on both: vhost-user-gpu fails the drain check it
 * needs, and an fs device's FUSE session moves with the back-end state (expectResumeSkipped).
 */
const OTHER_DEVICE_AREAS = new Set(['vring', 'migrate', 'net', 'scsi', 'input']);
/** The migrate checks of every device type (test/migrate.test.ts runs them on these back-ends too). */
const ANY_TYPE_MIGRATE = new Set(['migrate.abi-stable', 'migrate.refuse-unknown']);
/**
 * Protocol checks that carry block traffic, and need a driver as the vring checks do. (The data-plane
 * robustness checks drive every device kind: vhost-user-gpu passes them, virtiofsd see VIRTIOFSD_DATA;
 * proto.log.dirty drives every kind, and libvhost-user logs what both write: they pass it.)
 */
const DRIVES_A_DEVICE = new Set(['proto.mem-slots.add-rem']);
const NO_DRIVER: Record<string, Verdict> = Object.fromEntries(
  allChecks
    .filter((c) => OTHER_DEVICE_AREAS.has(c.area) || DRIVES_A_DEVICE.has(c.id))
    // The guest ABI's stability and the refusal of a bit not offered are asked of every device type.
    .filter((c) => !ANY_TYPE_MIGRATE.has(c.id) && !ANY_DEVICE.has(c.id))
    .map((c) => [c.id, 'skip']),
);

/**
 * The packed-ring checks drive every device kind, but libvhost-user 7.2 offers no VIRTIO_F_RING_PACKED
 * (vu_get_features_exec: VERSION_1, INDIRECT_DESC, EVENT_IDX and the like, no packed rings): skipped, saying so.
 * (They are in the vring area, skipped above; the reason is asserted below.)
 */
function expectPackedSkipped(run: CliRun): void {
  for (const id of PACKED_RING_CHECKS) {
    expect(verdicts(run.report)[id], id).to.equal('skip');
    expect(messageOf(run.report, id), id).to.match(/VIRTIO_F_RING_PACKED .*not offered/);
  }
}

/**
 * DEVICE_STATE, SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE came with QEMU 8.2: libvhost-user 7.2 offers none, so
 * migrate.device-state is skipped on its back-ends, saying so.
 */
function expectResumeSkipped(run: CliRun, why: RegExp): void {
  expect(verdicts(run.report)['migrate.resume']).to.equal('skip');
  expect(messageOf(run.report, 'migrate.resume')).to.match(why);
}

function expectNoDeviceState(run: CliRun): void {
  expect(verdicts(run.report)['migrate.device-state']).to.equal('skip');
  expect(messageOf(run.report, 'migrate.device-state')).to.match(
    /^protocol feature DEVICE_STATE \(bit 19\) is not offered \(GET_PROTOCOL_FEATURES 0x[0-9a-f]+\)/,
  );
}

/** Protocol features libvhost-user (QEMU 7.2) does not offer: the checks of their messages are skipped. */
const NOT_OFFERED: Record<string, Verdict> = {
  'proto.status.round-trip': 'skip',
  'proto.reset-device': 'skip',
  'proto.inflight.get-fd': 'skip',
};

/**
 * libvhost-user 7.2 takes any SET_FEATURES: vu_set_features_exec stores the payload as it comes (it refuses only
 * a set without VIRTIO_F_VERSION_1) and the need_reply is acked 0, a bit it does not offer with the rest.
 */
const LIBVHOST_USER_FEATURES: Record<string, Verdict> = {
  'migrate.refuse-unknown': 'fail',
};

/** The fs checks drive fs devices only: for gpu they are skipped, saying so. */
const NOT_FS: Record<string, Verdict> = Object.fromEntries(
  allChecks.filter((c) => c.id.startsWith('fs.')).map((c) => [c.id, 'skip']),
);

/**
 * virtiofsd's fs verdicts, the same in both sandbox modes (namespace, chroot): it answers UNLINK of a
 * missing name with EIO, dies of an assertion on a short fuse_in_header, and offers no CONFIG.
 */
const VIRTIOFSD_FS: Record<string, Verdict> = {
  ...Object.fromEntries(allChecks.filter((c) => c.id.startsWith('fs.')).map((c) => [c.id, 'pass'])),
  'fs.unlink': 'fail',
  'fs.bad-request': 'fail',
  'fs.config': 'skip',
  'fs.config.fields': 'skip',
};

/**
 * virtiofsd's data-plane verdicts: libvhost-user drops the connection over most malformed chains, but a request
 * queue element with no readable part left (a nested indirect table, a request marked device-writable) reaches
 * fv_queue_worker, whose assert(0) aborts the daemon.
 */
const VIRTIOFSD_DATA: Record<string, Verdict> = {
  'robust.data.chain': 'fail',
  'robust.data.buffers': 'fail',
};

/**
 * The ring-state checks on libvhost-user 7.2's back-ends (vhost-user-gpu, virtiofsd): neither looks at
 * SET_VRING_ENABLE (vu_set_vring_enable_exec, libvhost-user.c:1536, records vq->enable; vu_queue_enabled,
 * :2098, is called by neither, and vu_kick_cb runs the queue handler whatever the flag), so a request posted
 * on a disabled ring is executed: the scanout a SET_SCANOUT sets reaches the display, the directory a MKDIR
 * makes appears in the folder served. "started but disabled: the back-end must process the ring without
 * causing any side effects" (MUST): both fail, as qemu-storage-daemon does with a write. The rest pass.
 */
const LIBVHOST_USER_RINGS: Record<string, Verdict> = {
  'vring.enable-gates': 'fail',
  'vring.disable-stops': 'fail',
};

/** vhost-user-gpu 7.2's checks that do not pass, or are skipped (see 'has exactly the verdicts seen by hand'). */
const GPU_EXCEPTIONS = [
  'gpu.formats',
  'gpu.edid',
  'gpu.transfer-rect',
  'gpu.scanout-offset',
  'robust.ctl.framing',
  'robust.ctl.vring',
  'robust.fuzz',
  'vring.get-vring-base.drain',
  ...Object.keys(LIBVHOST_USER_RINGS),
];

/** The gpu checks drive gpu devices only: for fs they are skipped, saying so. */
const NOT_GPU: Record<string, Verdict> = Object.fromEntries(
  allChecks.filter((c) => c.id.startsWith('gpu.')).map((c) => [c.id, 'skip']),
);

/** Every check passes but those named. */
function expectedVerdicts(exceptions: Record<string, Verdict>): Record<string, Verdict> {
  return Object.fromEntries(allChecks.map((c) => [c.id, exceptions[c.id] ?? 'pass']));
}

function attribute(element: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(element)?.[1];
}

/**
 * Valid against junit-10.xsd; one <testsuite> per area with one testcase per check, as many skips as the
 * report has, and a failure for each check that fails the run (SHOULD failures do not, without --strict).
 */
async function expectJunitMatches(xml: string, report: RunResult): Promise<void> {
  expect(await xmllintErrors(xml), 'xmllint --schema junit-10.xsd').to.equal('');
  const suites = xml.match(/<testsuite\b[^>]*>/g) ?? [];
  const areas = [...new Set(allChecks.map((c) => c.area))];
  expect(
    suites.map((suite) => attribute(suite, 'name')),
    'testsuite elements',
  ).to.deep.equal(areas);
  for (const suite of suites) {
    const area = attribute(suite, 'name');
    const checks = report.checks.filter((c) => c.area === area);
    expect(attribute(suite, 'tests'), `tests in ${area}`).to.equal(String(checks.length));
    const broken = checks.filter((c) => failsRun(c, report.options.strict)).length;
    expect(attribute(suite, 'failures'), `failures in ${area}`).to.equal(String(broken));
    expect(attribute(suite, 'skipped'), `skipped in ${area}`).to.equal(
      String(checks.filter((c) => c.verdict === 'skip').length),
    );
  }
  expect(xml.match(/<testcase\b/g) ?? [], 'testcase elements').to.have.length(allChecks.length);
  const failures = report.checks.filter((c) => failsRun(c, report.options.strict)).length;
  expect(xml.match(/<failure\b/g) ?? [], 'failure elements').to.have.length(failures);
}

describe('real back-end: /usr/lib/qemu/vhost-user-gpu', function () {
  this.timeout(10_000);
  let out: { path: string; cleanup: () => Promise<void> };
  let run: CliRun;
  let junit: string;

  before(async function () {
    this.timeout(120_000);
    requireBinary(GPU);
    out = await dir({ prefix: 'vhu-selftest-junit-', unsafeCleanup: true });
    run = await runCli(['--junit', path.join(out.path, 'junit.xml'), '--verbose', GPU.binary], {
      env: STANDARD_DESCRIPTOR_DIRS,
      limitMs: 90_000,
    });
    junit = await readFile(path.join(out.path, 'junit.xml'), 'utf8');
  });
  after(() => out?.cleanup());

  // Its gpu defects fail SHOULD checks: gpu.formats, gpu.transfer-rect and gpu.scanout-offset (interoperability:
  // no spec sentence says MUST of what a display is sent) and the crashes of robust.* (no sentence forbids a
  // crash). One MUST check fails: vring.get-vring-base.drain (a GET_DISPLAY_INFO completed on a stopped ring).
  it('exits 1: its MUST failures are vring.get-vring-base.drain and the two of a disabled ring; its other defects fail SHOULD checks', function () {
    this.timeout(5000);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.report?.backend.type).to.equal('gpu');
    expect(run.report?.summary.mustFailed).to.equal(1 + Object.keys(LIBVHOST_USER_RINGS).length);
    expect(run.report?.summary.shouldFailed).to.be.at.least(6);
    expect(messageOf(run.report, 'robust.fuzz')).to.match(
      /it crashed after step 1 of 1 \(SET_VRING_ADDR ring 4294967295 of a vring that does not exist\): killed by SIGSEGV/,
    );
  });

  it('passes every other MUST check; conv.options.features is skipped only without a DRM render node', function () {
    this.timeout(5000);
    const all = verdicts(run.report);
    // Not the checks of other devices' traffic, of features it does not offer, nor its known defects.
    const must = allChecks
      .filter(
        (c) =>
          c.severity === 'MUST' &&
          !(c.id in NO_DRIVER) &&
          !(c.id in NOT_OFFERED) &&
          !c.id.startsWith('fs.') &&
          !GPU_EXCEPTIONS.includes(c.id),
      )
      .map((c) => c.id);
    for (const id of must.filter((id) => id !== 'conv.options.features'))
      expect(all[id], `${id}: ${messageOf(run.report, id)}`).to.equal('pass');
    expect(all['conv.options.features'], messageOf(run.report, 'conv.options.features')).to.equal(
      hasRenderNode() ? 'pass' : 'skip',
    );
  });

  it('has exactly the verdicts seen by hand', function () {
    this.timeout(5000);
    expect(verdicts(run.report), run.stdout).to.deep.equal(
      expectedVerdicts({
        'conv.sigterm.socket-removed': 'fail',
        'conv.fail-early.bad-fd': 'fail',
        'conv.options.features': hasRenderNode() ? 'pass' : 'skip',
        // libvhost-user acks every need_reply with 0, even SET_VRING_NUM for a vring that does not exist, and
        // closes the connection on SET_MEM_TABLE with a region and no fd.
        'proto.reply-ack.invalid': 'fail',
        // ... and a SET_CONFIG of the read-only num_scanouts (which it leaves unchanged).
        'proto.config.set.refused': 'fail',
        ...NOT_OFFERED,
        ...LIBVHOST_USER_FEATURES,
        // 7.2 does not offer VIRTIO_GPU_F_EDID (later versions do).
        'gpu.edid': 'skip',
        // UPDATE carries the resource's bytes as they are, not converted to x8r8g8b8 (fine for B8G8R8X8/A8).
        'gpu.formats': 'fail',
        // UPDATE is built in a g_try_malloc'd buffer whose flags field is never set: heap bytes on the wire.
        'gpu.request-flags': 'fail',
        // A full-width TRANSFER_TO_HOST_2D from the origin copies the whole resource, whatever its height.
        'gpu.transfer-rect': 'fail',
        // UPDATE rectangles are in the resource's coordinates, not the scanout's.
        'gpu.scanout-offset': 'fail',
        // virtio_gpu_config is never filled in: num_scanouts 0 (QEMU overwrites it).
        'gpu.config': 'fail',
        // libvhost-user 7.2 aborts on a message whose payload the connection's end cuts short (an assert)...
        'robust.ctl.framing': 'fail',
        // ... and dies of SIGSEGV on a vring index past its queues (vring messages index dev->vq unchecked).
        'robust.ctl.vring': 'fail',
        // Generated sequences: SET_VRING_ADDR for vring 4294967295 kills it (SIGSEGV).
        'robust.fuzz': 'fail',
        ...NO_DRIVER,
        ...NOT_FS,
        ...LIBVHOST_USER_RINGS,
        // GET_DISPLAY_INFO waits for the display (VG_CMD_STATE_PENDING): GET_VRING_BASE stops the ring (its call
        // fd closed) with one pending, which completes after the reply, on the stopped ring, and vu_panic
        // ("Error writing eventfd: Bad file descriptor") ends the process.
        'vring.get-vring-base.drain': 'fail',
      }),
    );
  });

  it('skips the packed-ring checks: libvhost-user offers no VIRTIO_F_RING_PACKED', () => {
    expectPackedSkipped(run);
  });

  it('skips migrate.device-state: libvhost-user 7.2 offers no DEVICE_STATE (it came with QEMU 8.2)', () => {
    expectNoDeviceState(run);
  });

  it('skips migrate.resume, which needs the drain check it fails', () => {
    expectResumeSkipped(run, /^needs vring\.get-vring-base\.drain, which did not pass/);
  });

  it('drives the ring-state checks with GET_DISPLAY_INFO, sets a scanout from a disabled ring, and dies of a command completed on a stopped ring', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'vring.restart')).to.match(/^gpu sample requests on controlq \(vring 0\)/);
    expect(messageOf(run.report, 'vring.get-vring-base.drain')).to.match(
      // Dead before GET_VRING_BASE's reply, or just after it (under load): the same command, the same death.
      /^round \d+: (8 requests kicked on controlq \(vring 0\) and every ring stopped at once|GET_VRING_BASE of controlq \(vring 0\) replied with base \d+).*Error writing eventfd: Bad file descriptor/,
    );
    for (const id of ['vring.enable-gates', 'vring.disable-stops'])
      expect(messageOf(run.report, id), id).to.match(
        /SET_SCANOUT of scanout 0 to \d+x16 of resource \d+ on the control queue, posted and kicked on controlq \(vring 0\) while it was disabled, was executed before SET_VRING_ENABLE 1: the scanout set on the display \(VHOST_USER_GPU_SCANOUT\) was seen/,
      );
  });

  it('closes the connection on SET_MEM_TABLE with a region and no fd, and acks invalid SET_VRING_NUM with 0', function () {
    this.timeout(5000);
    const message = messageOf(run.report, 'proto.reply-ack.invalid');
    expect(message).to.match(
      /SET_MEM_TABLE with a region and no fd: no ack, the back-end closed the connection/,
    );
    // GET_QUEUE_NUM answers 2: vring 2 x 2 + 1 is past it however it is read.
    expect(message).to.match(/SET_VRING_NUM for vring 5, beyond GET_QUEUE_NUM 2 .*: acked 0/);
  });

  it('shows the guest pixels end to end, and saves the scanout as a PNG next to the reports', function () {
    this.timeout(5000);
    const message = messageOf(run.report, 'gpu.pixels');
    const file = /scanout 0 saved as (\S+\.png)/.exec(message)?.[1];
    expect(file, message).to.be.a('string');
    const png = PNG.sync.read(run.pngs[file!]!);
    expect([png.width, png.height]).to.deep.equal([96, 64]);
  });

  it('serves the cursor queue while control commands wait, and both queues at once', function () {
    this.timeout(5000);
    // Passes (the default verdict): every response OK, every UPDATE's pixels and cursor position right.
    expect(messageOf(run.report, 'gpu.queues.concurrent')).to.match(
      /^4 rounds of 16 control and 8 cursor commands in flight together: every response OK, 32 UPDATEs/,
    );
  });

  it('sends UPDATE pixels in the resource format, UPDATE headers with garbage flags, and transfers too much', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'gpu.formats')).to.match(
      /^6 of 7 formats reach the display in other than x8r8g8b8: A8R8G8B8_UNORM: pixel \(0,0\)/,
    );
    expect(messageOf(run.report, 'gpu.request-flags')).to.match(/requests had flags set: UPDATE 0x/);
    expect(messageOf(run.report, 'gpu.edid')).to.equal('VIRTIO_GPU_F_EDID is not offered');
    expect(messageOf(run.report, 'gpu.config')).to.match(/num_scanouts is 0/);
    expect(messageOf(run.report, 'gpu.transfer-rect')).to.match(/the UPDATE's pixel \(0,10\)/);
    expect(messageOf(run.report, 'gpu.scanout-offset')).to.match(
      /an UPDATE of 40x24 at \(16,8\), expected 40x24 at \(0,0\)/,
    );
  });

  it('serves a connected socket at --fd, not a listening one', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.fd.form')).to.match(
      /connected socket at fd 3: works.*; listening socket at fd 3: fails/,
    );
  });

  it('dies by the default action of SIGTERM and leaves its socket file', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.sigterm.socket-removed')).to.match(
      /backend\.sock was left behind \(killed by SIGTERM\)/,
    );
  });

  it('keeps running with --fd=42 instead of exiting', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.fail-early.bad-fd')).to.match(
      /^still running \d+ ms after being asked to serve --fd=42/,
    );
  });

  it('acks a SET_CONFIG of the read-only num_scanouts with 0, and leaves it unchanged', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'proto.config.set')).to.equal(
      "num_scanouts (bytes 8-11) unchanged by a driver's SET_CONFIG",
    );
    expect(messageOf(run.report, 'proto.config.set.refused')).to.match(/num_scanouts .* acked as a success/);
  });

  it('exits with status 0 when its front-end leaves', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'proto.lifecycle.reconnect')).to.match(/chose to exit: status 0/);
  });

  it('aborts on a message cut by the connection closing, and dies of SIGSEGV on vring 1024', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'robust.ctl.framing')).to.match(
      /crashed after a message cut mid-payload, then the connection closed: killed by SIGABRT; .*vu_message_read_default: Assertion `rc == vmsg->size' failed/,
    );
    const vring = messageOf(run.report, 'robust.ctl.vring');
    for (const input of [
      'SET_VRING_NUM of vring 1024',
      'GET_VRING_BASE of vring 1024',
      'SET_VRING_ADDR of vring 0xFFFFFFFF',
    ])
      expect(vring).to.contain(`crashed after ${input}: killed by SIGSEGV`);
    expect(messageOf(run.report, 'robust.leaks')).to.match(/set-up\/tear-down: fds (\d+) -> \1 /);
  });

  it('takes malformed control queue chains and buffers: closes the connection (vu_panic) or answers, writes nothing out of bounds (robust.data.*)', function () {
    this.timeout(5000);
    // Passes (the default verdict): GET_DISPLAY_INFO is the well-formed request after each input.
    const chain = messageOf(run.report, 'robust.data.chain');
    expect(chain).to.match(
      /^4 of 11 inputs answered; closed the connection after: a descriptor whose next is itself, a chain whose last next goes back to its head,/,
    );
    expect(chain).to.contain(
      'a chain longer than the queue size (an indirect table of queue size + 2 descriptors): used id 0 len 408, the reply: RESP_OK_DISPLAY_INFO; the queue still works (RESP_OK_DISPLAY_INFO)',
    );
    const buffers = messageOf(run.report, 'robust.data.buffers');
    expect(buffers).to.match(/^3 of 11 inputs answered; closed the connection after: /);
    expect(buffers).to.contain('a zero-length last buffer: closed the connection');
    expect(buffers).to.contain(
      'the buffers the device writes marked device-readable: used id 0 len 0, the reply: GET_DISPLAY_INFO on the control queue: used.len 0, not the 408 bytes of virtio_gpu_resp_display_info; the queue still works (RESP_OK_DISPLAY_INFO)',
    );
  });

  it('is described by /usr/share/qemu/vhost-user/50-qemu-gpu.json', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.descriptor.found')).to.contain(
      '/usr/share/qemu/vhost-user/50-qemu-gpu.json',
    );
  });

  it('writes a junit.xml that agrees with the report', async function () {
    this.timeout(5000);
    await expectJunitMatches(junit, run.report!);
  });

  it('leaves no process and no temp file', function () {
    this.timeout(5000);
    expectClean(run);
  });
});

describe('real back-end: /usr/lib/qemu/virtiofsd -o source=DIR', function () {
  this.timeout(10_000);
  let out: { path: string; cleanup: () => Promise<void> };
  let source: { path: string; cleanup: () => Promise<void> };
  let run: CliRun;
  let junit: string;

  before(async function () {
    this.timeout(120_000);
    requireBinary(VIRTIOFSD);
    out = await dir({ prefix: 'vhu-selftest-junit-', unsafeCleanup: true });
    source = await dir({ prefix: 'vhu-selftest-virtiofs-', unsafeCleanup: true });
    run = await runCli(
      [
        '--junit',
        path.join(out.path, 'junit.xml'),
        '--verbose',
        VIRTIOFSD.binary,
        '--',
        '-o',
        `source=${source.path}`,
      ],
      { env: STANDARD_DESCRIPTOR_DIRS, limitMs: 90_000 },
    );
    junit = await readFile(path.join(out.path, 'junit.xml'), 'utf8');
  });
  after(async () => {
    await out?.cleanup();
    await source?.cleanup();
  });

  // fs.unlink and fs.bad-request fail too, interoperability checks (SHOULD): FUSE has no normative text.
  it('exits 1 (robust.data MUST checks fail), with the extra arguments on every launch', function () {
    this.timeout(5000);
    expect(run.exitCode, run.stderr).to.equal(1);
    expect(run.report?.backend.type).to.equal('fs');
    expect(run.report?.backend.args).to.deep.equal(['-o', `source=${source.path}`]);
  });

  it('has exactly the verdicts seen by hand', function () {
    this.timeout(5000);
    expect(verdicts(run.report), run.stdout).to.deep.equal(
      expectedVerdicts({
        'conv.sigterm.socket-removed': 'fail',
        'conv.fail-early.missing-resource': 'skip',
        'conv.options.features': 'skip',
        'proto.config.get': 'skip',
        'proto.config.window': 'skip',
        'proto.config.set': 'skip',
        'proto.config.set.refused': 'skip',
        'proto.reply-ack.invalid': 'fail',
        // SET_VRING_KICK again on a running ring aborts it (an assert in fuse_virtio.c).
        'robust.ctl.vring': 'fail',
        ...NOT_OFFERED,
        ...NO_DRIVER,
        ...LIBVHOST_USER_FEATURES,
        ...LIBVHOST_USER_RINGS,
        ...VIRTIOFSD_FS,
        ...VIRTIOFSD_DATA,
        ...NOT_GPU,
      }),
    );
    expect(messageOf(run.report, 'gpu.pixels')).to.contain(
      'device type fs: the gpu checks drive gpu devices only',
    );
  });

  it('skips the packed-ring checks: libvhost-user offers no VIRTIO_F_RING_PACKED', () => {
    expectPackedSkipped(run);
  });

  it('skips migrate.device-state: libvhost-user 7.2 offers no DEVICE_STATE (it came with QEMU 8.2)', () => {
    expectNoDeviceState(run);
  });

  it('skips migrate.resume: its FUSE session moves with the back-end state, not with the rings', () => {
    expectResumeSkipped(run, /^a fs device's requests need an opening one first/);
  });

  it('passes the ring-state checks with FUSE_INIT and GETATTR but the two of a disabled ring: a MKDIR kicked there makes its directory', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'vring.get-vring-base.drain')).to.match(
      /rounds of 8 fs sample requests kicked and GET_VRING_BASE at once: .* consumed at the stop/,
    );
    for (const [id, phase] of [
      ['vring.enable-gates', 'never enabled'],
      ['vring.disable-stops', 'after SET_VRING_ENABLE 0'],
    ])
      expect(messageOf(run.report, id!), id).to.match(
        new RegExp(
          `^${phase}: MKDIR of vhu-effect-\\w+-\\d+ in the root \\(unique \\d+\\), posted and kicked on the first request queue \\(vring 1\\) while it was disabled, was executed before SET_VRING_ENABLE 1: the directory MKDIR makes appearing in `,
        ),
      );
    // The directories are removed with the checks.
    expect(readdirSync(source.path).filter((name) => name.startsWith('vhu-effect-'))).to.deep.equal([]);
  });

  it('answers FUSE traffic as the directory says, but UNLINK of a missing name with EIO', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'fs.read')).to.match(/files read in \d+ READs: every byte as on disk/);
    expect(messageOf(run.report, 'fs.unlink')).to.contain(
      'UNLINK of a missing name: UNLINK: expected "2 (ENOENT)", saw "5 (EIO)"',
    );
  });

  it('dies of an assertion on a request queue element with nothing readable in it (robust.data.*)', function () {
    this.timeout(5000);
    const assertion =
      /it crashed after (.+?): a failed assertion on stderr: ".*fv_queue_worker: Assertion `0' failed\."/;
    expect(messageOf(run.report, 'robust.data.chain')).to.match(assertion);
    expect(messageOf(run.report, 'robust.data.chain')).to.contain(
      'after an indirect descriptor inside an indirect table',
    );
    expect(messageOf(run.report, 'robust.data.buffers')).to.contain(
      'after the buffer the device reads marked device-writable',
    );
  });

  it('answers an unknown opcode with ENOSYS, then dies of a 24-byte fuse_in_header', function () {
    this.timeout(5000);
    const bad = run.report?.checks.find((c) => c.id === 'fs.bad-request');
    expect(bad?.message).to.match(/^a 24-byte fuse_in_header: the back-end closed the connection/);
    expect(bad?.message).to.contain('opcode 4242: errno 38 (ENOSYS)');
    expect(bad?.stderrTail).to.contain('too short for in_header');
  });

  it('leaves no tree of the fs checks in the shared directory', function () {
    this.timeout(5000);
    expect(readdirSync(source.path)).to.deep.equal([]);
  });

  it('skips the device option checks: type fs defines none', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.fail-early.missing-resource')).to.contain('type fs');
    expect(messageOf(run.report, 'conv.options.features')).to.contain('type fs');
  });

  it('serves a listening socket at --fd, not a connected one', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.fd.form')).to.match(
      /connected socket at fd 3: fails.*; listening socket at fd 3: works/,
    );
  });

  it('aborts on SET_VRING_KICK again on a running ring', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'robust.ctl.vring')).to.match(
      /crashed after SET_VRING_KICK again on a running ring: a failed assertion on stderr: .*fv_queue_set_started: Assertion `vud->qi\[qidx\]->kick_fd == -1' failed/,
    );
  });

  it('leaves its socket file when it ends on SIGTERM', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.sigterm.socket-removed')).to.match(/backend\.sock was left behind/);
  });

  it('exits with status 0 when its front-end leaves', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'proto.lifecycle.reconnect')).to.match(/chose to exit: status 0/);
  });

  it('is described by /usr/share/qemu/vhost-user/50-qemu-virtiofsd.json', function () {
    this.timeout(5000);
    expect(messageOf(run.report, 'conv.descriptor.found')).to.contain(
      '/usr/share/qemu/vhost-user/50-qemu-virtiofsd.json',
    );
  });

  it('writes a junit.xml that agrees with the report', async function () {
    this.timeout(5000);
    await expectJunitMatches(junit, run.report!);
  });

  it('leaves no process and no temp file', function () {
    this.timeout(5000);
    expectClean(run);
  });
});

describe('real back-end: /usr/lib/qemu/virtiofsd -o source=DIR -o sandbox=chroot, the fs checks', function () {
  this.timeout(10_000);
  let source: { path: string; cleanup: () => Promise<void> };
  let run: CliRun;

  before(async function () {
    this.timeout(60_000);
    requireBinary(VIRTIOFSD);
    source = await dir({ prefix: 'vhu-selftest-virtiofs-', unsafeCleanup: true });
    run = await runCli(
      ['--grep', '^fs\\.', VIRTIOFSD.binary, '--', '-o', `source=${source.path}`, '-o', 'sandbox=chroot'],
      { env: STANDARD_DESCRIPTOR_DIRS, limitMs: 50_000 },
    );
  });
  after(() => source?.cleanup());

  it('has the same fs verdicts as in the namespace sandbox', function () {
    this.timeout(5000);
    expect(verdicts(run.report), run.stdout).to.deep.equal(VIRTIOFSD_FS);
    // Its two fs failures are of interoperability checks (SHOULD): exit 0.
    expect(run.exitCode, run.stderr).to.equal(0);
  });

  it('leaves no process, no temp file and no tree in the shared directory', function () {
    this.timeout(5000);
    expectClean(run);
    expect(readdirSync(source.path)).to.deep.equal([]);
  });
});
