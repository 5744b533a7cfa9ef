import { access, constants, mkdir, open, rm, stat } from 'node:fs/promises';
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

/**
 * Fails, with what stands in the way, unless `file` can be written: creates its folder, then opens the file
 * for appending (which creates it when missing and truncates nothing) and removes it again if it was not
 * there, so that a run that then fails to start leaves no empty report behind.
 */
export async function expectWritableFile(file: string): Promise<void> {
  await ensureDir(path.dirname(file));
  const existed = await stat(file).then(
    () => true,
    () => false,
  );
  await (await open(file, 'a')).close();
  if (!existed) await rm(file, { force: true });
}

/** Fails, with what stands in the way, unless files can be made in `dir` (created when missing). */
export async function expectWritableDir(dir: string): Promise<void> {
  await ensureDir(dir);
  await access(dir, constants.W_OK | constants.X_OK);
}
