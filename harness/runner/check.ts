import type { FuzzCase } from '../fuzz/case.js';
import { type BackendProcess, type LaunchOptions, launch } from '../process/backend.js';
import type { Program } from '../process/context.js';
import type { Scope } from '../process/scope.js';
import type { CheckInfo, MoveDestination } from './types.js';

/** What the run knows of the back-end under test, shared by every check. */
export interface Target {
  /** Absolute path of the binary; empty in attach mode, where nothing is launched. */
  binary: string;
  /** Attach mode: the socket of a back-end someone else started, which every check connects to. */
  connect: string | null;
  /** Arguments appended to every launch (the part after `--` on the command line). */
  extraArgs: string[];
  type: string | null;
  capabilities: unknown;
  /** Descriptor folders to search, general to specific. */
  descriptorDirs: string[];
  /** Facts several checks need, computed once a run (see `CheckContext.memo`); each profile has its own. */
  memo: Map<string, Promise<unknown>>;
  /**
   * Facts of the back-end itself, shared by every profile's target of the run: in attach mode, that it is
   * gone (process/probes.ts), which no profile's checks can undo.
   */
  backendMemo: Map<string, Promise<unknown>>;
  /** The folder the run's reports go to: checks that save a file (a scanout's PNG) put it there. */
  reportsDir?: string;
  /** The front-end profile the traffic checks start devices with (frontend/profiles.ts; default qemu). */
  frontend?: string;
  /** Generated sequences (robust.fuzz): the seed, the budget, or a case file's steps to replay instead. */
  fuzz?: FuzzSettings;
  /**
   * Where the migrate checks move the guest (--migrate-to, --migrate-to-connect); absent or null: a second
   * launch of the binary under test, with the same arguments.
   */
  destination?: MigrationDestination | null;
  /**
   * --fresh-backends: every robustness input and generated sequence on a fresh launch (none kept across them:
   * suites/robustness/kept.ts).
   */
  freshBackends?: boolean;
}

/** The destination of a move: another binary launched with its own arguments, or a back-end listening. */
export type MigrationDestination =
  /** The binary (absolute) is launched with `--socket-path` and its `extraArgs` (not the run's). */
  | (Extract<MoveDestination, { binary: string }> & {
      /** Its --print-capabilities document, or null when it could not be had. */
      capabilities: unknown;
    })
  | Extract<MoveDestination, { connect: string }>;

export interface FuzzSettings {
  /** fast-check seed; a run without one uses a fixed seed (or, with `seconds`, a fresh one). */
  seed?: number;
  /** Search budget in seconds (--fuzz); the normal suite's default is short. */
  seconds?: number;
  /** `vhu-conform replay`: the case to replay, and where it came from. */
  replay?: { file: string; fuzzCase: FuzzCase };
}

/** The seed of a run that names none: the same sequences every run, so that verdicts repeat. */
export const DEFAULT_FUZZ_SEED = 5;

/** The seed a run draws its sequences from: the one given; without one, a fresh one for a --fuzz search, else the default. */
export function fuzzSeed(settings: FuzzSettings | undefined): number {
  return settings?.seed ?? (settings?.seconds !== undefined ? Date.now() % 0x7fff_ffff : DEFAULT_FUZZ_SEED);
}

export interface CheckContext {
  target: Target;
  /** The deadline for each wait: socket to appear, reply, exit after SIGTERM. */
  timeoutMs: number;
  /** Owns everything the check acquires; closed when the check ends, whatever the verdict. */
  scope: Scope;
  /**
   * Aborted when the run is stopped (Ctrl-C, the library's abort signal): a check that could go on launching
   * (robust.fuzz's search) ends instead.
   */
  signal?: AbortSignal;
  /**
   * Launches the back-end with `args` plus the target's extra args, owned by the check's scope; with
   * `program`, that binary with its own extra args instead.
   */
  launch(args: string[], options?: Partial<LaunchOptions> & { program?: Program }): BackendProcess;
  /** The back-ends this check launched, oldest first. */
  readonly launched: readonly BackendProcess[];
  /** `compute` once per run under `key`: a probe several checks report on is run once. */
  memo<T>(key: string, compute: () => Promise<T>): Promise<T>;
  /**
   * Says that what the checks needing this one rely on holds (for a traffic check: data moves at all),
   * whatever this check's own verdict: a failure past this point is of a rule of its own (a used length, a
   * status byte) and skips none of them.
   */
  gateHeld(): void;
  /** Whether `gateHeld` was called. */
  readonly gateWasHeld: boolean;
  /** Names a file the check wrote for the reader (a scanout PNG): its result lists it, the HTML report shows it. */
  saved(file: string): void;
  /** The files `saved` named, in order. */
  readonly savedFiles: readonly string[];
}

