import { expect } from 'chai';
import { describeBackendChannelMessage, describeFlags, describeMessage, formatFields } from './describe.js';
import { BackendRequest, FrontendRequest } from './spec.js';

// Payloads written by hand from the spec's layouts (little-endian), not by the encoder.
const hex = (s: string) => Buffer.from(s.replaceAll(' ', ''), 'hex');

describe('message descriptions for the wire log', () => {
  it('names the header flags', () => {
    expect(describeFlags(0x1)).to.equal('v1');
    expect(describeFlags(0x9)).to.equal('v1 need_reply');
    expect(describeFlags(0x5)).to.equal('v1 reply');
    expect(describeFlags(0x31)).to.equal('v1 0x30');
  });

  it('decodes a request by its layout: vring state, vring file, protocol features, memory table', () => {
    expect(
      describeMessage(FrontendRequest.SET_VRING_NUM, 1, hex('01000000 00010000 00000000')),
    ).to.deep.equal({
      name: 'SET_VRING_NUM',
      fields: 'undecodable 010000000001000000000000',
    });
    expect(describeMessage(FrontendRequest.SET_VRING_NUM, 1, hex('01000000 00010000'))).to.deep.equal({
      name: 'SET_VRING_NUM',
      fields: 'index=1 num=256',
    });
    expect(describeMessage(FrontendRequest.SET_VRING_CALL, 1, hex('0201000000000000')).fields).to.equal(
      'index=2 invalidFd=true',
    );
    expect(
      describeMessage(FrontendRequest.SET_PROTOCOL_FEATURES, 1, hex('0900000000000000')).fields,
    ).to.equal('0x9 [MQ REPLY_ACK]');
    const table = hex(
      '01000000 00000000' + // one region, padding
        '0000000000000000 0000040000000000 00000000f07f0000 0000000000000000',
    );
    expect(describeMessage(FrontendRequest.SET_MEM_TABLE, 1, table).fields).to.equal(
      'regions=[guestAddress=0x0 size=0x40000 userAddress=0x7ff000000000 mmapOffset=0x0]',
    );
  });

  it('decodes replies: their own layout, or the u64 of REPLY_ACK', () => {
    expect(describeMessage(FrontendRequest.GET_FEATURES, 5, hex('0000004001000000')).fields).to.equal(
      '0x140000000',
    );
    expect(describeMessage(FrontendRequest.SET_OWNER, 5, hex('0000000000000000')).fields).to.equal('ack=0');
    expect(describeMessage(FrontendRequest.SET_MEM_TABLE, 5, hex('0100000000000000')).fields).to.equal(
      'ack=1',
    );
    // A reply without the reply bit is still read as the reply it stands for.
    expect(describeMessage(FrontendRequest.GET_FEATURES, 1, hex('0000004001000000'), true).fields).to.equal(
      '0x140000000',
    );
    expect(describeMessage(FrontendRequest.GET_VRING_BASE, 5, hex('00000000 07000000')).fields).to.equal(
      'index=0 num=7',
    );
  });

  it('shows what does not fit as bytes, and unknown requests by number', () => {
    expect(describeMessage(FrontendRequest.SET_OWNER, 1, hex('ff')).fields).to.equal('undecodable ff');
    expect(describeMessage(0xffff_ffff, 1, hex('')).name).to.equal('UNKNOWN(4294967295)');
    const long = describeMessage(0x7fff_ffff, 1, Buffer.alloc(100));
    expect(long.fields).to.equal(`${'00'.repeat(32)} (+68 bytes)`);
  });

  it('formats nested fields with bigints in hex', () => {
    expect(formatFields({ a: 1n, b: { c: 2 }, d: [3, 4] })).to.equal('a=0x1 b={c=2} d=[3, 4]');
  });

  it('decodes the back-end request channel: its requests and our u64 replies', () => {
    expect(
      describeBackendChannelMessage(BackendRequest.VRING_CALL, hex('01000000 00000000'), true),
    ).to.deep.equal({
      name: 'BACKEND_VRING_CALL',
      fields: 'state={index=1 num=0}',
    });
    expect(describeBackendChannelMessage(BackendRequest.CONFIG_CHANGE_MSG, hex('00'), true).fields).to.equal(
      'undecodable 00',
    );
    expect(
      describeBackendChannelMessage(BackendRequest.VRING_CALL, hex('0000000000000000'), false).fields,
    ).to.equal('ack=0');
    expect(describeBackendChannelMessage(999, hex(''), true).name).to.equal('BACKEND_UNKNOWN(999)');
  });
});
