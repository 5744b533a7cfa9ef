/**
 * The library entry point: runs checks against a back-end as mocha suites (one per area, one test per check)
 * and returns the verdicts. Everything the CLI can do goes through here.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import Mocha from 'mocha';
import { BackendError, ProtocolError, SkipError, TimeoutError, UsageError } from '../errors.js';
import { DEFAULT_PROFILE, PROFILES, profileNamed } from '../frontend/profiles.js';
import { expectListening } from '../process/attach.js';
import { sweepOrphans } from '../process/backend.js';
import { probeCapabilities } from '../process/capabilities.js';
import { Scope } from '../process/scope.js';
import { BACKEND_TYPES } from '../schemas/vhost-user.js';
import { WireLog, wireLogContext } from '../transport/wire-log.js';
import { withDeadline } from '../util/deadline.js';
import { describeAssertion } from './assertion.js';
import { type Baseline, compareWithBaseline, expectationFor } from './baseline.js';
import { type Check, type FuzzSettings, fuzzSeed, makeContext, type Target } from './check.js';
import { idleCoreAdmission } from './cpu-load.js';
import { schedule, spreadLane } from './schedule.js';
import { planShard, type Shard, shardName } from './shard.js';
import {
  type BackendInfo,
  type CheckInfo,
  type CheckResult,
  frontendMatrix,
  type MoveDestination,
  type RunResult,
  type RunSettings,
  summarize,
  type Verdict,
} from './types.js';
import { VERSION } from './version.js';

export interface RunOptions {
  /** The back-end binary to launch; or `connect`. */
  binary?: string;
  /** Attach mode: the socket of a running back-end; the checks that must launch it are skipped. */
  connect?: string;
  extraArgs?: string[];
  checks: Check[];
  /** Device type; by default what --print-capabilities reports. */
  type?: string;
  timeoutMs?: number;
  /** Only checks whose id, title or area matches. */
  grep?: string;
  /** Not the checks whose id matches (after `grep`). */
  skip?: string;
  /** Known failures (runner/baseline.ts): each result it names gets `expected`, and fails nothing. */
  baseline?: Baseline;
  descriptorDirs: string[];
  /** Where checks save files next to the reports (default `reports`). */
  reportsDir?: string;
  /**
   * The run starts: its back-end, how many checks it plans to report, the checks --grep left out that run
   * all the same, because a selected check needs them (each with the selected check that does), and under
   * `shard` the checks of other shards it runs for their gates only (not reported).
   */
  onStart?: (
    backend: BackendInfo,
    checkCount: number,
    needed: ReadonlyMap<string, string>,
    gatesOnly: readonly string[],
  ) => void;
  /** A check starts, by its key (`id`, or `id@profile` under `--frontend all`). */
  onCheckStart?: (key: string) => void;
  onCheck?: (result: CheckResult) => void;
  /**
   * The front-end profile traffic checks start devices with (harness/frontend/profiles.ts; default qemu),
   * or `all`: the traffic checks (`perProfile`) once under each profile, the others once.
   */
  frontend?: string;
  /** Aborting ends the check under way (its resources are released) and skips the rest. */
  signal?: AbortSignal;
  /** Generated sequences: --seed, --fuzz, or a case to replay (see Target.fuzz). */
  fuzz?: FuzzSettings;
  /** SHOULD failures fail the run too: recorded in the result, whose JUnit report judges by it. */
  strict?: boolean;
  /** Record each check's messages on the back-end's socket in its result (`CheckResult.wire`). */
  wireLog?: boolean;
  /**
   * The destination of the migrate checks' move, another version of the back-end: a binary launched with
   * `migrateToArgs` (not `extraArgs`), or `migrateToConnect`, the socket of one someone else started; neither:
   * a second launch of the binary under test.
   */
  migrateTo?: string;
  migrateToArgs?: string[];
  migrateToConnect?: string;
  /**
   * Run shard `index` of `count` (runner/shard.ts): a stable 1/count of the selected checks, and what they
   * need for their gates (run, not reported); `vhu-conform merge` joins the shards' reports.
   */
  shard?: Shard;
  /**
   * How many checks run at once (default 1): those that launch back-ends of their own and judge nothing
   * together (conventions, control messages, net, gpu and input traffic, robustness: suites/index.ts) run
   * beside the others, which keep their order (`laneOf`) unless their launches share nothing
   * (`launchesShareNothing`). Attach mode runs one at a time whatever this says: its checks share the one
   * back-end.
   */
  jobs?: number;
  /**
   * Every robustness input (robust.ctl.*) and generated sequence (robust.fuzz) on a fresh launch, as before
   * issue 15, instead of on a back-end kept from earlier ones while it serves new connections
   * (suites/robustness/kept.ts): slower, for a back-end whose state outlives a connection. Verdicts are the same
   * either way for a back-end that a new connection resets.
   */
  freshBackends?: boolean;
}

