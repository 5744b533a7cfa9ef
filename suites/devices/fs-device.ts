/**
 * virtio-fs beyond the file operations (fs.ts): a malformed request answered and survived, the config space
 * (virtio_fs_config), and requests on every request queue at once.
 */
import path from 'node:path';
import { expect } from 'chai';
import { FIRST_REQUEST_QUEUE, type FsDriver } from '../../harness/devices/fs/fs.js';
import {
  encodeName,
  errnoLabel,
  FUSE_ROOT_ID,
  FuseAttrOut,
  FuseEntryOut,
  FuseInHeader,
  FuseOpcode,
  VIRTIO_FS_TAG_SIZE,
} from '../../harness/devices/fs/fuse.js';
import { BackendError } from '../../harness/errors.js';
import { hasBit, ProtocolFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { lookup, openInitialized } from '../common/fs.js';
import { expectAttr, FsSpec, NEEDS_INIT } from './fs-common.js';
import { readFsConfig, UNKNOWN_OPCODE } from './fs-ops.js';

export const fsDeviceChecks = defineChecks('fs', [
  {
    id: 'fs.bad-request',
    detail:
      'an unknown opcode and a 24-byte `fuse_in_header` each get a FUSE error reply (negative errno), and LOOKUP works after each',
    title:
      'an unknown opcode and a short fuse_in_header get a FUSE error reply (negative errno), and the device goes on',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): an unknown opcode and a malformed request are answered with an error (-ENOSYS, -EINVAL), and the daemon goes on; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const notes: string[] = [];
      const probe = tree.files[0]!.name;
      const goesOn = async (after: string) => {
        try {
          expectAttr(
            `LOOKUP ${probe} after ${after}`,
            (await lookup(fsd, treeNode, probe)).attr,
            path.join(tree.path, probe),
          );
        } catch (err) {
          throw new BackendError(
            `after ${after}, the device no longer answers LOOKUP: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
      };
      const broken = async (what: string, request: Parameters<FsDriver['run']>[0]) => {
        let reply: Awaited<ReturnType<FsDriver['run']>>;
        try {
          reply = await fsd.run(request);
        } catch (err) {
          if (!(err instanceof BackendError)) throw err;
          const before = notes.length ? ` (before it: ${notes.join('; ')})` : '';
          throw new BackendError(`${what}: ${err.message}${before}`, { cause: err });
        }
        if (reply.error === 0) throw new BackendError(`${what} was answered with success`);
        notes.push(`${what}: errno ${errnoLabel(-reply.error)}`);
        await goesOn(what);
      };
      await broken(`opcode ${UNKNOWN_OPCODE}`, { opcode: UNKNOWN_OPCODE, nodeid: FUSE_ROOT_ID, outArgs: 64 });
      // The first 24 bytes of a GETATTR header (len, opcode, unique, half of nodeid), len saying 24.
      const short = FuseInHeader.encode({
        len: 24,
        opcode: FuseOpcode.GETATTR,
        unique: fsd.nextUnique(),
        nodeid: FUSE_ROOT_ID,
      }).subarray(0, 24);
      await broken('a 24-byte fuse_in_header', {
        opcode: FuseOpcode.GETATTR,
        raw: short,
        outArgs: FuseAttrOut.size,
      });
      return `${notes.join('; ')}; LOOKUP works after each`;
    },
  },
  {
    id: 'fs.config',
    detail: 'with `CONFIG`, `virtio_fs_config` has num_request_queues >= 1',
    title: 'with CONFIG, the config space has num_request_queues >= 1',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Device configuration layout (File System Device): "The device MUST set num_request_queues to 1 or greater."',
    spec: FsSpec.config,
    needs: ['conv.socket-path.reply', 'proto.config.get'],
    async run(ctx) {
      const { config } = await readFsConfig(ctx);
      expect(config.numRequestQueues, 'num_request_queues').to.be.at.least(1);
      return `${config.numRequestQueues} request queue(s)`;
    },
  },
  {
    id: 'fs.config.fields',
    detail:
      'with `CONFIG`, the `virtio_fs_config` tag is non-empty, NUL-padded UTF-8 (a driver mounts the file system by it), and `GET_QUEUE_NUM` counts hiprio and every request queue num_request_queues gives',
    title: 'with CONFIG, the tag is non-empty NUL-padded UTF-8, and GET_QUEUE_NUM counts every request queue',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (Linux\'s virtiofs driver refuses a device whose tag is empty, and mounts by the tag): the virtio spec (File System Device, Device configuration layout) says, with no normative word: "The tag is encoded in UTF-8 and padded with NUL bytes if shorter than the available space." and "num_request_queues is the total number of request virtqueues exposed by the device."',
    spec: FsSpec.config,
    needs: ['fs.config'],
    async run(ctx) {
      const { config, queueCount, session } = await readFsConfig(ctx);
      const nul = config.tag.indexOf(0);
      const length = nul < 0 ? VIRTIO_FS_TAG_SIZE : nul;
      expect(length, 'the tag length (empty: a driver has no name to mount it by)').to.be.above(0);
      const padding = config.tag.subarray(length);
      expect(
        padding.every((b) => b === 0),
        'the bytes after the tag (NUL-padded)',
      ).to.equal(true);
      let tag: string;
      try {
        tag = new TextDecoder('utf-8', { fatal: true }).decode(config.tag.subarray(0, length));
      } catch (err) {
        throw new BackendError(
          `the tag's ${length} bytes (${Buffer.from(config.tag.subarray(0, length)).toString('hex')}) are not UTF-8`,
          { cause: err },
        );
      }
      if (hasBit(session.ackedProtocolFeatures, ProtocolFeature.MQ)) {
        expect(queueCount, 'GET_QUEUE_NUM: hiprio and every request queue').to.be.at.least(
          1 + config.numRequestQueues,
        );
      }
      return `tag "${tag}", ${config.numRequestQueues} request queue(s), ${queueCount} virtqueues`;
    },
  },
  {
    id: 'fs.queues',
    detail: 'LOOKUPs in flight together on every request queue the device has are all answered right',
    title: 'requests on every request queue, in flight together, are all answered',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (virtiofsd, and Linux\'s virtiofs driver, which spreads requests over the request queues): every request queue serves requests; the virtio spec (File System Device, Device configuration layout) says, with no normative word: "Each virtqueue offers identical functionality and there are no ordering guarantees between requests made available on different queues."',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode, queueCount } = await openInitialized(ctx, { allQueues: true });
      const queues = fsd.queues.filter((q) => q >= FIRST_REQUEST_QUEUE);
      const names = tree.files.map((f) => f.name);
      const perQueue = await Promise.all(
        queues.map((q) =>
          fsd.runAll(
            names.slice(0, 4).map((n) => ({
              opcode: FuseOpcode.LOOKUP,
              nodeid: treeNode,
              args: encodeName(n),
              outArgs: FuseEntryOut.size,
            })),
            q,
          ),
        ),
      );
      perQueue.forEach((replies, i) => {
        replies.forEach((reply, j) => {
          const what = `LOOKUP ${names[j]} on queue ${queues[i]}`;
          if (reply.error !== 0) throw new BackendError(`${what}: errno ${errnoLabel(-reply.error)}`);
          expectAttr(what, FuseEntryOut.decode(reply.body, 0, what).attr, path.join(tree.path, names[j]!));
        });
      });
      return `${queues.length} request queue(s) of ${queueCount} virtqueues, 4 LOOKUPs in flight on each: all answered right`;
    },
  },
]);
