/** argv -> run -> exit code: the command line behind main.ts, which hands it argv and the signals. */
import { statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { allChecks } from '../../suites/index.js';
import { descriptorDirsFromEnv, discoverDescriptors, lintDescriptor } from '../descriptors/discover.js';
import { UsageError, VhuError } from '../errors.js';
import { DEFAULT_PROFILE, PROFILES } from '../frontend/profiles.js';
import { loadCase } from '../fuzz/case.js';
import { adoptOrphans, killAllBackends } from '../process/backend.js';
import { type Baseline, loadBaseline, writeBaseline } from '../runner/baseline.js';
import type { Check } from '../runner/check.js';
import { formatCheckList, LIST_FORMATS, type ListFormat } from '../runner/check-list.js';
import { ConsoleReporter, colorWanted, printable } from '../runner/console.js';
import { writeHtmlReport } from '../runner/report-html.js';
import { writeJsonReport } from '../runner/report-json.js';
import { writeJunitReport } from '../runner/report-junit.js';
import { writeWireLogs } from '../runner/report-wire.js';
import {
  DEFAULT_JOBS,
  DEFAULT_TIMEOUT_MS,
  runConformance,
  selectChecks,
  TIMEOUT_BOUNDS_MS,
  withPrerequisites,
} from '../runner/run.js';
import { parseShard, type Shard, shardName } from '../runner/shard.js';
import type { RunResult } from '../runner/types.js';
import { VERSION } from '../runner/version.js';
import { BACKEND_TYPES } from '../schemas/vhost-user.js';
import { expectWritableDir, expectWritableFile } from '../util/fs.js';
import { addAbiCommands } from './abi-commands.js';
import { runAll } from './all.js';
import { optionsOf, timeoutMs } from './arguments.js';
import { EXIT, exitCodeFor } from './exit.js';
import { addLoadCommand } from './load-command.js';
import { addMergeCommand } from './merge-command.js';

/** What main.ts's signal handlers share with the run: SIGINT and SIGTERM abort it. */
export interface Interrupt {
  controller: AbortController;
  /** 128 + the number of the first signal, as a shell reports a process ended by it. */
  stoppedWith: number;
  /** Set once the run may have launched back-ends: ends them at once. */
  onStop?: () => void;
}

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The back-end used when none is named: our reference fixture. */
export const REFERENCE_BACKEND = path.join(packageRoot, 'fixtures/bin/vhu-reference');

interface CliOptions {
  type?: string;
  connect?: string;
  reports: string;
  junit?: string;
  json?: string;
  html?: string | true;
  wireLog?: string | true;
  list?: boolean;
  format: ListFormat;
  grep?: string;
  skip?: string;
  baseline?: string;
  writeBaseline?: string;
  timeout: number;
  strict?: boolean;
  discover?: boolean;
  all?: boolean;
  descriptorDirs?: string;
  verbose?: boolean;
  color?: boolean;
  frontend: string;
  seed?: number;
  fuzz?: number;
  migrateTo?: string;
  migrateToArg?: string[];
  migrateToConnect?: string;
  shard?: Shard;
  jobs: number;
  freshBackends?: boolean;
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0x7fff_ffff)
    throw new InvalidArgumentError('expected a whole number from 0 to 2147483647');
  return n;
}

function jobCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InvalidArgumentError('expected a whole number from 1 to 64');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

/** The check that runs generated sequences: alone under --fuzz (without --grep) and replay. */
const FUZZ_CHECK = 'robust.fuzz';
const FUZZ_GREP = '^robust\\.fuzz$';

