/**
 * How the block driver (driver.ts) judges a request the device returned: the completion it makes of the used
 * element, status byte and buffers, and the rules it holds the device to (the readable parts left alone, the
 * status byte, used.len counting no byte the device did not write), each finding thrown or kept.
 */
import {
  BlkError,
  BlkErrorCode,
  type BlkRequest,
  blkStatusName,
  describeBlkRequest,
  VirtioBlkStatus,
} from './blk.js';

/** A request the device returned. */
export interface BlkCompletion {
  request: BlkRequest;
  /** The chain's head descriptor. */
  head: number;
  /** The status byte as the device left it (0xff: not written). */
  status: number;
  usedLen: number;
  /** used.len of a successful request that counts every byte written (it may be less, never more). */
  expectedLen: number;
  /**
   * Data bytes used.len counts that still hold the guard bytes the driver put there: whole data segments
   * (8 bytes or more) the device never wrote, though it says it did.
   */
  unwrittenCounted: number;
  /** The bytes the device can write: data (IN, GET_ID) and status. */
  writableLen: number;
  /** A copy of the data the device wrote (IN, GET_ID); empty otherwise. */
  data: Uint8Array;
  /** Why the device-readable parts are not as the driver left them, if they are not. */
  readonlyWritten: string | undefined;
}

/** A status byte value no device writes: a status left at it was never written. */
export const STATUS_UNSET = 0xff;

/**
 * How many bytes fewer than it wrote a successful request's used.len counts (0 when exact). Not a failure:
 * "len is permitted to be an underestimate" (virtio 1.3, 2.7.8.1 The Virtqueue Used Ring).
 */
export function blkUsedLenShortfall(completion: BlkCompletion): number {
  if (completion.status !== VirtioBlkStatus.OK) return 0;
  return Math.max(0, completion.expectedLen - completion.usedLen);
}

/**
 * Takes a finding of a completion rule instead of throwing it (true), or leaves it to be thrown (false): the
 * status and the rules after it are still checked.
 */
export type KeepFinding = (finding: BlkError) => boolean;

/** Throws `finding` unless `keep` takes it. */
function found(finding: BlkError, keep: KeepFinding | undefined): void {
  if (!keep?.(finding)) throw finding;
}

/**
 * Checks a completion: the readable parts untouched, the status byte `status`, and used.len no more than the
 * device wrote. Throws a BlkError naming the request, but for the findings `keep` takes.
 */
export function expectBlkStatus(completion: BlkCompletion, status: number, keep?: KeepFinding): void {
  const what = `${describeBlkRequest(completion.request)} (head ${completion.head})`;
  if (completion.readonlyWritten) {
    found(
      new BlkError(BlkErrorCode.READONLY_WRITTEN, `${what}: ${completion.readonlyWritten} by the device`),
      keep,
    );
  }
  if (completion.status !== status) {
    const unset = completion.status === STATUS_UNSET ? ' (the status byte was never written)' : '';
    throw new BlkError(
      BlkErrorCode.STATUS,
      `${what}: status ${blkStatusName(completion.status)}${unset}, expected ${blkStatusName(status)} (used.len ${completion.usedLen})`,
    );
  }
  expectUsedLenWritten(completion, keep);
}

/** The completion rules `completion` breaks, whatever its status: its findings, none thrown. */
export function completionFindings(completion: BlkCompletion): BlkError[] {
  const findings: BlkError[] = [];
  // Its own status expected: only the rules that hold whatever the status are judged.
  expectBlkStatus(completion, completion.status, (finding) => findings.push(finding) > 0);
  return findings;
}

/**
 * used.len counts no byte the device did not write: "The device MUST write at least len bytes to
 * descriptor, beginning at the first device-writable buffer, prior to updating the used idx" (virtio 1.3,
 * 2.7.8.1). A smaller used.len is allowed ("len is permitted to be an underestimate"): see
 * `blkUsedLenShortfall`. Throws a BlkError naming the request, unless `keep` takes it.
 */
export function expectUsedLenWritten(completion: BlkCompletion, keep?: KeepFinding): void {
  const counted = usedLenOverCount(completion);
  if (counted === undefined) return;
  const what = `${describeBlkRequest(completion.request)} (head ${completion.head})`;
  found(new BlkError(BlkErrorCode.USED_LEN, `${what}: used.len ${completion.usedLen} ${counted}`), keep);
}

/** What a completion's used.len counts that the device did not write; undefined when nothing. */
function usedLenOverCount(completion: BlkCompletion): string | undefined {
  if (completion.usedLen > completion.writableLen) {
    return `is more than the ${completion.writableLen} writable bytes of the chain`;
  }
  if (completion.unwrittenCounted > 0) {
    return (
      `counts ${completion.unwrittenCounted} data bytes the device never wrote (they still hold the guard ` +
      `bytes the driver put there; status ${blkStatusName(completion.status)})`
    );
  }
  const statusCounted = completion.usedLen === completion.writableLen;
  if (statusCounted && completion.status === STATUS_UNSET) {
    return 'counts the status byte, which was never written';
  }
  return undefined;
}
