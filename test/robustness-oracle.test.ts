/**
 * The crash and hang oracle (suites/robustness/oracle.ts) against tiny back-ends written here, one behaviour
 * each: it answers, closes, exits, aborts, panics, or stops reading. Each must get the verdict its behaviour
 * earns, whatever the bad input was.
 */
import { spawn } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import { BackendError, TimeoutError } from '../harness/errors.js';
import { frontendConnection } from '../harness/process/probes.js';
import { isListeningAt } from '../harness/process/procfs.js';
import { Scope } from '../harness/process/scope.js';
import { type CheckContext, makeContext, type Target } from '../harness/runner/check.js';
import { KeptBackends } from '../suites/robustness/kept.js';
import { describeGrowth, growthOf, leaksOf, parseVmRss } from '../suites/robustness/leaks.js';
import {
  type BadInput,
  crashReport,
  freshSubject,
  judgeInput,
  outcomeAfter,
  type Subject,
  summarize,
  tryInputs,
} from '../suites/robustness/oracle.js';

/**
 * A vhost-user "back-end" in 50 lines of node:net: answers GET_FEATURES; on any other request does what
 * --mode says (answer: ignores it; close; exit: exit status 3; abort; panic: a Rust panic message, status
 * 101; traceback: a Python traceback, status 1; go-panic: a Go panic, status 2; clean-exit: one line saying
 * why, status 1; hang: stops reading).
 */
const FAKE = `#!/usr/bin/env node
const net = require('node:net');
const arg = (name) => process.argv.find((a) => a.startsWith('--' + name + '='))?.split('=')[1];
const mode = arg('mode');
const server = net.createServer((socket) => {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 12) {
      const request = buffered.readUInt32LE(0);
      const size = buffered.readUInt32LE(8);
      if (request !== 1) {
        if (mode === 'close') return socket.destroy();
        if (mode === 'exit') process.exit(3);
        if (mode === 'abort') process.abort();
        if (mode === 'panic') {
          process.stderr.write("thread 'main' panicked at src/main.rs:7:5:\\nattempt to subtract with overflow\\n");
          process.exit(101);
        }
        if (mode === 'hang') return socket.pause();
        if (mode === 'traceback') {
          process.stderr.write('Traceback (most recent call last):\\n  File "/opt/fake.py", line 9, in handle\\n    raise ValueError("bad version")\\nValueError: bad version\\n');
          process.exit(1);
        }
        if (mode === 'go-panic') {
          process.stderr.write('panic: bad version\\n\\ngoroutine 6 [running]:\\nmain.handle(...)\\n\\t/src/fake.go:9 +0x1d\\n');
          process.exit(2);
        }
        if (mode === 'clean-exit') {
          process.stderr.write('fake: invalid message, disconnecting\\n');
          process.exit(1);
        }
      }
      if (buffered.length < 12 + size) return;
      buffered = buffered.subarray(12 + size);
      if (request === 1) {
        const reply = Buffer.alloc(20);
        reply.writeUInt32LE(1, 0);
        reply.writeUInt32LE(5, 4);
        reply.writeUInt32LE(8, 8);
        socket.write(reply);
      }
    }
  });
  socket.on('error', () => {});
});
server.listen(arg('socket-path'));
process.on('SIGTERM', () => process.exit(0));
`;

/** SET_OWNER with a version of 2: the bad input every fake gets. */
const BAD = Buffer.from('030000000200000000000000', 'hex');