/** The options of a run, shared by the program and `replay`. */
function withRunOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--type <device>', 'device type (default: what --print-capabilities reports)').choices(
        BACKEND_TYPES,
      ),
    )
    .option('--connect <socket>', 'attach to a back-end someone else started: protocol checks only')
    .option('--reports <dir>', 'folder for junit.xml and report.json', 'reports')
    .option('--junit <file>', 'JUnit XML report file (default: <reports>/junit.xml)')
    .option('--json <file>', 'JSON report file (default: <reports>/report.json)')
    .option(
      '--html [file]',
      'HTML report for people, the wire logs of failed checks in it (default file: <reports>/report.html)',
    )
    .option(
      '--wire-log [dir]',
      'write the wire log of each failed check to <dir>/<check>.txt, and as JSON lines to <check>.jsonl (default dir: <reports>/wire)',
    )
    .option('--list', 'print every check (id, severity, spec anchor, title, the rule it enforces) and exit')
    .addOption(
      new Option('--format <format>', 'with --list: text, or markdown (the README table)')
        .choices(LIST_FORMATS)
        .default('text'),
    )
    .option('--grep <pattern>', 'run only checks whose id, title or area matches (regular expression)')
    .option('--skip <pattern>', 'leave out the checks whose id matches (regular expression; after --grep)')
    .option(
      '--baseline <file>',
      'known failures (a baseline file, or a former report.json): only a failure not listed fails the run',
    )
    .option(
      '--write-baseline <file>',
      "write this run's failures as a baseline file (edit the reasons), for --baseline",
    )
    .option(
      '--timeout <ms>',
      `deadline for each wait: socket, reply, exit after SIGTERM (${TIMEOUT_BOUNDS_MS.min} to ${TIMEOUT_BOUNDS_MS.max})`,
      timeoutMs,
      DEFAULT_TIMEOUT_MS,
    )
    .option(
      '--frontend <name>',
      `front-end profile the traffic checks start devices with: ${PROFILES.map((p) => p.name).join(', ')}, or all (a profile x check matrix)`,
      DEFAULT_PROFILE,
    )
    .option(
      '--seed <n>',
      'seed of the generated sequences (robust.fuzz): the same seed, the same sequences',
      wholeNumber,
    )
    .option(
      '--fuzz <seconds>',
      'run generated sequences for this long (only robust.fuzz unless --grep says otherwise); a failure is shrunk and saved as a case file',
      seconds,
    )
    .option(
      '--migrate-to <binary>',
      'the migrate checks move the guest to this back-end (another version) instead of a second launch of the one under test',
    )
    .option(
      '--migrate-to-arg <arg>',
      'an argument for the --migrate-to binary, once per argument (--migrate-to-arg=--blk-file=disk.img)',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      '--migrate-to-connect <socket>',
      'the migrate checks move the guest to the back-end someone else started listening at this socket',
    )
    .option(
      '--jobs <n>',
      `checks run at once: those that launch back-ends of their own and judge only what those do (conventions, control messages, net, gpu and input traffic, robustness) beside the others, and the others too when nothing follows -- (default: the number of cores, ${DEFAULT_JOBS}; more than that start only while the cores are idle enough; attach mode runs one at a time)`,
      jobCount,
      DEFAULT_JOBS,
    )
    .option(
      '--shard <i/n>',
      'run shard i of n: a stable 1/n of the checks (and, for their gates only, what they need); join the n report.json files with vhu-conform merge',
      parseShard,
    )
    .option(
      '--fresh-backends',
      'every robustness input and generated sequence on a fresh launch of the back-end, none kept from one to the next while it serves new connections (slower; for a back-end whose state outlives a connection)',
    )
    .option('--strict', 'SHOULD failures also fail the run')
    .option('--discover', 'list the back-ends described by descriptor files, precedence applied, and exit')
    .option(
      '--all',
      'check every back-end the descriptor files describe (precedence applied), each under its type, reports in <reports>/<descriptor>/, then a back-end x check matrix (<reports>/matrix.json)',
    )
    .addOption(
      new Option('--descriptor-dirs <dirs>', 'colon-separated descriptor folders, general to specific').env(
        'VHU_DESCRIPTOR_DIRS',
      ),
    )
    .option('--verbose', 'print every message, and the back-end stderr of each check')
    .option('--no-color', 'no ANSI colors even on a terminal or with FORCE_COLOR');
}

