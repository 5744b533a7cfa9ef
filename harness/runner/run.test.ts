import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { BackendError } from '../errors.js';
import { closeFd, connectUnix, listenUnix } from '../sys/libc.js';
import { Connection } from '../transport/connection.js';
import { type Check, defineChecks } from './check.js';
import { runConformance, withPrerequisites } from './run.js';

/** Two checks, the second needing the first, which breaks a rule after saying its gate held or before. */
function gated(holdGate: boolean): Check[] {
  return defineChecks('vring', [
    {
      id: 'vring.gate',
      title: 'the gate',
      severity: 'MUST',
      spec: 'vhost-user.rst#ring-states',
      async run(ctx) {
        if (holdGate) ctx.gateHeld();
        throw new BackendError('used.len 9, more than the 8 writable bytes');
      },
    },
    {
      id: 'vring.after',
      title: 'needs the gate',
      severity: 'MUST',
      spec: 'vhost-user.rst#ring-states',
      needs: ['vring.gate'],
      async run() {
        return 'ran';
      },
    },
  ]);
}

describe('runConformance: checks that need another one', () => {
  let folder: string;
  let listener: number;
  let socket: string;
  // Attach mode, so that nothing is launched: the checks here connect to nothing.
  beforeEach(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'vhu-run-'));
    socket = path.join(folder, 'backend.sock');
    listener = listenUnix(socket);
  });
  afterEach(() => {
    closeFd(listener);
    rmSync(folder, { recursive: true, force: true });
  });

  const run = (checks: Check[]) =>
    runConformance({ connect: socket, type: 'block', checks, descriptorDirs: [], reportsDir: folder });

  it('skips a check whose prerequisite failed, naming it', async () => {
    const result = await run(gated(false));
    expect(result.checks.map((c) => [c.id, c.verdict])).to.deep.equal([
      ['vring.gate', 'fail'],
      ['vring.after', 'skip'],
    ]);
    expect(result.checks[1]!.message).to.equal('needs vring.gate, which did not pass (fail)');
  });

  it('runs the prerequisite --grep left out of a refusal check, so it gets the verdict of a full run', async () => {
    let needed: ReadonlyMap<string, string> | undefined;
    const checks = gated(false);
    checks[1]!.refusal = true;
    const result = await runConformance({
      connect: socket,
      type: 'block',
      checks,
      grep: '^vring\\.after$',
      descriptorDirs: [],
      reportsDir: folder,
      onStart: (_backend, _count, added) => {
        needed = added;
      },
    });
    expect(result.checks.map((c) => [c.id, c.verdict])).to.deep.equal([
      ['vring.gate', 'fail'],
      ['vring.after', 'skip'],
    ]);
    expect([...needed!]).to.deep.equal([['vring.gate', 'vring.after']]);
  });

  it('runs it when the prerequisite failed on a rule of its own after its gate held', async () => {
    const result = await run(gated(true));
    expect(result.checks.map((c) => [c.id, c.verdict, c.message])).to.deep.equal([
      ['vring.gate', 'fail', 'used.len 9, more than the 8 writable bytes'],
      ['vring.after', 'pass', 'ran'],
    ]);
  });

  it('with wireLog, gives each check the messages it sent, and its rule', async () => {
    const checks = defineChecks('proto', [
      {
        id: 'proto.talks',
        title: 'talks',
        severity: 'MUST',
        spec: 'vhost-user.rst#communication',
        rule: 'the sentence',
        async run() {
          const connection = Connection.fromFd(connectUnix(socket), 1000);
          try {
            await connection.send('GET_FEATURES');
            await connection.send('SET_OWNER', { needReply: true });
          } finally {
            connection.close();
          }
          throw new BackendError('no reply');
        },
      },
    ]);
    const result = await runConformance({
      connect: socket,
      type: 'block',
      checks,
      descriptorDirs: [],
      reportsDir: folder,
      wireLog: true,
    });
    const [check] = result.checks;
    expect(check!.rule).to.equal('the sentence');
    expect(check!.wire!.records.map((r) => [r.connection, r.direction, r.name, r.flags])).to.deep.equal([
      [1, '->', 'GET_FEATURES', 1],
      [1, '->', 'SET_OWNER', 9],
    ]);
    const plain = await run(checks);
    expect(plain.checks[0]!.wire).to.equal(undefined);
  });
});

