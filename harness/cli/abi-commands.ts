/**
 * `vhu-conform abi` and `vhu-conform compat`, subcommands of the program (program.ts): options and operands ->
 * guest-ABI fingerprint or verdict -> exit code; the work is harness/abi/'s.
 */
import { readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { commonMode, formatCommonMode } from '../abi/common.js';
import { compareAbi } from '../abi/compat.js';
import { type AbiFingerprint, parseAbi, stableJson } from '../abi/format.js';
import { type AbiTarget, RING_PROBES, type RingProbe, takeFingerprint } from '../abi/probe.js';
import { UsageError } from '../errors.js';
import { DEFAULT_PROFILE, PROFILES, profileNamed } from '../frontend/profiles.js';
import { adoptOrphans, killAllBackends, sweepOrphans } from '../process/backend.js';
import { Scope } from '../process/scope.js';
import { DEFAULT_TIMEOUT_MS } from '../runner/run.js';
import { BACKEND_TYPES } from '../schemas/vhost-user.js';
import { expectWritableFile } from '../util/fs.js';
import { timeoutMs } from './arguments.js';
import { EXIT } from './exit.js';
import type { Interrupt } from './program.js';

const typeOption = () =>
  new Option('--type <device>', 'device type (default: what --print-capabilities reports)').choices(
    BACKEND_TYPES,
  );
const timeoutOption = () =>
  new Option('--timeout <ms>', 'deadline for each wait on a back-end')
    .argParser(timeoutMs)
    .default(DEFAULT_TIMEOUT_MS);

/**
 * The argument lists after each `--` of a subcommand. Commander ends option parsing at the first `--` and
 * hands everything after it over as operands, later `--` included: the last `tail` operands are those lists,
 * split at each later `--`; the ones before are the subcommand's own.
 */
function argumentLists(operands: string[], rawArgs: string[]): { own: string[]; groups: string[][] } {
  const at = rawArgs.indexOf('--');
  const tail = at < 0 ? 0 : Math.min(rawArgs.length - at - 1, operands.length);
  const groups: string[][] = at < 0 ? [] : [[]];
  for (const arg of operands.slice(operands.length - tail)) {
    if (arg === '--') groups.push([]);
    else groups[groups.length - 1]!.push(arg);
  }
  return { own: operands.slice(0, operands.length - tail), groups };
}

/** A run cut short by SIGINT or SIGTERM: whatever failed after the signal is its consequence, not news. */
class Interrupted extends Error {}

/** Runs `work` with a scope of its own, and ends whatever it launched on every path and on a signal. */
async function withScope<T>(interrupt: Interrupt, work: (scope: Scope) => Promise<T>): Promise<T> {
  adoptOrphans();
  interrupt.onStop = killAllBackends;
  const scope = new Scope();
  try {
    const value = await work(scope);
    if (interrupt.controller.signal.aborted) throw new Interrupted();
    return value;
  } catch (err) {
    throw interrupt.controller.signal.aborted ? new Interrupted() : err;
  } finally {
    const problems = await scope.close();
    sweepOrphans();
    for (const p of problems) process.stderr.write(`vhu-conform: cleanup: ${p}\n`);
  }
}

const ABI_HELP = `
Writes the back-end's guest-ABI fingerprint as JSON (format vhu-conform-abi, JSON Schema
harness/schemas/abi.schema.json): features and protocol features offered, queue count, the largest ring
size each queue accepts, memory slots, the config space, and what each front-end profile negotiates.
The same back-end and options give the same bytes.

Examples:
  vhu-conform abi /usr/lib/qemu/vhost-user-gpu --out gpu.json
  vhu-conform abi --connect /run/blk.sock --type block
  vhu-conform abi --ring-probe request --connect /run/blk.sock --type block
`;

/** `abi`: the fingerprint of the back-end `cmd` names, on stdout or in --out. */
async function abi(cmd: Command, argv: string[], interrupt: Interrupt): Promise<number> {
  const { own, groups } = argumentLists(cmd.processedArgs[0] as string[], argv);
  if (own.length > 1) throw new UsageError(`abi: one back-end, not also ${own.slice(1).join(' ')}`);
  if (groups.length > 1) throw new UsageError('abi: one back-end, so one -- with its arguments');
  const opts = cmd.opts<{
    connect?: string;
    type?: string;
    timeout: number;
    out?: string;
    ringProbe: RingProbe;
  }>();
  const binary = own[0];
  if ((binary === undefined) === (opts.connect === undefined))
    throw new UsageError('abi: name a back-end binary or --connect <socket>, not both');
  if (opts.connect !== undefined && groups.length)
    throw new UsageError('abi: --connect attaches to a running back-end: it takes no arguments after --');
  const out = opts.out === undefined ? undefined : path.resolve(opts.out);
  if (out !== undefined)
    await expectWritableFile(out).catch((err: Error) => {
      throw new UsageError(`--out ${out}: cannot write there: ${err.message}`);
    });
  const target: AbiTarget = {
    ...(opts.connect !== undefined
      ? { connect: opts.connect }
      : { binary: binary!, extraArgs: groups[0] ?? [] }),
    ...(opts.type ? { type: opts.type } : {}),
    timeoutMs: opts.timeout,
    signal: interrupt.controller.signal,
    ringProbe: opts.ringProbe,
  };
  const abi = await withScope(interrupt, (scope) => takeFingerprint(target, scope));
  const text = stableJson(abi);
  if (out === undefined) process.stdout.write(text);
  else await writeFile(out, text);
  return EXIT.ok;
}

const COMPAT_HELP = `
Each side is an ABI file (written by vhu-conform abi) or a back-end binary, launched and probed; its
arguments follow a -- (the source's, then a second -- for the destination's; one -- gives both binaries
the same). --source-connect / --destination-connect attach to a running back-end instead (with --type).

Exit status:
  ${EXIT.ok}  compatible: a guest started against the source can move to the destination
  ${EXIT.mustFailed}  not compatible: each reason on a line of its own
  ${EXIT.usageOrHarness}  usage error (bad option, missing binary, nothing listening, not an ABI file,
     different device types) or a harness fault; the cause is on stderr

Examples:
  vhu-conform compat host-a.json host-b.json
  vhu-conform compat host-a.json /usr/lib/qemu/vhost-user-gpu --json
  vhu-conform compat --common host-a.json host-b.json host-c.json
`;

/** An ABI file's fingerprint; the file's faults are usage errors naming it. */
function readAbiFile(file: string): AbiFingerprint {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return parseAbi(text, file);
}

/** Whether `file` is to be read as an ABI file rather than launched: named *.json, or not executable. */
function isAbiFile(file: string): boolean {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new UsageError(`${file}: no such ABI file or back-end binary`);
  }
  return file.endsWith('.json') || (mode & 0o111) === 0;
}