/**
 * The command line: a run (the program's own arguments) and its subcommands. Each action only says what
 * to run (`chosen`); main awaits it after parsing. Options of the program stand before a subcommand's name
 * (positional options), so each subcommand parses its own (`compat --json` is a flag, a run's takes a file).
 */
function program(argv: string[], choose: (work: (interrupt: Interrupt) => Promise<number>) => void): Command {
  const root = new Command('vhu-conform')
    .description('Conformance checks for vhost-user back-ends (QEMU docs/interop/vhost-user.rst).')
    .version(VERSION)
    .argument('[backend]', 'back-end binary to check (default: the bundled reference back-end)')
    .argument('[args...]', 'extra arguments for every launch of the back-end, after --')
    .enablePositionalOptions()
    // A program with an action of its own gets no `help <command>` unless asked for.
    .helpCommand(true)
    .showHelpAfterError()
    .exitOverride()
    .addHelpText('after', HELP_AFTER);
  withRunOptions(root).action(() =>
    choose((interrupt) => {
      const [backend, extraArgs = []] = root.processedArgs as [string | undefined, string[] | undefined];
      return runCommand(root, { backend, extraArgs }, interrupt);
    }),
  );
  const replay = root
    .command('replay')
    .description('send a saved fuzz case (robust.fuzz) again, to the back-end it names or to another one')
    .argument('<case>', 'the case file a fuzz run saved (reports/fuzz-*.json)')
    .argument('[backend]', "back-end binary (default: the case's)")
    .argument('[args...]', 'extra arguments for every launch of the back-end, after --')
    .addHelpText(
      'after',
      '\nOptions of a run (--timeout, --strict, --reports, ...) go after the word replay.\n',
    );
  withRunOptions(replay).action(() =>
    choose((interrupt) => {
      const [file, backend, extraArgs = []] = replay.processedArgs as [
        string,
        string | undefined,
        string[] | undefined,
      ];
      return runCommand(replay, { backend, extraArgs, replayFile: file }, interrupt);
    }),
  );
  addAbiCommands(root, argv, choose);
  addMergeCommand(root, choose, { order: allChecks.map((c) => c.id), fuzzCheck: FUZZ_CHECK });
  addLoadCommand(root, choose);
  return root;
}

const HELP_AFTER = `
Examples:
  vhu-conform                                   check the bundled reference back-end
  vhu-conform /usr/lib/qemu/vhost-user-gpu      check a back-end binary; reports in ./reports
  vhu-conform /usr/lib/qemu/virtiofsd -- -o source=/srv/share
                                                the same, passing arguments to every launch
  vhu-conform --connect /run/blk.sock --type block
                                                attach to a back-end someone else started
  vhu-conform --list --grep sigterm             list the checks whose id, title or area matches
  vhu-conform --grep '^conv\\.' --strict --junit out/junit.xml
                                                some checks, SHOULD failures failing the run too
  vhu-conform --skip '^robust\\.' /path/to/backend
                                                every check but the robustness ones
  vhu-conform --write-baseline known.json /path/to/backend
  vhu-conform --baseline known.json /path/to/backend
                                                record today's failures, then fail only on a new one
  vhu-conform --wire-log=out/wire --html=out/report.html /path/to/backend
                                                also an HTML report, and each failed check's
                                                wire log in out/wire/ (--wire-log alone: reports/wire/)
  vhu-conform --grep '^migrate\\.' --migrate-to /opt/new/backend --migrate-to-arg=--blk-file=/srv/disk.img \\
      /opt/old/backend -- --blk-file=/srv/disk.img
                                                move a guest from one version to another
  vhu-conform replay reports/fuzz-robust.fuzz-seed5.json /path/to/backend
                                                send a saved fuzz case again

Exit status:
  ${EXIT.ok}    no MUST check failed or timed out (with --strict: no SHOULD check either), other
       than those --baseline expects
  ${EXIT.mustFailed}    a MUST check failed or timed out (with --strict: or a SHOULD check), not in --baseline
  ${EXIT.usageOrHarness}    usage error (bad option, missing binary, nothing at --connect, unwritable report
       path, bad --baseline file) or a harness fault; the cause is on stderr
  ${EXIT.interrupted}  interrupted (SIGINT); every process, socket and temp folder of the run removed first
  ${EXIT.terminated}  stopped by SIGTERM; cleaned up as for SIGINT

Environment:
  NO_COLOR=1           no colors even on a terminal
  FORCE_COLOR=1        colors even when stdout is not a terminal (FORCE_COLOR=0: none); wins over NO_COLOR
  VHU_DESCRIPTOR_DIRS  descriptor folders, as --descriptor-dirs
`;

