import { expect } from 'chai';
import { ProtocolError } from '../../errors.js';
import {
  decodeDirents,
  decodeDirentsPlus,
  decodeName,
  decodeVirtioFsConfig,
  encodeDirent,
  encodeDirentPlus,
  encodeName,
  encodeVirtioFsConfig,
  FUSE_NAME_OFFSET,
  FUSE_NAME_OFFSET_DIRENTPLUS,
  FuseAttr,
  FuseAttrOut,
  FuseCreateIn,
  FuseEntryOut,
  FuseFlushIn,
  FuseForgetIn,
  FuseGetattrIn,
  FuseInHeader,
  FuseInitIn,
  FuseInitOut,
  FuseMkdirIn,
  FuseOpcode,
  FuseOpenIn,
  FuseOpenOut,
  FuseOutHeader,
  FuseReadIn,
  FuseReleaseIn,
  FuseSetattrIn,
  FuseWriteIn,
  FuseWriteOut,
  fuseOpcodeName,
} from './fuse.js';

/** Little-endian bytes written out by hand: [value, width] pairs. */
function le(...fields: Array<[number | bigint, number]>): number[] {
  const out: number[] = [];
  for (const [value, width] of fields) {
    let v = BigInt.asUintN(width * 8, BigInt(value));
    for (let i = 0; i < width; i++) {
      out.push(Number(v & 0xffn));
      v >>= 8n;
    }
  }
  return out;
}

