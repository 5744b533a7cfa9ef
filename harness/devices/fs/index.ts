/**
 * The fs device as generic checks drive it (see kind.ts): FUSE_INIT first, as a driver opens a session,
 * then GETATTR of the root on the first request queue; each reply is judged by its fuse_out_header (len,
 * unique, error 0) and its size. Neither request has a side effect the harness can see.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  type DeviceKind,
  type Sample,
  SampleError,
  type SampleOptions,
  type SampleSource,
  sampleAllocator,
  writableSample,
} from '../kind.js';
import { FIRST_REQUEST_QUEUE } from './fs.js';
import {
  errnoLabel,
  FS_CONFIG,
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

function fsSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  const alloc = sampleAllocator(memory, options);
  let unique = 0x5a00n;
  let opened = false;
  const request = (
    what: string,
    opcode: number,
    body: Buffer,
    replyLen: number,
    check: (reply: Uint8Array) => string,
  ) => {
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
      return request(
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
          if ((Number(attr.mode) & S_IFMT) !== S_IFDIR)
            throw new SampleError(
              `GETATTR of the root: mode 0o${Number(attr.mode).toString(8)} is not a directory's`,
            );
          return 'a directory';
        },
      );
    },
  };
}

export const fsKind: DeviceKind = {
  type: 'fs',
  rings: [0, FIRST_REQUEST_QUEUE],
  sampleRing: FIRST_REQUEST_QUEUE,
  sampleRingName: 'the first request queue',
  // VIRTIO_FS_F_NOTIFICATION (bit 0) came after the virtio 1.2 spec the driver follows: none named.
  features: { prefix: 'VIRTIO_FS_F_', bits: {} },
  driverFeatures: 0n,
  modernOnly: true,
  config: FS_CONFIG,
  dataPath: 'fs.getattr',
  samples: fsSamples,
  writable: writableSample(FIRST_REQUEST_QUEUE, fsSamples),
};