export const DEFAULT_TIMEOUT_MS = 3000;
/** The cores this process may use. */
const CORES = availableParallelism();
/**
 * --jobs' default: one check for each core. Twice that ran the reference's full run in 10.7 s against 14.4 s
 * on two cores (checks wait on the back-end much of the time), but dpdk-testpmd, which busy-polls, then failed
 * net.mq.pairs in one of three runs, its frames not back within the deadline: a false failure costs more than
 * a slow run. A higher --jobs starts the checks beyond one per core only while the cores are idle enough
 * (cpu-load.ts).
 */
export const DEFAULT_JOBS = Math.min(64, CORES);
/** The deadline per wait may be no shorter (nothing answers that fast on a busy machine) and no longer. */
export const TIMEOUT_BOUNDS_MS = { min: 100, max: 600_000 } as const;

/** Resolves and validates the binary; a usage error names what is wrong, and which binary (`what`). */
export function resolveBinary(binary: string, what = 'back-end binary'): string {
  const resolved = path.resolve(binary);
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(resolved);
  } catch {
    throw new UsageError(`${what} not found: ${resolved}`);
  }
  if (!stat.isFile()) throw new UsageError(`${what} is not a file: ${resolved}`);
  try {
    accessSync(resolved, constants.X_OK);
  } catch {
    throw new UsageError(`${what} is not executable: ${resolved}`);
  }
  return resolved;
}

/**
 * The checks whose id, title or area match `grep`, less those whose id matches `skip`; a bad pattern, or
 * patterns leaving no check, is a usage error.
 */
export function selectChecks(checks: Check[], grep: string | undefined, skip?: string): Check[] {
  const grepped = grep ? checks.filter(matching('--grep', grep, (c) => [c.id, c.title, c.area])) : checks;
  if (!grepped.length) throw new UsageError(`--grep ${grep} matches no check (see --list)`);
  if (!skip) return grepped;
  const skipped = matching('--skip', skip, (c) => [c.id]);
  const selected = grepped.filter((c) => !skipped(c));
  if (!selected.length)
    throw new UsageError(`--skip ${skip} leaves no check${grep ? ` of --grep ${grep}` : ''} (see --list)`);
  return selected;
}

/**
 * `selected`, and what the refusal checks among them need (`Check.refusal`), transitively, in `checks`'
 * order: a refusal check gets the verdict a full run gives it whatever --grep says (a binary that starts on
 * no account refuses everything, and conv.socket-path.listen is what says so). Other checks run without
 * the gates --grep left out, on their own merits. A need `skip` names stays out: the user asked. Also which
 * checks came in this way, each with the first selected check that needs it.
 */
export function withPrerequisites(
  checks: Check[],
  selected: Check[],
  skip?: string,
): { checks: Check[]; added: Map<string, string> } {
  const byId = new Map(checks.map((c) => [c.id, c]));
  const skipped = skip ? matching('--skip', skip, (c) => [c.id]) : () => false;
  const chosen = new Set(selected.map((c) => c.id));
  const added = new Map<string, string>();
  const queue = selected.filter((c) => c.refusal);
  for (let check = queue.shift(); check; check = queue.shift()) {
    for (const id of check.needs ?? []) {
      const need = byId.get(id);
      if (!need || chosen.has(id) || skipped(need)) continue;
      chosen.add(id);
      added.set(id, added.get(check.id) ?? check.id);
      queue.push(need);
    }
  }
  return { checks: checks.filter((c) => chosen.has(c.id)), added };
}

