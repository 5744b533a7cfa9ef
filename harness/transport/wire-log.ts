/**
 * The wire log: every vhost-user message one check sends and receives on the back-end's socket (and on the
 * back-end request channel and the gpu display socket), decoded for a person reading why the check failed. The runner opens a log around each check (`wireLogContext.run`); the
 * connection records into whatever log is current, so no parameter threads through the checks, and the
 * transport knows nothing of the runner. Without a current log nothing is recorded.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { describeBackendChannelMessage, describeFlags, describeMessage } from '../protocol/describe.js';
import { HEADER_SIZE } from '../protocol/spec.js';

/** One line of the wire log. */
export interface WireRecord {
  /** Milliseconds since the check started. */
  atMs: number;
  /** Which connection of the check, 1 for the first it opened: a check may open several. */
  connection: number;
  /** `->` from the harness to the back-end, `<-` from the back-end. */
  direction: '->' | '<-';
  /** The request's name (`UNKNOWN(n)`), or what happened without a message (`end of stream`). */
  name: string;
  /** Header flags; absent for an event that is not a message. */
  flags?: number;
  /** The payload's length in bytes (for raw bytes sent: what the header announces). */
  size?: number;
  /** The payload's fields, decoded (protocol/describe.ts), or a note. */
  fields: string;
  /** How many fds went with the message (SCM_RIGHTS). */
  fds: number;
}

/** A check's wire log as a result carries it: bounded, and saying what was cut. */
export interface WireLogData {
  /** The first and the last records, in order. */
  records: WireRecord[];
  /** How many records were cut from the middle (after the first `head`). */
  cut: number;
  /** How many records of the start were kept: the cut, if any, comes after them. */
  head: number;
}

/** A log keeps the first HEAD and the last TAIL records: the set-up, and what led to the verdict. */
export const WIRE_LOG_HEAD = 100;
export const WIRE_LOG_TAIL = 400;

/** Where the connection of a running check records; set by whoever runs checks (the runner). */
export const wireLogContext = new AsyncLocalStorage<WireLog>();

export class WireLog {
  private readonly first: WireRecord[] = [];
  private last: WireRecord[] = [];
  private cut = 0;
  private readonly connections = new WeakMap<object, number>();
  private count = 0;
  private closed = false;

  constructor(
    private readonly head = WIRE_LOG_HEAD,
    private readonly tail = WIRE_LOG_TAIL,
    private readonly started = performance.now(),
  ) {}

  /** A message `connection` sent (`->`) or received (`<-`): decoded now, its bytes not kept. */
  message(
    connection: object,
    direction: '->' | '<-',
    request: number,
    flags: number,
    payload: Buffer,
    fds: number,
  ): void {
    if (this.closed) return;
    const { name, fields } = describeMessage(request, flags, payload, direction === '<-');
    this.described(connection, direction, name, { flags, size: payload.length, fields, fds });
  }

  /** A message on the back-end request channel: a back-end request (`<-`), or our reply to it (`->`). */
  backendChannelMessage(
    channel: object,
    direction: '->' | '<-',
    request: number,
    flags: number,
    payload: Buffer,
    fds: number,
  ): void {
    if (this.closed) return;
    const { name, fields } = describeBackendChannelMessage(request, payload, direction === '<-');
    this.described(channel, direction, name, { flags, size: payload.length, fields, fds });
  }

  /**
   * A message its channel decoded itself (the gpu display socket's, protocol/describe.ts
   * describeGpuMessage): `name` and `fields` as the log shows them.
   */
  described(
    channel: object,
    direction: '->' | '<-',
    name: string,
    message: { flags: number; size: number; fields: string; fds: number },
  ): void {
    if (this.closed) return;
    this.push({ ...this.stamp(channel, direction, name), ...message });
  }

  /**
   * Bytes sent as they are (a robustness input): `what` the check calls them, and the header they start
   * with, if they hold one; the payload is decoded as far as it goes.
   */
  raw(connection: object, bytes: Buffer, fds: number, what: string): void {
    if (this.closed) return;
    if (bytes.length < HEADER_SIZE) {
      this.push({
        ...this.stamp(connection, '->', what),
        fields: `${bytes.length} raw bytes: ${bytes.toString('hex')}`,
        fds,
      });
      return;
    }
    const request = bytes.readUInt32LE(0);
    const flags = bytes.readUInt32LE(4);
    const size = bytes.readUInt32LE(8);
    const { name, fields } = describeMessage(request, flags, bytes.subarray(HEADER_SIZE), false);
    const sent =
      bytes.length - HEADER_SIZE === size ? '' : `, ${bytes.length - HEADER_SIZE} payload bytes sent`;
    this.push({ ...this.stamp(connection, '->', `${what} (${name}${sent})`), flags, size, fields, fds });
  }

  /** Something on the connection that is not a message: end of stream, the connection's end and why. */
  event(connection: object, direction: '->' | '<-', what: string): void {
    if (this.closed) return;
    this.push({ ...this.stamp(connection, direction, what), fields: '', fds: 0 });
  }

  /** Ends recording: what a connection outliving its check does is not that check's. */
  close(): void {
    this.closed = true;
  }

  /** What was recorded, first and last records kept. */
  data(): WireLogData {
    const extra = Math.max(0, this.last.length - this.tail);
    return {
      records: [...this.first, ...this.last.slice(extra)],
      cut: this.cut + extra,
      head: this.first.length,
    };
  }

  private stamp(connection: object, direction: '->' | '<-', name: string) {
    let id = this.connections.get(connection);
    if (id === undefined) {
      id = ++this.count;
      this.connections.set(connection, id);
    }
    return {
      atMs: Math.round((performance.now() - this.started) * 10) / 10,
      connection: id,
      direction,
      name,
    };
  }

  private push(record: WireRecord): void {
    if (this.first.length < this.head) {
      this.first.push(record);
      return;
    }
    this.last.push(record);
    // Trimmed in batches, so that a long check costs amortized constant time per record.
    if (this.last.length >= 2 * this.tail) {
      this.cut += this.last.length - this.tail;
      this.last = this.last.slice(-this.tail);
    }
  }
}

/** The log of the check running in this async context, if any. */
export function currentWireLog(): WireLog | undefined {
  return wireLogContext.getStore();
}

/** One record as a line of text: `+12.3ms #1 -> SET_VRING_NUM [v1 need_reply] size=8 index=0 num=256`. */
export function formatWireRecord(record: WireRecord): string {
  const parts = [`+${record.atMs.toFixed(1)}ms`, `#${record.connection}`, record.direction, record.name];
  if (record.flags !== undefined) parts.push(`[${describeFlags(record.flags)}]`);
  if (record.size !== undefined) parts.push(`size=${record.size}`);
  if (record.fds) parts.push(`fds=${record.fds}`);
  if (record.fields) parts.push(record.fields);
  return parts.join(' ');
}

/** The whole log as text, one record a line, with a line where records were cut. */
export function formatWireLog(log: WireLogData): string[] {
  const lines = log.records.map(formatWireRecord);
  if (log.cut > 0)
    lines.splice(
      log.head,
      0,
      `... ${log.cut} messages cut here: the log keeps the first ${log.head} and the last ${log.records.length - log.head} ...`,
    );
  return lines;
}