interface CompatOptions {
  frontend: string;
  json?: boolean;
  common?: boolean;
  type?: string;
  timeout: number;
  sourceConnect?: string;
  destinationConnect?: string;
}

/** `compat`: whether the two sides `cmd` names are compatible, or (--common) the mode of the ABI files. */
async function compat(cmd: Command, argv: string[], interrupt: Interrupt): Promise<number> {
  const { own: operands, groups } = argumentLists(cmd.processedArgs[0] as string[], argv);
  const opts = cmd.opts<CompatOptions>();
  profileNamed(opts.frontend);

  if (opts.common) {
    if (opts.sourceConnect || opts.destinationConnect || groups.length)
      throw new UsageError('compat --common compares ABI files only (write them with vhu-conform abi)');
    const mode = commonMode(
      operands.map((name) => ({ name, abi: readAbiFile(name) })),
      opts.frontend,
    );
    process.stdout.write(opts.json ? stableJson(mode) : formatCommonMode(mode));
    return EXIT.ok;
  }

  const sides: Array<{ name: string; connect?: string; file?: string }> = [];
  const queue = [...operands];
  for (const [side, connect] of [
    ['source', opts.sourceConnect],
    ['destination', opts.destinationConnect],
  ] as const) {
    if (connect !== undefined) sides.push({ name: connect, connect });
    else {
      const file = queue.shift();
      if (file === undefined)
        throw new UsageError(`compat: name the ${side} (an ABI file or a back-end binary)`);
      sides.push({ name: file, file });
    }
  }
  if (queue.length)
    throw new UsageError(`compat: one source and one destination, not also ${queue.join(' ')}`);
  const launched = sides.filter((s) => s.file !== undefined && !isAbiFile(s.file));
  if (groups.length > Math.max(launched.length, 1) || (groups.length && !launched.length))
    throw new UsageError(
      `compat: ${groups.length} argument lists after -- for ${launched.length} back-end binaries`,
    );
  const argsFor = (i: number) => (groups.length === 1 ? groups[0]! : (groups[i] ?? []));

  const [source, destination] = await withScope(interrupt, async (scope) => {
    const abis: AbiFingerprint[] = [];
    for (const side of sides) {
      if (side.connect !== undefined) {
        if (!opts.type)
          throw new UsageError(`--${side === sides[0] ? 'source' : 'destination'}-connect needs --type`);
        abis.push(
          await takeFingerprint(
            {
              connect: side.connect,
              type: opts.type,
              timeoutMs: opts.timeout,
              signal: interrupt.controller.signal,
            },
            scope,
          ),
        );
      } else if (launched.includes(side)) {
        abis.push(
          await takeFingerprint(
            {
              binary: side.file!,
              extraArgs: argsFor(launched.indexOf(side)),
              ...(opts.type ? { type: opts.type } : {}),
              timeoutMs: opts.timeout,
              signal: interrupt.controller.signal,
            },
            scope,
          ),
        );
      } else abis.push(readAbiFile(side.file!));
    }
    return abis as [AbiFingerprint, AbiFingerprint];
  });
  const result = compareAbi(source, destination, opts.frontend, {
    source: sides[0]!.name,
    destination: sides[1]!.name,
  });
  if (opts.json) {
    process.stdout.write(stableJson({ source: sides[0]!.name, destination: sides[1]!.name, ...result }));
  } else {
    process.stdout.write(
      result.compatible
        ? `compatible: a guest started against ${sides[0]!.name} under the ${opts.frontend} profile can move to ${sides[1]!.name}\n`
        : `not compatible: a guest started against ${sides[0]!.name} under the ${opts.frontend} profile cannot move to ${sides[1]!.name}:\n`,
    );
    for (const reason of result.reasons) process.stdout.write(`${reason}\n`);
    for (const note of result.notes) process.stdout.write(`note: ${note}\n`);
  }
  return result.compatible ? EXIT.ok : EXIT.mustFailed;
}

