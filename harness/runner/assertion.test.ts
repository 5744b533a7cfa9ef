import { expect } from 'chai';
import { describeAssertion, showValue } from './assertion.js';

/** The AssertionError chai throws for `assertion`. */
function thrown(assertion: () => void): Error {
  try {
    assertion();
  } catch (err) {
    return err as Error;
  }
  throw new Error('the assertion passed');
}

describe('assertion messages in our own words', () => {
  it('an equality: our message, expected, saw; bigints without their n, zero without its sign', () => {
    expect(describeAssertion(thrown(() => expect(0n, 'REPLY_ACK of SET_CONFIG').to.not.equal(0n)))).to.equal(
      'REPLY_ACK of SET_CONFIG: expected a value other than 0, saw 0',
    );
    expect(describeAssertion(thrown(() => expect(1, 'status byte').to.equal(0)))).to.equal(
      'status byte: expected 0, saw 1',
    );
    expect(
      describeAssertion(thrown(() => expect(0x1_0000_0000n, 'features').to.equal(0x1_4000_0000n))),
    ).to.equal('features: expected 0x140000000, saw 0x100000000');
    expect(describeAssertion(thrown(() => expect(8192, 'used.len').to.equal(8193)))).to.equal(
      'used.len: expected 8193, saw 8192',
    );
  });

  it('expect.fail(why): our message whole (it carries no values)', () => {
    expect(
      describeAssertion(thrown(() => expect.fail('--fd with --socket-path: it started and served'))),
    ).to.equal('--fd with --socket-path: it started and served');
  });

  it('deep equality, ranges, lengths, matches and members', () => {
    expect(describeAssertion(thrown(() => expect([1n, 2], 'fds').to.deep.equal([1n, 3])))).to.equal(
      'fds: expected [1, 3], saw [1, 2]',
    );
    expect(describeAssertion(thrown(() => expect(5, 'calls').to.be.below(3)))).to.equal(
      'calls: expected below 3, saw 5',
    );
    expect(describeAssertion(thrown(() => expect(2, 'replies').to.be.at.most(1)))).to.equal(
      'replies: expected at most 1, saw 2',
    );
    expect(describeAssertion(thrown(() => expect([1], 'entries').to.have.lengthOf(2)))).to.equal(
      'entries: expected to have a length of 2, saw 1',
    );
    expect(describeAssertion(thrown(() => expect('abc', 'tag').to.match(/x/)))).to.equal(
      'tag: expected to match /x/, saw "abc"',
    );
    expect(describeAssertion(thrown(() => expect([1, 2], 'ids').to.have.members([1, 3])))).to.equal(
      'ids: expected to have the same members as [1, 3], saw [1, 2]',
    );
    expect(describeAssertion(thrown(() => expect({ a: 1n }, 'attr').to.deep.equal({ a: 2n })))).to.equal(
      'attr: expected { a: 2 }, saw { a: 1 }',
    );
  });

  it('a boolean condition: our message alone; without one, expected and saw', () => {
    expect(
      describeAssertion(thrown(() => expect(false, 'the socket file was removed').to.equal(true))),
    ).to.equal('the socket file was removed');
    expect(describeAssertion(thrown(() => expect(false).to.equal(true)))).to.equal(
      'expected true, saw false',
    );
    expect(describeAssertion(thrown(() => expect(3).to.equal(4)))).to.equal('expected 4, saw 3');
  });

  it('a message of ours that itself says ": expected " is kept whole', () => {
    expect(describeAssertion(thrown(() => expect(3, 'size: expected 4 per the spec').to.equal(4)))).to.equal(
      'size: expected 4 per the spec: expected 4, saw 3',
    );
  });

  it('shows values as the report does: strings escaped, bytes in hex, long values cut', () => {
    expect(showValue('a "b"\n')).to.equal('"a \\"b\\"\\n"');
    expect(showValue(Buffer.from([1, 2, 255]))).to.equal('3 bytes (01 02 ff)');
    expect(showValue(-0)).to.equal('0');
    expect(showValue(-20n)).to.equal('-0x14');
    expect(showValue(null)).to.equal('null');
    expect(showValue('x'.repeat(300))).to.have.length(203);
  });
});