describe('runConformance --jobs: the ordered lane', () => {
  let folder: string;
  beforeEach(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'vhu-run-'));
  });
  afterEach(() => rmSync(folder, { recursive: true, force: true }));

  /** Ordered-lane ring checks (no back-ends of their own), the third judging, logging their span. */
  function logging(events: string[]): Check[] {
    return defineChecks(
      'vring',
      ['vring.one', 'vring.two', 'vring.judge', 'vring.four', 'vring.five'].map((id) => ({
        id,
        title: id,
        severity: 'MUST' as const,
        spec: 'vhost-user.rst#ring-states',
        ...(id === 'vring.judge' ? { judgesLane: true } : {}),
        async run() {
          events.push(`start ${id}`);
          await sleep(30);
          events.push(`end ${id}`);
          return '';
        },
      })),
    );
  }
  // A binary that says nothing of itself: the type is given, and the checks here launch nothing.
  const run = (events: string[], extraArgs: string[]) =>
    runConformance({
      binary: '/bin/true',
      extraArgs,
      type: 'block',
      checks: logging(events),
      descriptorDirs: [],
      reportsDir: folder,
      jobs: 4,
    });

  it('side by side when nothing follows --, the judging check after those before it, before those after', async () => {
    const events: string[] = [];
    const result = await run(events, []);
    expect(result.checks.map((c) => c.verdict)).to.deep.equal(['pass', 'pass', 'pass', 'pass', 'pass']);
    const at = (event: string) => events.indexOf(event);
    expect(at('start vring.two')).to.be.below(at('end vring.one'));
    expect(at('start vring.judge')).to.be.above(Math.max(at('end vring.one'), at('end vring.two')));
    expect(Math.min(at('start vring.four'), at('start vring.five'))).to.be.above(at('end vring.judge'));
    expect(at('start vring.five')).to.be.below(at('end vring.four'));
  });

  it('one after the other when an argument follows -- (it may name a disk every launch opens)', async () => {
    const events: string[] = [];
    await run(events, ['--blk-file=/srv/disk.img']);
    const ids = ['vring.one', 'vring.two', 'vring.judge', 'vring.four', 'vring.five'];
    expect(events).to.deep.equal(ids.flatMap((id) => [`start ${id}`, `end ${id}`]));
  });
});

describe('withPrerequisites', () => {
  const check = (id: string, needs: string[] = [], refusal = false): Check =>
    defineChecks('vring', [
      {
        id,
        title: id,
        severity: 'MUST',
        spec: 'vhost-user.rst#ring-states',
        needs,
        refusal,
        run: async () => '',
      },
    ])[0]!;
  const all = [
    check('a.one'),
    check('a.two', ['a.one']),
    check('b.three', ['a.two'], true),
    check('b.four', ['a.one']),
  ];

  it('adds what a refusal check needs, transitively, in the order of all checks, naming who needs it', () => {
    const { checks, added } = withPrerequisites(all, [all[2]!]);
    expect(checks.map((c) => c.id)).to.deep.equal(['a.one', 'a.two', 'b.three']);
    expect([...added]).to.deep.equal([
      ['a.two', 'b.three'],
      ['a.one', 'b.three'],
    ]);
  });

  it('adds nothing for other checks, nor a need --skip names', () => {
    expect(withPrerequisites(all, [all[3]!]).checks.map((c) => c.id)).to.deep.equal(['b.four']);
    expect(withPrerequisites(all, [all[2]!], '^a\\.one$').checks.map((c) => c.id)).to.deep.equal([
      'a.two',
      'b.three',
    ]);
  });
});
