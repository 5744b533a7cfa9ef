import { expect } from 'chai';
import { createGuestMemory, type GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, UsedBatch, VringPort } from '../../virtqueue/port.js';
import type { AddRequestOptions, BufferElement, UsedBuffer } from '../../virtqueue/split.js';
import { expectChainRules, ScsiDriver, ScsiErrorCode } from './driver.js';
import {
  decodeCapacity16,
  decodeCmdResp,
  decodeEvent,
  decodeInquiry,
  decodeReportLuns,
  decodeScsiConfig,
  decodeSense,
  describeEvent,
  describeSense,
  encodeCmdReq,
  encodeFixedSense,
  encodeLun,
  readCapacity16Cdb,
  rw10Cdb,
  rw16Cdb,
} from './scsi.js';

/** A request queue played by the test: `answer` writes into the writable elements of each chain posted. */
class FakeQueue implements DriverQueue<unknown> {
  readonly size = 16;
  inFlight = 0;
  readonly ready: Array<UsedBuffer<unknown>> = [];
  constructor(
    readonly memory: GuestMemory,
    readonly answer: (chain: readonly BufferElement[]) => number,
  ) {}
  addRequest(chain: readonly BufferElement[], _options?: AddRequestOptions<unknown>): number {
    const len = this.answer(chain);
    const writableLen = chain.filter((e) => e.write).reduce((n, e) => n + e.len, 0);
    this.ready.push({ id: 0, len, token: undefined, writableLen });
    return 0;
  }
  collectUsed(): Array<UsedBuffer<unknown>> {
    return this.ready.splice(0);
  }
  describePosition(): string {
    return 'fake';
  }
  readonly availMark = 0;
  needsKick(): boolean {
    return true;
  }
}

function port(queue: FakeQueue): VringPort<unknown, FakeQueue> {
  return {
    index: 2,
    queue,
    notify: () => {},
    takeUsed: () => queue.collectUsed(),
    waitUsed: async (): Promise<UsedBatch<unknown>> => ({ used: queue.collectUsed(), calls: 0 }),
  };
}

