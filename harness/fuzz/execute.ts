/**
 * Runs concrete steps against a back-end over one connection: a message is sent byte for byte with fresh fds
 * of the kinds it names; a data-plane request is written into the sequence's guest memory and kicked. Owns
 * the guest memory and every fd it makes until `close`.
 */
import {
  closeFd,
  eventfd,
  eventfdWrite,
  ftruncate,
  type Mapping,
  memfdCreate,
  mmapShared,
} from '../sys/libc.js';
import type { Connection } from '../transport/connection.js';
import { SplitLayout, writeRawDescriptor } from '../virtqueue/split-layout.js';
import {
  type FdKind,
  GUEST,
  type MessageStep,
  messageBytes,
  type RequestStep,
  ringOffsets,
  type Step,
} from './steps.js';

export class SequenceRuntime {
  readonly #memory: number;
  readonly #mapping: Mapping;
  readonly #bytes: Buffer;
  /** Our end of each ring's last kick eventfd. */
  readonly #kicks = new Map<number, number>();
  #closed = false;

  constructor() {
    this.#memory = memfdCreate('vhu-fuzz-guest');
    try {
      ftruncate(this.#memory, GUEST.size);
      this.#mapping = mmapShared(this.#memory, GUEST.size);
    } catch (err) {
      closeFd(this.#memory);
      throw err;
    }
    this.#bytes = Buffer.from(this.#mapping.buffer);
  }

  /** Sends or performs `step`; errors of the connection are the caller's to judge (the oracle sees a close). */
  async run(step: Step, connection: Connection): Promise<void> {
    if (step.kind === 'message') await this.#send(step, connection);
    else this.#request(step);
  }

  async #send(step: MessageStep, connection: Connection): Promise<void> {
    const made: number[] = [];
    try {
      const fds = step.fds.map((kind) => this.#fd(kind, made));
      const sent = connection.sendRaw(messageBytes(step), fds, step.what);
      if (step.kickRing !== undefined) {
        const kick = made[made.length - 1]!;
        made.pop();
        const old = this.#kicks.get(step.kickRing);
        if (old !== undefined) closeFd(old);
        this.#kicks.set(step.kickRing, kick);
      }
      await sent;
    } finally {
      for (const fd of made) closeFd(fd);
    }
  }

  #fd(kind: FdKind, made: number[]): number {
    if (kind === 'memory') return this.#memory;
    const fd = kind === 'eventfd' ? eventfd() : memfdCreate('vhu-fuzz-not-an-eventfd');
    made.push(fd);
    return fd;
  }

  #request(step: RequestStep): void {
    const ring = ringOffsets(step.ring);
    // The table as far as guest memory goes: an entry past its end (a hand-made case's) is not written.
    const table = new DataView(this.#mapping.buffer, ring.desc, GUEST.size - ring.desc);
    for (const d of step.descriptors) {
      if ((d.index + 1) * SplitLayout.DESC_SIZE > table.byteLength) continue;
      // Fields cut to their widths, as a case file read back may hold anything.
      const desc = { addr: BigInt(d.addr), len: d.len >>> 0, flags: d.flags & 0xffff, next: d.next & 0xffff };
      writeRawDescriptor(table, d.index, desc);
    }
    // The entry, then avail.idx: the order a driver publishes in.
    this.#bytes.writeUInt16LE(step.head, ring.avail + 4 + 2 * step.availSlot);
    Atomics.store(new Uint16Array(this.#mapping.buffer, ring.avail + 2, 1), 0, step.availIdx);
    const kick = this.#kicks.get(step.ring);
    if (kick !== undefined) eventfdWrite(kick, 1n);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#kicks.values()) closeFd(fd);
    this.#kicks.clear();
    this.#mapping.unmap();
    closeFd(this.#memory);
  }
}
