/** Pure builders for the C structures the libc bindings pass. Linux x86_64/aarch64 layouts, little-endian. */

/** sizeof(struct sockaddr_un) */
export const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_MAX = SOCKADDR_UN_SIZE - 2;
const AF_UNIX = 1;

/** struct sockaddr_un for a filesystem path; throws when the path does not fit sun_path with its NUL. */
export function sockaddrUn(path: string): Buffer {
  const encoded = Buffer.from(path, 'utf8');
  if (encoded.length === 0 || encoded.length >= SUN_PATH_MAX) {
    throw new RangeError(`socket path must be 1..${SUN_PATH_MAX - 1} bytes, got ${encoded.length}: ${path}`);
  }
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  encoded.copy(addr, 2);
  return addr;
}

/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } as returned by SO_PEERCRED. */
export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}
export const UCRED_SIZE = 12;

export function parseUcred(buf: Uint8Array): Ucred {
  if (buf.length < UCRED_SIZE) throw new RangeError(`ucred needs ${UCRED_SIZE} bytes, got ${buf.length}`);
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { pid: view.readInt32LE(0), uid: view.readUInt32LE(4), gid: view.readUInt32LE(8) };
}
