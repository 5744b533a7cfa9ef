/**
 * The conventions suite against our fixtures: the reference back-end passes every check, and each flawed
 * variant fails exactly the checks its flaw breaks, which proves every check can fail.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { FLAWS, type Flaw } from '../fixtures/backend/flaws.js';
import { VARIANTS, type Variant } from '../fixtures/backend/variants.js';
import { PROFILES } from '../harness/frontend/profiles.js';
import { allChecks } from '../suites/index.js';
import { ANY_DEVICE } from '../suites/vring/any-device.js';
import { PACKED_RING_CHECKS } from '../suites/vring/packed.js';
import {
  broken,
  type CliRun,
  fixture,
  leftovers,
  messageOf,
  runCli,
  tempLeftovers,
  verdicts,
} from './helpers.js';

// Roomy: three runs go at once on a loaded machine, and a back-end's start counts against it.
const TIMEOUT = ['--timeout', '2500'];

/** Checks a flaw breaks besides its own (fixtures/backend/flaws.ts names its own). */
const ALSO_FAILS: Partial<Record<Flaw, string[]>> = {
  // net.loopback's probe frame comes back, so data moves and the net checks run (its gate holds): each sends
  // more than 7 frames and loses one of them.
  'net-drops-frames': [
    'net.rx.header',
    'net.rx.num-buffers',
    'net.packed.loopback',
    'net.tx.split-header',
    'net.rx.mergeable',
    'net.csum',
    'net.in-order',
    'net.mq.pairs',
  ],
  // A reply without the reply flag breaks the --fd exchange as well.
  'bad-reply-flags': ['conv.fd.works'],
  // Memory sent with ADD_MEM_REG has mmap offsets too, and that check runs before vring.blk.read-write.
  'ignores-mmap-offset': ['proto.mem-slots.add-rem'],
  // It acks every request it refuses with 0: the refused SET_CONFIG of a read-only field too (same REPLY_ACK rule).
  'reply-ack-always-zero': ['proto.config.set.refused'],
  // Generated sequences draw from the same bad inputs: the fuzzer finds these crashes and hangs too.
  'hang-on-unknown-request': ['robust.fuzz'],
  'missing-fd-abort': ['robust.fuzz'],
  'vring-index-unchecked': ['robust.fuzz'],
  'mem-region-past-fd': ['robust.fuzz'],
};