/**
 * The checks that drive a device and so need its type; without --type in attach mode they are skipped. The
 * traffic checks, and the robustness checks that malform data-plane requests.
 */
function needsDeviceType(check: Check): boolean {
  return check.perProfile === true || check.needsType === true;
}

/**
 * The report files, and the folder checks save files to, checked writable before the run: a run whose
 * results would be lost is not started. The folder is checked when a report goes there or it was named.
 */
async function reportPaths(
  opts: CliOptions,
  reportsNamed: boolean,
): Promise<{
  junit: string;
  json: string;
  baseline: string | undefined;
  html: string | undefined;
  wire: string | undefined;
}> {
  const junit = path.resolve(opts.junit ?? path.join(opts.reports, 'junit.xml'));
  const json = path.resolve(opts.json ?? path.join(opts.reports, 'report.json'));
  // Under --all each back-end's folder gets its own (runAll's), none at the top.
  const html =
    opts.html === undefined || opts.all
      ? undefined
      : path.resolve(opts.html === true ? path.join(opts.reports, 'report.html') : opts.html);
  const wire =
    opts.wireLog === undefined || opts.all
      ? undefined
      : path.resolve(opts.wireLog === true ? path.join(opts.reports, 'wire') : opts.wireLog);
  const baseline = opts.writeBaseline === undefined ? undefined : path.resolve(opts.writeBaseline);
  const targets: Array<[string, string, (p: string) => Promise<void>]> = [
    ['--junit', junit, expectWritableFile],
    ['--json', json, expectWritableFile],
  ];
  if (baseline !== undefined) targets.push(['--write-baseline', baseline, expectWritableFile]);
  // `--html BINARY` takes the binary as its file (an optional value): never write a report over a program.
  for (const [option, file] of [
    ['--html', html],
    ['--wire-log', wire],
  ] as const) {
    if (file !== undefined && isExecutableFile(file))
      throw new UsageError(
        `${option} ${file}: an executable file, not overwritten with a report; name the back-end before ${option}, or write ${option}=${option === '--html' ? 'FILE' : 'DIR'}`,
      );
  }
  if (html !== undefined) targets.push(['--html', html, expectWritableFile]);
  if (wire !== undefined) targets.push(['--wire-log', wire, expectWritableDir]);
  if (reportsNamed || opts.junit === undefined || opts.json === undefined)
    targets.unshift(['--reports', path.resolve(opts.reports), expectWritableDir]);
  for (const [option, file, expectWritable] of targets) {
    await expectWritable(file).catch((err: Error) => {
      throw new UsageError(`${option} ${file}: cannot write there: ${err.message}`);
    });
  }
  return { junit, json, baseline, html, wire };
}

function isExecutableFile(file: string): boolean {
  const stat = statSync(file, { throwIfNoEntry: false });
  return stat?.isFile() === true && (stat.mode & 0o111) !== 0;
}

/** The checks a run with these patterns runs: those matching, and those they need (withPrerequisites). */
function plannedChecks(grep: string | undefined, skip: string | undefined): Check[] {
  return withPrerequisites(allChecks, selectChecks(allChecks, grep, skip), skip).checks;
}

function listChecks(grep: string | undefined, skip: string | undefined, format: ListFormat): void {
  process.stdout.write(formatCheckList(plannedChecks(grep, skip), format));
}

