import { expect } from 'chai';
import { ProtocolError } from '../errors.js';
import {
  type DeviceConfig,
  type DeviceStateTransfer,
  decodeBackendRequest,
  decodeConfigReply,
  decodeDeviceConfig,
  decodeDeviceStateReply,
  decodeDeviceStateTransfer,
  decodeInflightDescription,
  decodeIotlbMessage,
  decodeLogDescription,
  decodeMemoryRegions,
  decodeMmapRequest,
  decodePackedVringBase,
  decodeSharedObject,
  decodeShmemConfig,
  decodeSingleMemoryRegion,
  decodeSplitVringBase,
  decodeU64,
  decodeVringAddress,
  decodeVringArea,
  decodeVringFile,
  decodeVringState,
  encodeDeviceConfig,
  encodeDeviceStateReply,
  encodeDeviceStateTransfer,
  encodeInflightDescription,
  encodeIotlbMessage,
  encodeLogDescription,
  encodeMemoryRegions,
  encodeMmapRequest,
  encodePackedVringBase,
  encodeSharedObject,
  encodeShmemConfig,
  encodeSingleMemoryRegion,
  encodeSplitVringBase,
  encodeU64,
  encodeVringAddress,
  encodeVringArea,
  encodeVringFile,
  encodeVringState,
  type InflightDescription,
  type IotlbMessage,
  type LogDescription,
  type MemoryRegion,
  type MmapRequest,
  type PackedVringBase,
  type ShmemConfig,
  unpackVringFile,
  type VringAddress,
  type VringArea,
} from './messages.js';
import {
  BACKEND_REQUEST_INFO,
  BackendRequest,
  backendRequestName,
  DeviceConfigFlag,
  DeviceStateDirection,
  DeviceStatePhase,
  FrontendRequest,
  frontendRequestName,
  IotlbPermission,
  IotlbType,
  MAX_FDS_PER_MESSAGE,
  ProtocolFeature,
  REQUEST_INFO,
  ShmemMapFlag,
  VHOST_VRING_F_LOG,
  VirtioFeature,
  XenMmapFlag,
} from './spec.js';

/**
 * Golden payloads, written by hand from the spec's layouts: every field little-endian, in the order the
 * spec's tables draw them. Spaces separate fields and are not bytes.
 */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}
const zeros = (bytes: number): string => '00'.repeat(bytes);

const U64 = hex('08 07 06 05 04 03 02 01');

const VRING_STATE = hex('01000000 00010000'); // index 1, num 256
const SPLIT_BASE = hex('02000000 34120000'); // index 2, avail index 0x1234
const SPLIT_BASE_RESERVED = hex('02000000 34120100'); // same, bit 16 set
// index 0; num 0x80038005: avail 5, avail wrap (bit 15), used 3 (bits 16-30), used wrap (bit 31)
const PACKED_BASE = hex('00000000 05800380');

const VRING_ADDRESS = hex(
  '01000000 01000000 0010000000000000 0020000000000000 0030000000000000 0040000000000000',
);

const REGION_0: MemoryRegion = {
  guestAddress: 0n,
  size: 0x4000_0000n,
  userAddress: 0x7f00_0000_0000n,
  mmapOffset: 0n,
};
const REGION_1: MemoryRegion = {
  guestAddress: 0x1_0000_0000n,
  size: 0x1000n,
  userAddress: 0x7f00_4000_0000n,
  mmapOffset: 0x2000n,
};
const REGION_0_BYTES = '0000000000000000 0000004000000000 0000000000 7f0000 0000000000000000';
const REGION_1_BYTES = '0000000001000000 0010000000000000 00000040007f0000 0020000000000000';
const MEMORY_REGIONS = hex(`02000000 00000000 ${REGION_0_BYTES} ${REGION_1_BYTES}`);
const MEMORY_REGIONS_ALL_SLOTS = hex(
  `02000000 00000000 ${REGION_0_BYTES} ${REGION_1_BYTES} ${zeros(6 * 32)}`,
);
const XEN_REGION: MemoryRegion = {
  guestAddress: 0n,
  size: 0x1000n,
  userAddress: 0n,
  mmapOffset: 0n,
  xenMmapFlags: XenMmapFlag.FOREIGN | XenMmapFlag.UNMAPPED,
  domid: 7,
};
const XEN_MEMORY_REGIONS = hex(
  '01000000 00000000 0000000000000000 0010000000000000 0000000000000000 0000000000000000 01010000 07000000',
);
const SINGLE_REGION = hex(`0000000000000000 ${REGION_1_BYTES}`);

