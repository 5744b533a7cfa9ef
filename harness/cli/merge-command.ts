/**
 * `vhu-conform merge`, a subcommand of the program (program.ts): the report.json files of a sharded run
 * (`--shard i/n`, one per CI job) -> the reports one run would have written (JSON, JUnit, HTML), the console
 * summary and the run's exit status. The joining is runner/merge.ts's.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { writeBaseline } from '../runner/baseline.js';
import { ConsoleReporter, colorWanted } from '../runner/console.js';
import { type MergeOptions, mergeShards, readShardReport } from '../runner/merge.js';
import { writeHtmlReport } from '../runner/report-html.js';
import { writeJsonReport } from '../runner/report-json.js';
import { writeJunitReport } from '../runner/report-junit.js';
import type { RunResult } from '../runner/types.js';
import { expectWritableFile } from '../util/fs.js';
import { optionsOf } from './arguments.js';
import { EXIT, exitCodeFor } from './exit.js';
import type { Interrupt } from './program.js';

interface MergeCliOptions {
  reports: string;
  junit?: string;
  json?: string;
  html?: string | true;
  writeBaseline?: string;
  color?: boolean;
  verbose?: boolean;
}

/**
 * Adds `merge` to `root`; its action hands `choose` the work, as the other subcommands do. `checks`: the
 * run order of the checks, and the one that draws a seed.
 */
export function addMergeCommand(
  root: Command,
  choose: (work: (interrupt: Interrupt) => Promise<number>) => void,
  checks: MergeOptions,
): void {
  const merge = root
    .command('merge')
    .description(
      'join the report.json files of the n shards of a run (--shard i/n) into the reports one run writes, with its exit status',
    )
    .argument('<reports...>', 'the report.json of each shard')
    .option('--reports <dir>', 'folder for the merged junit.xml and report.json', 'reports')
    .option('--junit <file>', 'merged JUnit XML report (default: <reports>/junit.xml)')
    .option('--json <file>', 'merged JSON report (default: <reports>/report.json)')
    .option('--html [file]', 'also an HTML report (default file: <reports>/report.html); no wire logs in it')
    .option('--write-baseline <file>', "write the merged run's failures as a baseline file, for --baseline")
    .option('--verbose', 'print every check message')
    .option('--no-color', 'no ANSI colors even on a terminal or with FORCE_COLOR')
    .addHelpText(
      'after',
      `
Each CI job runs one shard and keeps its report.json:
  vhu-conform --shard 1/3 --json out/1.json /path/to/backend     (and 2/3, 3/3 on other machines)
  vhu-conform merge out/1.json out/2.json out/3.json --html
The exit status is the run's (${EXIT.ok}: no MUST failure, ${EXIT.mustFailed}: one, ${EXIT.usageOrHarness}: the reports cannot be joined, or a harness fault), judged with the shards' --strict and --baseline.
`,
    );
  merge.action(() =>
    choose(async () => {
      const [files] = merge.processedArgs as [string[]];
      return mergeCommand(files, mergeOptions(merge), checks);
    }),
  );
}

/**
 * merge's own options, and those of a report given before its name (`vhu-conform --reports out merge ...`);
 * the program's other options mean nothing to it.
 */
function mergeOptions(merge: Command): MergeCliOptions {
  const { opts } = optionsOf<MergeCliOptions & Record<string, unknown>>(merge);
  const { reports, junit, json, html, writeBaseline, color, verbose } = opts;
  return {
    reports,
    ...(junit === undefined ? {} : { junit }),
    ...(json === undefined ? {} : { json }),
    ...(html === undefined ? {} : { html }),
    ...(writeBaseline === undefined ? {} : { writeBaseline }),
    ...(color === undefined ? {} : { color }),
    ...(verbose === undefined ? {} : { verbose }),
  };
}

async function mergeCommand(files: string[], opts: MergeCliOptions, checks: MergeOptions): Promise<number> {
  const inputs = files.map((f) => path.resolve(f));
  const junit = path.resolve(opts.junit ?? path.join(opts.reports, 'junit.xml'));
  const json = path.resolve(opts.json ?? path.join(opts.reports, 'report.json'));
  const html =
    opts.html === undefined
      ? undefined
      : path.resolve(opts.html === true ? path.join(opts.reports, 'report.html') : opts.html);
  const baseline = opts.writeBaseline === undefined ? undefined : path.resolve(opts.writeBaseline);
  const outputs: Array<[string, string, (r: RunResult, file: string) => Promise<unknown>]> = [
    ['--junit', junit, writeJunitReport],
    ['--json', json, writeJsonReport],
  ];
  if (html !== undefined) outputs.push(['--html', html, writeHtmlReport]);
  if (baseline !== undefined) outputs.push(['--write-baseline', baseline, writeBaseline]);
  for (const [option, file] of outputs) {
    if (inputs.includes(file))
      throw new UsageError(
        `merge: ${option} ${file} is one of the reports to join: name another file (--json, --junit, --reports)`,
      );
  }
  const reports = [];
  for (const file of files) reports.push(await readShardReport(file));
  const result = mergeShards(reports, checks);
  for (const [option, file] of outputs) {
    await expectWritableFile(file).catch((err: Error) => {
      throw new UsageError(`${option} ${file}: cannot write there: ${err.message}`);
    });
  }

  const reporter = new ConsoleReporter({
    out: process.stdout,
    color: colorWanted(opts.color !== false, process.stdout.isTTY === true, process.env),
    verbose: opts.verbose ?? false,
  });
  reporter.start(result.backend, result.checks.length);
  reporter.note(`merged ${files.length} shard${files.length === 1 ? '' : 's'}: ${files.join(', ')}`);
  for (const check of result.checks) reporter.check(check);
  for (const [option, file, write] of outputs) {
    await write(result, file).catch((err: Error) => {
      throw new UsageError(`${option} ${file}: cannot write it: ${err.message}`);
    });
  }
  reporter.summary(
    result,
    outputs.filter(([option]) => option !== '--write-baseline').map(([, file]) => file),
  );
  if (baseline !== undefined) reporter.wrote('baseline', baseline);
  return exitCodeFor(result, result.options.strict);
}