/** `--discover`: prints the back-ends described, with lint findings; how many descriptors have problems. */
function discover(dirs: string[]): number {
  const found = discoverDescriptors(dirs);
  let broken = 0;
  process.stdout.write(`descriptor folders (general to specific): ${dirs.join(', ')}\n`);
  if (!found.effective.length) process.stdout.write('no descriptor files in effect\n');
  found.effective.forEach((file, i) => {
    const lint = lintDescriptor(file);
    const doc = lint.document;
    const problems = [...lint.schemaErrors, ...lint.binaryErrors];
    process.stdout.write(`${i + 1}. ${file.name}  ${printable(file.path)}\n`);
    process.stdout.write(
      `   type: ${printable(String(doc?.type ?? '?'))}  binary: ${printable(String(doc?.binary ?? '?'))}\n`,
    );
    if (doc?.description) process.stdout.write(`   description: ${printable(doc.description)}\n`);
    if (file.overrides.length)
      process.stdout.write(`   overrides: ${file.overrides.map(printable).join(', ')}\n`);
    process.stdout.write(problems.length ? `   problems: ${printable(problems.join('; '))}\n` : '   ok\n');
    if (problems.length) broken++;
  });
  for (const file of found.masked) {
    const hidden = file.overrides.length ? file.overrides.map(printable).join(', ') : 'nothing';
    process.stdout.write(`masked: ${file.name} by ${printable(file.path)} (zero-length), hiding ${hidden}\n`);
  }
  if (broken) process.stdout.write(`${broken} of ${found.effective.length} descriptors have problems\n`);
  return broken;
}

async function main(argv: string[], interrupt: Interrupt): Promise<number> {
  let chosen: ((interrupt: Interrupt) => Promise<number>) | undefined;
  const cmd = program(argv, (work) => {
    chosen = work;
  });
  try {
    cmd.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usageOrHarness;
    }
    throw err;
  }
  return chosen === undefined ? EXIT.ok : chosen(interrupt);
}

