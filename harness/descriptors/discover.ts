/**
 * Back-end descriptor discovery with the precedence rules of vhost-user.json's @VhostUserBackend: files from
 * every folder, general to specific; a more specific folder's file replaces a same-named one; a zero-length
 * file hides it; the result is sorted by file name.
 */
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateDescriptor } from '../schemas/validate.js';

/** The standard folders, general to specific. */
export function standardDescriptorDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const configHome = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return ['/usr/share/qemu/vhost-user', '/etc/qemu/vhost-user', path.join(configHome, 'qemu/vhost-user')];
}

/** `VHU_DESCRIPTOR_DIRS` (colon-separated, general to specific) overrides the standard folders. */
export function descriptorDirsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.VHU_DESCRIPTOR_DIRS;
  return fromEnv ? fromEnv.split(':').filter(Boolean) : standardDescriptorDirs(env);
}

export interface DescriptorFile {
  name: string;
  path: string;
  /** Less specific files of the same name that this one replaces (or hides, when masked). */
  overrides: string[];
}

export interface Discovery {
  dirs: string[];
  /** In effect, sorted by name: the list management software picks from. */
  effective: DescriptorFile[];
  /** Zero-length files and what they hide. */
  masked: DescriptorFile[];
}

export function discoverDescriptors(dirs: string[]): Discovery {
  const byName = new Map<string, { path: string; overrides: string[] }>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json'));
    } catch {
      continue; // A missing folder is normal.
    }
    for (const name of names) {
      const file = path.join(dir, name);
      const previous = byName.get(name);
      byName.set(name, { path: file, overrides: previous ? [...previous.overrides, previous.path] : [] });
    }
  }
  const effective: DescriptorFile[] = [];
  const masked: DescriptorFile[] = [];
  for (const name of [...byName.keys()].sort()) {
    const entry = byName.get(name)!;
    const size = statSync(entry.path, { throwIfNoEntry: false })?.size ?? 0;
    (size === 0 ? masked : effective).push({ name, ...entry });
  }
  return { dirs, effective, masked };
}

export interface DescriptorLint {
  file: DescriptorFile;
  document?: { description?: string; type?: string; binary?: string; tags?: string[] };
  /** Not JSON, or not valid against the VhostUserBackend schema. */
  schemaErrors: string[];
  /** `binary` is not an absolute path to an executable file. */
  binaryErrors: string[];
}

export function lintDescriptor(file: DescriptorFile): DescriptorLint {
  const lint: DescriptorLint = { file, schemaErrors: [], binaryErrors: [] };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file.path, 'utf8'));
  } catch (err) {
    lint.schemaErrors.push(`not JSON: ${(err as Error).message}`);
    return lint;
  }
  lint.schemaErrors.push(...validateDescriptor(doc));
  if (doc && typeof doc === 'object' && !Array.isArray(doc))
    lint.document = doc as DescriptorLint['document'];
  const binary = lint.document?.binary;
  if (typeof binary !== 'string') {
    lint.binaryErrors.push('no binary');
  } else if (!path.isAbsolute(binary)) {
    lint.binaryErrors.push(`binary is not an absolute path: ${binary}`);
  } else {
    try {
      if (!statSync(binary).isFile()) lint.binaryErrors.push(`binary is not a file: ${binary}`);
      else accessSync(binary, constants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      lint.binaryErrors.push(
        `binary ${code === 'ENOENT' ? 'does not exist' : 'is not executable'}: ${binary}`,
      );
    }
  }
  return lint;
}

/** Whether a descriptor's binary is the binary under test (same file, through symlinks). */
export function namesBinary(lint: DescriptorLint, binary: string): boolean {
  const named = lint.document?.binary;
  if (typeof named !== 'string' || !path.isAbsolute(named)) return false;
  try {
    const a = statSync(named);
    const b = statSync(binary);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return path.resolve(named) === path.resolve(binary);
  }
}
