/**
 * The scsi device as generic checks drive it (see kind.ts): TEST UNIT READY to target 0, LUN 0 on the first
 * request queue, a command every logical unit answers and that changes nothing. Its response is judged only
 * as far as used.len says the device wrote it (QEMU 7.2's contrib/vhost-user-scsi reports 0, which the
 * virtio spec allows: used.len may understate what was written): the scsi.* checks judge the SCSI side.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  type DeviceKind,
  type Sample,
  SampleError,
  type SampleOptions,
  type SampleSource,
  sampleAllocator,
  writableSample,
} from '../kind.js';
import {
  CMD_HEADER_SIZE,
  DEFAULT_CDB_SIZE,
  DEFAULT_SENSE_SIZE,
  decodeCmdResp,
  encodeCmdReq,
  RESP_HEADER_SIZE,
  SCSI_CONFIG,
  ScsiQueue,
  testUnitReadyCdb,
  VirtioScsiFeature,
  VirtioScsiResponse,
} from './scsi.js';

const REQUEST_SIZE = CMD_HEADER_SIZE + DEFAULT_CDB_SIZE;
const RESPONSE_SIZE = RESP_HEADER_SIZE + DEFAULT_SENSE_SIZE;

function scsiSamples(memory: GuestMemory, options: SampleOptions = {}): SampleSource {
  const alloc = sampleAllocator(memory, options);
  let id = 0n;
  return {
    needsOpening: false,
    next(): Sample {
      const request = encodeCmdReq({
        address: { target: 0, lun: 0 },
        id: ++id,
        cdb: testUnitReadyCdb(),
        cdbSize: DEFAULT_CDB_SIZE,
      });
      const gpa = alloc('the command (virtio_scsi_cmd_req, TEST UNIT READY)', REQUEST_SIZE, false);
      memory.write(gpa, request);
      const response = alloc('the response buffer of the command', RESPONSE_SIZE, true);
      memory.write(response, Buffer.alloc(RESPONSE_SIZE, 0xff));
      return {
        what: 'TEST UNIT READY to target 0, LUN 0 on requestq',
        chain: [
          { gpa, len: REQUEST_SIZE, write: false },
          { gpa: response, len: RESPONSE_SIZE, write: true },
        ],
        judge(usedLen) {
          if (usedLen > RESPONSE_SIZE)
            throw new SampleError(
              `${this.what}: used.len ${usedLen}, more than the ${RESPONSE_SIZE} device-writable bytes`,
            );
          if (usedLen < RESP_HEADER_SIZE) return `used.len ${usedLen}: the response not said to be written`;
          const resp = decodeCmdResp(memory.read(response, RESP_HEADER_SIZE));
          if (resp.response !== VirtioScsiResponse.OK)
            throw new SampleError(`${this.what}: response ${resp.response}, not VIRTIO_SCSI_S_OK`);
          return `VIRTIO_SCSI_S_OK, status 0x${resp.status.toString(16)}`;
        },
      };
    },
  };
}

export const scsiKind: DeviceKind = {
  type: 'scsi',
  rings: [ScsiQueue.CONTROL, ScsiQueue.EVENT, ScsiQueue.REQUEST],
  sampleRing: ScsiQueue.REQUEST,
  sampleRingName: 'request queue 0',
  features: { prefix: 'VIRTIO_SCSI_F_', bits: VirtioScsiFeature },
  driverFeatures: 0n,
  modernOnly: true,
  config: SCSI_CONFIG,
  dataPath: 'scsi.test-unit-ready',
  samples: scsiSamples,
  writable: writableSample(ScsiQueue.REQUEST, scsiSamples),
};
