/**
 * The fs device's sample requests (see kind.ts): FUSE_INIT first, as a driver opens a session, then GETATTR
 * of the root on the first request queue (or requests of a watch's own: effect.ts); each reply is judged by
 * its fuse_out_header (len, unique, error 0) and its size.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import { type Sample, SampleError, type SampleOptions, type SampleSource, sampleAllocator } from '../kind.js';
import {
  errnoLabel,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_ROOT_ID,
  FuseAttrOut,
  FuseGetattrIn,
  FuseInHeader,
  FuseInitIn,
  FuseInitOut,
  FuseOpcode,
  FuseOutHeader,
} from './fuse.js';

/** S_IFMT and S_IFDIR: the root is a directory. */
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** Whether a fuse_attr mode is a directory's. */
export function isDirectoryMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

/**
 * Makes one FUSE request on the root (FUSE_INIT: on no node) with its reply buffer, judged by its header and
 * then `check`: `what` names it, `body` follows the fuse_in_header, `replyLen` bytes are given for the reply.
 */
export type FuseSampleMaker = (
  what: string,
  opcode: number,
  body: Buffer,
  replyLen: number,
  check: (reply: Uint8Array) => string,
) => Sample;

/**
 * FUSE_INIT, then the requests `ordinary` makes with the maker it is given (by default GETATTR of the root),
 * each with buffers of its own.
 */
export function fsSamples(
  memory: GuestMemory,
  options: SampleOptions = {},
  ordinary: (make: FuseSampleMaker) => Sample = getattrOfRoot,
): SampleSource {
  const alloc = sampleAllocator(memory, options);
  let unique = 0x5a00n;
  let opened = false;
  const request: FuseSampleMaker = (what, opcode, body, replyLen, check) => {
    const id = unique++;
    const inLen = FuseInHeader.size + body.length;
    const gpa = alloc(`the request (fuse_in_header, ${what})`, inLen, false);
    memory.write(
      gpa,
      Buffer.concat([
        // FUSE_INIT names no node (0, as Linux sends it); GETATTR the root.
        FuseInHeader.encode({
          len: inLen,
          opcode,
          unique: id,
          nodeid: opcode === FuseOpcode.INIT ? 0n : FUSE_ROOT_ID,
        }),
        body,
      ]),
    );
    const out = alloc(`the reply buffer of ${what}`, replyLen, true);
    const sample: Sample = {
      what: `${what} (unique ${id})`,
      chain: [
        { gpa, len: inLen, write: false },
        { gpa: out, len: replyLen, write: true },
      ],
      judge(usedLen) {
        if (usedLen < FuseOutHeader.size || usedLen > replyLen)
          throw new SampleError(
            `${this.what}: used.len ${usedLen}, not a reply of ${FuseOutHeader.size}..${replyLen} bytes`,
          );
        const reply = memory.read(out, usedLen);
        const header = FuseOutHeader.decode(reply);
        if (header.len !== usedLen)
          throw new SampleError(`${this.what}: fuse_out_header.len ${header.len}, yet used.len ${usedLen}`);
        if (header.unique !== id)
          throw new SampleError(`${this.what}: answered with unique ${header.unique}`);
        if (header.error !== 0)
          throw new SampleError(`${this.what}: answered error ${errnoLabel(-header.error)}`);
        return check(reply);
      },
    };
    return sample;
  };
  return {
    get needsOpening() {
      return !opened;
    },
    next() {
      if (!opened) {
        opened = true;
        const init = FuseInitIn.encode({
          major: FUSE_KERNEL_VERSION,
          minor: FUSE_KERNEL_MINOR_VERSION,
          max_readahead: 0x2_0000,
        });
        return {
          ...request(
            'FUSE_INIT',
            FuseOpcode.INIT,
            init,
            FuseOutHeader.size + FuseInitOut.size,
            () => 'INIT answered',
          ),
          opening: true,
        };
      }
      return ordinary(request);
    },
  };
}

/** GETATTR of the root, answered with a directory's attributes. */
function getattrOfRoot(make: FuseSampleMaker): Sample {
  return make(
    'GETATTR of the root',
    FuseOpcode.GETATTR,
    FuseGetattrIn.encode({}),
    FuseOutHeader.size + FuseAttrOut.size,
    (reply) => {
      if (reply.length !== FuseOutHeader.size + FuseAttrOut.size)
        throw new SampleError(
          `GETATTR of the root: a ${reply.length}-byte reply, not ${FuseOutHeader.size + FuseAttrOut.size}`,
        );
      const { attr } = FuseAttrOut.decode(reply, FuseOutHeader.size);
      if (!isDirectoryMode(Number(attr.mode)))
        throw new SampleError(
          `GETATTR of the root: mode 0o${Number(attr.mode).toString(8)} is not a directory's`,
        );
      return 'a directory';
    },
  );
}