describe('devices/fuse', () => {
  it('has the sizes of include/uapi/linux/fuse.h', () => {
    const sizes = {
      fuse_in_header: FuseInHeader.size,
      fuse_out_header: FuseOutHeader.size,
      fuse_init_in: FuseInitIn.size,
      fuse_init_out: FuseInitOut.size,
      fuse_attr: FuseAttr.size,
      fuse_entry_out: FuseEntryOut.size,
      fuse_attr_out: FuseAttrOut.size,
      fuse_getattr_in: FuseGetattrIn.size,
      fuse_forget_in: FuseForgetIn.size,
      fuse_open_in: FuseOpenIn.size,
      fuse_open_out: FuseOpenOut.size,
      fuse_create_in: FuseCreateIn.size,
      fuse_mkdir_in: FuseMkdirIn.size,
      fuse_release_in: FuseReleaseIn.size,
      fuse_flush_in: FuseFlushIn.size,
      fuse_read_in: FuseReadIn.size,
      fuse_write_in: FuseWriteIn.size,
      fuse_write_out: FuseWriteOut.size,
      fuse_setattr_in: FuseSetattrIn.size,
      FUSE_NAME_OFFSET,
      FUSE_NAME_OFFSET_DIRENTPLUS,
    };
    expect(sizes).to.deep.equal({
      fuse_in_header: 40,
      fuse_out_header: 16,
      fuse_init_in: 16,
      fuse_init_out: 64,
      fuse_attr: 88,
      fuse_entry_out: 128,
      fuse_attr_out: 104,
      fuse_getattr_in: 16,
      fuse_forget_in: 8,
      fuse_open_in: 8,
      fuse_open_out: 16,
      fuse_create_in: 16,
      fuse_mkdir_in: 8,
      fuse_release_in: 24,
      fuse_flush_in: 24,
      fuse_read_in: 40,
      fuse_write_in: 40,
      fuse_write_out: 8,
      fuse_setattr_in: 88,
      FUSE_NAME_OFFSET: 24,
      FUSE_NAME_OFFSET_DIRENTPLUS: 152,
    });
  });

  it('numbers the opcodes as fuse.h does', () => {
    expect(FuseOpcode).to.include({
      LOOKUP: 1,
      FORGET: 2,
      GETATTR: 3,
      SETATTR: 4,
      UNLINK: 10,
      OPEN: 14,
      READ: 15,
      WRITE: 16,
      RELEASE: 18,
      FLUSH: 25,
      INIT: 26,
      OPENDIR: 27,
      READDIR: 28,
      RELEASEDIR: 29,
      CREATE: 35,
      DESTROY: 38,
      READDIRPLUS: 44,
    });
    expect(fuseOpcodeName(26)).to.equal('INIT');
    expect(fuseOpcodeName(4242)).to.equal('opcode 4242');
  });

  it('encodes fuse_in_header', () => {
    const bytes = FuseInHeader.encode({
      len: 56,
      opcode: FuseOpcode.INIT,
      unique: 0x0102_0304_0506_0708n,
      nodeid: 1n,
      uid: 1000,
      gid: 100,
      pid: 0xdead,
    });
    expect([...bytes]).to.deep.equal(
      le([56, 4], [26, 4], [0x0102_0304_0506_0708n, 8], [1, 8], [1000, 4], [100, 4], [0xdead, 4], [0, 4]),
    );
    expect(FuseInHeader.decode(bytes)).to.deep.equal({
      len: 56,
      opcode: 26,
      unique: 0x0102_0304_0506_0708n,
      nodeid: 1n,
      uid: 1000,
      gid: 100,
      pid: 0xdead,
      padding: 0,
    });
  });

  it('decodes fuse_out_header with a negative errno', () => {
    const bytes = Uint8Array.from(le([16, 4], [-38, 4], [42, 8]));
    expect(FuseOutHeader.decode(bytes)).to.deep.equal({ len: 16, error: -38, unique: 42n });
    expect([...FuseOutHeader.encode({ len: 16, error: -2, unique: 7n })]).to.deep.equal(
      le([16, 4], [0xffff_fffe, 4], [7, 8]),
    );
  });

  it('encodes fuse_init_in and decodes fuse_init_out', () => {
    expect([
      ...FuseInitIn.encode({ major: 7, minor: 31, max_readahead: 0x20000, flags: 0x2001 }),
    ]).to.deep.equal(le([7, 4], [31, 4], [0x20000, 4], [0x2001, 4]));
    const out = Uint8Array.from([
      ...le([7, 4], [31, 4], [0x20000, 4], [0x0040_2001, 4], [12, 2], [9, 2], [0x10_0000, 4], [1, 4]),
      ...le([32, 2], [0, 2], [0, 4]),
      ...new Array(28).fill(0),
    ]);
    expect(out.length).to.equal(64);
    expect(FuseInitOut.decode(out)).to.include({
      major: 7,
      minor: 31,
      max_readahead: 0x20000,
      flags: 0x0040_2001,
      max_background: 12,
      congestion_threshold: 9,
      max_write: 0x10_0000,
      time_gran: 1,
      max_pages: 32,
    });
  });

  it('decodes fuse_entry_out with its fuse_attr, and encodes it back', () => {
    const attr = le(
      [0x1234, 8], // ino
      [5000, 8], // size
      [16, 8], // blocks
      [1_700_000_000, 8], // atime
      [1_700_000_001, 8], // mtime
      [1_700_000_002, 8], // ctime
      [1, 4], // atimensec
      [2, 4], // mtimensec
      [3, 4], // ctimensec
      [0o100644, 4], // mode
      [1, 4], // nlink
      [1000, 4], // uid
      [100, 4], // gid
      [0, 4], // rdev
      [4096, 4], // blksize
      [0, 4], // flags
    );
    const bytes = Uint8Array.from([...le([99, 8], [7, 8], [1, 8], [2, 8], [3, 4], [4, 4]), ...attr]);
    const entry = FuseEntryOut.decode(bytes);
    expect(entry).to.deep.include({ nodeid: 99n, generation: 7n, entry_valid: 1n, attr_valid: 2n });
    expect(entry.attr).to.deep.include({
      ino: 0x1234n,
      size: 5000n,
      mode: 0o100644,
      uid: 1000,
      blksize: 4096,
    });
    expect(entry.attr.mtime).to.equal(1_700_000_001n);
    expect([...FuseEntryOut.encode(entry)]).to.deep.equal([...bytes]);
    const attrOut = Uint8Array.from([...le([5, 8], [6, 4], [0, 4]), ...attr]);
    expect(FuseAttrOut.decode(attrOut).attr.size).to.equal(5000n);
    expect(() => FuseEntryOut.decode(bytes.subarray(0, 127))).to.throw(ProtocolError, /127 bytes/);
  });

  it('encodes the request bodies', () => {
    expect([...FuseGetattrIn.encode({ getattr_flags: 1, fh: 9n })]).to.deep.equal(le([1, 4], [0, 4], [9, 8]));
    expect([...FuseForgetIn.encode({ nlookup: 3n })]).to.deep.equal(le([3, 8]));
    expect([...FuseOpenIn.encode({ flags: 2 })]).to.deep.equal(le([2, 4], [0, 4]));
    expect([...FuseCreateIn.encode({ flags: 0o102, mode: 0o100640, umask: 0o22 })]).to.deep.equal(
      le([0o102, 4], [0o100640, 4], [0o22, 4], [0, 4]),
    );
    expect([...FuseReadIn.encode({ fh: 5n, offset: 4096n, size: 8192 })]).to.deep.equal(
      le([5, 8], [4096, 8], [8192, 4], [0, 4], [0, 8], [0, 4], [0, 4]),
    );
    expect([...FuseWriteIn.encode({ fh: 5n, offset: 1n, size: 3 })]).to.deep.equal(
      le([5, 8], [1, 8], [3, 4], [0, 4], [0, 8], [0, 4], [0, 4]),
    );
    expect([...FuseFlushIn.encode({ fh: 5n, lock_owner: 0xaan })]).to.deep.equal(
      le([5, 8], [0, 4], [0, 4], [0xaa, 8]),
    );
    expect([...FuseReleaseIn.encode({ fh: 5n, flags: 2 })]).to.deep.equal(le([5, 8], [2, 4], [0, 4], [0, 8]));
    expect([...FuseSetattrIn.encode({ valid: 0x9, size: 10n, mode: 0o600 })]).to.deep.equal(
      le(
        [9, 4],
        [0, 4],
        [0, 8], // fh
        [10, 8], // size
        [0, 8],
        [0, 8],
        [0, 8],
        [0, 8], // lock_owner, atime, mtime, ctime
        [0, 4],
        [0, 4],
        [0, 4], // nsecs
        [0o600, 4], // mode
        [0, 4],
        [0, 4],
        [0, 4],
        [0, 4],
      ),
    );
    expect(FuseOpenOut.decode(Uint8Array.from(le([77, 8], [1, 4], [0, 4])))).to.deep.equal({
      fh: 77n,
      open_flags: 1,
      padding: 0,
    });
    expect(FuseWriteOut.decode(Uint8Array.from(le([3, 4], [0, 4]))).size).to.equal(3);
  });

  it('encodes names NUL-terminated and decodes them up to the NUL', () => {
    expect([...encodeName('ab')]).to.deep.equal([0x61, 0x62, 0]);
    expect(decodeName(Uint8Array.of(0x78, 0, 0x79), 'LOOKUP')).to.equal('x');
    expect(() => decodeName(Uint8Array.of(0x78), 'LOOKUP')).to.throw(ProtocolError, /no terminating NUL/);
  });

  it('decodes READDIR records padded to 8 bytes', () => {
    const bytes = Uint8Array.from([
      ...le([11, 8], [1, 8], [1, 4], [4, 4]),
      0x2e,
      ...new Array(7).fill(0),
      ...le([12, 8], [2, 8], [9, 4], [8, 4]),
      ...Buffer.from('hello.txt'),
      ...new Array(7).fill(0),
    ]);
    expect(bytes.length).to.equal(32 + 40);
    const dirents = decodeDirents(bytes);
    expect(dirents).to.deep.equal([
      { ino: 11n, off: 1n, type: 4, name: '.' },
      { ino: 12n, off: 2n, type: 8, name: 'hello.txt' },
    ]);
    expect(Buffer.concat(dirents.map(encodeDirent)).equals(bytes)).to.equal(true);
    expect(() => decodeDirents(bytes.subarray(0, 60))).to.throw(ProtocolError, /name of 9 bytes/);
  });

  it('decodes READDIRPLUS records: fuse_entry_out, then fuse_dirent', () => {
    const entry = FuseEntryOut.encode({ nodeid: 5n, attr: { ino: 12n, size: 3n, mode: 0o100600 } });
    const bytes = Uint8Array.from([
      ...entry,
      ...le([12, 8], [1, 8], [1, 4], [8, 4]),
      0x61,
      ...new Array(7).fill(0),
    ]);
    const [plus] = decodeDirentsPlus(bytes);
    expect(plus).to.deep.include({ ino: 12n, off: 1n, type: 8, name: 'a' });
    expect(plus!.entry.nodeid).to.equal(5n);
    expect(plus!.entry.attr.size).to.equal(3n);
    expect(Buffer.from(encodeDirentPlus(plus!)).equals(bytes)).to.equal(true);
  });

  it('encodes and decodes struct virtio_fs_config', () => {
    const bytes = encodeVirtioFsConfig('myfs', 2);
    expect([...bytes]).to.deep.equal([0x6d, 0x79, 0x66, 0x73, ...new Array(32).fill(0), ...le([2, 4])]);
    const config = decodeVirtioFsConfig(bytes);
    expect(config.numRequestQueues).to.equal(2);
    expect(Buffer.from(config.tag).toString('latin1', 0, 4)).to.equal('myfs');
    expect(() => decodeVirtioFsConfig(bytes.subarray(0, 39))).to.throw(ProtocolError);
  });
});