describe('devices/scsi', () => {
  it('encodes the lun field as the spec lays it out: 1, target, flat-space LUN, four zeros', () => {
    expect([...encodeLun({ target: 3, lun: 0 })]).to.deep.equal([1, 3, 0x40, 0, 0, 0, 0, 0]);
    expect([...encodeLun({ target: 0, lun: 0x123 })]).to.deep.equal([1, 0, 0x41, 0x23, 0, 0, 0, 0]);
  });

  it('encodes virtio_scsi_req_cmd: lun, le64 id, task_attr, prio, crn, the CDB padded to cdb_size', () => {
    const bytes = encodeCmdReq({
      address: { target: 0, lun: 0 },
      id: 0x0102n,
      cdb: Uint8Array.of(0x12, 0, 0, 0, 36, 0),
      cdbSize: 32,
    });
    expect(bytes.length).to.equal(51);
    expect([...bytes.subarray(0, 24)]).to.deep.equal([
      1, 0, 0x40, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0, 0, 0, 36,
    ]);
    expect(bytes.subarray(25).every((b) => b === 0)).to.equal(true);
  });

  it('decodes virtio_scsi_resp_cmd and the 36-byte config', () => {
    const resp = decodeCmdResp(Uint8Array.of(18, 0, 0, 0, 0, 2, 0, 0, 7, 0, 2, 0, 0x70));
    expect(resp).to.include({ senseLen: 18, residual: 512, statusQualifier: 7, status: 2, response: 0 });
    expect(resp.sense[0]).to.equal(0x70);
    const config = Buffer.alloc(36);
    [1, 128, 0xffff, 128, 16, 96, 32].forEach((v, i) => {
      config.writeUInt32LE(v, i * 4);
    });
    config.writeUInt16LE(0, 28);
    config.writeUInt16LE(255, 30);
    config.writeUInt32LE(16383, 32);
    expect(decodeScsiConfig(config)).to.deep.equal({
      numQueues: 1,
      segMax: 128,
      maxSectors: 0xffff,
      cmdPerLun: 128,
      eventInfoSize: 16,
      senseSize: 96,
      cdbSize: 32,
      maxChannel: 0,
      maxTarget: 255,
      maxLun: 16383,
    });
  });

  it('decodes struct virtio_scsi_event: event (bit 31: events missed), lun, reason, and names it', () => {
    // VIRTIO_SCSI_T_TRANSPORT_RESET | EVENTS_MISSED, target 0 LUN 0, VIRTIO_SCSI_EVT_RESET_RESCAN.
    const bytes = Uint8Array.of(1, 0, 0, 0x80, 1, 0, 0x40, 0, 0, 0, 0, 0, 1, 0, 0, 0);
    const event = decodeEvent(bytes);
    expect(event).to.deep.include({ type: 1, missed: true, reason: 1 });
    expect(event.lun.toString('hex')).to.equal('0100400000000000');
    expect(describeEvent(event)).to.equal(
      'VIRTIO_SCSI_T_TRANSPORT_RESET | VIRTIO_SCSI_T_EVENTS_MISSED, lun 0100400000000000, VIRTIO_SCSI_EVT_RESET_RESCAN',
    );
    expect(describeEvent(decodeEvent(new Uint8Array(16)))).to.equal(
      'VIRTIO_SCSI_T_NO_EVENT, lun 0000000000000000, reason 0x0',
    );
    expect(() => decodeEvent(new Uint8Array(15))).to.throw(RangeError);
  });

  it('builds CDBs big-endian as SBC-3 lays them out', () => {
    expect([...rw10Cdb(false, 0x01020304, 8)]).to.deep.equal([0x28, 0, 1, 2, 3, 4, 0, 0, 8, 0]);
    expect([...rw16Cdb(true, 0x0a0bn, 2)]).to.deep.equal([
      0x8a, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0, 0, 0, 2, 0, 0,
    ]);
    expect([...readCapacity16Cdb(32)]).to.deep.equal([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  });

  it('decodes INQUIRY, REPORT LUNS and READ CAPACITY(16) data', () => {
    const inquiry = Buffer.alloc(36, 0x20);
    inquiry[0] = 0;
    inquiry[2] = 6;
    inquiry[3] = 2;
    inquiry[4] = 31;
    inquiry.write('VHU', 8, 'latin1');
    expect(decodeInquiry(inquiry)).to.include({ peripheralDeviceType: 0, version: 6, vendor: 'VHU' });
    const luns = Buffer.from([0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 5, 0, 0, 0, 0, 0, 0]);
    expect(decodeReportLuns(luns)).to.deep.equal({ listLength: 16, luns: [0, 5] });
    const capacity = Buffer.from([0, 0, 0, 0, 0, 0, 7, 0xff, 0, 0, 2, 0]);
    expect(decodeCapacity16(capacity)).to.deep.equal({ lastLba: 0x7ffn, blockLength: 512 });
  });

  it('decodes fixed and descriptor sense data and names them', () => {
    const fixed = decodeSense(encodeFixedSense(5, 0x21, 0));
    expect(fixed).to.deep.equal({ responseCode: 0x70, senseKey: 5, asc: 0x21, ascq: 0 });
    expect(describeSense(fixed!)).to.equal('ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h)');
    expect(decodeSense(Uint8Array.of(0x72, 6, 0x29, 0))).to.include({ senseKey: 6, asc: 0x29 });
    expect(decodeSense(Uint8Array.of(0, 0, 0))).to.equal(undefined);
  });

  describe('ScsiDriver', () => {
    it('sends a TMF on the controlq as 24 readable bytes and one writable response byte', async () => {
      const memory = createGuestMemory();
      let request: Uint8Array = new Uint8Array(0);
      const control = new FakeQueue(memory, (chain) => {
        request = memory.read(chain[0]!.gpa, chain[0]!.len);
        memory.write(chain[1]!.gpa, Uint8Array.of(10));
        return chain.length === 2 && chain[1]!.write && chain[1]!.len === 1 ? 1 : 99;
      });
      const requests = new FakeQueue(memory, () => 0);
      const driver = new ScsiDriver(port(requests), { timeoutMs: 100, control: port(control) });
      expect(await driver.taskManagement(5, { target: 0, lun: 0 })).to.deep.equal({
        response: 10,
        usedLen: 1,
      });
      // type TMF (0), subtype 5, lun, id 0.
      expect([...request]).to.deep.equal([
        0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      ]);
    });

    it('lays out header, data-out, response and data-in, and reads back what the device wrote', async () => {
      const memory = createGuestMemory();
      let seen: BufferElement[] = [];
      const queue = new FakeQueue(memory, (chain) => {
        seen = [...chain];
        const resp = chain.find((e) => e.write)!;
        memory.write(resp.gpa, Buffer.alloc(resp.len));
        return resp.len;
      });
      const driver = new ScsiDriver(port(queue), { timeoutMs: 100 });
      const completion = await driver.run({
        address: { target: 0, lun: 0 },
        cdb: rw10Cdb(true, 0, 1),
        dataOut: new Uint8Array(512).fill(7),
      });
      expect(seen.map((e) => [e.len, e.write])).to.deep.equal([
        [51, false],
        [512, false],
        [108, true],
      ]);
      expect(completion.resp).to.include({ response: 0, status: 0 });
      expect(completion.respWritten).to.equal(true);
      expect(() => expectChainRules(completion)).not.to.throw();
    });

    it('finds a used.len that counts data-in the device never wrote, and allows one that counts less', async () => {
      const memory = createGuestMemory();
      let len = 0;
      const queue = new FakeQueue(memory, (chain) => {
        const resp = chain.find((e) => e.write)!;
        memory.write(resp.gpa, Buffer.alloc(resp.len));
        return len;
      });
      const driver = new ScsiDriver(port(queue), { timeoutMs: 100 });
      const read = { address: { target: 0, lun: 0 }, cdb: rw10Cdb(false, 0, 2), dataInLen: 1024 };
      len = 108 + 1024;
      const over = await driver.run(read);
      expect(() => expectChainRules(over))
        .to.throw()
        .with.property('code', ScsiErrorCode.USED_LEN);
      len = 0;
      const under = await driver.run(read);
      expect(under.usedLen).to.equal(0);
      expect(() => expectChainRules(under)).not.to.throw();
    });
  });
});