function matching(option: string, source: string, fields: (c: Check) => string[]): (c: Check) => boolean {
  let pattern: RegExp;
  try {
    pattern = new RegExp(source, 'i');
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`);
  }
  return (c) => fields(c).some((field) => pattern.test(field));
}

export function verdictOf(err: unknown): Verdict {
  if (err instanceof SkipError) return 'skip';
  if (err instanceof TimeoutError) return 'timeout';
  if (err instanceof ProtocolError || err instanceof BackendError) return 'fail';
  if (err instanceof Error && err.name === 'AssertionError') return 'fail';
  return 'error';
}

export async function runConformance(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (options.connect !== undefined && options.binary !== undefined) {
    throw new UsageError('name a back-end binary or --connect to a socket, not both');
  }
  if (options.connect === undefined && options.binary === undefined) {
    throw new UsageError('name a back-end binary or --connect to a socket');
  }
  checkSettings(options, timeoutMs);
  const connect = options.connect ?? null;
  if (connect !== null) await expectListening(connect);
  const binary = connect === null ? resolveBinary(options.binary!) : '';
  const migrateTo = await migrationDestination(options);
  const fuzz: FuzzSettings = { ...options.fuzz, seed: fuzzSeed(options.fuzz) };
  const extraArgs = options.extraArgs ?? [];
  const { checks: wanted, added } = withPrerequisites(
    options.checks,
    selectChecks(options.checks, options.grep, options.skip),
    options.skip,
  );
  // A shard runs its own checks, and those they need for their gates only.
  const sharded = options.shard ? planShard(wanted, options.shard) : undefined;
  const selected = sharded?.checks ?? wanted;
  const reported = (check: Check) => sharded === undefined || sharded.own.has(check.id);
  const gatesOnly = selected.filter((c) => !reported(c)).map((c) => c.id);
  const frontend = options.frontend ?? DEFAULT_PROFILE;
  const profiles = frontend === 'all' ? PROFILES.map((p) => p.name) : [profileNamed(frontend).name];

  const probeScope = new Scope();
  const [probe, destinationProbe] = await Promise.all([
    connect === null
      ? probeCapabilities(probeScope, binary, extraArgs, timeoutMs)
      : { type: null, document: null },
    migrateTo && 'binary' in migrateTo
      ? probeCapabilities(probeScope, migrateTo.binary, migrateTo.extraArgs, timeoutMs)
      : undefined,
  ]).finally(() => probeScope.close());
  const type = options.type ?? probe.type;
  if (destinationProbe?.type && type && destinationProbe.type !== type)
    throw new UsageError(
      `--migrate-to ${options.migrateTo}: a ${destinationProbe.type} back-end (its --print-capabilities), the back-end under test a ${type} one: no guest moves between them`,
    );
  const destination =
    migrateTo && 'binary' in migrateTo
      ? { ...migrateTo, capabilities: destinationProbe?.document ?? null }
      : (migrateTo ?? null);
  const target: Target = {
    binary,
    connect,
    extraArgs,
    type,
    capabilities: probe.document ?? null,
    descriptorDirs: options.descriptorDirs,
    memo: new Map(),
    backendMemo: new Map(),
    reportsDir: path.resolve(options.reportsDir ?? 'reports'),
    frontend: profiles[0]!,
    fuzz,
    destination,
    ...(options.freshBackends ? { freshBackends: true } : {}),
  };
  // Each profile's checks share facts (memo) among themselves only.
  const targets = new Map(
    profiles.map((name, i) => [name, i === 0 ? target : { ...target, frontend: name, memo: new Map() }]),
  );
  // Every selected check under the first profile; with `all`, the traffic checks again under each other one.
  // In attach mode nothing restarts the back-end, so the checks that may break it come after all of those.
  const planned = [
    ...selected.map((check) => ({ check, profile: profiles[0]! })),
    ...profiles
      .slice(1)
      .flatMap((profile) =>
        selected.filter((c) => c.perProfile === true).map((check) => ({ check, profile })),
      ),
  ];
  const last = (step: (typeof planned)[number]) => connect !== null && step.check.destructive === true;
  const plan = [...planned.filter((s) => !last(s)), ...planned.filter(last)];
  const all = frontend === 'all';
  const tag = (check: Check, profile: string) => (all && check.perProfile === true ? `@${profile}` : '');
  const backend: BackendInfo = {
    binary: connect === null ? binary : null,
    ...(connect === null ? {} : { connect }),
    args: extraArgs,
    type: target.type,
    capabilities: target.capabilities,
  };
  options.onStart?.(backend, plan.filter((s) => reported(s.check)).length, added, gatesOnly);

  const results: CheckResult[] = [];
  /** Checks that did not pass, or were skipped for a check they need: what depends on them is skipped. */
  const blocked = new Map<string, string>();
  const keyOf = (step: (typeof plan)[number]) => `${step.check.id}${tag(step.check, step.profile)}`;
  const indexOf = new Map(plan.map((step, i) => [keyOf(step), i]));
  /** A need's key: its run under the same profile, or the one that ran once (no suffix). */
  const needKey = (id: string, suffix: string) => (indexOf.has(`${id}${suffix}`) ? `${id}${suffix}` : id);
  const jobs = connect === null ? (options.jobs ?? 1) : 1;
  const steps = plan.map((step, i) => ({
    lane: laneOf(step.check, connect !== null, keyOf(step), target.type),
    weight: budgetOf(step.check, timeoutMs, target),
    // A need planned later (attach mode's destructive checks) gates nothing, as in a run one at a time.
    needs: (step.check.needs ?? [])
      .map((id) => indexOf.get(needKey(id, tag(step.check, step.profile))))
      .filter((n): n is number => n !== undefined && n < i),
  }));
  const outcomes = schedule(
    launchesShareNothing(target)
      ? spreadLane(steps, ORDERED_LANE, (i) => plan[i]!.check.judgesLane === true)
      : steps,
    jobs,
    async (i) => {
      const { check, profile } = plan[i]!;
      const suffix = tag(check, profile);
      const unmet = (check.needs ?? []).map((id) => needKey(id, suffix)).find((id) => blocked.has(id));
      const launchOnly = connect === null ? undefined : check.launchOnly;
      const ran: { result: CheckResult; gateHeld?: boolean } =
        launchOnly !== undefined
          ? { result: skipped(check, launchOnly) }
          : unmet
            ? { result: skipped(check, `needs ${unmet}, which did not pass (${blocked.get(unmet)})`) }
            : await runOne(check, targets.get(profile)!, timeoutMs, options.signal, options.wireLog);
      const tagged: CheckResult = suffix ? { ...ran.result, frontend: profile } : ran.result;
      const expected = options.baseline && expectationFor(options.baseline, tagged);
      const result: CheckResult = expected ? { ...tagged, expected: { reason: expected.reason } } : tagged;
      // A check that is not applicable (skip) does not block; one that broke, or was blocked, does, unless
      // what the checks needing it rely on held (its gate) before it broke a rule of its own.
      if (unmet && launchOnly === undefined) blocked.set(`${check.id}${suffix}`, 'skipped');
      else if (result.verdict !== 'pass' && result.verdict !== 'skip' && !ran.gateHeld)
        blocked.set(`${check.id}${suffix}`, result.verdict);
      return result;
    },
    () => options.signal?.aborted === true,
    // Beyond one check per core, one more only while half a core's worth of time goes idle (checks waiting
    // on back-ends): a back-end that busy-polls, or another job on the machine, keeps it near one per core.
    jobs > CORES ? idleCoreAdmission(CORES) : undefined,
  );
  const mocha = new Mocha({ timeout: 0, bail: false, reporter: SilentReporter });
  // One mocha suite per run of consecutive checks of an area, in plan order (the ones sending invalid
  // requests come last), whatever order they end in under --jobs. Reports group them by area again.
  let suite: Mocha.Suite | undefined;
  plan.forEach(({ check, profile }, i) => {
    const suffix = tag(check, profile);
    const title = suffix ? `${check.area}${suffix}` : check.area;
    if (suite?.title !== title) suite = Mocha.Suite.create(mocha.suite, title);
    suite.addTest(
      new Mocha.Test(`${check.id}${suffix} ${check.title}`, async function (this: Mocha.Context) {
        if (reported(check)) options.onCheckStart?.(`${check.id}${suffix}`);
        const result = await outcomes[i]!;
        // Not started, the run being interrupted; or a check of another shard, run for a gate: its verdict
        // is its own shard's to report.
        if (result === undefined || !reported(check)) return;
        results.push(result);
        options.onCheck?.(result);
        if (result.verdict === 'skip') this.skip();
        if (result.verdict !== 'pass') throw new Error(result.message);
      }),
    );
  });
  // Interrupted while probing: no check starts.
  if (!options.signal?.aborted) {
    await new Promise<void>((resolve) => {
      const runner = mocha.run(() => resolve());
      options.signal?.addEventListener('abort', () => runner.abort(), { once: true });
    });
  }
  // Checks under way when the run was interrupted end (their scopes close) before the run returns.
  await Promise.allSettled(outcomes);
  mocha.dispose();

  return {
    tool: { name: 'vhu-conform', version: VERSION },
    startedAt,
    options: settingsOf(options, timeoutMs, frontend, fuzz, migrateTo),
    interrupted: options.signal?.aborted ?? false,
    backend,
    summary: summarize(results, performance.now() - started),
    checks: results,
    ...(frontend === DEFAULT_PROFILE ? {} : { frontend }),
    ...(all ? { matrix: frontendMatrix(profiles, results) } : {}),
    ...(options.baseline
      ? { baseline: compareWithBaseline(options.baseline, results, options.strict ?? false) }
      : {}),
  };
}

async function runOne(
  check: Check,
  target: Target,
  timeoutMs: number,
  signal?: AbortSignal,
  recordWire = false,
): Promise<{ result: CheckResult; gateHeld: boolean }> {
  const scope = new Scope();
  const wire = recordWire ? new WireLog() : undefined;
  const ctx = makeContext(target, timeoutMs, scope, signal);
  const started = performance.now();
  let verdict: Verdict = 'pass';
  let message = '';
  // A check is a handful of waits; past this budget it is stuck, and that is the back-end's doing.
  const budget = budgetOf(check, timeoutMs, target);
  try {
    if (signal?.aborted) throw new SkipError('the run was interrupted');
    // The connections the check opens record into its wire log (transport/wire-log.ts).
    const running = wire ? wireLogContext.run(wire, () => check.run(ctx)) : check.run(ctx);
    message = (await withDeadline(running, budget, `check ${check.id} to finish`, false)) ?? '';
  } catch (err) {
    verdict = verdictOf(err);
    message = describeError(err);
    // Stopped by Ctrl-C, whose handler ends the back-ends: what the check saw then is not the back-end's doing.
    if (signal?.aborted && verdict !== 'skip') {
      verdict = 'skip';
      message = `the run was interrupted while this check ran (it saw: ${message.split('\n')[0]})`;
    }
  } finally {
    const problems = await scope.close();
    wire?.close();
    sweepOrphans();
    if (problems.length && verdict === 'pass') {
      verdict = 'error';
      message = `teardown failed: ${problems.join('; ')}`;
    }
  }
  const stderrTail = ctx.launched
    .map((b) => b.stderrTail)
    .filter((t) => t.length > 0)
    .join('\n')
    .slice(-4096);
  const recorded = wire?.data();
  const result: CheckResult = {
    ...info(check),
    verdict,
    message,
    durationMs: Math.round(performance.now() - started),
    ...(stderrTail ? { stderrTail } : {}),
    ...(recorded?.records.length ? { wire: recorded } : {}),
    ...(ctx.savedFiles.length ? { files: [...ctx.savedFiles] } : {}),
    launches: ctx.launched.length,
  };
  return { result, gateHeld: ctx.gateWasHeld };
}

/** How long the whole check may take (Check.budgetMs; by default 8 waits and 5 s). */
function budgetOf(check: Check, timeoutMs: number, target: Target): number {
  return check.budgetMs?.(timeoutMs, target) ?? timeoutMs * 8 + 5000;
}

/**
 * The lane a check runs in under --jobs (runner/schedule.ts): in attach mode every check shares the one
 * back-end, so one lane. Otherwise the checks that launch back-ends of their own and judge only what those do
 * (`ownBackends`, suites/index.ts), and those for a device type other than the back-end's, get a lane each.
 * The others (block, fs and scsi traffic, ring, migration, the protocol checks with traffic) stay one lane in
 * plan order: some judge what earlier ones saw (the completion rules), and their launches share a disk, a
 * folder or a LUN. Where their launches share nothing (`launchesShareNothing`), the caller spreads that lane
 * (schedule.ts spreadLane).
 */
function laneOf(check: Check, attached: boolean, key: string, type: string | null): string {
  if (attached) return 'attached';
  // A check for another device type skips at once: the checks that need it (robust.data.*, each device's
  // gate) need not wait for the ordered lane to reach it.
  if (check.device !== undefined && check.device !== type) return key;
  return check.ownBackends === true ? key : ORDERED_LANE;
}

const ORDERED_LANE = 'main';

/**
 * Whether the ordered lane's launches share nothing, so that its checks may run beside each other (the
 * check that judges the completion rules still after those before it and before those after it): the
 * harness launches the back-end with no argument of the user's (none names a disk, a folder or a LUN every
 * launch opens; the bundled reference then serves a RAM disk of its own) and moves no guest to a back-end
 * given by --migrate-to*, which the migrate checks would share. A back-end whose launches share state
 * without being told (a fixed file) is checked with --jobs 1.
 */
function launchesShareNothing(target: Target): boolean {
  return target.connect === null && target.extraArgs.length === 0 && !target.destination;
}

/** What identifies the check in its result: the rule it enforces too, for the reports that quote it. */
function info(check: Check): CheckInfo {
  const { id, title, severity, spec, area, rule, interop } = check;
  return {
    id,
    title,
    severity,
    spec,
    area,
    ...(rule === undefined ? {} : { rule }),
    ...(interop === undefined ? {} : { interop }),
  };
}

function skipped(check: Check, message: string): CheckResult {
  return { ...info(check), verdict: 'skip', message, durationMs: 0 };
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // A check's message in the harness's words, not chai's ("expected 0n to not equal 0n").
  if (err.name === 'AssertionError') return describeAssertion(err);
  if (verdictOf(err) === 'error')
    return `${err.name}: ${err.message}${err.stack ? `\n${err.stack.split('\n').slice(1, 4).join('\n')}` : ''}`;
  return err.message;
}

/**
 * The destination of a move the options name (--migrate-to with its arguments, or --migrate-to-connect),
 * checked as the back-end under test is: a binary that can be run, a socket where something listens. A
 * usage error when both are named, or arguments without the binary.
 */
async function migrationDestination(options: RunOptions): Promise<MoveDestination | null> {
  const { migrateTo, migrateToArgs = [], migrateToConnect } = options;
  if (migrateTo !== undefined && migrateToConnect !== undefined)
    throw new UsageError(
      '--migrate-to launches the destination of the move and --migrate-to-connect attaches to a running one: name one of them',
    );
  if (migrateToArgs.length && migrateTo === undefined)
    throw new UsageError(
      `--migrate-to-arg ${migrateToArgs[0]}: arguments for the --migrate-to binary, and none is named`,
    );
  if (migrateTo !== undefined)
    return { binary: resolveBinary(migrateTo, '--migrate-to binary'), extraArgs: [...migrateToArgs] };
  if (migrateToConnect === undefined) return null;
  await expectListening(migrateToConnect, '--migrate-to-connect');
  return { connect: migrateToConnect };
}

/** Settings runConformance refuses before anything runs: each would cost the run, not fail it. */
function checkSettings(options: RunOptions, timeoutMs: number): void {
  const { min, max } = TIMEOUT_BOUNDS_MS;
  // Node's timers take at most 2^31-1 ms; a check's budget is several deadlines.
  if (!Number.isInteger(timeoutMs) || timeoutMs < min || timeoutMs > max)
    throw new UsageError(
      `--timeout ${timeoutMs}: expected a whole number of milliseconds from ${min} to ${max}`,
    );
  if (options.type !== undefined && !(BACKEND_TYPES as readonly string[]).includes(options.type))
    throw new UsageError(
      `--type ${options.type}: not a device type of vhost-user.json (${BACKEND_TYPES.join(', ')})`,
    );
}

/** The settings of the run as the reports record them. */
function settingsOf(
  options: RunOptions,
  timeoutMs: number,
  frontend: string,
  fuzz: FuzzSettings,
  migrateTo: RunSettings['migrateTo'],
): RunSettings {
  return {
    type: options.type ?? null,
    grep: options.grep ?? null,
    skip: options.skip ?? null,
    baseline: options.baseline?.file ?? null,
    timeoutMs,
    frontend,
    strict: options.strict ?? false,
    seed: fuzz.seed!,
    fuzzSeconds: fuzz.seconds ?? null,
    replay: fuzz.replay?.file ?? null,
    descriptorDirs: [...options.descriptorDirs],
    migrateTo,
    shard: options.shard ? shardName(options.shard) : null,
    freshBackends: options.freshBackends ?? false,
  };
}

/** Mocha prints nothing; the CLI's reporter speaks for the run. */
class SilentReporter extends Mocha.reporters.Base {}
