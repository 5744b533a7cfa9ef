/**
 * `vhu-conform load`, a subcommand of the program (program.ts): keeps a block or net back-end's queues
 * full for a while, as a busy-polling front-end does, every completion judged, and prints the rate, the
 * latency percentiles and the CPU of both sides (or writes them as JSON). The engine is harness/load's.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { BackendError, TimeoutError, UsageError } from '../errors.js';
import { DEFAULT_PROFILE, PROFILES } from '../frontend/profiles.js';
import { type LoadDevice, type LoadReport, runLoad } from '../load/load.js';
import { LATENCY_BUCKETS } from '../load/plan.js';
import { killAllBackends } from '../process/backend.js';
import { printable } from '../runner/console.js';
import { expectWritableFile } from '../util/fs.js';
import { optionsOf, timeoutMs } from './arguments.js';
import { EXIT } from './exit.js';
import type { Interrupt } from './program.js';

interface LoadCliOptions {
  type: LoadDevice;
  connect?: string;
  duration: number;
  depth?: number;
  size?: number;
  json?: string;
  timeout: number;
  frontend: string;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 0x7fff_ffff)
    throw new InvalidArgumentError('expected a whole number above 0');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400)
    throw new InvalidArgumentError('expected a number of seconds above 0, at most a day');
  return n;
}

/** Adds `load` to `root`; its action hands `choose` the work, as the other subcommands do. */
export function addLoadCommand(
  root: Command,
  choose: (work: (interrupt: Interrupt) => Promise<number>) => void,
): void {
  const load = root
    .command('load')
    .description(
      'keep a block or net back-end busy for a while, as a busy-polling front-end would, every completion checked: rate, latency, CPU',
    )
    .argument('[backend]', 'back-end binary to launch (or --connect)')
    .argument('[args...]', 'extra arguments for the back-end, after --')
    .addOption(new Option('--type <device>', 'device type').choices(['block', 'net']).makeOptionMandatory())
    .option('--connect <socket>', 'load a back-end someone else started, listening at this socket')
    .option('--duration <seconds>', 'how long the queues are kept full', seconds, 5)
    .option(
      '--depth <n>',
      'requests (block, up to 85) or frames (net, up to 256) in flight (default 64 block, 256 net)',
      positiveInteger,
    )
    .option(
      '--size <bytes>',
      'bytes a block read takes (whole sectors, default 4096) or of a net frame (60 to 1514, default 60)',
      positiveInteger,
    )
    .option('--json <file>', 'also write the results as JSON to <file> (- for stdout, instead of the text)')
    .option(
      '--timeout <ms>',
      'deadline for each message, and for a back-end to complete something',
      timeoutMs,
      10_000,
    )
    .option(
      '--frontend <name>',
      `front-end profile the device is started with: ${PROFILES.map((p) => p.name).join(', ')}`,
      DEFAULT_PROFILE,
    )
    .addHelpText(
      'after',
      `
Block: 4 KiB reads (VIRTIO_BLK_T_IN) spread over the disk's first 64 places; each must return status OK,
a used.len no larger than what was written, the header untouched, and the same bytes as the first read
of the same sectors. Net: test frames sent on transmitq1 and looped back to receiveq1 by the back-end
(dpdk-testpmd in io forwarding, the bundled vhu-reference-net); each must come back in order, byte for
byte, with used.len the header and the frame; a transmit buffer's used.len must be 0.
The rings are polled from a worker thread; EVENT_IDX is negotiated where offered and used_event kept
behind (else VIRTQ_AVAIL_F_NO_INTERRUPT), and a kick goes only where avail_event (or the flags) asks.

Examples:
  vhu-conform load --type block --duration 10 fixtures/bin/vhu-reference
  vhu-conform load --type net --connect /tmp/testpmd/net.sock --size 60 --json -

Exit status: ${EXIT.ok} the load ran and every completion was right; ${EXIT.mustFailed} a completion was wrong, or the back-end
stopped completing or went away (the message names it); ${EXIT.usageOrHarness} usage error or harness fault.
`,
    );
  load.action(() =>
    choose(async (interrupt) => {
      const [backend, extraArgs = []] = load.processedArgs as [string | undefined, string[] | undefined];
      const { opts } = optionsOf<LoadCliOptions>(load);
      interrupt.onStop = killAllBackends;
      return loadCommand(backend, extraArgs, opts, interrupt);
    }),
  );
}