/** Runs a subcommand's work; a signal's consequences are the signal's exit status, not errors. */
async function interruptible(interrupt: Interrupt, work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof Interrupted) return interrupt.stoppedWith;
    throw err;
  }
}

/**
 * Adds `abi` and `compat` to the program; each action hands its work to `choose`. `argv` is the whole
 * command line, for the argument lists after each `--` (argumentLists).
 */
export function addAbiCommands(
  root: Command,
  argv: string[],
  choose: (work: (interrupt: Interrupt) => Promise<number>) => void,
): void {
  const abiCmd = root
    .command('abi')
    .description("the back-end's guest-ABI fingerprint, as JSON")
    .argument('[backend...]', 'back-end binary to launch, then -- and its arguments')
    .option('--connect <socket>', 'attach to a back-end someone else started (needs --type)')
    .addOption(typeOption())
    .addOption(timeoutOption())
    .option('--out <file>', 'write the fingerprint there instead of stdout')
    .addOption(
      new Option(
        '--ring-probe <method>',
        'how ring sizes are found: auto (REPLY_ACK where offered, else by moving a request through each size), request (always by use) or reply-ack (only by REPLY_ACK)',
      )
        .choices(RING_PROBES)
        .default('auto'),
    )
    .addHelpText('after', ABI_HELP)
    .action(() => choose((interrupt) => interruptible(interrupt, () => abi(abiCmd, argv, interrupt))));
  const compatCmd = root
    .command('compat')
    .description('whether a guest started against <source> can move to <destination> without renegotiation')
    .argument(
      '[sides...]',
      'source and destination: ABI files or back-end binaries (with --common: ABI files), then -- and arguments',
    )
    .option(
      '--frontend <name>',
      `front-end profile the guest was started under: ${PROFILES.map((p) => p.name).join(', ')}`,
      DEFAULT_PROFILE,
    )
    .option('--json', 'the verdict as JSON')
    .option('--common', 'the compatibility mode of every ABI file named: what all of them support')
    .option('--source-connect <socket>', 'the source is a running back-end at this socket (needs --type)')
    .option(
      '--destination-connect <socket>',
      'the destination is a running back-end at this socket (needs --type)',
    )
    .addOption(typeOption())
    .addOption(timeoutOption())
    .addHelpText('after', COMPAT_HELP)
    .action(() => choose((interrupt) => interruptible(interrupt, () => compat(compatCmd, argv, interrupt))));
}