const LOG_VALUE: LogDescription = { size: 0x10000n, offset: 0x80n };
const LOG = hex('0000010000000000 8000000000000000');

const IOTLB_VALUE: IotlbMessage = {
  iova: 0x1000n,
  size: 0x2000n,
  userAddress: 0x7f00_0000_1000n,
  permissions: IotlbPermission.READ_WRITE,
  type: IotlbType.UPDATE,
};
const IOTLB = hex('0010000000000000 0020000000000000 00100000007f0000 03 02 000000000000');
const IOTLB_PACKED = hex('0010000000000000 0020000000000000 00100000007f0000 03 02');

const CONFIG_VALUE: DeviceConfig = {
  offset: 0,
  size: 4,
  flags: DeviceConfigFlag.LIVE_MIGRATION,
  payload: hex('deadbeef'),
};
const CONFIG = hex('00000000 04000000 01000000 deadbeef');

const AREA_VALUE: VringArea = { indexAndFlags: 0x102n, size: 0x1000n, offset: 0x3000n };
const AREA = hex('0201000000000000 0010000000000000 0030000000000000');

const INFLIGHT_VALUE: InflightDescription = {
  mmapSize: 0x5000n,
  mmapOffset: 0n,
  numQueues: 2,
  queueSize: 256,
};
const INFLIGHT = hex('0050000000000000 0000000000000000 0200 0001 00000000');
const INFLIGHT_PACKED = hex('0050000000000000 0000000000000000 0200 0001');

const UUID = '00112233-4455-6677-8899-aabbccddeeff';
// time_low, time_mid and time_hi big-endian: the bytes read as the text does
const SHARED_OBJECT = hex('00112233 4455 6677 8899 aabbccddeeff');

const TRANSFER_VALUE: DeviceStateTransfer = {
  direction: DeviceStateDirection.LOAD,
  phase: DeviceStatePhase.STOPPED,
};
const TRANSFER = hex('01000000 00000000');

const MMAP_VALUE: MmapRequest = {
  shmid: 3,
  fdOffset: 0x1000n,
  shmOffset: 0x20_0000n,
  len: 0x1000n,
  flags: ShmemMapFlag.READ_WRITE,
};
const MMAP = hex('03 00000000000000 0010000000000000 0000200000000000 0010000000000000 0100000000000000');

const SHMEM_SIZES = [0x10_0000n, 0n, 0x20_0000n];
const SHMEM_CONFIG = hex(
  `02000000 00000000 0000100000000000 0000000000000000 0000200000000000 ${zeros(253 * 8)}`,
);

/** A decoder with its golden payload and the sizes it accepts besides the golden one. */
interface DecoderCase {
  name: string;
  decode: (payload: Buffer, message?: string) => unknown;
  golden: Buffer;
  /** Shortest and longest payloads it accepts, when more than one size is right. */
  accepted?: [number, number];
}

const DECODERS: DecoderCase[] = [
  { name: 'u64', decode: decodeU64, golden: U64 },
  { name: 'vring file', decode: decodeVringFile, golden: U64 },
  { name: 'device state reply', decode: decodeDeviceStateReply, golden: U64 },
  { name: 'vring state', decode: decodeVringState, golden: VRING_STATE },
  { name: 'split vring base', decode: decodeSplitVringBase, golden: SPLIT_BASE },
  { name: 'packed vring base', decode: decodePackedVringBase, golden: PACKED_BASE },
  { name: 'vring address', decode: decodeVringAddress, golden: VRING_ADDRESS },
  { name: 'memory regions', decode: decodeMemoryRegions, golden: MEMORY_REGIONS },
  { name: 'memory regions, all 8 slots', decode: decodeMemoryRegions, golden: MEMORY_REGIONS_ALL_SLOTS },
  {
    name: 'memory regions, Xen layout',
    decode: (payload, message) => decodeMemoryRegions(payload, message, { xenMmap: true }),
    golden: XEN_MEMORY_REGIONS,
  },
  { name: 'single memory region', decode: decodeSingleMemoryRegion, golden: SINGLE_REGION },
  { name: 'log description', decode: decodeLogDescription, golden: LOG },
  { name: 'IOTLB message', decode: decodeIotlbMessage, golden: IOTLB, accepted: [26, 32] },
  { name: 'device config', decode: decodeDeviceConfig, golden: CONFIG },
  { name: 'vring area', decode: decodeVringArea, golden: AREA },
  { name: 'inflight description', decode: decodeInflightDescription, golden: INFLIGHT, accepted: [20, 24] },
  { name: 'shared object', decode: decodeSharedObject, golden: SHARED_OBJECT },
  { name: 'device state transfer', decode: decodeDeviceStateTransfer, golden: TRANSFER },
  { name: 'MMAP request', decode: decodeMmapRequest, golden: MMAP },
  { name: 'shared memory config', decode: decodeShmemConfig, golden: SHMEM_CONFIG },
];

