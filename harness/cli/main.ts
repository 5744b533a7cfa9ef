#!/usr/bin/env node
/**
 * The entry point, and the only code that touches process.argv, signals and the exit status. Signals are
 * taken first, before the program and its suites load (which takes a while on a busy machine): a Ctrl-C at
 * any moment stops the run as documented (exit 130, or 143 for SIGTERM, nothing left behind) instead of
 * killing node in the middle of an import.
 */
import { EXIT } from './exit.js';
import type { Interrupt } from './program.js';

const interrupt: Interrupt = { controller: new AbortController(), stoppedWith: EXIT.interrupted };
let signals = 0;

function onSignal(signal: NodeJS.Signals): void {
  signals++;
  if (signals === 1) interrupt.stoppedWith = signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
  process.stderr.write(`\nvhu-conform: ${signal}: stopping, ending back-ends and removing temp files\n`);
  interrupt.controller.abort();
  interrupt.onStop?.();
  // Nothing launched yet, or a second signal: go now.
  if (!interrupt.onStop || signals > 1) process.exit(interrupt.stoppedWith);
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

// `vhu-conform --list | head` closes our stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

const { cli } = await import('./program.js');
process.exitCode = await cli(process.argv, interrupt);
