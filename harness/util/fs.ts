import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Creates `dir` and its missing parents one level at a time. Node's recursive mkdir spins forever under
 * /proc (a parent that exists but refuses entries); this fails with the error instead.
 */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let cur = path.resolve(dir); ; cur = path.dirname(cur)) {
    const found = await stat(cur).then(
      (s) => s,
      () => undefined,
    );
    if (found) {
      if (!found.isDirectory()) throw new Error(`${cur} is not a folder`);
      break;
    }
    missing.unshift(cur);
    if (cur === path.dirname(cur)) break;
  }
  for (const d of missing)
    await mkdir(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
}