/** A run, or a replay (`replayFile`): the checks, the reports, the exit status. */
async function runCommand(
  cmd: Command,
  operands: { backend: string | undefined; extraArgs: string[]; replayFile?: string },
  interrupt: Interrupt,
): Promise<number> {
  const { backend: backendArg, extraArgs, replayFile } = operands;
  const { opts, named } = optionsOf<CliOptions>(cmd);
  const descriptorDirs = opts.descriptorDirs
    ? opts.descriptorDirs.split(':').filter(Boolean)
    : descriptorDirsFromEnv();

  if (opts.list) {
    listChecks(opts.grep, opts.skip, opts.format);
    return EXIT.ok;
  }
  if (opts.discover) {
    // A descriptor with problems is a finding a CI job must see: exit 1, as a failed check.
    return discover(descriptorDirs) > 0 ? EXIT.mustFailed : EXIT.ok;
  }

  adoptOrphans();
  const controller = interrupt.controller;
  // From here on a signal also ends the back-ends launched (main.ts aborts the run and calls this).
  interrupt.onStop = killAllBackends;

  const color = colorWanted(opts.color !== false, process.stdout.isTTY === true, process.env);
  const reporter = new ConsoleReporter({
    out: process.stdout,
    color,
    verbose: opts.verbose ?? false,
    live: process.stdout.isTTY === true,
  });
  if (opts.connect !== undefined && backendArg !== undefined) {
    throw new UsageError('--connect attaches to a running back-end: name no binary with it');
  }
  const reportsNamed = named('reports');
  if (opts.all) refuseWithAll(opts, backendArg, replayFile);
  const paths = await reportPaths(opts, reportsNamed || opts.all === true);
  const baseline: Baseline | undefined =
    opts.baseline === undefined
      ? undefined
      : await loadBaseline(
          opts.baseline,
          allChecks.map((c) => c.id),
        );
  if (opts.shard && replayFile !== undefined)
    throw new UsageError('--shard splits a run among machines; a replay runs one case: no --shard with it');
  const replay =
    replayFile === undefined ? undefined : { file: replayFile, fuzzCase: await loadCase(replayFile) };
  const grep = replay || (opts.fuzz !== undefined && !opts.grep) ? FUZZ_GREP : opts.grep;

  /** One run against `target`, its reports written to `files`. */
  const runAndReport = async (
    target: { binary: string; type?: string } | { connect: string },
    files: {
      /** Where checks save files (scanouts, fuzz cases): --reports, or the back-end's folder under --all. */
      dir: string;
      junit: string;
      json: string;
      baseline: string | undefined;
      html: string | undefined;
      wire: string | undefined;
    },
  ): Promise<RunResult> => {
    const result = await runConformance({
      ...target,
      extraArgs,
      checks: allChecks,
      ...(opts.type ? { type: opts.type } : {}),
      timeoutMs: opts.timeout,
      ...(grep ? { grep } : {}),
      ...(opts.skip ? { skip: opts.skip } : {}),
      ...(baseline ? { baseline } : {}),
      frontend: opts.frontend,
      fuzz: {
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        ...(opts.fuzz !== undefined ? { seconds: opts.fuzz } : {}),
        ...(replay ? { replay } : {}),
      },
      descriptorDirs,
      reportsDir: files.dir,
      strict: opts.strict ?? false,
      wireLog: files.html !== undefined || files.wire !== undefined,
      ...(opts.migrateTo !== undefined ? { migrateTo: opts.migrateTo } : {}),
      ...(opts.migrateToArg ? { migrateToArgs: opts.migrateToArg } : {}),
      ...(opts.migrateToConnect !== undefined ? { migrateToConnect: opts.migrateToConnect } : {}),
      ...(opts.shard ? { shard: opts.shard } : {}),
      jobs: opts.jobs,
      ...(opts.freshBackends ? { freshBackends: true } : {}),
      onStart: (backend, count, needed, gatesOnly) => {
        reporter.start(backend, count);
        if (opts.shard)
          reporter.note(
            `shard ${shardName(opts.shard)}: ${count} check${count === 1 ? '' : 's'} of the run` +
              (gatesOnly.length
                ? `, and ${gatesOnly.length} of other shards run for their gates only, not reported (${gatesOnly.join(', ')})`
                : '') +
              "; join the shards' report.json files with vhu-conform merge",
          );
        if (needed.size)
          reporter.note(
            `also running ${needed.size === 1 ? 'a check' : `${needed.size} checks`} the selected ones need, so that each gets the verdict a full run gives it: ${[...needed].map(([id, by]) => `${id} (for ${by})`).join(', ')}`,
          );
        const untyped = plannedChecks(grep, opts.skip).filter(needsDeviceType);
        if (backend.connect === undefined || backend.type !== null || !untyped.length) return;
        const groups = new Set(
          untyped.map((c) => (c.perProfile ? c.area : `${c.id.split('.').slice(0, 2).join('.')}.*`)),
        );
        reporter.note(
          `attach mode without --type, the checks that drive the device will be skipped: ${untyped.length} (${[...groups].join(', ')}); name the back-end's device type with --type <device> (${BACKEND_TYPES.join(', ')})`,
        );
      },
      onCheckStart: (key) => reporter.running(key),
      onCheck: (check) => reporter.check(check),
      signal: controller.signal,
    });
    const reports: Array<[string, (r: RunResult, file: string) => Promise<unknown>]> = [
      [files.junit, writeJunitReport],
      [files.json, writeJsonReport],
    ];
    if (files.html !== undefined) reports.push([files.html, writeHtmlReport]);
    if (files.wire !== undefined) reports.push([files.wire, writeWireLogs]);
    for (const [file, write] of reports) {
      await write(result, file).catch((err: Error) => {
        throw new UsageError(`cannot write the report ${file}: ${err.message}`);
      });
    }
    reporter.summary(
      result,
      reports.map(([file]) => file),
    );
    if (files.baseline !== undefined) {
      if (controller.signal.aborted)
        process.stderr.write(`vhu-conform: interrupted: no baseline written to ${files.baseline}\n`);
      else {
        await writeBaseline(result, files.baseline).catch((err: Error) => {
          throw new UsageError(`cannot write the baseline ${files.baseline}: ${err.message}`);
        });
        reporter.wrote('baseline', files.baseline);
      }
    }
    return result;
  };

  if (opts.all) {
    return runAll(
      descriptorDirs,
      path.resolve(opts.reports),
      reporter,
      controller.signal,
      async (target, dir) => {
        const result = await runAndReport(target, {
          dir,
          junit: path.join(dir, 'junit.xml'),
          json: path.join(dir, 'report.json'),
          baseline: undefined,
          html: opts.html === undefined ? undefined : path.join(dir, 'report.html'),
          wire: opts.wireLog === undefined ? undefined : path.join(dir, 'wire'),
        });
        return { result, exitStatus: controller.signal.aborted ? interrupt.stoppedWith : runExit(result) };
      },
      opts.html !== undefined,
    ).then((status) => (controller.signal.aborted ? interrupt.stoppedWith : status));
  }

  const binary = backendArg ?? replay?.fuzzCase.backend.binary ?? REFERENCE_BACKEND;
  const result = await runAndReport(opts.connect !== undefined ? { connect: opts.connect } : { binary }, {
    ...paths,
    dir: path.resolve(opts.reports),
  });
  if (controller.signal.aborted) return interrupt.stoppedWith;
  return runExit(result);

  /** The exit status of one run, its harness faults and an empty selection said on stderr. */
  function runExit(result: RunResult): number {
    if (!result.checks.length) process.stderr.write(`vhu-conform: no check matches --grep ${opts.grep}\n`);
    const errors = result.checks.filter((c) => c.verdict === 'error');
    for (const c of errors)
      process.stderr.write(`vhu-conform: harness fault in ${c.id}: ${printable(c.message)}\n`);
    return exitCodeFor(result, opts.strict ?? false);
  }
}

