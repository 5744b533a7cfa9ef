/**
 * A virtio-input driver (virtio spec, "Input Device / Device Operation") on the eventq and the statusq, as
 * Linux's virtio_input drives them: the eventq kept populated with buffers of one virtio_input_event each
 * (device-writable, 8 bytes), each used buffer read and posted again; status events (LEDs) sent on the
 * statusq, one device-readable buffer each. The driver records what the device did with each buffer (the
 * event it wrote, used.len, whether it wrote at all); judging it is the caller's.
 */
import { TimeoutError } from '../../errors.js';
import { GUARD_PATTERN, type GuestMemory } from '../../memory/guest-memory.js';
import type { DriverQueue, VringPort } from '../../virtqueue/port.js';
import { decodeInputEvent, encodeInputEvent, INPUT_EVENT_SIZE, type InputEvent } from './input.js';

type Port = VringPort<unknown, DriverQueue<unknown>>;

/** An eventq buffer the device used. */
export interface ReceivedEvent {
  /** The event it holds; undefined when the device left the driver's guard bytes there (wrote nothing). */
  event: InputEvent | undefined;
  /** used.len. */
  usedLen: number;
  /** The buffer's place in the driver's pool, for messages. */
  buffer: number;
}

/** A statusq buffer the device used. */
export interface StatusCompletion {
  event: InputEvent;
  usedLen: number;
  /** Whether the device wrote into the buffer, which is device-readable only. */
  overwritten: boolean;
}

export interface InputDriverOptions {
  timeoutMs: number;
  /** Event buffers in the pool (default 64, as Linux's virtio_input has). */
  eventBuffers?: number;
}

/**
 * The input driver: `fill` makes the eventq's buffers available, `receive` waits for the device to use some
 * and posts them again, `sendStatus` sends status events and waits for their buffers to come back.
 */
export class InputDriver {
  readonly eventBuffers: number;
  readonly #events: Port;
  readonly #status: Port;
  readonly #memory: GuestMemory;
  readonly #timeoutMs: number;
  /** The pool of event buffers, by index (a buffer's token). */
  readonly #pool: bigint[];
  /** Buffers of the pool not made available now. */
  readonly #idle: number[];

  constructor(events: Port, status: Port, options: InputDriverOptions) {
    this.#events = events;
    this.#status = status;
    this.#memory = events.queue.memory;
    this.#timeoutMs = options.timeoutMs;
    this.eventBuffers = Math.min(options.eventBuffers ?? 64, events.queue.size);
    const regions = this.#memory.regions.map((r) => r.guestAddress);
    // The pool in the last region: a back-end that translates only the first one gets every event wrong.
    const last = regions.at(-1);
    this.#pool = Array.from({ length: this.eventBuffers }, () =>
      this.#memory.alloc(INPUT_EVENT_SIZE, INPUT_EVENT_SIZE, last === undefined ? {} : { region: last }),
    );
    this.#idle = this.#pool.map((_, i) => i);
  }

  /** Event buffers available to the device now. */
  get posted(): number {
    return this.eventBuffers - this.#idle.length;
  }

  /** Makes every idle event buffer available (each filled with guard bytes first) and kicks the eventq. */
  fill(): void {
    for (const i of this.#idle.splice(0)) {
      const gpa = this.#pool[i]!;
      this.#memory.fillGuard(gpa, INPUT_EVENT_SIZE);
      this.#events.queue.addRequest([{ gpa, len: INPUT_EVENT_SIZE, write: true }], { token: i });
    }
    this.#events.notify();
  }

  /**
   * Waits (within `timeoutMs`, the run's deadline by default) until `count` event buffers were used, in
   * used-ring order; each is posted again unless `refill` is false. At the deadline, with `partial`, those
   * that came (at least one), else a TimeoutError saying how many came.
   */
  async receive(
    count: number,
    options: { timeoutMs?: number; refill?: boolean; partial?: boolean } = {},
  ): Promise<ReceivedEvent[]> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const got: ReceivedEvent[] = [];
    const end = performance.now() + timeoutMs;
    while (got.length < count) {
      const left = Math.round(end - performance.now());
      if (left <= 0) {
        if (options.partial && got.length) break;
        throw this.#timeout(count, got, timeoutMs);
      }
      try {
        const { used } = await this.#events.waitUsed(left, count - got.length);
        got.push(...used.map((u) => this.#read(u.token as number, u.len)));
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        got.push(...this.takeNow());
        if (options.partial && got.length) break;
        if (got.length < count) throw this.#timeout(count, got, timeoutMs);
      }
    }
    if (options.refill !== false) this.fill();
    return got;
  }

  /** The event buffers used so far and not yet taken, without waiting (not posted again). */
  takeNow(): ReceivedEvent[] {
    return this.#events.takeUsed().map((u) => this.#read(u.token as number, u.len));
  }

  /**
   * Sends `events` on the statusq, one buffer each (made available together, one kick), and waits for all
   * of them to be used: what the device did with each.
   */
  async sendStatus(events: readonly InputEvent[]): Promise<StatusCompletion[]> {
    const sent = events.map((event) => {
      const bytes = encodeInputEvent(event);
      const gpa = this.#memory.alloc(INPUT_EVENT_SIZE, INPUT_EVENT_SIZE);
      this.#memory.write(gpa, bytes);
      this.#status.queue.addRequest([{ gpa, len: INPUT_EVENT_SIZE, write: false }], {
        token: { gpa, bytes, event },
      });
      return bytes;
    });
    this.#status.notify();
    const what = `${sent.length} status event buffer${sent.length === 1 ? '' : 's'} used on the statusq`;
    const got: StatusCompletion[] = [];
    const end = performance.now() + this.#timeoutMs;
    while (got.length < sent.length) {
      const left = Math.round(end - performance.now());
      const detail = `${got.length} came back`;
      if (left <= 0) throw new TimeoutError(what, this.#timeoutMs, detail);
      try {
        const { used } = await this.#status.waitUsed(left, sent.length - got.length);
        for (const u of used) {
          const token = u.token as { gpa: bigint; bytes: Buffer; event: InputEvent };
          const now = Buffer.from(this.#memory.read(token.gpa, INPUT_EVENT_SIZE));
          got.push({ event: token.event, usedLen: u.len, overwritten: !now.equals(token.bytes) });
        }
      } catch (err) {
        if (err instanceof TimeoutError) throw new TimeoutError(what, this.#timeoutMs, detail);
        throw err;
      }
    }
    return got;
  }

  #read(buffer: number, usedLen: number): ReceivedEvent {
    const bytes = this.#memory.read(this.#pool[buffer]!, INPUT_EVENT_SIZE);
    this.#idle.push(buffer);
    const unwritten = bytes.every((b, i) => b === GUARD_PATTERN[i % GUARD_PATTERN.length]);
    return { event: unwritten ? undefined : decodeInputEvent(bytes), usedLen, buffer };
  }

  #timeout(count: number, got: readonly ReceivedEvent[], timeoutMs: number): TimeoutError {
    return new TimeoutError(
      `${count} event buffers used on the eventq`,
      timeoutMs,
      `${got.length} came${got.length ? ` (the last: ${describeReceived(got.at(-1)!)})` : ''}`,
    );
  }
}

/** A used event buffer for messages. */
export function describeReceived(r: ReceivedEvent): string {
  if (!r.event) return `buffer ${r.buffer} used with nothing written (used.len ${r.usedLen})`;
  const e = r.event;
  return `type ${e.type} code ${e.code} value ${e.value}`;
}
