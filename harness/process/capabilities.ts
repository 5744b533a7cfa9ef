import { TimeoutError } from '../errors.js';
import { type ExitInfo, launch } from './backend.js';
import type { Scope } from './scope.js';

export interface CapabilitiesProbe {
  exit: ExitInfo | null;
  /** The program was still running at the deadline (and was then ended). */
  timedOut: boolean;
  durationMs: number;
  stdout: string;
  /** stdout went past the capture limit. */
  overflow: boolean;
  stderrTail: string;
  /** The parsed document, when stdout is exactly one JSON document. */
  document?: unknown;
  parseError?: string;
  type: string | null;
}

export const CAPABILITIES_LIMIT = 64 * 1024;

/** Runs `BINARY --print-capabilities [moreArgs] [extraArgs]` and reads what it prints. */
export async function probeCapabilities(
  scope: Scope,
  binary: string,
  extraArgs: string[],
  timeoutMs: number,
  moreArgs: string[] = [],
): Promise<CapabilitiesProbe> {
  const backend = launch(scope, binary, {
    args: ['--print-capabilities', ...moreArgs, ...extraArgs],
    graceMs: timeoutMs,
    stdoutLimit: CAPABILITIES_LIMIT,
  });
  let exit: ExitInfo | null = null;
  let timedOut = false;
  try {
    exit = await backend.waitExit(timeoutMs, `${binary} --print-capabilities to exit`);
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    timedOut = true;
    await backend.terminate();
  }
  const stdout = backend.stdout.toString('utf8');
  const probe: CapabilitiesProbe = {
    exit,
    timedOut,
    durationMs: Math.round((backend.exitedAt ?? performance.now()) - backend.startedAt),
    stdout,
    overflow: backend.stdoutOverflow,
    stderrTail: backend.stderrTail,
    type: null,
  };
  if (!backend.stdoutOverflow) {
    try {
      probe.document = JSON.parse(stdout);
    } catch (err) {
      probe.parseError = (err as Error).message;
    }
  } else {
    probe.parseError = `more than ${CAPABILITIES_LIMIT} bytes on stdout`;
  }
  const doc = probe.document as { type?: unknown } | undefined;
  if (doc && typeof doc === 'object' && typeof doc.type === 'string') probe.type = doc.type;
  return probe;
}