describe('protocol messages', () => {
  describe('encoders write the golden bytes', () => {
    it('u64 and the u64 bit layouts', () => {
      expect(encodeU64(0x0102_0304_0506_0708n)).to.deep.equal(U64);
      expect(encodeVringFile({ index: 3, invalidFd: false })).to.deep.equal(hex('0300000000000000'));
      expect(encodeVringFile({ index: 1, invalidFd: true })).to.deep.equal(hex('0101000000000000'));
      expect(encodeDeviceStateReply({ error: 0, invalidFd: true })).to.deep.equal(hex('0001000000000000'));
      expect(encodeDeviceStateReply({ error: 5, invalidFd: false })).to.deep.equal(hex('0500000000000000'));
    });

    it('vring state and descriptor indices', () => {
      expect(encodeVringState({ index: 1, num: 256 })).to.deep.equal(VRING_STATE);
      expect(encodeSplitVringBase({ index: 2, availIndex: 0x1234 })).to.deep.equal(SPLIT_BASE);
      expect(
        encodePackedVringBase({
          index: 0,
          availIndex: 5,
          availWrapCounter: true,
          usedIndex: 3,
          usedWrapCounter: true,
        }),
      ).to.deep.equal(PACKED_BASE);
    });

    it('vring address', () => {
      const address: VringAddress = {
        index: 1,
        flags: 1 << VHOST_VRING_F_LOG,
        descriptor: 0x1000n,
        used: 0x2000n,
        available: 0x3000n,
        log: 0x4000n,
      };
      expect(encodeVringAddress(address)).to.deep.equal(VRING_ADDRESS);
    });

    it('memory regions: only the regions present, as QEMU sends them', () => {
      expect(encodeMemoryRegions({ regions: [REGION_0, REGION_1] })).to.deep.equal(MEMORY_REGIONS);
      expect(encodeMemoryRegions({ regions: [XEN_REGION] }, { xenMmap: true })).to.deep.equal(
        XEN_MEMORY_REGIONS,
      );
      expect(encodeMemoryRegions({ regions: [] })).to.deep.equal(hex('00000000 00000000'));
      expect(encodeSingleMemoryRegion(REGION_1)).to.deep.equal(SINGLE_REGION);
    });

    it('log, IOTLB, config, area, inflight', () => {
      expect(encodeLogDescription(LOG_VALUE)).to.deep.equal(LOG);
      expect(encodeIotlbMessage(IOTLB_VALUE)).to.deep.equal(IOTLB);
      expect(encodeDeviceConfig(CONFIG_VALUE)).to.deep.equal(CONFIG);
      expect(encodeVringArea(AREA_VALUE)).to.deep.equal(AREA);
      expect(encodeInflightDescription(INFLIGHT_VALUE)).to.deep.equal(INFLIGHT);
    });

    it('shared object, device state transfer, MMAP request, shared memory config', () => {
      expect(encodeSharedObject({ uuid: UUID })).to.deep.equal(SHARED_OBJECT);
      expect(encodeSharedObject({ uuid: UUID.toUpperCase() })).to.deep.equal(SHARED_OBJECT);
      expect(encodeDeviceStateTransfer(TRANSFER_VALUE)).to.deep.equal(TRANSFER);
      expect(encodeMmapRequest(MMAP_VALUE)).to.deep.equal(MMAP);
      expect(encodeShmemConfig({ numRegions: 2, memSizes: SHMEM_SIZES })).to.deep.equal(SHMEM_CONFIG);
    });
  });

  describe('decoders read the golden bytes', () => {
    it('u64 and the u64 bit layouts', () => {
      expect(decodeU64(U64)).to.equal(0x0102_0304_0506_0708n);
      expect(decodeVringFile(hex('0101000000000000'))).to.deep.equal({ index: 1, invalidFd: true });
      // bits 9-63 are not part of the layout and are ignored
      expect(unpackVringFile(0x1_0000_0103n)).to.deep.equal({ index: 3, invalidFd: true });
      expect(decodeDeviceStateReply(hex('0501000000000000'))).to.deep.equal({ error: 5, invalidFd: true });
    });

    it('vring state and descriptor indices', () => {
      expect(decodeVringState(VRING_STATE)).to.deep.equal({ index: 1, num: 256 });
      expect(decodeSplitVringBase(SPLIT_BASE)).to.deep.equal({ index: 2, availIndex: 0x1234, reserved: 0 });
      expect(decodeSplitVringBase(SPLIT_BASE_RESERVED)).to.deep.equal({
        index: 2,
        availIndex: 0x1234,
        reserved: 1,
      });
      expect(decodePackedVringBase(PACKED_BASE)).to.deep.equal({
        index: 0,
        availIndex: 5,
        availWrapCounter: true,
        usedIndex: 3,
        usedWrapCounter: true,
      });
    });

    it('vring address', () => {
      expect(decodeVringAddress(VRING_ADDRESS)).to.deep.equal({
        index: 1,
        flags: 1,
        descriptor: 0x1000n,
        used: 0x2000n,
        available: 0x3000n,
        log: 0x4000n,
      });
    });

    it('memory regions, in both sizes the spec and QEMU use', () => {
      expect(decodeMemoryRegions(MEMORY_REGIONS)).to.deep.equal({ regions: [REGION_0, REGION_1] });
      expect(decodeMemoryRegions(MEMORY_REGIONS_ALL_SLOTS)).to.deep.equal({ regions: [REGION_0, REGION_1] });
      expect(decodeMemoryRegions(XEN_MEMORY_REGIONS, undefined, { xenMmap: true })).to.deep.equal({
        regions: [XEN_REGION],
      });
      expect(decodeSingleMemoryRegion(SINGLE_REGION)).to.deep.equal(REGION_1);
    });

    it('log, IOTLB (with and without tail padding), config, area, inflight', () => {
      expect(decodeLogDescription(LOG)).to.deep.equal(LOG_VALUE);
      expect(decodeIotlbMessage(IOTLB)).to.deep.equal(IOTLB_VALUE);
      expect(decodeIotlbMessage(IOTLB_PACKED)).to.deep.equal(IOTLB_VALUE);
      expect(decodeDeviceConfig(CONFIG)).to.deep.equal(CONFIG_VALUE);
      expect(decodeVringArea(AREA)).to.deep.equal(AREA_VALUE);
      expect(unpackVringFile(decodeVringArea(AREA).indexAndFlags)).to.deep.equal({
        index: 2,
        invalidFd: true,
      });
      expect(decodeInflightDescription(INFLIGHT)).to.deep.equal(INFLIGHT_VALUE);
      expect(decodeInflightDescription(INFLIGHT_PACKED)).to.deep.equal(INFLIGHT_VALUE);
    });

    it("GET_CONFIG's zero-length error reply", () => {
      expect(decodeConfigReply(Buffer.alloc(0))).to.equal(undefined);
      expect(decodeConfigReply(CONFIG)).to.deep.equal(CONFIG_VALUE);
    });

    it('shared object, device state transfer, MMAP request, shared memory config', () => {
      expect(decodeSharedObject(SHARED_OBJECT)).to.deep.equal({ uuid: UUID });
      expect(decodeDeviceStateTransfer(TRANSFER)).to.deep.equal(TRANSFER_VALUE);
      expect(decodeMmapRequest(MMAP)).to.deep.equal(MMAP_VALUE);
      const shmem = decodeShmemConfig(SHMEM_CONFIG);
      expect(shmem.numRegions).to.equal(2);
      expect(shmem.memSizes).to.have.length(256);
      expect(shmem.memSizes.slice(0, 4)).to.deep.equal([...SHMEM_SIZES, 0n]);
    });

    it('the back-end channel, by request id', () => {
      expect(decodeBackendRequest(BackendRequest.IOTLB_MSG, IOTLB)).to.deep.equal({
        name: 'IOTLB_MSG',
        iotlb: IOTLB_VALUE,
      });
      expect(decodeBackendRequest(BackendRequest.CONFIG_CHANGE_MSG, Buffer.alloc(0))).to.deep.equal({
        name: 'CONFIG_CHANGE_MSG',
      });
      expect(decodeBackendRequest(BackendRequest.VRING_HOST_NOTIFIER_MSG, AREA)).to.deep.equal({
        name: 'VRING_HOST_NOTIFIER_MSG',
        area: AREA_VALUE,
      });
      expect(decodeBackendRequest(BackendRequest.VRING_CALL, VRING_STATE)).to.deep.equal({
        name: 'VRING_CALL',
        state: { index: 1, num: 256 },
      });
      expect(decodeBackendRequest(BackendRequest.VRING_ERR, VRING_STATE)).to.deep.include({
        name: 'VRING_ERR',
      });
      for (const name of ['SHARED_OBJECT_ADD', 'SHARED_OBJECT_REMOVE', 'SHARED_OBJECT_LOOKUP'] as const) {
        expect(decodeBackendRequest(BackendRequest[name], SHARED_OBJECT)).to.deep.equal({
          name,
          object: { uuid: UUID },
        });
      }
      for (const name of ['SHMEM_MAP', 'SHMEM_UNMAP'] as const) {
        expect(decodeBackendRequest(BackendRequest[name], MMAP)).to.deep.equal({ name, mmap: MMAP_VALUE });
      }
    });

    it('the back-end channel refuses unknown ids and wrong sizes, naming the message', () => {
      expect(() => decodeBackendRequest(11, Buffer.alloc(0)))
        .to.throw(ProtocolError)
        .with.property('message')
        .that.matches(/back-end request 11/);
      expect(() => decodeBackendRequest(BackendRequest.CONFIG_CHANGE_MSG, Buffer.alloc(1))).to.throw(
        ProtocolError,
        /BACKEND_CONFIG_CHANGE_MSG: .* 1 bytes, expected 0/,
      );
      expect(() => decodeBackendRequest(BackendRequest.SHMEM_MAP, MMAP.subarray(1))).to.throw(
        ProtocolError,
        /BACKEND_SHMEM_MAP: MMAP request payload is 39 bytes, expected 40/,
      );
    });
  });

  describe('round trips', () => {
    it('every layout comes back as it went', () => {
      const file = { index: 255, invalidFd: true };
      expect(decodeVringFile(encodeVringFile(file))).to.deep.equal(file);
      const reply = { error: 0xff, invalidFd: false };
      expect(decodeDeviceStateReply(encodeDeviceStateReply(reply))).to.deep.equal(reply);
      expect(decodeU64(encodeU64(0xffff_ffff_ffff_ffffn))).to.equal(0xffff_ffff_ffff_ffffn);
      const state = { index: 0xffff_ffff, num: 0 };
      expect(decodeVringState(encodeVringState(state))).to.deep.equal(state);
      expect(decodeSplitVringBase(encodeSplitVringBase({ index: 7, availIndex: 0xffff }))).to.deep.equal({
        index: 7,
        availIndex: 0xffff,
        reserved: 0,
      });
      const packed: PackedVringBase = {
        index: 1,
        availIndex: 0x7fff,
        availWrapCounter: false,
        usedIndex: 0x7fff,
        usedWrapCounter: true,
      };
      expect(decodePackedVringBase(encodePackedVringBase(packed))).to.deep.equal(packed);
      const address: VringAddress = {
        index: 3,
        flags: 0,
        descriptor: 0xffff_ffff_ffff_fff0n,
        used: 4n,
        available: 2n,
        log: 0n,
      };
      expect(decodeVringAddress(encodeVringAddress(address))).to.deep.equal(address);
      const eight = {
        regions: Array.from({ length: 8 }, (_, i) => ({ ...REGION_1, mmapOffset: BigInt(i) })),
      };
      expect(decodeMemoryRegions(encodeMemoryRegions(eight))).to.deep.equal(eight);
      expect(
        decodeSingleMemoryRegion(encodeSingleMemoryRegion(XEN_REGION, { xenMmap: true }), undefined, {
          xenMmap: true,
        }),
      ).to.deep.equal(XEN_REGION);
      expect(decodeLogDescription(encodeLogDescription(LOG_VALUE))).to.deep.equal(LOG_VALUE);
      expect(decodeIotlbMessage(encodeIotlbMessage(IOTLB_VALUE))).to.deep.equal(IOTLB_VALUE);
      const empty: DeviceConfig = {
        offset: 0x10,
        size: 0,
        flags: DeviceConfigFlag.WRITABLE,
        payload: Buffer.alloc(0),
      };
      expect(decodeDeviceConfig(encodeDeviceConfig(empty))).to.deep.equal(empty);
      expect(decodeVringArea(encodeVringArea(AREA_VALUE))).to.deep.equal(AREA_VALUE);
      expect(decodeInflightDescription(encodeInflightDescription(INFLIGHT_VALUE))).to.deep.equal(
        INFLIGHT_VALUE,
      );
      expect(decodeSharedObject(encodeSharedObject({ uuid: UUID }))).to.deep.equal({ uuid: UUID });
      expect(decodeDeviceStateTransfer(encodeDeviceStateTransfer(TRANSFER_VALUE))).to.deep.equal(
        TRANSFER_VALUE,
      );
      expect(decodeMmapRequest(encodeMmapRequest(MMAP_VALUE))).to.deep.equal(MMAP_VALUE);
      const shmem: ShmemConfig = {
        numRegions: 1,
        memSizes: Array.from({ length: 256 }, (_, i) => BigInt(i)),
      };
      expect(decodeShmemConfig(encodeShmemConfig(shmem))).to.deep.equal(shmem);
    });
  });

  describe('decoders refuse a payload one byte short or one byte long', () => {
    for (const { name, decode, golden, accepted } of DECODERS) {
      const [shortest, longest] = accepted ?? [golden.length, golden.length];
      it(name, () => {
        const short = golden.subarray(0, shortest - 1);
        const long = Buffer.concat([golden.subarray(0, longest), Buffer.alloc(1)]);
        for (const payload of [short, long]) {
          expect(() => decode(payload, 'SOME_REQUEST'), `${payload.length} bytes`).to.throw(
            ProtocolError,
            new RegExp(`^SOME_REQUEST: .* ${payload.length} bytes`),
          );
        }
        expect(() => decode(golden.subarray(0, longest))).not.to.throw();
        expect(() => decode(golden.subarray(0, shortest))).not.to.throw();
      });
    }

    it('sizes between the two accepted ones', () => {
      expect(() => decodeIotlbMessage(IOTLB.subarray(0, 27))).to.throw(
        ProtocolError,
        /27 bytes, expected 32 or 26/,
      );
      expect(() => decodeInflightDescription(INFLIGHT.subarray(0, 21))).to.throw(ProtocolError, /21 bytes/);
    });

    it('a memory table announcing more than 8 regions, or a header cut short', () => {
      const nine = Buffer.from(MEMORY_REGIONS_ALL_SLOTS);
      nine.writeUInt32LE(9, 0);
      expect(() => decodeMemoryRegions(nine, 'SET_MEM_TABLE')).to.throw(ProtocolError, /announces 9 regions/);
      expect(() => decodeMemoryRegions(hex('020000'), 'SET_MEM_TABLE')).to.throw(
        ProtocolError,
        /SET_MEM_TABLE: memory regions payload is 3 bytes, expected 8/,
      );
      // a Xen-sized table read without PROTOCOL_F_XEN_MMAP
      expect(() => decodeMemoryRegions(XEN_MEMORY_REGIONS)).to.throw(ProtocolError, /48 bytes/);
    });

    it('a config payload whose size field disagrees with its length', () => {
      expect(() => decodeDeviceConfig(hex('00000000 05000000 00000000 deadbeef'), 'GET_CONFIG')).to.throw(
        ProtocolError,
        /GET_CONFIG: device config payload is 16 bytes, expected 17/,
      );
    });

    it('the error names the message kind when no message is given', () => {
      expect(() => decodeVringState(Buffer.alloc(9))).to.throw(
        ProtocolError,
        /^vring state: vring state payload is 9 bytes, expected 8/,
      );
    });
  });

  describe('encoders refuse values that do not fit', () => {
    it('throws RangeError', () => {
      expect(() => encodeVringFile({ index: 256, invalidFd: false })).to.throw(RangeError);
      expect(() => encodeDeviceStateReply({ error: 256, invalidFd: false })).to.throw(RangeError);
      expect(() => encodeSplitVringBase({ index: 0, availIndex: 0x1_0000 })).to.throw(RangeError);
      expect(() => encodeMemoryRegions({ regions: Array(9).fill(REGION_0) })).to.throw(
        RangeError,
        /9 memory/,
      );
      expect(() => encodeSharedObject({ uuid: 'not-a-uuid' })).to.throw(RangeError);
      expect(() => encodeDeviceConfig({ ...CONFIG_VALUE, size: 5 })).to.throw(RangeError);
      expect(() => encodeShmemConfig({ numRegions: 0, memSizes: Array(257).fill(0n) })).to.throw(RangeError);
      expect(() => encodeVringState({ index: -1, num: 0 })).to.throw(RangeError);
      expect(() => encodeU64(1n << 64n)).to.throw(RangeError);
    });
  });
});

