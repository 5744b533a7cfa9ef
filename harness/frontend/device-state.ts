/**
 * The front-end's side of "Migrating back-end state" (VHOST_USER_PROTOCOL_F_DEVICE_STATE; vhost-user.rst since
 * QEMU 8.2): SET_DEVICE_STATE_FD hands the back-end one end of a pipe, the state moves through it until the
 * writing end is closed, and CHECK_DEVICE_STATE asks whether the back-end took it. As QEMU's
 * vhost_save_backend_state and vhost_load_backend_state do it, with the device suspended (every ring stopped):
 * the only phase the spec has.
 *
 * What the reply to SET_DEVICE_STATE_FD must be is judged here (a malformed reply is a ProtocolError, a
 * refusal or an error with an fd a BackendError); what the stream and CHECK_DEVICE_STATE say is the caller's
 * to judge.
 */
import { BackendError, ProtocolError } from '../errors.js';
import { decodeDeviceStateReply, encodeDeviceStateTransfer, U64_SIZE } from '../protocol/messages.js';
import { DeviceStateDirection, DeviceStatePhase } from '../protocol/spec.js';
import { closeFd, pipe } from '../sys/libc.js';
import { type ReadToEnd, readToEnd, type WriteAll, writeAll } from '../sys/pipe.js';
import { checkReply } from '../transport/connection.js';
import type { FrontendSession } from '../transport/session.js';

/** A state larger than this is not read further (a back-end that streams without end is not the harness's OOM). */
export const MAX_DEVICE_STATE_BYTES = 64 * 1024 * 1024;

export interface TransferOptions {
  /** The longest wait for the back-end's end of the channel to move (a byte, room, the end of file). */
  timeoutMs: number;
}

/** The transfer as it went: whose channel it used and how the stream ended. */
export interface Transfer {
  /** The back-end passed an fd of its own with the reply ("the front-end must then discard its channel"). */
  backendChannel: boolean;
}

export type SavedState = Transfer & ReadToEnd;
export type LoadedState = Transfer & WriteAll;

const DIRECTION_NAME: Record<number, string> = {
  [DeviceStateDirection.SAVE]: 'save',
  [DeviceStateDirection.LOAD]: 'load',
};

/**
 * SET_DEVICE_STATE_FD of `direction` in the stopped phase with `fd` (which stays ours): the back-end's fd when
 * it passed one. Bits 0-7 non-zero are a BackendError (a refusal), and so is an error with an fd: "The back-end
 * must not both indicate an error and return a file descriptor."
 */
async function setDeviceStateFd(
  session: FrontendSession,
  direction: number,
  fd: number,
): Promise<number | undefined> {
  const name = `SET_DEVICE_STATE_FD (${DIRECTION_NAME[direction]}, phase stopped)`;
  const { connection } = session;
  await connection.send('SET_DEVICE_STATE_FD', {
    payload: encodeDeviceStateTransfer({ direction, phase: DeviceStatePhase.STOPPED }),
    fds: [fd],
  });
  const frame = await connection.nextFrame(`the reply to ${name}`);
  try {
    checkReply('SET_DEVICE_STATE_FD', frame, U64_SIZE, frame.fds.length === 0 ? 0 : 1, connection.recent());
    const reply = decodeDeviceStateReply(frame.payload, 'SET_DEVICE_STATE_FD');
    const returned = frame.fds.length === 1;
    if (reply.error !== 0 && returned)
      throw new BackendError(
        `${name} answered error ${reply.error} and passed an fd: "The back-end must not both indicate an error and return a file descriptor."`,
      );
    if (reply.error !== 0)
      throw new BackendError(`${name} failed: the reply's bits 0-7 say error ${reply.error}`);
    if (reply.invalidFd === returned)
      throw new ProtocolError(
        `${name}: bit 8 (invalid FD) is ${reply.invalidFd ? 'set, yet an fd came' : 'clear, yet no fd came'} with the reply`,
        frame.payload,
      );
    return frame.fds[0];
  } catch (err) {
    for (const f of frame.fds) closeFd(f);
    throw err;
  }
}

/** The back-end's state, read from the channel until its end closes it (or a wait passes with nothing). */
export async function saveDeviceState(
  session: FrontendSession,
  options: TransferOptions,
): Promise<SavedState> {
  const [ours, theirs] = pipe();
  let channel = ours;
  try {
    let returned: number | undefined;
    try {
      returned = await setDeviceStateFd(session, DeviceStateDirection.SAVE, theirs);
    } finally {
      // Ours no more: the back-end's copy is the only writing end, so its close is our end of file.
      closeFd(theirs);
    }
    if (returned !== undefined) {
      closeFd(ours);
      channel = returned;
    }
    const read = await readToEnd(channel, {
      what: 'the device state channel (save)',
      timeoutMs: options.timeoutMs,
      maxBytes: MAX_DEVICE_STATE_BYTES,
    });
    return { ...read, backendChannel: returned !== undefined };
  } finally {
    closeFd(channel);
  }
}

/** `state` written to the back-end's channel, then our end closed: "signalling the end of data". */
export async function loadDeviceState(
  session: FrontendSession,
  state: Uint8Array,
  options: TransferOptions,
): Promise<LoadedState> {
  const [theirs, ours] = pipe();
  let channel = ours;
  try {
    let returned: number | undefined;
    try {
      returned = await setDeviceStateFd(session, DeviceStateDirection.LOAD, theirs);
    } finally {
      closeFd(theirs);
    }
    if (returned !== undefined) {
      closeFd(ours);
      channel = returned;
    }
    const wrote = await writeAll(channel, state, {
      what: 'the device state channel (load)',
      timeoutMs: options.timeoutMs,
    });
    return { ...wrote, backendChannel: returned !== undefined };
  } finally {
    closeFd(channel);
  }
}

/** CHECK_DEVICE_STATE: 0 when the back-end processed the state it was given or gave, any other value an error. */
export function checkDeviceState(session: FrontendSession): Promise<bigint> {
  return session.connection.requestU64('CHECK_DEVICE_STATE');
}
