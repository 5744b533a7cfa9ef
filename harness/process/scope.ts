import { dir } from 'tmp-promise';

/**
 * Owns what a check (or a whole run) acquires: processes, fds, sockets, temp folders. `close` releases
 * everything in reverse order of acquisition on every path, and keeps going when one release fails.
 */
export class Scope {
  private readonly releases: Array<{ what: string; release: () => void | Promise<void> }> = [];
  private closed = false;

  defer(what: string, release: () => void | Promise<void>): void {
    if (this.closed) throw new Error(`scope already closed; cannot take ownership of ${what}`);
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
