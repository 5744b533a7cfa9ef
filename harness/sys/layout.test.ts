import { expect } from 'chai';
import { parseUcred, SOCKADDR_UN_SIZE, sockaddrUn } from './layout.js';

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
});
