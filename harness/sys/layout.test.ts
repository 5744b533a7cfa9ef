import { expect } from 'chai';
import {
  CMSGHDR_SIZE,
  cmsgAlign,
  cmsgLen,
  cmsgSpace,
  IOVEC_SIZE,
  iovecArray,
  MSGHDR_SIZE,
  msghdr,
  parseMsghdr,
  parsePollRevents,
  parseScmRights,
  parseStat,
  parseUcred,
  pollfdArray,
  SOCKADDR_UN_SIZE,
  scmRights,
  scmRightsSpace,
  sockaddrUn,
} from './layout.js';

/** Golden bytes written as hex, spaces and `|` field separators ignored. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/[\s|]/g, ''), 'hex');
}

describe('sys/layout', () => {
  it('builds sockaddr_un with family, path and NUL padding', () => {
    const addr = sockaddrUn('/tmp/a.sock');
    expect(addr.length).to.equal(SOCKADDR_UN_SIZE);
    expect([...addr.subarray(0, 2)]).to.deep.equal([1, 0]);
    expect(addr.subarray(2, 13).toString()).to.equal('/tmp/a.sock');
    expect(addr.subarray(13).every((b) => b === 0)).to.equal(true);
  });

  it('refuses paths that do not fit sun_path', () => {
    expect(() => sockaddrUn('/'.repeat(108))).to.throw(RangeError, /1\.\.107 bytes/);
    expect(() => sockaddrUn('')).to.throw(RangeError);
    expect(sockaddrUn('/'.repeat(107)).length).to.equal(SOCKADDR_UN_SIZE);
  });

  it('parses struct ucred', () => {
    const buf = Buffer.from([0x39, 0x30, 0, 0, 0xe8, 0x03, 0, 0, 0x64, 0, 0, 0]);
    expect(parseUcred(buf)).to.deep.equal({ pid: 12345, uid: 1000, gid: 100 });
    expect(() => parseUcred(buf.subarray(0, 8))).to.throw(RangeError);
  });

  describe('sendmsg/recvmsg structures (64-bit Linux)', () => {
    it('has the C sizes and CMSG_* arithmetic', () => {
      expect([IOVEC_SIZE, MSGHDR_SIZE, CMSGHDR_SIZE]).to.deep.equal([16, 56, 16]);
      expect([0, 1, 4, 8, 9, 12].map(cmsgAlign)).to.deep.equal([0, 8, 8, 8, 16, 16]);
      // CMSG_LEN(n * sizeof(int)) and CMSG_SPACE(n * sizeof(int)) for 1, 2, 3 and 8 fds, as glibc computes them.
      expect([4, 8, 12, 32].map(cmsgLen)).to.deep.equal([20, 24, 28, 48]);
      expect([4, 8, 12, 32].map(cmsgSpace)).to.deep.equal([24, 24, 32, 48]);
      expect([0, 1, 2, 3, 8].map(scmRightsSpace)).to.deep.equal([0, 24, 24, 32, 48]);
    });

    it('builds struct iovec arrays', () => {
      const iovs = iovecArray([
        { base: 0x1122334455667788n, length: 5 },
        { base: 0x7f00_0000_1000n, length: 0x10000 },
      ]);
      expect(iovs.toString('hex')).to.equal(
        hex(`88 77 66 55 44 33 22 11 | 05 00 00 00 00 00 00 00
             00 10 00 00 00 7f 00 00 | 00 00 01 00 00 00 00 00`).toString('hex'),
      );
    });

    it('builds struct msghdr and reads it back', () => {
      const fields = {
        name: 0n,
        nameLength: 0,
        iov: 0x7f00_0000_1000n,
        iovLength: 1,
        control: 0x7f00_0000_2000n,
        controlLength: 24,
        flags: 0,
      };
      const msg = msghdr(fields);
      expect(msg.toString('hex')).to.equal(
        hex(`00 00 00 00 00 00 00 00 | 00 00 00 00 | 00 00 00 00
             00 10 00 00 00 7f 00 00 | 01 00 00 00 00 00 00 00
             00 20 00 00 00 7f 00 00 | 18 00 00 00 00 00 00 00
             00 00 00 00 | 00 00 00 00`).toString('hex'),
      );
      // What recvmsg writes back: msg_controllen and msg_flags (MSG_CTRUNC).
      msg.writeBigUInt64LE(20n, 40);
      msg.writeInt32LE(0x8, 48);
      expect(parseMsghdr(msg)).to.deep.equal({ ...fields, controlLength: 20, flags: 0x8 });
      expect(() => parseMsghdr(msg.subarray(0, 48))).to.throw(RangeError);
    });

    it('builds SCM_RIGHTS control data for 1, 3 and 8 fds', () => {
      expect(scmRights([7]).toString('hex')).to.equal(
        hex('14 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00 | 07 00 00 00 | 00 00 00 00').toString(
          'hex',
        ),
      );
      expect(scmRights([3, 4, 5]).toString('hex')).to.equal(
        hex(`1c 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00
             03 00 00 00 04 00 00 00 05 00 00 00 | 00 00 00 00`).toString('hex'),
      );
      expect(scmRights([10, 11, 12, 13, 14, 15, 16, 17]).toString('hex')).to.equal(
        hex(`30 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00
             0a 00 00 00 0b 00 00 00 0c 00 00 00 0d 00 00 00
             0e 00 00 00 0f 00 00 00 10 00 00 00 11 00 00 00`).toString('hex'),
      );
      expect(scmRights([]).length).to.equal(0);
    });

    it('refuses more than 8 fds and things that are not fds', () => {
      expect(() => scmRights([1, 2, 3, 4, 5, 6, 7, 8, 9])).to.throw(RangeError, /at most 8 fds/);
      expect(() => scmRights([-1])).to.throw(RangeError, /not an fd/);
      expect(() => scmRights([1.5])).to.throw(RangeError, /not an fd/);
    });

    it('parses received control data: skips other messages, stops at msg_controllen', () => {
      const control = hex(`1c 00 00 00 00 00 00 00 | 01 00 00 00 | 02 00 00 00
                           39 30 00 00 e8 03 00 00 64 00 00 00 | 00 00 00 00
                           18 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00
                           09 00 00 00 0a 00 00 00`);
      expect(parseScmRights(control, control.length)).to.deep.equal({ fds: [9, 10], truncated: false });
      expect(parseScmRights(control, 32)).to.deep.equal({ fds: [], truncated: false });
      expect(parseScmRights(control, 0)).to.deep.equal({ fds: [], truncated: false });
    });

    it('flags MSG_CTRUNC and keeps the fds that did fit', () => {
      const control = hex('18 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00 | 05 00 00 00 06 00 00 00');
      expect(parseScmRights(control, 24, 0x8)).to.deep.equal({ fds: [5, 6], truncated: true });
    });

    it('stops at a malformed header instead of reading past the data', () => {
      const tooShort = hex('08 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00 | 05 00 00 00 00 00 00 00');
      expect(parseScmRights(tooShort, 24).fds).to.deep.equal([]);
      const tooLong = hex('40 00 00 00 00 00 00 00 | 01 00 00 00 | 01 00 00 00 | 05 00 00 00 00 00 00 00');
      expect(parseScmRights(tooLong, 24).fds).to.deep.equal([]);
    });
  });

  describe('struct stat', () => {
    it('reads st_mode and st_size at the x86_64 offsets', () => {
      const buf = Buffer.alloc(144);
      hex('a4 81 00 00').copy(buf, 24);
      hex('89 67 45 23 01 00 00 00').copy(buf, 48);
      expect(parseStat(buf, 'x64')).to.deep.equal({ mode: 0o100644, size: 0x123456789 });
    });

    it('reads st_mode and st_size at the aarch64 offsets', () => {
      const buf = Buffer.alloc(128);
      hex('ed 41 00 00').copy(buf, 16);
      hex('00 10 00 00 00 00 00 00').copy(buf, 48);
      expect(parseStat(buf, 'arm64')).to.deep.equal({ mode: 0o40755, size: 4096 });
    });

    it('refuses unknown architectures and short buffers', () => {
      expect(() => parseStat(Buffer.alloc(256), 'ia32')).to.throw(RangeError, /ia32/);
      expect(() => parseStat(Buffer.alloc(128), 'x64')).to.throw(RangeError);
    });
  });

  describe('struct pollfd', () => {
    it('builds pollfd arrays and reads revents', () => {
      expect(pollfdArray([3, 4], [0x1, 0x4]).toString('hex')).to.equal(
        hex('03 00 00 00 | 01 00 | 00 00 | 04 00 00 00 | 04 00 | 00 00').toString('hex'),
      );
      expect(pollfdArray([3, 4], 0x1).toString('hex')).to.equal(
        hex('03 00 00 00 | 01 00 | 00 00 | 04 00 00 00 | 01 00 | 00 00').toString('hex'),
      );
      expect(parsePollRevents(hex('03 00 00 00 01 00 11 00 04 00 00 00 04 00 04 00'))).to.deep.equal([
        0x11, 0x4,
      ]);
      expect(() => pollfdArray([3, 4], [1])).to.throw(RangeError);
    });
  });
});
