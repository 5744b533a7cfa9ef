/**
 * virtio-scsi (virtio spec, "SCSI Host Device"): the harness is the guest driver on the first request queue,
 * addressing target 0, LUN 0 (the logical unit contrib/vhost-user-scsi serves). What the virtio spec requires
 * of the response byte, the status byte, the config space and used.len are MUST checks; what a logical unit
 * answers to a command is SPC-4's or SBC-3's to say, interoperability facts here.
 */

import { describeSectorDiff, sectorPattern } from '../../harness/devices/block/blk.js';
import { readConfigSpace } from '../../harness/devices/config.js';
import {
  describeCommand,
  expectChainRules,
  type ScsiCompletion,
  type ScsiDriver,
  ScsiError,
  ScsiErrorCode,
} from '../../harness/devices/scsi/driver.js';
import {
  AdditionalSense,
  DEFAULT_CDB_SIZE,
  DEFAULT_SENSE_SIZE,
  decodeCapacity16,
  decodeInquiry,
  decodeReportLuns,
  decodeScsiConfig,
  decodeSense,
  describeSense,
  inquiryCdb,
  readCapacity16Cdb,
  reportLunsCdb,
  responseName,
  rw10Cdb,
  rw16Cdb,
  SCSI_CONFIG,
  type ScsiAddress,
  ScsiStatus,
  SenseKey,
  statusName,
  testUnitReadyCdb,
  tmfResponseName,
  VirtioScsiResponse,
  VirtioScsiTmf,
  VirtioScsiTmfResponse,
} from '../../harness/devices/scsi/scsi.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { ProtocolFeature } from '../../harness/protocol/spec.js';
import { defineChecks } from '../../harness/runner/check.js';
import { requireDevice } from '../common/device.js';
import { openScsi } from '../common/scsi.js';
import { freshSeed } from '../common/seed.js';
import { sessionWith } from '../protocol/common.js';

const ScsiSpec = {
  config: 'virtio-spec#sec-device-types-scsi-host-device-device-configuration-layout',
  requestQueues:
    'virtio-spec#sec-device-types-scsi-host-device-device-operation-device-operation-request-queues',
  usedRing: 'virtio-spec#sec-virtqueues-the-virtqueue-used-ring',
  controlq: 'virtio-spec#sec-device-types-scsi-host-device-device-operation-device-operation-controlq',
} as const;

const REQUEST_QUEUES = 'virtio spec, SCSI Host Device, Device Operation: Request Queues';
/** The response byte's sentence, as the virtio spec words it. */
const RESPONSE_OK =
  `${REQUEST_QUEUES}: "The device MUST write the response byte as one of the following: VIRTIO_SCSI_S_OK when ` +
  "the request was completed and the status byte is filled with a SCSI status code (not necessarily ``GOOD'').\", " +
  '"VIRTIO_SCSI_S_FAILURE for other host or driver error."';
const STATUS_SAM = `${REQUEST_QUEUES}: "The device MUST write the status byte as the status code as defined in SAM."`;

/** The logical unit the checks address: contrib/vhost-user-scsi serves target 0, LUN 0 only. */
export const LU0: ScsiAddress = { target: 0, lun: 0 };
/** Where the read-write check writes, in 512-byte units: past a GPT's entries, as the vring checks do. */
const SCRATCH_START_512 = 64;
const SCRATCH_BYTES = 8 * 1024;

/**
 * Runs `cdb` on LU0, once more after each UNIT ATTENTION (a logical unit reports one, a reset say, on the
 * first command after it: SAM-5 5.14, a driver retries).
 */
