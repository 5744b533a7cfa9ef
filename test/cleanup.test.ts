/**
 * A run leaves nothing behind, proven with /proc before and after: no process, fd, mapping, socket file or
 * temp folder; also when it is stopped mid-run, by SIGINT or SIGTERM (the CLI) or by its abort signal (the
 * library, in this process, where fds and mappings can be compared).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { runConformance } from '../harness/runner/run.js';
import { allChecks } from '../suites/index.js';
import { boundSocketsUnder, expectClean, fixture, runCli } from './helpers.js';

/** Checks that open sockets, fds, memfd mappings and back-end processes: protocol, rings, fs, net. */
const GREP = 'conv.socket-path|proto.features|proto.mem-slots|vring.blk.read-write|vring.restart$';

/** What this process holds now, from /proc/self. */
interface Held {
  fds: string[];
  mappings: string[];
  children: string[];
}

function held(): Held {
  const fds = readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [`${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`];
    } catch {
      return []; // the directory's own fd, gone once listed
    }
  });
  // Shared mappings of files and memfds: guest memory, rings, logs; not the heap or libraries.
  const mappings = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => /^\S+ \S\S\Ss /.test(line) && /(memfd:|\/tmp\/|\/dev\/shm)/.test(line));
  const children = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(ppid) === process.pid && state !== 'Z' ? [`${pid} ${state}`] : [];
      } catch {
        return [];
      }
    });
  return { fds: fds.sort(), mappings, children };
}

describe('cleanup: a library run, compared with /proc/self before and after', function () {
  this.timeout(120_000);
  let tmp: string;
  let savedTmpdir: string | undefined;
  after(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    rmSync(tmp, { recursive: true, force: true });
  });

  const run = (signal?: AbortSignal) =>
    runConformance({
      binary: fixture('vhu-reference'),
      checks: allChecks,
      grep: GREP,
      timeoutMs: 2000,
      descriptorDirs: [],
      reportsDir: path.join(tmp, 'reports'),
      ...(signal ? { signal } : {}),
    });

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'vhu-cleanup-'));
    savedTmpdir = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    // Warm-up: libuv, koffi and the fs layer open what they keep for the life of the process.
    await run();
    rmSync(path.join(tmp, 'reports'), { recursive: true, force: true });
  });

  it('a whole run: the same fds, mappings and children after as before, and an empty TMPDIR', async () => {
    const before = held();
    const result = await run();
    expect(result.checks.filter((c) => c.verdict !== 'pass' && c.verdict !== 'skip')).to.deep.equal([]);
    rmSync(path.join(tmp, 'reports'), { recursive: true, force: true });
    expect(held()).to.deep.equal(before);
    expect(readdirSync(tmp), 'left in TMPDIR').to.deep.equal([]);
    expect(boundSocketsUnder(tmp), 'sockets still bound').to.deep.equal([]);
  });

  for (const afterMs of [150, 700, 1500]) {
    it(`aborted ${afterMs} ms into the run: the same fds, mappings and children, and an empty TMPDIR`, async () => {
      const before = held();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), afterMs);
      const result = await run(controller.signal).finally(() => clearTimeout(timer));
      expect(result.checks.filter((c) => c.verdict === 'error')).to.deep.equal([]);
      rmSync(path.join(tmp, 'reports'), { recursive: true, force: true });
      expect(held()).to.deep.equal(before);
      expect(readdirSync(tmp), 'left in TMPDIR').to.deep.equal([]);
      expect(boundSocketsUnder(tmp), 'sockets still bound').to.deep.equal([]);
    });
  }
});

describe('cleanup: the CLI stopped by a signal mid-run', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const code = signal === 'SIGINT' ? 130 : 143;
    // 50 ms: still starting (Node loading the CLI); then at two points of the run, seen on its stdout (a time
    // would fall before or after the run depending on the machine's load): launching and probing, and in
    // the middle of the traffic checks.
    const points: Array<{
      name: string;
      when: { interruptAfterMs: number } | { interruptOnStdout: RegExp };
    }> = [
      { name: '50 ms in', when: { interruptAfterMs: 50 } },
      { name: 'after its first check', when: { interruptOnStdout: /conv\.socket-path\.reply/ } },
      { name: 'during the traffic checks', when: { interruptOnStdout: /vring\.blk\.read-write/ } },
    ];
    for (const { name, when } of points) {
      it(`${signal} ${name}: exit ${code}, no process, socket or temp folder left`, async function () {
        this.timeout(60_000);
        const cli = await runCli(['--timeout', '2000', '--grep', GREP, fixture('vhu-reference')], {
          ...when,
          interruptSignal: signal,
          limitMs: 40_000,
        });
        if (cli.signal === signal) {
          // Before its handlers are in (Node still loading it), the CLI dies of the signal's default action:
          // it had started nothing, not even its report's first line.
          expect(cli.stdout, 'died of the signal once running').to.equal('');
          expect(cli.stderr).to.not.contain('stopping');
        } else {
          expect(cli.signal, 'killed at the limit').to.equal(undefined);
          expect(cli.stderr).to.contain(`${signal}: stopping`);
          expect(cli.exitCode, cli.stderr).to.equal(code);
          expect(cli.report?.summary.errors, 'harness faults in the stopped run').to.equal(0);
        }
        expect(cli.socketsLeft, 'sockets still bound under its TMPDIR').to.deep.equal([]);
        expectClean(cli);
      });
    }
  }
});

describe('cleanup: robust.fuzz stopped by a signal while its lanes and spares launch', () => {
  // virtiofsd takes one front-end and exits when it leaves: robust.fuzz runs it in several lanes at once, with
  // back-ends launched ahead. The signal comes as the check starts (the run's first line is out): launches
  // under way, some listening, some connected.
  const virtiofsd = '/usr/lib/qemu/virtiofsd';
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal}: exit ${signal === 'SIGINT' ? 130 : 143}, no process, socket or temp folder left`, async function () {
      this.timeout(60_000);
      if (!existsSync(virtiofsd))
        expect.fail(`${virtiofsd} is missing: install the Debian package qemu-system-common`);
      const source = mkdtempSync(path.join(os.tmpdir(), 'vhu-cleanup-virtiofs-'));
      try {
        const cli = await runCli(['--fuzz', '30', '--seed', '5', virtiofsd, '--', '-o', `source=${source}`], {
          interruptOnStdout: /1 check\n/,
          interruptSignal: signal,
          limitMs: 40_000,
        });
        expect(cli.signal, 'killed at the limit').to.equal(undefined);
        expect(cli.stderr).to.contain(`${signal}: stopping`);
        expect(cli.exitCode, cli.stderr).to.equal(signal === 'SIGINT' ? 130 : 143);
        expect(cli.socketsLeft, 'sockets still bound under its TMPDIR').to.deep.equal([]);
        expectClean(cli);
      } finally {
        rmSync(source, { recursive: true, force: true });
      }
    });
  }
});