export interface Check extends CheckInfo {
  /** What the check does, in more words than its title: the README's table shows it (`--list --format markdown`). */
  detail?: string;
  /**
   * Checks whose rule this one builds on: when one of them ran earlier in the run and failed (or was itself
   * skipped for this reason), this one is skipped naming it, so that one defect is reported once rather
   * than as a cascade of timeouts. A check skipped as not applicable blocks nothing, nor does one that
   * failed after saying its gate held (`CheckContext.gateHeld`).
   */
  needs?: string[];
  /**
   * The check passes by a refusal (an exit status != 0, nothing listening), which a binary that starts on no
   * account gives as well: its `needs` (that the back-end starts when asked right) run even when --grep
   * leaves them out (runner/run.ts withPrerequisites), so that its pass means what a full run's does.
   */
  refusal?: boolean;
  /**
   * Launch mode only, and why: in attach mode (`--connect`) the check is skipped saying this, before its
   * `needs` are looked at (what it cannot do there is the first thing to say). The conventions checks are
   * all such.
   */
  launchOnly?: string;
  /**
   * How long the whole check may take, given the run's deadline per wait; by default 8 waits and 5 s. A check
   * that tries many inputs, each on a fresh back-end, says how many waits that is.
   */
  budgetMs?: (timeoutMs: number, target: Target) => number;
  /**
   * The check may leave the back-end unable to serve another front-end (invalid input, its front-end
   * leaving). In attach mode, where nothing restarts the back-end, these run after every other check,
   * under every profile.
   */
  destructive?: boolean;
  /**
   * It drives the device as a front-end starts one (the ring, migration and device checks): under
   * `--frontend all` it runs once under each profile; it needs the device type.
   */
  perProfile?: boolean;
  /** It makes requests of the device's type without a profile's start (robust.data.*): it needs the type. */
  needsType?: boolean;
  /**
   * It launches back-ends of its own and judges only what those do, and its launches share nothing with
   * another's (the conventions, control-message, net, gpu, input and robustness checks): under --jobs it runs
   * beside the others, which keep their order.
   */
  ownBackends?: boolean;
  /**
   * It judges what the checks before it in the ordered lane found on their way (vring.blk.read-write and the
   * completion rules), and those after it name its findings. Where the ordered lane's launches share nothing
   * and its checks run beside each other (runner/run.ts), it still starts after every check before it and
   * ends before any after it starts.
   */
  judgesLane?: boolean;
  /**
   * The device type (vhost-user.json's name) it drives, and only that one: on a back-end of another type it
   * skips at once, touching nothing, so under --jobs it then waits for no lane.
   */
  device?: string;
  /**
   * Why it runs after the other checks of its group (suites/index.ts keeps the group's order otherwise): it
   * may take a back-end down, and in attach mode the checks after it go with it.
   */
  late?: string;
  /** Resolves (optionally with a fact for the report) when the rule holds; throws otherwise. */
  run(ctx: CheckContext): Promise<string | undefined>;
}

/** The spec anchors checks cite. */
export const Spec = {
  conventions: 'vhost-user.rst#backend-program-conventions',
  capabilitiesSchema: 'vhost-user.json#VHostUserBackendCapabilities',
  descriptorSchema: 'vhost-user.json#VhostUserBackend',
  communication: 'vhost-user.rst#communication',
} as const;

/** Attributes a group of checks shares, declared where the run order is (suites/index.ts) or with the group. */
export type CheckAttributes = Pick<
  Check,
  'destructive' | 'perProfile' | 'needsType' | 'ownBackends' | 'launchOnly' | 'device'
>;

/** The checks of `area`; `common` attributes (e.g. `destructive`) apply to each. */
export function defineChecks(
  area: string,
  checks: Array<Omit<Check, 'area'>>,
  common: CheckAttributes = {},
): Check[] {
  return checks.map((c) => ({ ...common, ...c, area }));
}

/** Builds the context a check runs in; the launched processes are kept for their stderr. */
export function makeContext(
  target: Target,
  timeoutMs: number,
  scope: Scope,
  signal?: AbortSignal,
): CheckContext {
  const launched: BackendProcess[] = [];
  const savedFiles: string[] = [];
  let gate = false;
  return {
    target,
    timeoutMs,
    scope,
    ...(signal ? { signal } : {}),
    launched,
    launch(args, options = {}) {
      const { program, ...rest } = options;
      const backend = launch(scope, program?.binary ?? target.binary, {
        // Teardown only: how a back-end takes SIGTERM is judged by the conv.sigterm checks, not here.
        graceMs: Math.min(timeoutMs, 500),
        ...rest,
        args: [...args, ...(program?.extraArgs ?? target.extraArgs)],
      });
      launched.push(backend);
      return backend;
    },
    memo<T>(key: string, compute: () => Promise<T>): Promise<T> {
      let value = target.memo.get(key) as Promise<T> | undefined;
      if (!value) {
        value = compute();
        target.memo.set(key, value);
      }
      return value;
    },
    gateHeld() {
      gate = true;
    },
    get gateWasHeld() {
      return gate;
    },
    saved(file) {
      savedFiles.push(file);
    },
    savedFiles,
  };
}
