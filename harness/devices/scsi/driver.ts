/**
 * A virtio-scsi driver (virtio spec, "SCSI Host Device / Device Operation: Request Queues") on one request
 * queue: one command at a time, as a chain of the header and CDB (device-readable, one descriptor), the
 * data-out if any, then the response (device-writable, one descriptor: contrib/vhost-user-scsi takes each
 * whole from the chain's first readable and first writable descriptor, as legacy framing had it) and the
 * data-in if any. The driver checks what the device did with the chain: the readable parts left alone,
 * used.len no more than it wrote; the response and data are the caller's to judge.
 *
 * The header goes in one guest region, the response in another, the data in a third, so a back-end that
 * translates one region wrongly gets every command wrong.
 */
import { BackendError, TimeoutError } from '../../errors.js';
import { GUARD_PATTERN, type GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, VringPort } from '../../virtqueue/port.js';
import type { BufferElement } from '../../virtqueue/split.js';
import {
  CMD_HEADER_SIZE,
  DEFAULT_CDB_SIZE,
  DEFAULT_SENSE_SIZE,
  decodeCmdResp,
  encodeCmdReq,
  encodeTmfReq,
  RESP_HEADER_SIZE,
  type ScsiAddress,
  type ScsiCmdResp,
  TMF_REQ_SIZE,
} from './scsi.js';

export interface ScsiCommand {
  address: ScsiAddress;
  cdb: Uint8Array;
  /** Bytes the device reads after the header (a WRITE's blocks). */
  dataOut?: Uint8Array;
  /** Room for the bytes the device writes after the response (a READ's blocks, INQUIRY data). */
  dataInLen?: number;
}

export const ScsiErrorCode = {
  /** The response byte is not what the command called for. */
  RESPONSE: 'VHU_ERR_SCSI_RESPONSE',
  /** The SCSI status is not what the command called for. */
  STATUS: 'VHU_ERR_SCSI_STATUS',
  /** The sense data is not what the condition called for. */
  SENSE: 'VHU_ERR_SCSI_SENSE',
  /** used.len counts more than the device wrote. */
  USED_LEN: 'VHU_ERR_SCSI_USED_LEN',
  /** The device wrote into a device-readable part of the chain. */
  READONLY_WRITTEN: 'VHU_ERR_SCSI_READONLY_WRITTEN',
  /** The data-in is not what the caller knows the logical unit holds. */
  DATA: 'VHU_ERR_SCSI_DATA',
} as const;
export type ScsiErrorCode = (typeof ScsiErrorCode)[keyof typeof ScsiErrorCode];