describe('robustness oracle', function () {
  this.timeout(30_000);
  let tmp: { path: string; cleanup: () => Promise<void> };
  let binary: string;
  const scopes: Scope[] = [];

  before(async () => {
    tmp = await dir({ prefix: 'vhu-oracle-', unsafeCleanup: true });
    binary = path.join(tmp.path, 'fake-backend');
    await writeFile(binary, FAKE);
    await chmod(binary, 0o755);
  });
  afterEach(async () => {
    for (const scope of scopes.splice(0)) expect(await scope.close()).to.deep.equal([]);
  });
  after(() => tmp.cleanup());

  function context(mode: string, connect: string | null = null, timeoutMs = 1500): CheckContext {
    const target: Target = {
      binary,
      connect,
      extraArgs: [`--mode=${mode}`],
      type: null,
      capabilities: null,
      descriptorDirs: [],
      memo: new Map(),
      backendMemo: new Map(),
    };
    const scope = new Scope();
    scopes.push(scope);
    return makeContext(target, timeoutMs, scope);
  }

  async function afterBadInput(ctx: CheckContext) {
    const subject = await freshSubject(ctx);
    expect(subject.pid).to.equal(subject.backend?.pid);
    await subject.session.connection.sendRaw(BAD, [], 'SET_OWNER version 2').catch(() => undefined);
    return outcomeAfter(ctx, subject, 'SET_OWNER version 2');
  }

  it('a back-end that answers the next request: answered', async () => {
    expect(await afterBadInput(context('answer'))).to.equal('answered');
  });

  it('a back-end that closes the connection, or exits with a status: closed', async () => {
    expect(await afterBadInput(context('close'))).to.equal('closed');
    expect(await afterBadInput(context('exit'))).to.equal('closed');
  });

  it('a back-end that aborts: a failure naming the input and the signal', async () => {
    const err = await afterBadInput(context('abort')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(/crashed after SET_OWNER version 2: killed by SIGABRT/);
  });

  it('a back-end that panics (status 101, a panic on stderr): a failure quoting it', async () => {
    const err = await afterBadInput(context('panic')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(
      /a Rust panic on stderr: "thread 'main' panicked at src\/main.rs/,
    );
  });

  it('a back-end that dies of an uncaught error (a non-zero status, a traceback or panic on stderr): a failure quoting it', async () => {
    const traceback = await afterBadInput(context('traceback')).catch((e: unknown) => e);
    expect(traceback).to.be.instanceOf(BackendError);
    expect((traceback as Error).message).to.equal(
      'it crashed after SET_OWNER version 2: a Python traceback on stderr: "Traceback (most recent call last):" ... "ValueError: bad version"; exit status 1',
    );
    const panic = await afterBadInput(context('go-panic')).catch((e: unknown) => e);
    expect(panic).to.be.instanceOf(BackendError);
    expect((panic as Error).message).to.equal(
      'it crashed after SET_OWNER version 2: a Go panic on stderr: "panic: bad version"; exit status 2',
    );
  });

  it('a back-end that exits 1 with one line saying why: closed, allowed, and the fact says how it ended', async () => {
    expect(await afterBadInput(context('clean-exit'))).to.equal('closed');
    const fact = await tryInputs(context('clean-exit'), [
      { input: 'a bad SET_OWNER', send: (s) => s.session.connection.sendRaw(BAD) },
    ]);
    expect(fact).to.equal(
      '0 of 1 inputs answered; closed the connection after: a bad SET_OWNER. a bad SET_OWNER: it then ended: exit status 1; stderr: "fake: invalid message, disconnecting", no crash on stderr',
    );
  });

  it('a connection to a launched back-end that dies says how it died, not only that it closed', async () => {
    const ctx = context('abort');
    const subject = await freshSubject(ctx);
    await subject.session.connection.sendRaw(BAD).catch(() => undefined);
    const err = await subject.session.connection.nextFrame('anything').catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(
      /^the back-end closed the connection: it died \(killed by SIGABRT; (nothing on stderr|stderr: ".*")\)$/,
    );
    const exits = await freshSubject(context('clean-exit'));
    await exits.session.connection.sendRaw(BAD).catch(() => undefined);
    const exited = await exits.session.connection.nextFrame('anything').catch((e: unknown) => e);
    expect((exited as Error).message).to.equal(
      'the back-end closed the connection: it exited (exit status 1; stderr: "fake: invalid message, disconnecting")',
    );
  });

  it('a back-end that stops reading: a timeout saying it hung', async () => {
    const err = await afterBadInput(context('hang')).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
    expect((err as Error).message).to.match(/after SET_OWNER version 2: it hung/);
  });

  it('tries inputs each on a fresh back-end and sums them up', async () => {
    const ctx = context('close');
    const fact = await tryInputs(ctx, [
      { input: 'GET_FEATURES', send: (s) => s.session.connection.sendRaw(BAD.subarray(0, 0)) },
      { input: 'a bad SET_OWNER', send: (s) => s.session.connection.sendRaw(BAD) },
    ]);
    expect(fact).to.equal('1 of 2 inputs answered; closed the connection after: a bad SET_OWNER');
    // Each subject was ended once judged.
    expect(ctx.launched.every((b) => !b.alive)).to.equal(true);
    expect(summarize([{ input: 'x', outcome: 'answered' }])).to.equal('1 of 1 inputs answered');
  });

  it('tries inputs a few at once with an attempt of its own: the fact in input order, every failure named', async () => {
    const ctx = context('close');
    let running = 0;
    let most = 0;
    const attempt = async ({ input, fails }: { input: string; fails: boolean }) => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      if (fails) throw new BackendError(`it crashed after ${input}`);
      return { outcome: 'answered' as const, line: `${input}: fine` };
    };
    const inputs = ['a', 'b', 'c', 'd', 'e'].map((input) => ({ input, fails: false }));
    expect(await tryInputs(ctx, inputs, { parallel: 3, attempt })).to.equal(
      '5 of 5 inputs answered. a: fine; b: fine; c: fine; d: fine; e: fine',
    );
    expect(most).to.equal(3);
    const err = await tryInputs(ctx, [...inputs, { input: 'f', fails: true }], {
      parallel: 3,
      attempt,
    }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.equal('it crashed after f (5 of 5 inputs answered)');
  });

  it('keeps a back-end that serves a new connection from input to input; one that crashes is launched again for each', async () => {
    const inputs = ['first', 'second', 'third'].map((input) => ({
      input,
      send: (s: Subject) => s.session.connection.sendRaw(BAD),
    }));
    const tryOn = (ctx: CheckContext) => {
      const backends = new KeptBackends<BadInput>(ctx, (subject, input) => judgeInput(ctx, subject, input));
      return tryInputs(ctx, inputs, { attempt: backends.attempt }).finally(() => backends.close());
    };
    // It closes the connection on each and keeps listening: one launch, each input on a new connection.
    const closes = context('close');
    expect(await tryOn(closes)).to.equal(
      '0 of 3 inputs answered; closed the connection after: first, second, third',
    );
    expect(closes.launched).to.have.length(1);
    expect(closes.launched.every((b) => !b.alive)).to.equal(true);
    // Each crash is the first input of its launch: counted as a fresh back-end's, and the next gets a launch.
    const aborts = context('abort');
    const err = await tryOn(aborts).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(BackendError);
    expect((err as Error).message).to.match(
      /^it crashed after first: killed by SIGABRT.*; it crashed after third: killed by SIGABRT/,
    );
    expect(aborts.launched).to.have.length(3);
  });

  it('attach mode: finds the daemon by its socket, and fails a daemon that ends, then skips', async () => {
    const socket = path.join(tmp.path, 'attach.sock');
    const daemon = spawn(binary, [`--socket-path=${socket}`, '--mode=exit'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 400 && !isListeningAt(socket); i++) await new Promise((r) => setTimeout(r, 5));
      const ctx = context('exit', socket);
      const subject = await freshSubject(ctx);
      expect(subject.backend).to.equal(null);
      expect(subject.pid).to.equal(daemon.pid);
      await subject.session.connection.sendRaw(BAD).catch(() => undefined);
      const err = await outcomeAfter(ctx, subject, 'a bad SET_OWNER').catch((e: unknown) => e);
      expect(err).to.be.instanceOf(BackendError);
      expect((err as Error).message).to.match(/attached back-end \(pid \d+\) ended after a bad SET_OWNER/);
      const next = await frontendConnection(ctx).catch((e: unknown) => e);
      expect((next as Error).message).to.match(/the attached back-end is gone/);
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});

describe('robustness leak figures', () => {
  const samples = (fds: (i: number) => number, rss: (i: number) => number) =>
    Array.from({ length: 64 }, (_, i) => ({ fds: fds(i), rssKb: rss(i) }));

  it('reads VmRSS from /proc/PID/status', () => {
    expect(parseVmRss('Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t  8848 kB\nRssAnon:\t 100 kB\n')).to.equal(8848);
    expect(parseVmRss('Name:\tx\n')).to.equal(undefined);
  });

  it('finds one fd leaked per iteration, and not a garbage collector sawing up and down', () => {
    const leak = growthOf(
      'fd replacement',
      samples(
        (i) => 20 + i,
        () => 5000,
      ),
    );
    expect(leaksOf(leak)).to.deep.equal(['56 more fds open after 56 more iterations of fd replacement']);
    expect(describeGrowth(leak)).to.equal(
      'fd replacement: fds 20 -> 76 (+1.00/iteration), VmRSS 5000 -> 5000 KiB (+0.0 KiB/iteration)',
    );
    const sawing = growthOf(
      'set-up',
      samples(
        (i) => 20 + (i % 3),
        (i) => 5000 + (i % 8) * 4000,
      ),
    );
    expect(leaksOf(sawing)).to.deep.equal([]);
    const growing = growthOf(
      'set-up',
      samples(
        () => 20,
        (i) => 5000 + i * 200,
      ),
    );
    expect(leaksOf(growing)).to.deep.equal([
      'VmRSS grew by 200.0 KiB per iteration of set-up (bound 128 KiB)',
    ]);
  });

  it('names the crash reports it knows on stderr', () => {
    expect(crashReport('==12==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1')).to.match(
      /^a sanitizer report/,
    );
    expect(crashReport('vq.c:7:3: runtime error: index 1024 out of bounds')).to.match(
      /UndefinedBehaviorSanitizer/,
    );
    expect(
      crashReport("virtiofsd: fuse_virtio.c:793: fv_queue_set_started: Assertion `kick_fd == -1' failed.\n"),
    ).to.match(/^a failed assertion on stderr: "virtiofsd: fuse_virtio.c:793/);
    expect(crashReport('all is well\n')).to.equal(undefined);
  });
});