async function loadCommand(
  backend: string | undefined,
  extraArgs: string[],
  opts: LoadCliOptions,
  interrupt: Interrupt,
): Promise<number> {
  if (opts.connect !== undefined && backend !== undefined)
    throw new UsageError('--connect loads a running back-end: name no binary with it');
  if (opts.connect === undefined && backend === undefined)
    throw new UsageError('name the back-end binary to launch, or --connect <socket>');
  const json = opts.json === undefined || opts.json === '-' ? opts.json : path.resolve(opts.json);
  if (json !== undefined && json !== '-')
    await expectWritableFile(json).catch((err: Error) => {
      throw new UsageError(`--json ${json}: cannot write there: ${err.message}`);
    });
  let report: LoadReport;
  try {
    report = await runLoad({
      type: opts.type,
      ...(backend === undefined ? {} : { binary: path.resolve(backend) }),
      ...(opts.connect === undefined ? {} : { connect: opts.connect }),
      extraArgs,
      durationMs: opts.duration * 1000,
      ...(opts.depth === undefined ? {} : { depth: opts.depth }),
      ...(opts.size === undefined ? {} : { bytes: opts.size }),
      timeoutMs: opts.timeout,
      frontend: opts.frontend,
      signal: interrupt.controller.signal,
    });
  } catch (err) {
    if (interrupt.controller.signal.aborted) return interrupt.stoppedWith;
    if (!(err instanceof BackendError || err instanceof TimeoutError)) throw err;
    process.stderr.write(`vhu-conform: load: ${printable(err.message)}\n`);
    return EXIT.mustFailed;
  }
  const text = JSON.stringify(report, null, 2);
  if (json === '-') process.stdout.write(`${text}\n`);
  else {
    process.stdout.write(formatLoad(report));
    if (json !== undefined) {
      await writeFile(json, `${text}\n`);
      process.stdout.write(`wrote ${json}\n`);
    }
  }
  return EXIT.ok;
}

/** The report for people: what ran, then the rate, the latency, the notifications and the CPU. */
export function formatLoad(r: LoadReport): string {
  const unit = r.unit === 'frames' ? 'frame' : 'request';
  // The histogram's last bucket holds everything from LATENCY_BUCKETS us on.
  const us = (v: number) => (v >= LATENCY_BUCKETS ? `${LATENCY_BUCKETS}+ us` : `${v} us`);
  const l = r.latencyUs;
  const n = (x: number) => x.toLocaleString('en-US');
  const what =
    r.type === 'net'
      ? `${r.bytes}-byte frames looped back`
      : `${r.bytes / 1024} KiB reads`.replace('.00', '');
  const cpu =
    r.backendCpuPercent === null
      ? 'back-end CPU unknown (its process is not visible)'
      : `back-end ${r.backendCpuPercent}% (pid ${r.backendPid})`;
  return [
    `load: ${r.type} ${printable(r.backend)}: ${what}, ${r.depth} in flight, for ${(r.elapsedMs / 1000).toFixed(1)} s (rings polled, notifications suppressed with ${r.eventIdx ? 'EVENT_IDX' : 'the ring flags'})`,
    `  ${n(r.perSecond)} ${r.unit}/s: ${n(r.completed)} ${r.unit}, every one checked`,
    `  latency (post to completion): p50 ${us(l.p50)}, p90 ${us(l.p90)}, p99 ${us(l.p99)}, p99.9 ${us(l.p999)}, max ${us(l.max)}`,
    `  notifications: ${n(r.kicks)} kicks (${(r.kicks / Math.max(1, r.completed)).toFixed(3)} a ${unit}), ${n(r.calls)} calls`,
    `  CPU, share of one core: harness ${r.harnessCpuPercent}%, ${cpu}; the harness's own work a ${unit}, polling aside: ${r.harnessUsPer} us`,
    '',
  ].join('\n');
}