export async function command(
  scsi: ScsiDriver,
  cdb: Uint8Array,
  data: { dataOut?: Uint8Array; dataInLen?: number } = {},
  address: ScsiAddress = LU0,
): Promise<ScsiCompletion> {
  let completion: ScsiCompletion | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    completion = await scsi.run({ address, cdb, ...data });
    const sense = decodeSense(completion.resp.sense.subarray(0, completion.resp.senseLen));
    const attention =
      completion.resp.status === ScsiStatus.CHECK_CONDITION && sense?.senseKey === SenseKey.UNIT_ATTENTION;
    if (!attention) break;
  }
  return completion!;
}

/** What the device answered, for messages: response, status, and the sense when there is some. */
export function answer(c: ScsiCompletion): string {
  const sense = decodeSense(c.resp.sense.subarray(0, Math.min(c.resp.senseLen, c.resp.sense.length)));
  const written = c.respWritten ? '' : " (the response was never written: it holds the driver's guard bytes)";
  return (
    `response ${responseName(c.resp.response)}, status ${statusName(c.resp.status)}` +
    `${sense ? `, sense ${describeSense(sense)}` : ''}${written}`
  );
}

/** Throws a ScsiError unless the command completed (VIRTIO_SCSI_S_OK) with status GOOD. */
function expectGood(c: ScsiCompletion): void {
  const what = describeCommand(c.command);
  if (c.resp.response !== VirtioScsiResponse.OK)
    throw new ScsiError(ScsiErrorCode.RESPONSE, `${what}: ${answer(c)}, expected VIRTIO_SCSI_S_OK, GOOD`);
  if (c.resp.status !== ScsiStatus.GOOD)
    throw new ScsiError(ScsiErrorCode.STATUS, `${what}: ${answer(c)}, expected GOOD`);
}

const isSamStatus = (status: number) => Object.values(ScsiStatus).includes(status as never);

/**
 * LU0's last LBA and block length (READ CAPACITY(16)), GOOD expected. A SkipError when INQUIRY says LU0 is
 * not a direct access block device (peripheral device type 00h): SBC's commands are not its to serve.
 */
async function capacity(scsi: ScsiDriver): Promise<{ lastLba: bigint; blockLength: number }> {
  const inquiry = await command(scsi, inquiryCdb(36), { dataInLen: 36 });
  expectGood(inquiry);
  const type = decodeInquiry(inquiry.dataIn).peripheralDeviceType;
  if (type !== 0) {
    const hex = type.toString(16).padStart(2, '0');
    throw new SkipError(
      `INQUIRY says target 0 LUN 0 is of peripheral device type ${hex}h, not a direct access block device (00h): the SBC commands are not its`,
    );
  }
  const c = await command(scsi, readCapacity16Cdb(32), { dataInLen: 32 });
  expectGood(c);
  return decodeCapacity16(c.dataIn);
}

const SPC4 = 'SPC-4 (T10, INCITS 513)';
const SBC3 = 'SBC-3 (T10, INCITS 514)';

