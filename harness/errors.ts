/**
 * Coded errors. Every error the harness raises has a stable `code`; the runner turns the class of an error
 * into a verdict: a rule broken by the back-end is a FAIL, a missed deadline a TIMEOUT, a missing feature a
 * SKIP, and anything else an ERROR of the harness itself.
 */
export class VhuError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The back-end did not do something within the deadline. `waitingFor` names what was awaited. */
export class TimeoutError extends VhuError {
  readonly waitingFor: string;
  readonly afterMs: number;
  constructor(waitingFor: string, afterMs: number, detail?: string) {
    super(
      'VHU_ERR_TIMEOUT',
      `timed out after ${afterMs} ms waiting for ${waitingFor}${detail ? `: ${detail}` : ''}`,
    );
    this.waitingFor = waitingFor;
    this.afterMs = afterMs;
  }
}

/** The back-end sent bytes that break the vhost-user protocol. */
export class ProtocolError extends VhuError {
  readonly bytes: Buffer | undefined;
  constructor(message: string, bytes?: Buffer) {
    super('VHU_ERR_PROTOCOL', bytes ? `${message} (bytes: ${hexdump(bytes)})` : message);
    this.bytes = bytes;
  }
}

/** The back-end broke a rule in a way that is not an assertion in a check (it crashed, closed the socket...). */
export class BackendError extends VhuError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VHU_ERR_BACKEND', message, options);
  }
}

/** A system call made by the harness failed. */
export class SysError extends VhuError {
  readonly syscall: string;
  readonly errno: number;
  constructor(syscall: string, errno: number, detail?: string) {
    super(
      'VHU_ERR_SYS',
      `${syscall}${detail ? ` (${detail})` : ''} failed: errno ${errno} (${errnoName(errno)})`,
    );
    this.syscall = syscall;
    this.errno = errno;
  }
}

/** The harness was called wrongly: bad option, missing binary. */
export class UsageError extends VhuError {
  constructor(message: string) {
    super('VHU_ERR_USAGE', message);
  }
}

/** A check does not apply to this back-end; `message` says why. */
export class SkipError extends VhuError {
  constructor(reason: string) {
    super('VHU_SKIP', reason);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  2: 'ENOENT',
  4: 'EINTR',
  9: 'EBADF',
  11: 'EAGAIN',
  13: 'EACCES',
  17: 'EEXIST',
  22: 'EINVAL',
  24: 'EMFILE',
  32: 'EPIPE',
  88: 'ENOTSOCK',
  95: 'EOPNOTSUPP',
  98: 'EADDRINUSE',
  104: 'ECONNRESET',
  107: 'ENOTCONN',
  110: 'ETIMEDOUT',
  111: 'ECONNREFUSED',
  115: 'EINPROGRESS',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** Hex bytes for messages, at most `limit` of them. */
export function hexdump(bytes: Uint8Array, limit = 64): string {
  const shown = Buffer.from(bytes.subarray(0, limit))
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ');
  return bytes.length > limit ? `${shown} ... (${bytes.length} bytes)` : shown;
}
