/**
 * virtio-fs traffic (virtio spec, File System Device; include/uapi/linux/fuse.h): FUSE requests through the
 * request and hiprio queues against a tree of files the harness made in the directory the back-end serves,
 * every answer compared with what node:fs says of the same files. A malformed request, the config space and
 * the request queues are fs-device.ts's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { FS_MAX_IO, HIPRIO_QUEUE } from '../../harness/devices/fs/fs.js';
import {
  Errno,
  encodeName,
  errnoLabel,
  FattrValid,
  FUSE_ROOT_ID,
  FuseAttrOut,
  FuseCreateIn,
  FuseEntryOut,
  FuseFlushIn,
  FuseForgetIn,
  FuseInitFlag,
  FuseOpcode,
  FuseOpenOut,
  FuseReadIn,
  FuseSetattrIn,
  FuseWriteIn,
  FuseWriteOut,
} from '../../harness/devices/fs/fuse.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { defineChecks } from '../../harness/runner/check.js';
import {
  fuseInit,
  INIT_FLAGS,
  INNER,
  lookup,
  openFs,
  openInitialized,
  SUBDIR,
  SUBDIR_MODE,
} from '../common/fs.js';
import { expectAttr, expectErrno, FsSpec, NEEDS_INIT, onHost, quote } from './fs-common.js';
import {
  expectListing,
  getattr,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  open,
  readAll,
  release,
  S_IFREG,
} from './fs-ops.js';

export const fsChecks = defineChecks('fs', [
  {
    id: 'fs.init',
    detail:
      "FUSE_INIT (7.31) on the request queue is answered: major 7, a whole `fuse_init_out`, the request's unique, `len` equal to used.len",
    title: 'FUSE_INIT on the request queue is answered: version 7, a whole fuse_init_out, the same unique',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): FUSE_INIT is answered with a fuse_out_header carrying the request\'s unique and the length written, and a fuse_init_out of major 7 (FUSE_KERNEL_VERSION); the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: ['conv.socket-path.reply', 'proto.reply-ack.accepted', 'proto.reply.get-max-mem-slots'],
    async run(ctx) {
      const setup = await openFs(ctx);
      const init = await fuseInit(setup);
      expect(init.major, 'fuse_init_out.major').to.equal(7);
      const granted = init.flags & INIT_FLAGS;
      return (
        `FUSE ${init.major}.${init.minor}, max_write ${init.max_write}, flags 0x${init.flags.toString(16)}` +
        ` (of those asked: 0x${granted.toString(16)}); ${setup.queueCount} virtqueues`
      );
    },
  },
  {
    id: 'fs.lookup',
    detail:
      'LOOKUP of every prepared name (and one in the subdirectory) answers ino, size, mode, nlink, uid, gid and mtime as lstat gives them; a missing name gets ENOENT',
    title: 'LOOKUP of every prepared name answers the attributes lstat gives; a missing name ENOENT',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): LOOKUP answers a fuse_entry_out with the attributes of the name (as lstat gives them); a missing name -ENOENT; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      for (const f of tree.files) {
        const entry = await lookup(fsd, treeNode, f.name);
        expect(entry.nodeid, `LOOKUP ${f.name}: nodeid`).to.not.equal(0n);
        expectAttr(`LOOKUP ${f.name}`, entry.attr, path.join(tree.path, f.name));
      }
      const sub = await lookup(fsd, treeNode, SUBDIR);
      expectAttr(`LOOKUP ${SUBDIR}`, sub.attr, path.join(tree.path, SUBDIR));
      expect(sub.attr.mode & 0o7777, `LOOKUP ${SUBDIR}: mode`).to.equal(SUBDIR_MODE);
      const inner = await lookup(fsd, sub.nodeid, INNER.name);
      expectAttr(`LOOKUP ${SUBDIR}/${INNER.name}`, inner.attr, path.join(tree.path, SUBDIR, INNER.name));
      await expectErrno(
        fsd,
        {
          opcode: FuseOpcode.LOOKUP,
          nodeid: treeNode,
          args: encodeName('no-such-file'),
          outArgs: FuseEntryOut.size,
        },
        Errno.ENOENT,
        'a name that does not exist',
      );
      return `${tree.files.length + 2} names looked up in ${tree.path}: ino, size, mode, nlink, uid, gid, mtime as lstat says; a missing name: ENOENT`;
    },
  },
  {
    id: 'fs.getattr',
    detail: 'GETATTR of the root, the tree, the subdirectory and every file answers what lstat gives',
    title: 'GETATTR of the root, a directory and every file answers what lstat gives',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): GETATTR answers a fuse_attr_out with the node\'s attributes (as lstat gives them); the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      expectAttr('GETATTR of the root', await getattr(fsd, FUSE_ROOT_ID, 'GETATTR of the root'), tree.shared);
      expectAttr('GETATTR of the tree', await getattr(fsd, treeNode, 'GETATTR of the tree'), tree.path);
      for (const f of [...tree.files.map((f) => f.name), SUBDIR]) {
        const { nodeid } = await lookup(fsd, treeNode, f);
        expectAttr(`GETATTR of ${f}`, await getattr(fsd, nodeid, `GETATTR of ${f}`), path.join(tree.path, f));
      }
      return `${tree.files.length + 3} nodes: attributes as lstat says`;
    },
  },
  {
    id: 'fs.readdir',
    detail:
      'OPENDIR, READDIR in 128-byte pieces following `off`, RELEASEDIR: exactly the names node:fs lists, with their types and inodes, none twice',
    title: 'OPENDIR, READDIR (in small pieces, following off) and RELEASEDIR list exactly the directory',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): OPENDIR, READDIR (fuse_dirent records, resumed at off) and RELEASEDIR list every entry of the directory once; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const notes: string[] = [];
      for (const [node, dir] of [
        [treeNode, tree.path],
        [(await lookup(fsd, treeNode, SUBDIR)).nodeid, path.join(tree.path, SUBDIR)],
      ] as const) {
        const fh = await open(fsd, node, O_RDONLY, `OPENDIR ${dir}`, true);
        // 128 bytes hold about three records: the listing takes several requests.
        const listed = expectListing('READDIR', dir, await readAll(fsd, node, fh, false, 128));
        await release(fsd, node, fh, O_RDONLY, `RELEASEDIR ${dir}`, true);
        notes.push(`${listed.length} entr${listed.length === 1 ? 'y' : 'ies'} of ${path.basename(dir)}`);
      }
      return `${notes.join(', ')}: names, types and inodes as node:fs says`;
    },
  },
  {
    id: 'fs.readdirplus',
    detail:
      "with FUSE_DO_READDIRPLUS granted, READDIRPLUS lists the directory with each entry's attributes as lstat gives them",
    title: 'with FUSE_DO_READDIRPLUS, READDIRPLUS lists the directory with each entry attributes lstat gives',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): with FUSE_DO_READDIRPLUS granted, READDIRPLUS lists fuse_direntplus records, each entry with its attributes; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: ['fs.readdir'],
    async run(ctx) {
      const { fs: fsd, tree, treeNode, init } = await openInitialized(ctx);
      if (!(init.flags & FuseInitFlag.DO_READDIRPLUS)) {
        throw new SkipError(
          'FUSE_INIT did not grant FUSE_DO_READDIRPLUS: a kernel would not send READDIRPLUS',
        );
      }
      const fh = await open(fsd, treeNode, O_RDONLY, 'OPENDIR of the tree', true);
      const entries = await readAll(fsd, treeNode, fh, true, 1024);
      const listed = expectListing('READDIRPLUS', tree.path, entries);
      let withAttr = 0;
      for (const e of entries) {
        // "." and ".." may come without a lookup (nodeid 0), as the kernel allows.
        if (e.name === '.' || e.name === '..' || e.entry.nodeid === 0n) continue;
        expectAttr(`READDIRPLUS entry ${quote(e.name)}`, e.entry.attr, path.join(tree.path, e.name));
        withAttr++;
      }
      await release(fsd, treeNode, fh, O_RDONLY, 'RELEASEDIR of the tree', true);
      expect(withAttr, 'READDIRPLUS entries with a node id').to.equal(listed.length);
      return `${listed.length} entries, each with the attributes lstat gives`;
    },
  },
  {
    id: 'fs.read',
    detail:
      'OPEN, READ at offsets in 4 KiB or 32 KiB pieces up to a short read, RELEASE: every file byte for byte',
    title: 'OPEN, READ (at offsets, in pieces, past the end) and RELEASE return every file byte for byte',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): OPEN, READ (the file\'s bytes at the offset, short only at the end of the file) and RELEASE; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const files = [...tree.files.map((f) => f.name), `${SUBDIR}/${INNER.name}`];
      let reads = 0;
      for (const name of files) {
        const parts = name.split('/');
        let node = treeNode;
        for (const p of parts) node = (await lookup(fsd, node, p)).nodeid;
        const expected = onHost(`READ ${name}`, path.join(tree.path, name), () =>
          fs.readFileSync(path.join(tree.path, name)),
        );
        const fh = await open(fsd, node, O_RDONLY, `OPEN ${name}`);
        // 4 KiB pieces for small files, the driver's largest for big ones.
        const piece = expected.length > 16_384 ? FS_MAX_IO : 4096;
        const got: Buffer[] = [];
        for (let offset = 0; ; offset += piece) {
          const body = await fsd.call(
            {
              opcode: FuseOpcode.READ,
              nodeid: node,
              args: FuseReadIn.encode({ fh, offset: BigInt(offset), size: piece }),
              outData: piece,
            },
            `READ ${name} at ${offset}`,
          );
          reads++;
          if (body.length > piece)
            throw new BackendError(`READ ${name}: ${body.length} bytes for ${piece} asked`);
          got.push(Buffer.from(body));
          if (body.length < piece) break;
          if (offset > expected.length) throw new BackendError(`READ ${name}: data past the end of the file`);
        }
        const all = Buffer.concat(got);
        if (!all.equals(expected)) {
          const at = all.findIndex((b, i) => b !== expected[i]);
          throw new BackendError(
            `READ ${name}: ${all.length} bytes, the file has ${expected.length}` +
              (at >= 0 && at < expected.length ? `; first difference at byte ${at}` : ''),
          );
        }
        await release(fsd, node, fh, O_RDONLY, `RELEASE ${name}`);
      }
      return `${files.length} files read in ${reads} READs: every byte as on disk`;
    },
  },
  {
    id: 'fs.create-write',
    detail:
      'CREATE (0640, O_EXCL), three WRITEs at offsets (one overwriting), FLUSH, RELEASE: the file node:fs reads is what was written; CREATE again gets EEXIST',
    title:
      'CREATE, WRITE (at offsets), FLUSH and RELEASE leave the file node:fs then reads; O_EXCL gets EEXIST',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): CREATE makes the file with the mode asked, WRITE writes at the offset and answers the size written, CREATE with O_EXCL of an existing name -EEXIST; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const name = 'created.txt';
      const file = path.join(tree.path, name);
      const createArgs = Buffer.concat([
        FuseCreateIn.encode({ flags: O_RDWR | O_CREAT | O_EXCL, mode: S_IFREG | 0o640, umask: 0 }),
        encodeName(name),
      ]);
      const createRequest = {
        opcode: FuseOpcode.CREATE,
        nodeid: treeNode,
        args: createArgs,
        outArgs: FuseEntryOut.size + FuseOpenOut.size,
      };
      const body = await fsd.call(createRequest, `CREATE ${name}`);
      const entry = FuseEntryOut.decode(body, 0, `CREATE ${name}'s fuse_entry_out`);
      const { fh } = FuseOpenOut.decode(body, FuseEntryOut.size, `CREATE ${name}'s fuse_open_out`);
      if (!fs.existsSync(file)) throw new BackendError(`CREATE ${name} succeeded, but there is no ${file}`);
      expectAttr(`CREATE ${name}`, entry.attr, file);
      expect(entry.attr.mode & 0o7777, `CREATE ${name}: mode (0640 asked, umask 0)`).to.equal(0o640);
      const expected = Buffer.alloc(9000);
      const writes: Array<[number, Buffer]> = [
        [0, Buffer.from('first write. '.repeat(400))],
        [5200, Buffer.from('second, past the first. '.repeat(150))],
        [100, Buffer.from('an overwrite in the middle')],
      ];
      let end = 0;
      for (const [offset, data] of writes) {
        const out = await fsd.call(
          {
            opcode: FuseOpcode.WRITE,
            nodeid: entry.nodeid,
            args: FuseWriteIn.encode({ fh, offset: BigInt(offset), size: data.length }),
            data,
            outArgs: FuseWriteOut.size,
          },
          `WRITE ${data.length} bytes at ${offset}`,
        );
        expect(
          FuseWriteOut.decode(out, 0, 'fuse_write_out').size,
          `WRITE at ${offset}: size written`,
        ).to.equal(data.length);
        data.copy(expected, offset);
        end = Math.max(end, offset + data.length);
      }
      const flush = await fsd.run({
        opcode: FuseOpcode.FLUSH,
        nodeid: entry.nodeid,
        args: FuseFlushIn.encode({ fh }),
      });
      if (flush.error !== 0 && flush.error !== -Errno.ENOSYS) {
        throw new BackendError(`FLUSH failed with errno ${errnoLabel(-flush.error)}`);
      }
      await release(fsd, entry.nodeid, fh, O_RDWR, `RELEASE ${name}`);
      const onDisk = onHost('after the WRITEs', file, () => fs.readFileSync(file));
      const want = expected.subarray(0, end);
      if (!onDisk.equals(want)) {
        const at = onDisk.findIndex((b, i) => b !== want[i]);
        throw new BackendError(
          `after the WRITEs ${file} has ${onDisk.length} bytes, ${want.length} were written` +
            (at >= 0 ? `; first difference at byte ${at}` : ''),
        );
      }
      expectAttr(`GETATTR of ${name}`, await getattr(fsd, entry.nodeid, `GETATTR ${name}`), file);
      await expectErrno(fsd, createRequest, Errno.EEXIST, `CREATE ${name} again with O_EXCL`);
      return `${name} created 0640, ${writes.length} WRITEs (${end} bytes) read back with node:fs; FLUSH ${flush.error === 0 ? 'OK' : 'ENOSYS'}`;
    },
  },
  {
    id: 'fs.setattr',
    detail:
      'SETATTR size (shrink, then grow with zeros) and mode: the file changes as lstat and node:fs then see, and the answer agrees',
    title: 'SETATTR of size (shrink, grow) and mode changes the file as lstat then sees, and answers it',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): SETATTR of FATTR_SIZE and FATTR_MODE truncates or extends (with zeros) and chmods the file, and answers its new attributes; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const name = 'resize.dat';
      const file = path.join(tree.path, name);
      const original = onHost('SETATTR', file, () => fs.readFileSync(file));
      const { nodeid } = await lookup(fsd, treeNode, name);
      const setattr = async (what: string, fields: Parameters<typeof FuseSetattrIn.encode>[0]) => {
        const body = await fsd.call(
          {
            opcode: FuseOpcode.SETATTR,
            nodeid,
            args: FuseSetattrIn.encode(fields),
            outArgs: FuseAttrOut.size,
          },
          `SETATTR ${what}`,
        );
        const attr = FuseAttrOut.decode(body, 0, `SETATTR ${what}'s fuse_attr_out`).attr;
        expectAttr(`SETATTR ${what}`, attr, file);
        return attr;
      };
      await setattr('size 1000', { valid: FattrValid.SIZE, size: 1000n });
      expect(
        onHost('SETATTR size 1000', file, () => fs.readFileSync(file)).equals(original.subarray(0, 1000)),
        'the file after SETATTR size 1000',
      ).to.equal(true);
      await setattr('size 9000', { valid: FattrValid.SIZE, size: 9000n });
      const grown = onHost('SETATTR size 9000', file, () => fs.readFileSync(file));
      expect(grown.length, 'the file after SETATTR size 9000').to.equal(9000);
      expect(
        grown.subarray(1000).every((b) => b === 0),
        'the bytes SETATTR size 9000 added are zeros',
      ).to.equal(true);
      const attr = await setattr('mode 0600', { valid: FattrValid.MODE, mode: S_IFREG | 0o600 });
      expect(attr.mode & 0o7777, 'the mode SETATTR answers').to.equal(0o600);
      expect(
        onHost('SETATTR mode', file, () => fs.lstatSync(file)).mode & 0o7777,
        'the mode lstat sees',
      ).to.equal(0o600);
      return `${name}: shrunk to 1000, grown to 9000 (zeros), chmod 0600; the answers and lstat agree`;
    },
  },
  {
    id: 'fs.unlink',
    detail:
      'UNLINK removes the file (LOOKUP then gets ENOENT, the directory lists the rest); UNLINK of a missing name gets ENOENT',
    title: 'UNLINK removes the file (then LOOKUP gets ENOENT); UNLINK of a missing name gets ENOENT',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): UNLINK removes the name; of a missing name -ENOENT; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const name = 'doomed.txt';
      await lookup(fsd, treeNode, name);
      const body = await fsd.call(
        { opcode: FuseOpcode.UNLINK, nodeid: treeNode, args: encodeName(name) },
        `UNLINK ${name}`,
      );
      expect(body.length, 'UNLINK reply arguments').to.equal(0);
      if (fs.existsSync(path.join(tree.path, name))) {
        throw new BackendError(`UNLINK ${name} succeeded, but the file is still in ${tree.path}`);
      }
      await expectErrno(
        fsd,
        { opcode: FuseOpcode.LOOKUP, nodeid: treeNode, args: encodeName(name), outArgs: FuseEntryOut.size },
        Errno.ENOENT,
        `LOOKUP ${name} after UNLINK`,
      );
      await expectErrno(
        fsd,
        { opcode: FuseOpcode.UNLINK, nodeid: treeNode, args: encodeName('never-there') },
        Errno.ENOENT,
        'UNLINK of a missing name',
      );
      const left = onHost('the tree after UNLINK', tree.path, () => fs.readdirSync(tree.path));
      expect(left, 'the directory after UNLINK').to.have.members(
        [...tree.files.map((f) => f.name), SUBDIR].filter((n) => n !== name),
      );
      return `${name} gone from ${tree.path}; LOOKUP then ENOENT; a missing name ENOENT`;
    },
  },
  {
    id: 'fs.forget',
    detail:
      'FORGET on the hiprio queue comes back with used.len 0; a node looked up twice and forgotten once still answers GETATTR',
    title:
      'FORGET on the hiprio queue is taken without a reply (used.len 0); a node stays until its lookups are all forgotten',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): FORGET gets no reply, and takes nlookup from the node\'s lookup count: the node stays until the count reaches 0; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd, tree, treeNode } = await openInitialized(ctx);
      const name = tree.files[0]!.name;
      const file = path.join(tree.path, name);
      const first = await lookup(fsd, treeNode, name);
      const second = await lookup(fsd, treeNode, name);
      expect(second.nodeid, `the node id of the second LOOKUP ${name}`).to.equal(first.nodeid);
      const forget = async (nlookup: bigint) => {
        const reply = await fsd.run(
          {
            opcode: FuseOpcode.FORGET,
            nodeid: first.nodeid,
            args: FuseForgetIn.encode({ nlookup }),
            noReply: true,
          },
          HIPRIO_QUEUE,
        );
        expect(reply.usedLen, 'FORGET used.len').to.equal(0);
      };
      // Looked up twice, forgotten once: the node must stay, as the kernel still holds it.
      await forget(1n);
      expectAttr(
        `GETATTR ${name} after FORGET of 1 of its 2 lookups`,
        await getattr(fsd, first.nodeid, `GETATTR ${name} after FORGET of 1 of its 2 lookups`),
        file,
      );
      await forget(1n);
      const again = await lookup(fsd, treeNode, name);
      expectAttr(`LOOKUP ${name} after FORGET`, again.attr, file);
      expectAttr(`GETATTR ${name} after FORGET`, await getattr(fsd, again.nodeid, `GETATTR ${name}`), file);
      return `${name} looked up twice, FORGET 1 (the node still answers GETATTR), FORGET 1 more; each back on hiprio with used.len 0; LOOKUP and GETATTR then work`;
    },
  },
  {
    id: 'fs.destroy',
    detail: 'DESTROY is answered with a bare `fuse_out_header`, error 0',
    title: 'DESTROY is answered with a bare fuse_out_header, error 0',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (FUSE as Linux\'s fuse client expects it, include/uapi/linux/fuse.h; virtiofsd): DESTROY is answered with a fuse_out_header alone, error 0; the virtio spec leaves the request semantics to FUSE, with no normative word (File System Device, Device Operation: Request Queues: "The FUSE protocol documented in FUSE specifies the set of request types and their contents.")',
    spec: FsSpec.operation,
    needs: [NEEDS_INIT],
    async run(ctx) {
      const { fs: fsd } = await openInitialized(ctx);
      const reply = await fsd.run({ opcode: FuseOpcode.DESTROY, nodeid: 0n });
      expect(reply.error === 0 ? 'success' : errnoLabel(-reply.error), 'DESTROY').to.equal('success');
      expect(reply.len, 'DESTROY reply length').to.equal(16);
      return 'DESTROY: error 0, 16 bytes';
    },
  },
]);