/** What `--all` cannot take: a back-end of its own, a replay, per-run report files, a baseline of one back-end. */
function refuseWithAll(
  opts: CliOptions,
  backendArg: string | undefined,
  replayFile: string | undefined,
): void {
  const clash = [
    backendArg !== undefined && `back-end argument (${backendArg})`,
    opts.connect !== undefined && '--connect',
    replayFile !== undefined && 'replay',
    opts.junit !== undefined && '--junit',
    opts.json !== undefined && '--json',
    typeof opts.html === 'string' && '--html FILE (--html alone writes <reports>/<descriptor>/report.html)',
    typeof opts.wireLog === 'string' &&
      '--wire-log DIR (--wire-log alone writes <reports>/<descriptor>/wire/)',
    opts.baseline !== undefined && '--baseline',
    opts.writeBaseline !== undefined && '--write-baseline',
    opts.type !== undefined && '--type',
    opts.migrateTo !== undefined && '--migrate-to',
    opts.migrateToConnect !== undefined && '--migrate-to-connect',
    opts.shard !== undefined && '--shard',
  ].filter((c): c is string => typeof c === 'string');
  if (clash.length)
    throw new UsageError(
      `--all runs every back-end the descriptor files describe, each under its own type and with its reports in <reports>/<descriptor>/: it takes no ${clash.join(', ')}`,
    );
}

/** Runs the command line; every error becomes a message on stderr and exit status 2. */
export async function cli(argv: string[], interrupt: Interrupt): Promise<number> {
  try {
    return await main(argv, interrupt);
  } catch (err: unknown) {
    killAllBackends();
    const message =
      err instanceof UsageError
        ? err.message
        : err instanceof VhuError
          ? `${err.code}: ${err.message}`
          : err instanceof Error
            ? (err.stack ?? err.message)
            : String(err);
    process.stderr.write(`vhu-conform: error: ${message}\n`);
    return EXIT.usageOrHarness;
  }
}
