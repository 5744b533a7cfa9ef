import { expect } from 'chai';
import { UsageError } from '../errors.js';
import { validateAbi } from '../schemas/validate.js';
import { featureHex, parseAbi, stableJson } from './format.js';
import { blockAbi } from './testing.js';

describe('abi format', () => {
  it('writes keys sorted at every depth, so that equal fingerprints are equal bytes', () => {
    expect(stableJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).to.equal(
      '{\n  "a": {\n    "c": null,\n    "d": [\n      {\n        "y": 2,\n        "z": 1\n      }\n    ]\n  },\n  "b": 1\n}\n',
    );
    const abi = blockAbi();
    const shuffled = Object.fromEntries(Object.entries(abi).reverse());
    expect(stableJson(shuffled)).to.equal(stableJson(abi));
  });

  it('spells a feature set as 16 hex digits', () => {
    expect(featureHex(0x1_7000_0240n)).to.equal('0x0000000170000240');
    expect(featureHex(0n)).to.equal('0x0000000000000000');
  });

  it('a fingerprint meets the shipped schema, and reads back as it was written', () => {
    const abi = blockAbi();
    expect(validateAbi(abi)).to.deep.equal([]);
    expect(parseAbi(stableJson(abi), 'a.json')).to.deep.equal(JSON.parse(stableJson(abi)));
    const notProbed = { ...abi, ringSizes: { status: 'not-probed', reason: 'no REPLY_ACK' } };
    expect(validateAbi(notProbed)).to.deep.equal([]);
  });

  it('ring sizes say how they were found; only those found by use leave a queue unmeasured (null)', () => {
    const byRequest = {
      status: 'probed',
      method: 'request',
      measured: 'net: one frame on each transmitq',
      maxPerQueue: [null, 256],
    };
    expect(validateAbi({ ...blockAbi(), ringSizes: byRequest })).to.deep.equal([]);
    const cases: Array<[unknown, RegExp]> = [
      [{ status: 'probed', method: 'reply-ack', maxPerQueue: [null, 256] }, /maxPerQueue\/0/],
      [{ status: 'probed', maxPerQueue: [256] }, /method/],
      [{ ...byRequest, measured: undefined }, /measured/],
      [{ ...byRequest, maxPerQueue: [0] }, /maxPerQueue\/0/],
      [{ ...byRequest, method: 'guess' }, /method/],
    ];
    for (const [ringSizes, error] of cases)
      expect(validateAbi({ ...blockAbi(), ringSizes }).join('; '), JSON.stringify(ringSizes)).to.match(error);
  });

  it('refuses what is not an ABI file, naming the file and the fault', () => {
    const text = stableJson(blockAbi());
    const cases: Array<[string, RegExp]> = [
      [text.slice(0, 200), /a\.json: not an ABI file: not JSON/],
      ['{"format":"vhu-conform-baseline","formatVersion":1}', /format is not "vhu-conform-abi"/],
      // Version 1 had ring sizes without their method: refused by name, not as a schema error.
      [
        text.replace('"formatVersion": 2', '"formatVersion": 1'),
        /version 1, this vhu-conform reads version 2/,
      ],
      [text.replace(/"queueCount": 1/, '"queueCount": "one"'), /not a valid ABI file: \/queueCount/],
      ['[]', /not an ABI file/],
    ];
    for (const [input, message] of cases)
      expect(() => parseAbi(input, 'a.json'), input.slice(0, 40)).to.throw(UsageError, message);
  });
});