export const scsiChecks = defineChecks('scsi', [
  {
    id: 'scsi.config',
    detail:
      '(scsi) with `CONFIG`, `GET_CONFIG` of the 36-byte `virtio_scsi_config`: `sense_size` 96 and `cdb_size` 32 (the defaults the device must write), `num_queues` at least 1',
    title: 'with CONFIG, virtio_scsi_config has sense_size 96, cdb_size 32 and a request queue',
    severity: 'MUST',
    rule:
      'virtio spec, SCSI Host Device, Device configuration layout: "sense_size ... The default value is written by ' +
      'the device and MUST be 96", "cdb_size ... The default value is written by the device and MUST be 32"; ' +
      'device requirements: "On reset, the device MUST set sense_size to 96 and cdb_size to 32."',
    spec: ScsiSpec.config,
    async run(ctx) {
      requireDevice(ctx, 'scsi');
      const session = await sessionWith(ctx, ProtocolFeature.CONFIG, 'CONFIG');
      const config = decodeScsiConfig(await readConfigSpace(session, SCSI_CONFIG));
      const problems: string[] = [];
      if (config.senseSize !== DEFAULT_SENSE_SIZE)
        problems.push(`sense_size is ${config.senseSize}, not ${DEFAULT_SENSE_SIZE}`);
      if (config.cdbSize !== DEFAULT_CDB_SIZE)
        problems.push(`cdb_size is ${config.cdbSize}, not ${DEFAULT_CDB_SIZE}`);
      if (config.numQueues < 1) problems.push('num_queues is 0: no request queue');
      if (problems.length) throw new BackendError(`virtio_scsi_config: ${problems.join('; ')}`);
      return (
        `num_queues ${config.numQueues}, seg_max ${config.segMax}, max_sectors ${config.maxSectors}, ` +
        `cmd_per_lun ${config.cmdPerLun}, event_info_size ${config.eventInfoSize}, sense_size 96, cdb_size 32, ` +
        `max_channel ${config.maxChannel}, max_target ${config.maxTarget}, max_lun ${config.maxLun}`
      );
    },
  },
  {
    id: 'scsi.test-unit-ready',
    detail:
      '(scsi) TEST UNIT READY to target 0, LUN 0: the response byte `VIRTIO_SCSI_S_OK` and the status a SAM status code (GOOD once any unit attention is cleared, for a ready unit)',
    title: 'TEST UNIT READY completes with VIRTIO_SCSI_S_OK and a SAM status code',
    severity: 'MUST',
    rule: `${RESPONSE_OK}; ${STATUS_SAM}`,
    spec: ScsiSpec.requestQueues,
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const c = await command(scsi, testUnitReadyCdb());
      const what = describeCommand(c.command);
      if (c.resp.response !== VirtioScsiResponse.OK)
        throw new ScsiError(ScsiErrorCode.RESPONSE, `${what}: ${answer(c)}: the command was not completed`);
      if (!isSamStatus(c.resp.status))
        throw new ScsiError(ScsiErrorCode.STATUS, `${what}: ${answer(c)}: not a status code of SAM`);
      return answer(c);
    },
  },
  {
    id: 'scsi.inquiry',
    detail:
      '(scsi) INQUIRY (standard data, 96 bytes allowed) to target 0, LUN 0: GOOD, peripheral qualifier 000b, response data format 2, 36 bytes at least',
    title: 'INQUIRY returns standard data: a logical unit connected, response data format 2',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SPC4} 6.6.2 Standard INQUIRY data: response data format 2, the additional length at least 31 (36 bytes), ` +
      'and peripheral qualifier 000b for a logical unit that is connected; interoperability: a driver ' +
      '(Linux sd, QEMU) attaches no disk to a LUN whose INQUIRY says otherwise',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const c = await command(scsi, inquiryCdb(96), { dataInLen: 96 });
      expectGood(c);
      const data = decodeInquiry(c.dataIn);
      const problems: string[] = [];
      if (data.peripheralQualifier !== 0)
        problems.push(
          `peripheral qualifier ${data.peripheralQualifier.toString(2).padStart(3, '0')}b, not 000b`,
        );
      if (data.responseDataFormat !== 2)
        problems.push(`response data format ${data.responseDataFormat}, not 2`);
      if (data.additionalLength < 31) problems.push(`additional length ${data.additionalLength}, under 31`);
      if (problems.length)
        throw new ScsiError(ScsiErrorCode.DATA, `INQUIRY of target 0 LUN 0: ${problems.join('; ')}`);
      return `device type ${data.peripheralDeviceType}, version ${data.version}, "${data.vendor}" "${data.product}" "${data.revision}"`;
    },
  },
  {
    id: 'scsi.report-luns',
    detail: '(scsi) REPORT LUNS to target 0, LUN 0: GOOD, a list of 8-byte entries that names LUN 0',
    title: 'REPORT LUNS lists the logical unit it was sent to',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SPC4} 6.33 REPORT LUNS: the parameter data lists the logical units of the target, 8 bytes each, the ` +
      'list length a multiple of 8; interoperability: Linux scans a target with REPORT LUNS and attaches the LUNs ' +
      'it lists',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const c = await command(scsi, reportLunsCdb(1024), { dataInLen: 1024 });
      expectGood(c);
      const { listLength, luns } = decodeReportLuns(c.dataIn);
      if (listLength % 8 !== 0)
        throw new ScsiError(
          ScsiErrorCode.DATA,
          `REPORT LUNS: list length ${listLength}, not a multiple of 8`,
        );
      if (!luns.includes(0))
        throw new ScsiError(
          ScsiErrorCode.DATA,
          `REPORT LUNS to LUN 0: the list (${listLength} bytes) names ${luns.length ? `LUNs ${luns.join(', ')}` : 'no LUN'}, not LUN 0`,
        );
      return `LUNs ${luns.join(', ')}`;
    },
  },
  {
    id: 'scsi.read-capacity',
    detail:
      '(scsi) READ CAPACITY(16) of target 0, LUN 0: GOOD, a block length of 512 bytes or more; a READ(16) of the last LBA it names is GOOD',
    title: 'READ CAPACITY(16) names a last LBA that can be read',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SBC3} 5.16 READ CAPACITY (16): RETURNED LOGICAL BLOCK ADDRESS is the LBA of the last logical block, ` +
      'LOGICAL BLOCK LENGTH IN BYTES the length of each; interoperability: a driver sizes the disk from them',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const { lastLba, blockLength } = await capacity(scsi);
      if (blockLength < 512 || blockLength > scsi.maxData)
        throw new ScsiError(ScsiErrorCode.DATA, `READ CAPACITY(16): block length ${blockLength}`);
      const c = await command(scsi, rw16Cdb(false, lastLba, 1), { dataInLen: blockLength });
      if (c.resp.response !== VirtioScsiResponse.OK || c.resp.status !== ScsiStatus.GOOD)
        throw new ScsiError(
          ScsiErrorCode.STATUS,
          `READ(16) of LBA ${lastLba}, the last READ CAPACITY(16) names: ${answer(c)}, expected GOOD`,
        );
      return `last LBA ${lastLba}, ${blockLength}-byte blocks (${(lastLba + 1n) * BigInt(blockLength)} bytes)`;
    },
  },
  {
    id: 'scsi.read-write',
    detail:
      '(scsi) known blocks written with WRITE(10) and WRITE(16) at 32 KiB in, read back with READ(16) and READ(10) byte for byte; what they held is written back',
    title: 'WRITE(10) and WRITE(16) data reads back byte for byte with READ(10) and READ(16)',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SBC3} 5.35, 5.37 WRITE (10), WRITE (16): the device server transfers the data and writes it to the ` +
      'logical blocks addressed; 5.11, 5.13 READ (10), READ (16): returns their data; interoperability: a disk ' +
      'that does not return what was written corrupts the guest',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.read-capacity'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const { lastLba, blockLength } = await capacity(scsi);
      const blocks = Math.max(1, Math.floor(SCRATCH_BYTES / 2 / blockLength));
      const start = Math.ceil((SCRATCH_START_512 * 512) / blockLength);
      if (BigInt(start + 2 * blocks) > lastLba + 1n)
        throw new SkipError(
          `the logical unit has ${lastLba + 1n} blocks: too few for the check's scratch area`,
        );
      const bytes = blocks * blockLength;
      const read = async (lba: number, sixteen: boolean): Promise<Uint8Array> => {
        const cdb = sixteen ? rw16Cdb(false, BigInt(lba), blocks) : rw10Cdb(false, lba, blocks);
        const c = await command(scsi, cdb, { dataInLen: bytes });
        expectGood(c);
        return c.dataIn;
      };
      const write = async (lba: number, data: Uint8Array, sixteen: boolean): Promise<void> => {
        const cdb = sixteen ? rw16Cdb(true, BigInt(lba), blocks) : rw10Cdb(true, lba, blocks);
        expectGood(await command(scsi, cdb, { dataOut: data }));
      };
      const second = start + blocks;
      const original = [await read(start, false), await read(second, false)] as const;
      const seed = freshSeed();
      const first512 = BigInt((start * blockLength) / 512);
      const second512 = BigInt((second * blockLength) / 512);
      const known = [sectorPattern(first512, bytes / 512, seed), sectorPattern(second512, bytes / 512, seed)];
      try {
        await write(start, known[0]!, false);
        await write(second, known[1]!, true);
        const diffs = [
          ['WRITE(10), read with READ(16)', describeSectorDiff(known[0]!, await read(start, true), first512)],
          [
            'WRITE(16), read with READ(10)',
            describeSectorDiff(known[1]!, await read(second, false), second512),
          ],
        ].filter(([, diff]) => diff !== undefined);
        if (diffs.length)
          throw new ScsiError(
            ScsiErrorCode.DATA,
            diffs.map(([what, diff]) => `${what}: ${diff} (in 512-byte units)`).join('; '),
          );
      } finally {
        await write(start, original[0], false).catch(() => undefined);
        await write(second, original[1], false).catch(() => undefined);
      }
      return `${blocks} blocks at LBA ${start} (WRITE(10)) and ${second} (WRITE(16)) read back; what they held written back`;
    },
  },
  {
    id: 'scsi.used-len',
    detail:
      '(scsi) INQUIRY into a 256-byte data-in and a READ(10): used.len counts no byte the device did not write (less is allowed), the device-readable parts are left alone',
    title: 'used.len of a command counts no byte the device did not write',
    severity: 'MUST',
    rule:
      'virtio spec, Device Requirements: The Virtqueue Used Ring: "The device MUST write at least len bytes to ' +
      'descriptor, beginning at the first device-writable buffer, prior to updating the used idx."; Device ' +
      'Requirements: The Virtqueue Descriptor Table: "A device MUST NOT write to a device-readable buffer"',
    spec: ScsiSpec.usedRing,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const inquiry = await command(scsi, inquiryCdb(36), { dataInLen: 256 });
      const read = await command(scsi, rw10Cdb(false, 0, 1), { dataInLen: 512 });
      const lens: string[] = [];
      for (const c of [inquiry, read]) {
        expectChainRules(c);
        lens.push(`${describeCommand(c.command)}: used.len ${c.usedLen}`);
      }
      const under = [inquiry, read].some((c) => c.usedLen < 12);
      return `${lens.join('; ')}${under ? ' (used.len counts less than the response the device wrote: allowed, "len is permitted to be an underestimate")' : ''}`;
    },
  },
  {
    id: 'scsi.read-past-capacity',
    detail:
      '(scsi) READ(16) of the block after the last LBA: CHECK CONDITION, sense ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h)',
    title: 'a read past the capacity ends in CHECK CONDITION, ILLEGAL REQUEST, LBA OUT OF RANGE',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SBC3} 4.5 Logical blocks: a command that attempts to access a logical block beyond the capacity is ` +
      'terminated with CHECK CONDITION status, the sense key ILLEGAL REQUEST and the additional sense code ' +
      'LOGICAL BLOCK ADDRESS OUT OF RANGE; interoperability: a guest tells a bad request from a failing disk by it',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.read-capacity'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const { lastLba, blockLength } = await capacity(scsi);
      const c = await command(scsi, rw16Cdb(false, lastLba + 1n, 1), { dataInLen: blockLength });
      const what = `READ(16) of LBA ${lastLba + 1n}, past the last (${lastLba})`;
      if (c.resp.status !== ScsiStatus.CHECK_CONDITION)
        throw new ScsiError(ScsiErrorCode.STATUS, `${what}: ${answer(c)}, expected CHECK CONDITION`);
      const sense = decodeSense(c.resp.sense.subarray(0, Math.min(c.resp.senseLen, c.resp.sense.length)));
      const expected = AdditionalSense.LOGICAL_BLOCK_ADDRESS_OUT_OF_RANGE;
      if (sense?.senseKey !== SenseKey.ILLEGAL_REQUEST || ((sense.asc << 8) | sense.ascq) !== expected)
        throw new ScsiError(
          ScsiErrorCode.SENSE,
          `${what}: ${answer(c)}${sense ? '' : ` (sense_len ${c.resp.senseLen}: no fixed or descriptor sense data)`}, expected ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h)`,
        );
      return answer(c);
    },
  },
  {
    id: 'scsi.check-condition',
    detail:
      '(scsi) READ(16) of the last LBA a 64-bit address can name, past any capacity, completed with CHECK CONDITION, has the response byte `VIRTIO_SCSI_S_OK` (the status says what went wrong)',
    title: 'a command completed with CHECK CONDITION has the response VIRTIO_SCSI_S_OK',
    severity: 'MUST',
    rule: RESPONSE_OK,
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      // No logical unit has this block (nor one whatever its type answers a READ(16) to with GOOD).
      const lba = 0xffff_ffff_ffff_ffffn;
      const c = await command(scsi, rw16Cdb(false, lba, 1), { dataInLen: 4096 });
      if (c.resp.status !== ScsiStatus.CHECK_CONDITION)
        throw new SkipError(
          `READ(16) of LBA ${lba} did not end in CHECK CONDITION (${answer(c)}): no command to judge by`,
        );
      if (c.resp.response !== VirtioScsiResponse.OK)
        throw new ScsiError(
          ScsiErrorCode.RESPONSE,
          `READ(16) of LBA ${lba}: ${answer(c)}: the command was completed, with a status, so the response ` +
            'is VIRTIO_SCSI_S_OK (a driver takes VIRTIO_SCSI_S_FAILURE for a host error, not the status)',
        );
      return answer(c);
    },
  },
  {
    id: 'scsi.bad-target',
    detail:
      '(scsi) INQUIRY to a target that does not exist (past `max_target` with CONFIG, else target 255): the response byte `VIRTIO_SCSI_S_BAD_TARGET`',
    title: 'a command to a target that does not exist is answered VIRTIO_SCSI_S_BAD_TARGET',
    severity: 'MUST',
    rule:
      `${REQUEST_QUEUES}: "The device MUST write the response byte as one of the following: ... ` +
      'VIRTIO_SCSI_S_BAD_TARGET if the request was never processed because the target indicated by lun does not exist."',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi, config } = await openScsi(ctx, { config: true });
      if (config && config.maxTarget >= 255)
        throw new SkipError(`max_target is ${config.maxTarget}: every target number may exist`);
      const target = config ? config.maxTarget + 1 : 255;
      const c = await command(scsi, inquiryCdb(96), { dataInLen: 96 }, { target, lun: 0 });
      const basis = config
        ? `past max_target ${config.maxTarget}`
        : 'no CONFIG to say max_target; target 255';
      if (c.resp.response === VirtioScsiResponse.BAD_TARGET)
        return `target ${target} (${basis}): ${answer(c)}`;
      if (!config && c.resp.response === VirtioScsiResponse.OK && c.resp.status === ScsiStatus.GOOD) {
        if (decodeInquiry(c.dataIn).peripheralQualifier === 0)
          throw new SkipError(`target 255 answers INQUIRY with a logical unit connected: it exists`);
      }
      throw new ScsiError(
        ScsiErrorCode.RESPONSE,
        `INQUIRY to target ${target} (${basis}): ${answer(c)}, expected VIRTIO_SCSI_S_BAD_TARGET`,
      );
    },
  },
  {
    id: 'scsi.unknown-lun',
    detail:
      '(scsi) TEST UNIT READY to a LUN of target 0 that REPORT LUNS does not list: CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h)',
    title: 'a command to a LUN that does not exist ends in CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${SPC4}, Incorrect logical unit selection: to a command other than INQUIRY, REPORT LUNS and REQUEST SENSE ` +
      'addressed to a logical unit that does not exist, the target answers CHECK CONDITION, ILLEGAL REQUEST, ' +
      'LOGICAL UNIT NOT SUPPORTED; the virtio spec (SCSI Host Device, eventq) maps "LUN/target removed" to the ' +
      'same sense; interoperability: Linux stops scanning a target at that sense',
    spec: ScsiSpec.requestQueues,
    needs: ['scsi.report-luns'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const report = await command(scsi, reportLunsCdb(1024), { dataInLen: 1024 });
      expectGood(report);
      const listed = decodeReportLuns(report.dataIn).luns;
      let lun = 1;
      while (listed.includes(lun)) lun++;
      const c = await command(scsi, testUnitReadyCdb(), {}, { target: 0, lun });
      const what = `TEST UNIT READY to target 0 LUN ${lun} (REPORT LUNS lists ${listed.join(', ') || 'none'})`;
      const sense = decodeSense(c.resp.sense.subarray(0, Math.min(c.resp.senseLen, c.resp.sense.length)));
      // The response byte with a CHECK CONDITION is scsi.check-condition's to judge: here the status and sense.
      const ok =
        c.resp.status === ScsiStatus.CHECK_CONDITION &&
        sense?.senseKey === SenseKey.ILLEGAL_REQUEST &&
        ((sense.asc << 8) | sense.ascq) === AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED;
      if (!ok)
        throw new ScsiError(
          ScsiErrorCode.SENSE,
          `${what}: ${answer(c)}, expected CHECK CONDITION, ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h)`,
        );
      return `${what}: ${answer(c)}`;
    },
  },
  {
    id: 'scsi.tmf',
    detail:
      '(scsi) LOGICAL UNIT RESET of target 0, LUN 0 on the controlq, no command in flight: completed, its response FUNCTION COMPLETE or FUNCTION SUCCEEDED; then TEST UNIT READY still completes',
    title: 'a LOGICAL UNIT RESET on the controlq completes with FUNCTION COMPLETE or FUNCTION SUCCEEDED',
    severity: 'SHOULD',
    interop: true,
    rule:
      'virtio spec, SCSI Host Device, Device Operation: controlq, with no normative word for the TMF itself: "The ' +
      'outcome of the task management function is written by the device in response. The command-specific ' +
      'response values map 1-to-1 with those defined in SAM."; interoperability: a guest\'s error handler (Linux ' +
      'virtscsi_device_reset) sends LOGICAL UNIT RESET and waits for its completion before it goes on',
    spec: ScsiSpec.controlq,
    needs: ['scsi.test-unit-ready'],
    async run(ctx) {
      const { scsi } = await openScsi(ctx);
      const { response, usedLen } = await scsi.taskManagement(VirtioScsiTmf.LOGICAL_UNIT_RESET, LU0);
      const { FUNCTION_COMPLETE, FUNCTION_SUCCEEDED } = VirtioScsiTmfResponse;
      if (response !== FUNCTION_COMPLETE && response !== FUNCTION_SUCCEEDED)
        throw new BackendError(
          `LOGICAL UNIT RESET of target 0 LUN 0: response ${tmfResponseName(response)}, expected FUNCTION COMPLETE (0) or FUNCTION SUCCEEDED (10)`,
        );
      const after = await command(scsi, testUnitReadyCdb());
      if (after.resp.response !== VirtioScsiResponse.OK)
        throw new BackendError(`TEST UNIT READY after the reset: ${answer(after)}`);
      return `response ${tmfResponseName(response)}, used.len ${usedLen}; TEST UNIT READY after it: ${answer(after)}`;
    },
  },
]);
