/**
 * What launching and probing a back-end need of whoever asks (a check: runner/check.ts CheckContext is one):
 * its scope, its deadline, a launcher, and the facts of the back-end under test. Narrow, so that process/
 * knows nothing of the runner above it.
 */
import type { BackendProcess, LaunchOptions } from './backend.js';
import type { Scope } from './scope.js';

/** Another program to launch than the one under test: the destination of a move. */
export interface Program {
  binary: string;
  /** Appended to the check's arguments instead of the run's. */
  extraArgs: string[];
}

export interface BackendContext {
  target: {
    /** Attach mode: the socket of a back-end someone else started; null in launch mode. */
    connect: string | null;
    /** Facts of the back-end itself, shared by every profile of the run (that it is gone, in attach mode). */
    backendMemo: Map<string, Promise<unknown>>;
  };
  /** The deadline for each wait. */
  timeoutMs: number;
  /** Owns everything acquired; closed when the asker is done, whatever happened. */
  scope: Scope;
  /**
   * Launches the back-end with `args` plus the run's extra args, owned by `scope`; with `program`, that
   * binary with its own extra args instead.
   */
  launch(args: string[], options?: Partial<LaunchOptions> & { program?: Program }): BackendProcess;
}
