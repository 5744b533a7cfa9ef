/** Test support for the sys layer: proof that a test leaves no fd open. Used by the *.test.ts files here. */
import fs from 'node:fs';
import { expect } from 'chai';
import { openFds } from './libc.js';

/**
 * Registers mocha hooks that compare the fds open in this process before and after each test. libuv and fs
 * open some fds on first use; a warm-up in `before` has them opened before the first count.
 */
export function expectNoFdLeaks(): void {
  let open: number[] = [];
  before(async () => {
    await fs.promises.stat('/proc/self/fd');
  });
  beforeEach(() => {
    open = openFds();
  });
  afterEach(function () {
    if (this.currentTest?.state !== 'passed') return;
    expect(openFds(), 'fds open after the test').to.deep.equal(open);
  });
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
