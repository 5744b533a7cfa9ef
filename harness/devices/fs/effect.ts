/**
 * A side effect of fs requests the harness can see: MKDIR of a name of the watch's own in the root, the
 * directory then there in the folder the back-end serves (named by its arguments: `-o source=DIR` or
 * `--shared-dir`). GETATTR, the kind's sample, changes nothing; a directory made is a side effect by any
 * reading of vhost-user.rst's "started but disabled: the back-end must process the ring without causing any
 * side effects". The directories are removed when the check's scope ends.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type EffectTarget, type EffectWatch, type Sample, SampleError } from '../kind.js';
import { sharedDirFromArgs } from './fs.js';
import { encodeName, FuseEntryOut, FuseMkdirIn, FuseOpcode, FuseOutHeader } from './fuse.js';
import { type FuseSampleMaker, fsSamples, isDirectoryMode } from './samples.js';

/** The mode the directories are made with. */
const MODE = 0o755;

/** Whether `dir` exists and is a directory. */
function isDirectory(dir: string): boolean {
  try {
    return lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

export function madeDirectories({ memory, options, args, scope }: EffectTarget): EffectWatch | string {
  if (args === null) return 'attach mode: the folder the back-end serves is unknown (no back-end arguments)';
  const shared = sharedDirFromArgs(args);
  if (shared === undefined)
    return 'the folder the back-end serves is unknown: give it after --, as `-o source=DIR` or `--shared-dir=DIR`';
  // A token of its own: checks at once (--jobs) may serve the same folder.
  const token = randomBytes(4).toString('hex');
  const made = new Map<Sample, string>();
  let count = 0;
  const mkdir = (make: FuseSampleMaker): Sample => {
    const name = `vhu-effect-${token}-${count++}`;
    const replyLen = FuseOutHeader.size + FuseEntryOut.size;
    const sample = make(
      `MKDIR of ${name} in the root`,
      FuseOpcode.MKDIR,
      Buffer.concat([FuseMkdirIn.encode({ mode: MODE, umask: 0 }), encodeName(name)]),
      replyLen,
      (reply) => {
        if (reply.length !== replyLen)
          throw new SampleError(`MKDIR of ${name}: a ${reply.length}-byte reply, not ${replyLen}`);
        const { nodeid, attr } = FuseEntryOut.decode(reply, FuseOutHeader.size);
        if (nodeid === 0n) throw new SampleError(`MKDIR of ${name}: answered node id 0`);
        if (!isDirectoryMode(Number(attr.mode)))
          throw new SampleError(
            `MKDIR of ${name}: mode 0o${Number(attr.mode).toString(8)} is not a directory's`,
          );
        return `${name} made`;
      },
    );
    // Removed with the check, once there is one to remove (a watch whose requests are never made leaves none).
    if (made.size === 0)
      scope.defer('the directories MKDIR made', () => {
        for (const dir of made.values()) rmSync(dir, { recursive: true, force: true });
      });
    made.set(sample, path.join(shared, name));
    return sample;
  };
  return {
    what: `the directory MKDIR makes appearing in ${shared}`,
    samples: fsSamples(memory, options, mkdir),
    arm() {},
    seen(sample) {
      const dir = made.get(sample);
      return dir !== undefined && isDirectory(dir);
    },
  };
}