/** The device completed a virtio-scsi command wrongly: a FAIL. */
export class ScsiError extends BackendError {
  override readonly code: ScsiErrorCode;
  constructor(code: ScsiErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** A command the device returned. */
export interface ScsiCompletion {
  command: ScsiCommand;
  head: number;
  usedLen: number;
  /** The response and data-in bytes the chain offered the device. */
  writableLen: number;
  /** The response as the device left it (fields it did not write hold guard bytes). */
  resp: ScsiCmdResp;
  /** Whether the device wrote any of the 12 bytes before the sense (all still guard bytes: none). */
  respWritten: boolean;
  /** The data-in area as the device left it, `dataInLen` bytes. */
  dataIn: Uint8Array;
  /** Why used.len counts more than the device wrote, if it does. */
  usedLenOver: string | undefined;
  /** Why the device-readable parts are not as the driver left them, if they are not. */
  readonlyWritten: string | undefined;
}

export interface ScsiDriverOptions {
  timeoutMs: number;
  /** cdb_size: the size of the header's cdb field (default 32, the device's default). */
  cdbSize?: number;
  /** sense_size: the sense bytes of the response (default 96, the device's default). */
  senseSize?: number;
  /** The largest data-out or data-in, in bytes (default 64 KiB). */
  maxData?: number;
  /** The controlq, for task management functions (`taskManagement`). */
  control?: VringPort<unknown, DriverQueue<unknown>>;
}

/** The command for messages: its CDB in hex and the logical unit it addresses. */
export function describeCommand(command: ScsiCommand): string {
  const { target, lun } = command.address;
  const cdb = Buffer.from(command.cdb).toString('hex');
  return `CDB ${cdb} to target ${target} LUN ${lun}`;
}

/**
 * The virtio-scsi driver: `run` posts one command on the request queue, notifies, and waits for it (one at a
 * time: each command's areas are the driver's own); `taskManagement` does the same on the controlq.
 */
export class ScsiDriver {
  readonly cdbSize: number;
  readonly senseSize: number;
  readonly maxData: number;
  readonly #port: VringPort<unknown, DriverQueue<unknown>>;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  readonly #request: bigint;
  readonly #response: bigint;
  readonly #dataOut: bigint;
  readonly #dataIn: bigint;
  readonly #control: VringPort<unknown, DriverQueue<unknown>> | undefined;
  #nextId = 1n;

  constructor(port: VringPort<unknown, DriverQueue<unknown>>, options: ScsiDriverOptions) {
    this.#port = port;
    this.#memory = port.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    this.cdbSize = options.cdbSize ?? DEFAULT_CDB_SIZE;
    this.senseSize = options.senseSize ?? DEFAULT_SENSE_SIZE;
    this.maxData = options.maxData ?? 64 * 1024;
    const regions = this.#memory.regions.map((r) => r.guestAddress);
    const first = regions[0]!;
    const last = regions.at(-1)!;
    const middle = regions[1] ?? first;
    this.#request = this.#memory.alloc(CMD_HEADER_SIZE + this.cdbSize, 16, { region: middle });
    this.#response = this.#memory.alloc(RESP_HEADER_SIZE + this.senseSize, 16, { region: last });
    this.#dataOut = this.#memory.alloc(this.maxData, 512, { region: first });
    this.#dataIn = this.#memory.alloc(this.maxData, 512, { region: last });
    this.#control = options.control;
  }

  /**
   * Sends a task management function on the controlq (a TMF request of 24 bytes, a response byte) and waits
   * for it: the response byte as the device left it (0xde: never written), and used.len.
   */
  async taskManagement(
    subtype: number,
    address: ScsiAddress,
  ): Promise<{ response: number; usedLen: number }> {
    const control = this.#control;
    if (!control) throw new Error('taskManagement needs the controlq (ScsiDriverOptions.control)');
    const request = encodeTmfReq(subtype, address);
    const gpa = this.#memory.alloc(TMF_REQ_SIZE, 16);
    const response = this.#memory.alloc(1, 1);
    this.#memory.write(gpa, request);
    this.#memory.fillGuard(response, 1);
    control.queue.addRequest([
      { gpa, len: TMF_REQ_SIZE, write: false },
      { gpa: response, len: 1, write: true },
    ]);
    control.notify();
    const what = `the completion of task management function ${subtype} on the controlq`;
    let used: Awaited<ReturnType<VringPort<unknown>['waitUsed']>>['used'];
    try {
      ({ used } = await control.waitUsed(this.#timeoutMs, 1));
    } catch (err) {
      if (err instanceof TimeoutError) throw new TimeoutError(what, this.#timeoutMs, err.message);
      throw err;
    }
    if (!Buffer.from(this.#memory.read(gpa, TMF_REQ_SIZE)).equals(request))
      throw new ScsiError(ScsiErrorCode.READONLY_WRITTEN, `${what}: the device wrote into the TMF request`);
    return { response: this.#memory.read(response, 1)[0]!, usedLen: used[0]!.len };
  }

  /** Posts `command`, notifies, and waits for it: the completion as the device left it, not judged. */
  async run(command: ScsiCommand): Promise<ScsiCompletion> {
    const dataOut = command.dataOut ?? new Uint8Array(0);
    const dataInLen = command.dataInLen ?? 0;
    if (dataOut.length > this.maxData || dataInLen > this.maxData)
      throw new Error(`a command of more than ${this.maxData} bytes of data`);
    const header = encodeCmdReq({
      address: command.address,
      id: this.#nextId++,
      cdb: command.cdb,
      cdbSize: this.cdbSize,
    });
    const respLen = RESP_HEADER_SIZE + this.senseSize;
    this.#memory.write(this.#request, header);
    this.#memory.fillGuard(this.#response, respLen);
    if (dataOut.length) this.#memory.write(this.#dataOut, dataOut);
    if (dataInLen) this.#memory.fillGuard(this.#dataIn, dataInLen);
    const chain: BufferElement[] = [
      { gpa: this.#request, len: header.length, write: false },
      ...(dataOut.length ? [{ gpa: this.#dataOut, len: dataOut.length, write: false }] : []),
      { gpa: this.#response, len: respLen, write: true },
      ...(dataInLen ? [{ gpa: this.#dataIn, len: dataInLen, write: true }] : []),
    ];
    const head = this.#port.queue.addRequest(chain);
    this.#port.notify();
    let used: Awaited<ReturnType<VringPort<unknown>['waitUsed']>>['used'];
    try {
      ({ used } = await this.#port.waitUsed(this.#timeoutMs, 1));
    } catch (err) {
      if (err instanceof TimeoutError)
        throw new TimeoutError(`the completion of ${describeCommand(command)}`, this.#timeoutMs, err.message);
      throw err;
    }
    const u = used[0]!;
    const respBytes = this.#memory.read(this.#response, respLen);
    const dataIn = dataInLen ? this.#memory.read(this.#dataIn, dataInLen) : new Uint8Array(0);
    const problems: string[] = [];
    if (!Buffer.from(this.#memory.read(this.#request, header.length)).equals(header))
      problems.push('the request header was modified');
    if (dataOut.length && !Buffer.from(this.#memory.read(this.#dataOut, dataOut.length)).equals(dataOut))
      problems.push('the data-out was modified');
    return {
      command,
      head,
      usedLen: u.len,
      writableLen: u.writableLen,
      resp: decodeCmdResp(respBytes),
      respWritten: !holdsGuard(respBytes.subarray(0, RESP_HEADER_SIZE), 0),
      dataIn,
      usedLenOver: usedLenOver(u.len, u.writableLen, respBytes, dataIn),
      readonlyWritten: problems.length ? problems.join(' and ') : undefined,
    };
  }
}

/** Whether `bytes` still hold the guard pattern as `fillGuard` wrote it from `offset` of its area. */
function holdsGuard(bytes: Uint8Array, offset: number): boolean {
  return bytes.every((b, i) => b === GUARD_PATTERN[(offset + i) % GUARD_PATTERN.length]);
}

/**
 * What used.len counts that the device did not write: more than the writable bytes, the 12 bytes of the
 * response header left as the driver put them, or a run of 8 bytes or more at the end of the data-in it
 * counts that still holds the guard bytes (a device writes its data from the start of data-in). Undefined
 * when nothing: a smaller used.len is allowed ("len is permitted to be an underestimate").
 */
export function usedLenOver(
  usedLen: number,
  writableLen: number,
  resp: Uint8Array,
  dataIn: Uint8Array,
): string | undefined {
  if (usedLen > writableLen)
    return `used.len ${usedLen} is more than the ${writableLen} writable bytes of the chain`;
  if (usedLen >= RESP_HEADER_SIZE && holdsGuard(resp.subarray(0, RESP_HEADER_SIZE), 0))
    return `used.len ${usedLen} counts the response, which the device never wrote`;
  const counted = Math.min(dataIn.length, Math.max(0, usedLen - resp.length));
  let from = counted;
  while (from > 0 && dataIn[from - 1] === GUARD_PATTERN[(from - 1) % GUARD_PATTERN.length]) from--;
  const unwritten = counted - from;
  return unwritten >= GUARD_PATTERN.length
    ? `used.len ${usedLen} counts ${unwritten} data-in bytes the device never wrote (the last ${unwritten} of the ${counted} it counts still hold the guard bytes the driver put there)`
    : undefined;
}

/** Throws a ScsiError unless the readable parts came back untouched and used.len counts only what was written. */
export function expectChainRules(completion: ScsiCompletion): void {
  const what = `${describeCommand(completion.command)} (head ${completion.head})`;
  if (completion.readonlyWritten)
    throw new ScsiError(
      ScsiErrorCode.READONLY_WRITTEN,
      `${what}: ${completion.readonlyWritten} by the device`,
    );
  if (completion.usedLenOver)
    throw new ScsiError(ScsiErrorCode.USED_LEN, `${what}: ${completion.usedLenOver}`);
}
