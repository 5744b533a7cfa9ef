/**
 * Back-ends that attack the harness itself (fixtures/bin/vhu-hostile-*, fixtures/backend/hostile.ts): each
 * gets a verdict naming the cause, exit status 1, in bounded time and bounded harness memory, and the run
 * leaves nothing behind.
 */
import { expect } from 'chai';
import { type CliRun, expectClean, fixture, messageOf, runCli } from './helpers.js';

const LIMIT_MS = 60_000;
/** Each run's checks end within this (their deadlines are 1 s): the attack must not stretch them. */
const RUN_MS = 20_000;
/** Peak RSS of the CLI (VmHWM included): a Node process runs in well under this, whatever the attack. */
const MEMORY_LIMIT_KB = 200 * 1024;

const CONTROL = 'conv.socket-path|proto.reply.get-protocol-features';

const HOSTILE: Array<{ name: string; grep: string; check: string; cause: RegExp }> = [
  {
    name: 'flood',
    grep: CONTROL,
    check: 'conv.socket-path.reply',
    cause: /malformed reply to GET_FEATURES: request id \d+|more messages than were asked for/,
  },
  {
    name: 'huge-payload',
    grep: CONTROL,
    check: 'conv.socket-path.reply',
    cause: /announces a 4294967295-byte payload/,
  },
  {
    name: 'many-fds',
    grep: CONTROL,
    check: 'conv.socket-path.reply',
    cause: /fds came with the bytes of one message, more than the 8|more than 8 fds/,
  },
  {
    name: 'used-ring',
    grep: 'vring.blk.read-write',
    check: 'vring.blk.read-write',
    cause: /used\.idx advanced by \d+|used\.ring\[\d+\]/,
  },
];

describe('hostile back-ends: the harness keeps its footing', () => {
  for (const { name, grep, check, cause } of HOSTILE) {
    describe(`vhu-hostile-${name}`, function () {
      this.timeout(LIMIT_MS + 10_000);
      let run: CliRun;
      before(async () => {
        run = await runCli(['--timeout', '1000', '--grep', grep, fixture(`vhu-hostile-${name}`)], {
          limitMs: LIMIT_MS,
          memoryPollMs: 50,
        });
      });

      it(`fails ${check} naming the cause, exit status 1`, () => {
        expect(run.signal, 'killed at the limit').to.equal(undefined);
        expect(run.exitCode, run.stderr).to.equal(1);
        const result = run.report?.checks.find((c) => c.id === check);
        expect(result?.verdict, messageOf(run.report, check)).to.equal('fail');
        expect(messageOf(run.report, check)).to.match(cause);
        expect(run.report?.summary.errors, 'harness faults').to.equal(0);
      });

      it(`ends within ${RUN_MS / 1000} s, with the harness under ${MEMORY_LIMIT_KB / 1024} MiB`, () => {
        expect(run.durationMs).to.be.below(RUN_MS);
        expect(run.peakRssKb, 'no /proc/PID/status sample of the CLI').to.be.a('number');
        expect(run.peakRssKb, 'peak RSS of the CLI in KiB').to.be.below(MEMORY_LIMIT_KB);
      });

      it('leaves no process and no temp file', () => {
        expectClean(run);
      });
    });
  }
});
