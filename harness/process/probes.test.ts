import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { SkipError } from '../errors.js';
import { makeContext, type Target } from '../runner/check.js';
import { closeFd, listenUnix } from '../sys/libc.js';
import { frontendConnection, markAttachedGone } from './probes.js';
import { Scope } from './scope.js';

function attachTarget(socket: string): Target {
  return {
    binary: '',
    connect: socket,
    extraArgs: [],
    type: 'block',
    capabilities: null,
    descriptorDirs: [],
    memo: new Map(),
    backendMemo: new Map(),
  };
}

describe('frontendConnection in attach mode', () => {
  let folder: string;
  let listener: number;
  let socket: string;
  beforeEach(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'vhu-probes-'));
    socket = path.join(folder, 'backend.sock');
    listener = listenUnix(socket);
  });
  afterEach(() => {
    closeFd(listener);
    rmSync(folder, { recursive: true, force: true });
  });

  it('connects to the socket given', async () => {
    const scope = new Scope();
    const ctx = makeContext(attachTarget(socket), 500, scope);
    const connection = await frontendConnection(ctx);
    expect(connection).to.not.equal(undefined);
    await scope.close();
  });

  it('skips every later check, saying why, once a check saw the back-end end', async () => {
    const target = attachTarget(socket);
    const first = new Scope();
    markAttachedGone(makeContext(target, 500, first), 'it stopped listening');
    await first.close();
    const scope = new Scope();
    const error = await frontendConnection(makeContext(target, 500, scope)).catch((err: unknown) => err);
    expect(error).to.be.instanceOf(SkipError);
    expect((error as Error).message).to.contain('it stopped listening');
    await scope.close();
  });

  it('keeps the back-end gone for the targets of the other profiles (their own memo, the same back-end)', async () => {
    const target = attachTarget(socket);
    const other: Target = { ...target, frontend: 'dpdk', memo: new Map() };
    const first = new Scope();
    markAttachedGone(makeContext(target, 500, first), 'it died of SIGSEGV');
    await first.close();
    const scope = new Scope();
    const error = await frontendConnection(makeContext(other, 500, scope)).catch((err: unknown) => err);
    expect(error).to.be.instanceOf(SkipError);
    expect((error as Error).message).to.contain('it died of SIGSEGV');
    await scope.close();
  });

  it('takes a refused connection for a back-end gone, at once, and says so to every later check', async () => {
    const target = attachTarget(socket);
    // The listener closes: the socket file stays, nothing listens (as after a crash).
    closeFd(listener);
    listener = listenUnix(path.join(folder, 'other.sock'));
    const scope = new Scope();
    // A SkipError, not a TimeoutError: no deadline is waited out.
    const error = await frontendConnection(makeContext(target, 2000, scope)).catch((err: unknown) => err);
    expect(error).to.be.instanceOf(SkipError);
    expect((error as Error).message).to.match(
      /gone \(nothing listens at .*backend\.sock any more: connect failed with ECONNREFUSED\)/,
    );
    await scope.close();
    const later = new Scope();
    const again = await frontendConnection(makeContext(target, 2000, later)).catch((err: unknown) => err);
    expect((again as Error).message).to.contain('ECONNREFUSED');
    await later.close();
  });
});