describe('protocol spec tables', () => {
  it('every FrontendRequest has a REQUEST_INFO entry, and no more', () => {
    expect(Object.keys(REQUEST_INFO).sort()).to.deep.equal(Object.keys(FrontendRequest).sort());
  });

  it('every BackendRequest has a BACKEND_REQUEST_INFO entry, and no more', () => {
    expect(Object.keys(BACKEND_REQUEST_INFO).sort()).to.deep.equal(Object.keys(BackendRequest).sort());
  });

  it('the requests the Communication section says need replies do', () => {
    for (const name of ['GET_FEATURES', 'GET_PROTOCOL_FEATURES', 'GET_VRING_BASE'] as const) {
      expect(REQUEST_INFO[name].reply.when, name).to.equal('always');
    }
    expect(REQUEST_INFO.SET_LOG_BASE.reply).to.deep.include({ when: 'withFeature', feature: 'LOG_SHMFD' });
    expect(REQUEST_INFO.GET_INFLIGHT_FD.reply).to.deep.include({
      when: 'withFeature',
      feature: 'INFLIGHT_SHMFD',
    });
  });

  it('the requests the Communication section says carry fds do', () => {
    const withFds = [
      'ADD_MEM_REG',
      'SET_MEM_TABLE',
      'SET_LOG_BASE',
      'SET_LOG_FD',
      'SET_VRING_KICK',
      'SET_VRING_CALL',
      'SET_VRING_ERR',
      'SET_BACKEND_REQ_FD',
      'SET_INFLIGHT_FD',
      'SET_DEVICE_STATE_FD',
    ] as const;
    for (const name of withFds) expect(REQUEST_INFO[name].fds.kind, name).not.to.equal('none');
  });

  it('no rule asks for more fds than a message can carry', () => {
    for (const info of [...Object.values(REQUEST_INFO), ...Object.values(BACKEND_REQUEST_INFO)]) {
      for (const rule of [info.fds, info.replyFds]) {
        if ('count' in rule) expect(rule.count).to.be.at.most(MAX_FDS_PER_MESSAGE);
      }
    }
  });

  it('ids and bits are distinct within each table, so the reverse maps are whole', () => {
    for (const table of [FrontendRequest, BackendRequest, ProtocolFeature, VirtioFeature]) {
      const values = Object.values(table);
      expect(new Set(values).size).to.equal(values.length);
    }
  });

  it('names requests of both directions', () => {
    expect(frontendRequestName(44)).to.equal('GET_SHMEM_CONFIG');
    expect(frontendRequestName(45)).to.equal('GET_VRING_BASE_SKIP_DRAIN');
    expect(backendRequestName(9)).to.equal('SHMEM_MAP');
    expect(backendRequestName(0)).to.equal('UNKNOWN(0)');
  });
});