/** used.len, as the checks that leave it to vring.blk.read-write name it when they pass (suites/vring/common.ts). */
const USED_LEN_NAMED =
  /\(used\.len over-reported on \d+ completions?: vring\.blk\.read-write's finding; the first: OUT /;

/** What a flaw's report must say besides its verdicts, by check: a check that passes naming a finding, say. */
const FLAW_MESSAGES: Partial<Record<Flaw, Record<string, RegExp>>> = {
  // One defect, one failure: every check its writes go through passes, on a rule of its own, naming it.
  'write-used-len-counts-data': {
    'vring.blk.read-write':
      /^OUT sector \d+ x1 \(head \d+\): used\.len 513 is more than the 1 writable bytes/,
    'vring.blk.cross-region': USED_LEN_NAMED,
    'vring.blk.indirect': USED_LEN_NAMED,
    'vring.blk.indirect-chained': USED_LEN_NAMED,
    'vring.legacy-start': USED_LEN_NAMED,
    'vring.restart': USED_LEN_NAMED,
    'vring.disable-stops': USED_LEN_NAMED,
    'vring.enable-gates': USED_LEN_NAMED,
    'vring.mem-table.replace': USED_LEN_NAMED,
    // The reference's packed rings serve writes as its split ones do: the same over-report, named.
    'vring.packed.used': USED_LEN_NAMED,
    'vring.packed.indirect': USED_LEN_NAMED,
    // Its OUT past the capacity over-reports as a write inside it does: the device's on every write.
    'vring.blk.bad-sector': USED_LEN_NAMED,
    'proto.mem-slots.add-rem': USED_LEN_NAMED,
    'proto.reset-device': USED_LEN_NAMED,
    'migrate.resume': USED_LEN_NAMED,
    'migrate.inflight': USED_LEN_NAMED,
  },
};

/**
 * Flaws only one front-end profile's order finds (harness/frontend/profiles.ts): the default run passes
 * them, and a run under that profile fails their check (tested on their own, below).
 */
const PROFILE_FLAWS: Partial<Record<Flaw, string>> = { 'mem-table-drops-call': 'dpdk' };

/**
 * Flaws of the split ring's walk (fixtures/backend/vring.ts), which every device type of the fixture shares:
 * proven on the gpu device too (VHU_FIXTURE_DEVICE=gpu), whose control queue the data-plane checks drive.
 */
const GPU_WALK_FLAWS: readonly Flaw[] = ['follow-descriptor-loop', 'write-past-buffer'];

/** Variant -> the checks it must fail (fail or timeout), and nothing else. The chaos variant is for reliability. */
const EXPECTED = Object.entries(FLAWS)
  .filter(([flaw]) => flaw !== 'chaos' && PROFILE_FLAWS[flaw as Flaw] === undefined)
  .map(([flaw, check]) => ({ flaw, fails: [check, ...(ALSO_FAILS[flaw as Flaw] ?? [])] }));

/**
 * Variants (fixtures/backend/variants.ts) behave as real back-ends do where the spec leaves room: each passes
 * every check of its kind; what its report must say of it, by check (a skip where the check cannot apply).
 */
const VARIANT_EXPECTS: Record<
  Variant,
  { skips?: Record<string, RegExp>; messages?: Record<string, RegExp> }
> = {
  'used-len-short': {
    messages: { 'vring.used-len.exact': /IN sector \d+ x16: used\.len 8192 of the 8193 bytes written/ },
  },
  'net-no-mq': {
    skips: {
      'net.mq.pairs': /VIRTIO_NET_F_MQ is not offered/,
      'net.mq.steering': /VIRTIO_NET_F_MQ is not offered/,
    },
  },
  'net-queue-num-128': {
    messages: {
      'proto.reply-ack.invalid': /SET_VRING_NUM for vring 257, beyond GET_QUEUE_NUM 128 .*: ack [1-9]/,
      'net.mq.pairs': /^4 queue pairs \(of 4 tried\)/,
    },
  },
  'config-offset-ignored': { messages: { 'proto.config.window': /blk_size .*the offset ignored/ } },
  // It offers no REPLY_ACK (ring sizes are refused by closing): a refused feature set cannot show but by a close.
  'ring-max-256': {
    skips: { 'migrate.refuse-unknown': /the connection stayed open and no REPLY_ACK was negotiated/ },
  },
  'config-windows-refused': {
    messages: {
      'proto.config.get':
        /answered with the empty payload that signals an error: its first half .*, blk_size .*, its last byte/,
    },
  },
  // At the default (qemu) profile's base after a broken connection, the used ring's idx, DPDK's sum is right.
  'inflight-base-plus-resubmitted': {
    messages: { 'migrate.inflight': /the ring at \d+ \(the used ring's idx\): each completed once/ },
  },
};

/** Areas whose checks drive one device type's traffic; a back-end of another type skips them. */
const DEVICE_AREAS: Readonly<Record<string, string>> = {
  vring: 'block',
  // migrate.abi-stable is of every type: the references of the other types pass it, as they must every check
  // they run; migrate.resume, migrate.inflight and device-state: below.
  migrate: 'block',
  net: 'net',
  fs: 'fs',
  gpu: 'gpu',
  scsi: 'scsi',
  input: 'input',
};

/**
 * Checks of one device type in an area of another's (the state a move carries is proven with an fs handle), or
 * of every type (null: migrate.resume moves any kind with its sample request).
 */
const DEVICE_CHECKS: Readonly<Record<string, string | null>> = {
  'migrate.device-state': 'fs',
  'migrate.resume': null,
  'migrate.inflight': null,
};

/**
 * A check every device reference must pass but those named: an fs device's FUSE session moves with its state
 * (migrate.device-state), so migrate.resume skips it, saying so; migrate.inflight runs where the default (qemu)
 * profile keeps an inflight buffer for the type (block, scsi) and skips the others, saying so (KEEPS_NO_INFLIGHT).
 */
const EVERY_KIND: Readonly<Record<string, readonly string[]>> = {
  'migrate.resume': ['fs'],
  'migrate.inflight': ['net', 'fs', 'gpu', 'input'],
};

/** The device types the qemu profile keeps no inflight buffer for: migrate.inflight skips there, saying so. */
const KEEPS_NO_INFLIGHT = EVERY_KIND['migrate.inflight']!;

/** The device type whose traffic a check drives, undefined for a check of every type. */
function deviceOfCheck(id: string, area: string): string | undefined {
  return id in DEVICE_CHECKS ? (DEVICE_CHECKS[id] ?? undefined) : DEVICE_AREAS[area];
}

/** Whether a reference of `type` must pass check `id`, which drives every device kind. */
function everyKind(id: string, type: string): boolean {
  return EVERY_KIND[id] !== undefined && !EVERY_KIND[id]!.includes(type);
}

/** The reference back-end as each other device type (fixtures/bin), the block one being vhu-reference. */
const DEVICE_REFERENCES = [
  { type: 'net', wrapper: 'vhu-reference-net' },
  { type: 'fs', wrapper: 'vhu-reference-fs' },
  { type: 'gpu', wrapper: 'vhu-reference-gpu' },
  { type: 'scsi', wrapper: 'vhu-reference-scsi' },
  { type: 'input', wrapper: 'vhu-reference-input' },
];

/**
 * A run launches the back-end once or more per check (robust.data.* once per input, robust.ctl.* once per
 * check on a fixture that serves a new connection after each input, and again after each crash: ~30 in all),
 * and the launches are most of this suite's time. So the references run every check, the variants every check
 * but the robustness ones, and each flaw only the checks of the groups its expected failures belong to (its
 * own check's and those of ALSO_FAILS, and those FLAW_MESSAGES names), with every check those need,
 * transitively: a check whose prerequisite did not pass is skipped as in a full run (proto.reset-device
 * waits on the data path, vring.blk.read-write). So each flaw is proven to fail exactly its own check among the checks of its
 * group, and the references prove that no check fails a back-end that keeps every rule. What a flaw would
 * do to a check of another group goes unseen; no verdict of a real back-end depends on that.
 */
const NOT_ROBUSTNESS = `^(${[...new Set(allChecks.filter((c) => c.area !== 'robustness').map((c) => c.id.split('.')[0]))].join('|')})\\.`;
const ROBUSTNESS_LIMIT_MS = 420_000;

/** The group of checks a check belongs to: its id's first part (conv, proto, ...), robust.* by kind (robust.ctl). */
function groupOf(id: string): string {
  const parts = id.split('.');
  return (parts[0] === 'robust' ? parts.slice(0, 2) : parts.slice(0, 1)).join('.');
}

/** `ids` and every check they need, transitively. */
function withNeeds(ids: Iterable<string>): Set<string> {
  const all = new Set<string>();
  const todo = [...ids];
  for (let id = todo.pop(); id !== undefined; id = todo.pop()) {
    if (all.has(id)) continue;
    all.add(id);
    todo.push(...(allChecks.find((c) => c.id === id)?.needs ?? []));
  }
  return all;
}

/** The --grep of a fixture's run: every check (undefined), all but the robustness ones, or a flaw's checks. */
function checksOf(wrapper: string): string | undefined {
  if (wrapper.startsWith('vhu-variant-')) return NOT_ROBUSTNESS;
  const flaw = /^vhu-flaw-(.+)$/.exec(wrapper)?.[1];
  const expected = EXPECTED.find((e) => e.flaw === flaw)?.fails;
  if (expected === undefined) return undefined;
  const messages = Object.keys(FLAW_MESSAGES[flaw as Flaw] ?? {});
  const groups = new Set([...expected, ...messages].map(groupOf));
  const ids = withNeeds(allChecks.filter((c) => groups.has(groupOf(c.id))).map((c) => c.id));
  return `^(${[...ids].map((id) => id.replaceAll('.', '\\.')).join('|')})$`;
}

/** Whether a run goes through the robustness checks, which get a longer limit. */
const runsRobustness = (grep: string | undefined) => grep === undefined || grep.includes('robust');

function otherDeviceCheck(type: string, id: string): boolean {
  const area = allChecks.find((c) => c.id === id)?.area;
  const device = area === undefined ? undefined : deviceOfCheck(id, area);
  return device !== undefined && device !== type;
}

/**
 * Back-end arguments the device type of a wrapper (its VHU_FIXTURE_DEVICE) needs: an fs device serves a
 * directory, named with --shared-dir, which is also how the fs checks learn it.
 */
function deviceArgs(wrapper: string, shared: string): string[] {
  const device = /VHU_FIXTURE_DEVICE=(\w+)/.exec(readFileSync(fixture(wrapper), 'utf8'))?.[1] ?? 'block';
  return device === 'fs' ? ['--', `--shared-dir=${shared}`] : [];
}

/** Descriptor folders that break one descriptor rule each, run against the reference back-end. */
const DESCRIPTOR_FLAWS: Array<{
  name: string;
  files: (ref: string, dir: string) => Record<string, string>;
  fails: string[];
}> = [
  {
    name: 'a malformed file',
    files: (ref) => ({
      '10-ok.json': JSON.stringify({ description: 'd', type: 'block', binary: ref }),
      '20-bad.json': '{"type": "block",',
    }),
    fails: ['conv.descriptor.schema'],
  },
  {
    name: 'a relative and a non-executable binary',
    files: (_ref, dir) => ({
      '10-rel.json': JSON.stringify({ description: 'd', type: 'gpu', binary: 'bin/backend' }),
      '20-plain.json': JSON.stringify({ description: 'd', type: 'gpu', binary: path.join(dir, 'plain.sh') }),
      'plain.sh': '#!/bin/sh\n',
    }),
    fails: ['conv.descriptor.binary'],
  },
  {
    name: 'the wrong type for the reference',
    files: (ref) => ({ '50-ref.json': JSON.stringify({ description: 'd', type: 'gpu', binary: ref }) }),
    fails: ['conv.descriptor.type'],
  },
];

/** Descriptor folders: general (a good file naming the reference) and specific (one that masks another). */
async function descriptorDirs(root: string, reference: string): Promise<string> {
  const share = path.join(root, 'share');
  const etc = path.join(root, 'etc');
  await mkdir(share, { recursive: true });
  await mkdir(etc, { recursive: true });
  const doc = (over: object) =>
    JSON.stringify({ description: 'vhu-conform reference', type: 'block', binary: reference, ...over });
  await writeFile(path.join(share, '50-reference.json'), doc({}));
  await writeFile(path.join(share, '60-masked.json'), '{ broken');
  await writeFile(path.join(etc, '60-masked.json'), '');
  return `${share}:${etc}`;
}

function expectClean(run: CliRun): void {
  expect(leftovers(run.marker), 'processes left running').to.deep.equal([]);
  expect(tempLeftovers(run), 'temp files left').to.deep.equal([]);
}

/**
 * How many fixture runs go at once (VHU_SELFTEST_JOBS, default 3): most of a run is waiting on a back-end
 * (deadlines, quiet windows), so overlapping them divides the wall time on two cores.
 */
const JOBS = Math.max(1, Number(process.env.VHU_SELFTEST_JOBS ?? 3));

/**
 * The --grep (-g) or --fgrep mocha was given: the runs start in `before`, and only those of the tests it
 * selects should (a narrowed run of one flaw must not start the ~130 others).
 */
function mochaGrep(): ((title: string) => boolean) | undefined {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (name: string, short?: string) =>
      arg === name || arg === short
        ? argv[i + 1]
        : arg.startsWith(`${name}=`)
          ? arg.slice(name.length + 1)
          : undefined;
    const grep = value('--grep', '-g');
    if (grep !== undefined) {
      // As mocha reads it: a regular expression, optionally written /like this/flags.
      const parts = /^\/(.*)\/([gimy]{0,4})$/.exec(grep);
      const re = parts ? new RegExp(parts[1]!, parts[2]) : new RegExp(grep);
      return (title) => re.test(title);
    }
    const fgrep = value('--fgrep', '-f');
    if (fgrep !== undefined) return (title) => title.includes(fgrep);
  }
  return undefined;
}

/** Runs at most `jobs` of the functions given at once, the others queued in order. */
function limiter(jobs: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (fn) => {
    if (active >= jobs) await new Promise<void>((resume) => waiting.push(resume));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

const SUITE = 'conventions suite against the fixtures';
const TITLES = {
  reference: 'the reference back-end passes every check',
  device: (type: string, wrapper: string) =>
    `${wrapper} (a ${type} device) passes its device's checks and fails none`,
  flaw: (flaw: string, expected: readonly string[]) =>
    `vhu-flaw-${flaw} fails ${expected.length === 1 ? expected[0] : `${expected[0]} and what depends on it`}`,
  variant: (variant: string) => `vhu-variant-${variant} passes every check of its kind`,
  png: 'the gpu reference back-end saves what its scanout showed as a PNG next to the reports',
};

/** The data-plane checks that malform a request the device writes into (DeviceKind.writable). */
const NO_WRITABLE_REQUEST = ['robust.data.buffers'];

describe(SUITE, function () {
  // A test waits for its run, which may be queued behind others: each run is bounded by runCli's own limit.
  this.timeout(1_800_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let dirs: string;
  const runs = new Map<string, Promise<CliRun>>();
  /** Each fs variant serves a folder of its own, so that runs at once do not see each other's trees. */
  const sharedOf = (wrapper: string) => path.join(tmp.path, `shared-${wrapper}`);
  const limit = limiter(JOBS);
  /** Starts (queued behind at most JOBS others) the run of `wrapper`, once. */
  const schedule = async (wrapper: string): Promise<void> => {
    if (runs.has(wrapper)) return;
    const shared = sharedOf(wrapper);
    const grep = checksOf(wrapper);
    const robustness = runsRobustness(grep);
    const run = mkdir(shared, { recursive: true }).then(() =>
      limit(() =>
        runCli(
          [
            ...TIMEOUT,
            '--descriptor-dirs',
            dirs,
            ...(grep === undefined ? [] : ['--grep', grep]),
            fixture(wrapper),
            ...deviceArgs(wrapper, shared),
          ],
          robustness ? { limitMs: ROBUSTNESS_LIMIT_MS } : {},
        ),
      ),
    );
    // Awaited by its test; until then a failure must not count as unhandled.
    run.catch(() => undefined);
    runs.set(wrapper, run);
  };
  const runOf = async (wrapper: string): Promise<CliRun> => {
    await schedule(wrapper);
    return runs.get(wrapper)!;
  };

  before(async () => {
    tmp = await dir({ prefix: 'vhu-selftest-', unsafeCleanup: true });
    dirs = await descriptorDirs(tmp.path, fixture('vhu-reference'));
    const wrappers = [
      'vhu-reference',
      ...DEVICE_REFERENCES.map((d) => d.wrapper),
      ...EXPECTED.map((e) => `vhu-flaw-${e.flaw}`),
      ...Object.keys(VARIANTS).map((v) => `vhu-variant-${v}`),
    ];
    // Every run starts now, so that they overlap; a run narrowed with --grep starts only those of the tests
    // named after their wrapper that it runs (a test it runs that needs another starts that one itself).
    const grep = mochaGrep();
    for (const wrapper of wrappers) if (!grep || grep(`${wrapper} `)) await schedule(wrapper);
  });
  after(async () => {
    await Promise.allSettled(runs.values());
    await tmp.cleanup();
  });

  it(TITLES.reference, async () => {
    const run = await runOf('vhu-reference');
    const all = verdicts(run.report);
    expect(Object.keys(all), 'every check ran').to.have.members(allChecks.map((c) => c.id));
    // The checks of other device types' traffic are skipped, saying so; every other one passes.
    const notPassed = Object.entries(all).filter(
      ([id, v]) => v !== (otherDeviceCheck('block', id) ? 'skip' : 'pass'),
    );
    expect(notPassed, run.stdout).to.deep.equal([]);
    expect(run.exitCode, run.stderr).to.equal(0);
    expect(messageOf(run.report, 'conv.fd.form')).to.match(
      /connected socket at fd 3: works.*listening socket at fd 3: works/,
    );
    expect(messageOf(run.report, 'conv.descriptor.found')).to.contain('50-reference.json');
    expectClean(run);
  });

  for (const { type, wrapper } of DEVICE_REFERENCES) {
    it(TITLES.device(type, wrapper), async () => {
      const run = await runOf(wrapper);
      const all = verdicts(run.report);
      // Its own area's checks, and the ring-state, packed-ring and data-plane robustness checks, which drive
      // every device kind.
      const own = allChecks
        .filter(
          (c) =>
            deviceOfCheck(c.id, c.area) === type ||
            everyKind(c.id, type) ||
            ANY_DEVICE.has(c.id) ||
            PACKED_RING_CHECKS.has(c.id) ||
            c.id.startsWith('robust.data.'),
        )
        .map((c) => c.id)
        .filter((id) => !NO_WRITABLE_REQUEST.includes(id) || type !== 'input');
      expect(own, `${type} checks`).to.not.deep.equal([]);
      // An input device writes its buffers only when an input event comes: no request of the harness's making
      // has buffers it writes, so robust.data.buffers is skipped there, saying so.
      if (type === 'input')
        expect(NO_WRITABLE_REQUEST.map((id) => all[id])).to.deep.equal(NO_WRITABLE_REQUEST.map(() => 'skip'));
      expect(
        own.filter((id) => all[id] !== 'pass'),
        run.stdout,
      ).to.deep.equal([]);
      expect(broken(run.report), run.stdout).to.deep.equal([]);
      expect(run.exitCode, run.stderr).to.equal(0);
      if (KEEPS_NO_INFLIGHT.includes(type)) {
        expect(all['migrate.inflight'], 'migrate.inflight').to.equal('skip');
        expect(messageOf(run.report, 'migrate.inflight')).to.match(
          new RegExp(
            `^the qemu profile keeps no inflight buffer for ${type} devices \\(it keeps one for block, scsi\\)$`,
          ),
        );
      }
      if (type === 'fs') {
        expect(readdirSync(sharedOf(wrapper)), 'trees left in the shared directory').to.deep.equal([]);
        expect(messageOf(run.report, 'migrate.resume')).to.match(
          /^a fs device's requests need an opening one first .*: it moves with the back-end state \(migrate\.device-state\)/,
        );
      }
      expectClean(run);
    });
  }

  for (const { flaw, fails: expected } of EXPECTED) {
    it(TITLES.flaw(flaw, expected), async () => {
      const run = await runOf(`vhu-flaw-${flaw}`);
      expect(broken(run.report), run.stdout).to.have.members(expected);
      for (const [id, message] of Object.entries(FLAW_MESSAGES[flaw as Flaw] ?? {}))
        expect(messageOf(run.report, id), id).to.match(message);
      const errors = run.report?.checks.filter((c) => c.verdict === 'error') ?? [];
      expect(errors, 'harness errors').to.deep.equal([]);
      const must = expected.some((id) => allChecks.find((c) => c.id === id)?.severity === 'MUST');
      expect(run.exitCode, run.stderr).to.equal(must ? 1 : 0);
      expectClean(run);
    });
  }

  for (const [variant, { skips = {}, messages = {} }] of Object.entries(VARIANT_EXPECTS)) {
    it(TITLES.variant(variant), async () => {
      const wrapper = `vhu-variant-${variant}`;
      const run = await runOf(wrapper);
      const type = run.report?.backend.type ?? 'block';
      const all = verdicts(run.report);
      expect(broken(run.report), run.stdout).to.deep.equal([]);
      // Its own area's checks, and the ring-state and packed-ring checks, which drive every device kind.
      const own = allChecks
        .filter(
          (c) =>
            deviceOfCheck(c.id, c.area) === type ||
            everyKind(c.id, type) ||
            ANY_DEVICE.has(c.id) ||
            PACKED_RING_CHECKS.has(c.id),
        )
        .map((c) => c.id);
      expect(
        own.filter((id) => all[id] !== (skips[id] ? 'skip' : 'pass')),
        run.stdout,
      ).to.deep.equal([]);
      for (const [id, message] of Object.entries({ ...skips, ...messages })) {
        expect(all[id], `${id}: ${messageOf(run.report, id)}`).to.equal(skips[id] ? 'skip' : 'pass');
        expect(messageOf(run.report, id), id).to.match(message);
      }
      expect(run.exitCode, run.stderr).to.equal(0);
      expectClean(run);
    });
  }

  it(TITLES.png, async () => {
    const run = await runOf('vhu-reference-gpu');
    const message = messageOf(run.report, 'gpu.pixels');
    const file = /scanout 0 saved as (\S+gpu\.pixels-scanout0\.png)/.exec(message)?.[1];
    expect(file, message).to.be.a('string');
    expect(run.pngs[file!], `${file} among the reports`).to.be.instanceOf(Buffer);
  });

  for (const [flaw, profile] of Object.entries(PROFILE_FLAWS)) {
    const check = FLAWS[flaw as Flaw];
    it(`vhu-flaw-${flaw} fails ${check} under --frontend ${profile} only (--frontend all)`, async () => {
      const run = await runCli([
        ...TIMEOUT,
        '--frontend',
        'all',
        '--grep',
        `^${check.replaceAll('.', '\\.')}$`,
        fixture(`vhu-flaw-${flaw}`),
      ]);
      const row = run.report?.matrix?.checks[check] ?? {};
      expect(Object.keys(row), run.stdout).to.have.members(PROFILES.map((p) => p.name));
      for (const [name, verdict] of Object.entries(row)) {
        expect(verdict, `${check} under ${name}`).to.be.oneOf(
          name === profile ? ['fail', 'timeout'] : ['pass'],
        );
      }
      expect(run.stdout).to.match(new RegExp(`${check.replaceAll('.', '\\.')}@${profile}`));
      expect(run.exitCode, run.stderr).to.equal(1);
      expectClean(run);
    });
  }

  for (const flaw of GPU_WALK_FLAWS) {
    it(`vhu-flaw-${flaw} as a gpu device fails ${FLAWS[flaw]} too`, async () => {
      const run = await runCli([...TIMEOUT, '--grep', '^robust\\.data\\.', fixture(`vhu-flaw-${flaw}`)], {
        env: { VHU_FIXTURE_DEVICE: 'gpu' },
        limitMs: ROBUSTNESS_LIMIT_MS,
      });
      expect(run.report?.backend.type).to.equal('gpu');
      expect(broken(run.report), run.stdout).to.have.members([FLAWS[flaw]]);
      expect(run.exitCode, run.stderr).to.equal(1);
      expectClean(run);
    });
  }

  it('every MUST and SHOULD check is failed by some fixture', () => {
    const covered = new Set([
      ...EXPECTED.flatMap((e) => e.fails),
      ...DESCRIPTOR_FLAWS.flatMap((d) => d.fails),
    ]);
    const uncovered = allChecks.filter((c) => c.severity !== 'INFO' && !covered.has(c.id)).map((c) => c.id);
    expect(uncovered).to.deep.equal([]);
  });

  for (const { name, files, fails } of DESCRIPTOR_FLAWS) {
    it(`descriptor folder with ${name} fails ${fails.join(', ')}`, async () => {
      const folder = path.join(tmp.path, name.replace(/\W+/g, '-'));
      await mkdir(folder, { recursive: true });
      for (const [file, content] of Object.entries(files(fixture('vhu-reference'), folder))) {
        await writeFile(path.join(folder, file), content);
        if (file.endsWith('.sh')) await chmod(path.join(folder, file), 0o644);
      }
      const run = await runCli([
        ...TIMEOUT,
        '--descriptor-dirs',
        folder,
        '--grep',
        'descriptor',
        fixture('vhu-reference'),
      ]);
      expect(broken(run.report), run.stdout).to.have.members(fails);
      expect(run.exitCode).to.equal(0);
    });
  }
});

/** Ring restarts in each profile's own order, proven on a back-end that needs it; apart from the fixture runs above. */
describe('ring checks against a libvhost-user-like fixture', () => {
  it('vhu-reference-libvhost-user (call fd dropped at GET_VRING_BASE, a kick of its own at SET_VRING_KICK) passes every ring check under every profile', async () => {
    // QEMU 7.2's libvhost-user keeps its fds so; a restart that sent SET_VRING_CALL last made it complete a
    // request with no call fd and die, a false failure of vring.restart and what needs it.
    const run = await runCli([
      ...TIMEOUT,
      '--frontend',
      'all',
      '--grep',
      '^vring\\.',
      fixture('vhu-reference-libvhost-user'),
    ]);
    const rows = Object.entries(run.report?.matrix?.checks ?? {});
    expect(
      rows.map(([id]) => id),
      run.stdout,
    ).to.include.members(['vring.restart', 'vring.restart.pending-kick']);
    for (const [id, row] of rows) {
      expect(Object.keys(row), id).to.have.members(PROFILES.map((p) => p.name));
      for (const [profile, verdict] of Object.entries(row)) {
        // A profile that rules a check out skips it, naming itself or what the device does not offer.
        expect(verdict, `${id}@${profile}\n${run.stdout}`).to.be.oneOf(['pass', 'skip']);
      }
      expect(row.qemu, `${id} under qemu`).to.equal('pass');
    }
    expect(run.exitCode, run.stderr).to.equal(0);
    expectClean(run);
  });
});

describe('robust.data.* on a ring without VIRTIO_RING_F_INDIRECT_DESC', () => {
  it('names the inputs whose indirect descriptor is malformed by itself there (crosvm passes no INDIRECT_DESC)', async () => {
    const run = await runCli([
      ...TIMEOUT,
      '--frontend',
      'crosvm',
      '--grep',
      '^robust\\.data\\.chain$',
      fixture('vhu-reference'),
    ]);
    expect(verdicts(run.report), run.stdout).to.deep.equal({ 'robust.data.chain': 'pass' });
    expect(messageOf(run.report, 'robust.data.chain')).to.contain(
      'a chain in an indirect table whose last next goes back to its first (VIRTIO_RING_F_INDIRECT_DESC not negotiated)',
    );
    expect(messageOf(run.report, 'robust.data.chain')).to.not.match(
      /a descriptor whose next is itself \(VIRTIO_RING/,
    );
    expectClean(run);
  });
});
