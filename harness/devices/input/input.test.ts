import fs from 'node:fs';
import { expect } from 'chai';
import { Scope } from '../../process/scope.js';
import {
  answerBytes,
  bitmapCodes,
  decodeAbsInfo,
  decodeEvdevEvent,
  decodeInputConfig,
  decodeInputEvent,
  describeEvent,
  describeSelect,
  EvType,
  encodeEvdevEvent,
  encodeInputEvent,
  encodeSelect,
  INPUT_CONFIG_SIZE,
  InputConfigSelect,
} from './input.js';
import { createFifoSource } from './source.js';

describe('devices/input: virtio-input wire formats', () => {
  it('virtio_input_event: le16 type, le16 code, le32 value (signed)', () => {
    const golden = Buffer.from('0100 1e00 ffffffff'.replaceAll(' ', ''), 'hex');
    expect(encodeInputEvent({ type: 1, code: 30, value: -1 })).to.deep.equal(golden);
    expect(decodeInputEvent(golden)).to.deep.equal({ type: 1, code: 30, value: -1 });
    expect(() => decodeInputEvent(golden.subarray(0, 7))).to.throw(RangeError);
  });

  it('struct input_event (64-bit): a 16-byte timeval, then type, code and value', () => {
    const golden = Buffer.alloc(24);
    golden.set([0x01, 0x00, 0x1e, 0x00, 0x01, 0x00, 0x00, 0x00], 16);
    expect(encodeEvdevEvent({ type: 1, code: 30, value: 1 })).to.deep.equal(golden);
    expect(decodeEvdevEvent(golden)).to.deep.equal({ type: 1, code: 30, value: 1 });
  });

  it('virtio_input_config: select, subsel, size, 5 reserved bytes, the 128-byte union', () => {
    const bytes = Buffer.alloc(INPUT_CONFIG_SIZE);
    bytes.set([0x11, 0x01, 0x03], 0);
    bytes.set([0x06, 0x00, 0x80, 0xff], 8); // codes 1, 2, 23 (and 24-31 past size)
    const config = decodeInputConfig(bytes);
    expect([config.select, config.subsel, config.size]).to.deep.equal([0x11, 1, 3]);
    expect(answerBytes(config)).to.have.length(3);
    expect(bitmapCodes(config)).to.deep.equal([1, 2, 23]);
    expect(() => decodeInputConfig(bytes.subarray(0, 135))).to.throw(RangeError);
  });

  it('virtio_input_absinfo: le32 min, max, fuzz, flat, res', () => {
    const bytes = Buffer.alloc(INPUT_CONFIG_SIZE);
    bytes.set([0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0], 8);
    expect(decodeAbsInfo(decodeInputConfig(bytes))).to.deep.equal({
      min: -1,
      max: 32767,
      fuzz: 1,
      flat: 2,
      res: 3,
    });
  });

  it("a query's SET_CONFIG writes select and subsel only, flags 0", () => {
    // offset 0, size 2, flags 0, then select and subsel.
    expect(encodeSelect(0x11, 0x03).toString('hex')).to.equal('00000000' + '02000000' + '00000000' + '1103');
  });

  it('names selects and events for messages', () => {
    expect(describeSelect(InputConfigSelect.EV_BITS, EvType.KEY)).to.equal('VIRTIO_INPUT_CFG_EV_BITS/EV_KEY');
    expect(describeSelect(0x7f, 0)).to.equal('select 0x7f/0');
    expect(describeEvent({ type: 0, code: 0, value: 0 })).to.equal('EV_SYN SYN_REPORT');
    expect(describeEvent({ type: 0x11, code: 1, value: 1 })).to.equal('EV_LED 1 1');
  });
});

describe('devices/input: the FIFO event source', () => {
  it('writes struct input_event records a reader of the FIFO gets whole, and leaves nothing behind', async () => {
    const scope = new Scope();
    let fifo = '';
    try {
      const source = await createFifoSource(scope);
      fifo = source.path;
      expect(fs.statSync(fifo).isFIFO()).to.equal(true);
      expect(source.codes(EvType.KEY)).to.equal(undefined);
      const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        source.write([
          { type: 1, code: 30, value: 1 },
          { type: 0, code: 0, value: 0 },
        ]);
        const got = Buffer.alloc(64);
        expect(fs.readSync(reader, got)).to.equal(48);
        expect(decodeEvdevEvent(got.subarray(0, 24))).to.deep.equal({ type: 1, code: 30, value: 1 });
        expect(decodeEvdevEvent(got.subarray(24, 48))).to.deep.equal({ type: 0, code: 0, value: 0 });
      } finally {
        fs.closeSync(reader);
      }
    } finally {
      expect(await scope.close()).to.deep.equal([]);
    }
    expect(fs.existsSync(fifo), 'the FIFO removed with its folder').to.equal(false);
  });
});
