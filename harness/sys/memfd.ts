/** Shared memory the harness hands to a back-end: a memfd, sized and mapped MAP_SHARED into this process. */
import { ClosedError } from './fd-waiter.js';
import { closeFd, ftruncate, type Mapping, memfdCreate, mmapShared } from './libc.js';

/**
 * One memfd of `size` bytes, mapped shared: what the harness writes through `bytes` a back-end that maps
 * `fd` sees, and the other way round. The object owns the fd and the mapping; `close()` releases both.
 * Pass `fd` to a back-end with sendmsg (the back-end gets its own copy); do not close it yourself.
 */
export class SharedMemory {
  readonly fd: number;
  readonly size: number;
  readonly #mapping: Mapping;
  #bytes: Uint8Array | undefined;
  #view: DataView | undefined;
  #closed = false;

  /** `size` > 0 bytes, page multiple if it is to be mapped from an offset; `name` shows in /proc/PID/fd. */
  constructor(size: number, name = 'vhu-conform') {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new RangeError(`memory size must be > 0, got ${size}`);
    const fd = memfdCreate(name);
    try {
      ftruncate(fd, size);
      this.#mapping = mmapShared(fd, size, 0);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
    this.fd = fd;
    this.size = size;
  }

  /** The address of the mapping in this process (a region's userspace_addr, as QEMU would send it). */
  get address(): bigint {
    this.#assertOpen();
    return this.#mapping.address;
  }

  /** The bytes of the memory, without copy. */
  get bytes(): Uint8Array {
    this.#assertOpen();
    this.#bytes ??= new Uint8Array(this.#mapping.buffer);
    return this.#bytes;
  }

  /** A DataView over the memory, for little-endian fields (`view.getUint16(off, true)`). */
  get view(): DataView {
    this.#assertOpen();
    this.#view ??= new DataView(this.#mapping.buffer);
    return this.#view;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Unmaps and closes the fd; idempotent. Views taken earlier stay safe to touch but read zeros from then
   * on (see `Mapping.unmap`).
   */
  close(): void {
    if (this.#closed) return;
    this.#mapping.unmap();
    this.#closed = true;
    this.#bytes = undefined;
    this.#view = undefined;
    closeFd(this.fd);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(`shared memory fd ${this.fd}`);
  }
}
