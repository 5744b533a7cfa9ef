import { dir } from 'tmp-promise';

/**
 * Owns what a check (or a whole run) acquires: processes, fds, sockets, temp folders. `close` releases
 * everything in reverse order of acquisition on every path, and keeps going when one release fails.
 */
export class Scope {
  private readonly releases: Array<{ what: string; release: () => void | Promise<void> }> = [];
  private closed = false;

  /**
   * Takes ownership of `what`. Once the scope is closed (a check cut short while it was still acquiring, say
   * a launch that finished after its deadline), `what` is released at once, then this throws.
   */
  defer(what: string, release: () => void | Promise<void>): void {
    if (this.closed) {
      // Nobody is left to report a failure to: close() has returned.
      void Promise.resolve()
        .then(release)
        .catch(() => undefined);
      throw new Error(`scope already closed; released ${what} at once`);
    }
    this.releases.push({ what, release });
  }

  /** A fresh temp folder, removed with its contents when the scope closes. */
  async tempDir(prefix = 'vhu-'): Promise<string> {
    const tmp = await dir({ prefix, unsafeCleanup: true });
    this.defer(`temp dir ${tmp.path}`, () => tmp.cleanup());
    return tmp.path;
  }

  /** Releases everything; returns the failures (never throws), so teardown always completes. */
  async close(): Promise<string[]> {
    this.closed = true;
    const problems: string[] = [];
    for (const { what, release } of this.releases.splice(0).reverse()) {
      try {
        await release();
      } catch (err) {
        problems.push(`releasing ${what}: ${(err as Error).message}`);
      }
    }
    return problems;
  }
}
