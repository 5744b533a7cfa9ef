import fs from 'node:fs';
import { expect } from 'chai';
import { BackendError } from '../errors.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { encodeFrame } from '../protocol/encoder.js';
import { FrontendRequest, HeaderFlag } from '../protocol/spec.js';
import { closeFd, pipe } from '../sys/libc.js';
import { expectNoFdLeaks } from '../sys/testing.js';
import { UnixChannel } from '../sys/unix-channel.js';
import { Connection } from '../transport/connection.js';
import { FrontendSession } from '../transport/session.js';
import { checkDeviceState, loadDeviceState, saveDeviceState } from './device-state.js';

const REPLY = HeaderFlag.VERSION | HeaderFlag.REPLY;

/**
 * A back-end that answers SET_DEVICE_STATE_FD with `reply` (the u64, written by hand) and, unless bit 8 is set,
 * a pipe end of its own: for a save it writes `state` into its pipe and closes it; for a load it keeps what it
 * reads. CHECK_DEVICE_STATE: 0.
 */
async function backend(channel: UnixChannel, reply: bigint, state: Buffer, got: Buffer[]): Promise<void> {
  const decoder = new FrameDecoder(4096);
  for (;;) {
    const message = await channel.receive(2000).catch(() => null);
    if (!message) return;
    for (const frame of decoder.push(message.data, message.fds)) {
      for (const fd of frame.fds) closeFd(fd);
      const u64 = Buffer.alloc(8);
      if (frame.request === FrontendRequest.CHECK_DEVICE_STATE) {
        await channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload: u64 }));
        continue;
      }
      u64.writeBigUInt64LE(reply);
      if (reply & 0x100n) {
        await channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload: u64 }));
        continue;
      }
      const save = frame.payload.readUInt32LE(0) === 0;
      const [r, w] = pipe();
      await channel.send(encodeFrame({ request: frame.request, flags: REPLY, payload: u64 }), [save ? r : w]);
      if (save) {
        closeFd(r);
        fs.writeSync(w, state);
        closeFd(w);
      } else {
        closeFd(w);
        // The front-end writes it all and closes its end before CHECK_DEVICE_STATE: read it after that.
        got.push(Buffer.alloc(0));
        setTimeout(() => {
          got[0] = fs.readFileSync(r);
          closeFd(r);
        }, 50);
      }
    }
  }
}

function setUp(reply: bigint, state = Buffer.alloc(0)) {
  const [channel, fd] = UnixChannel.pair();
  const got: Buffer[] = [];
  const done = backend(channel, reply, state, got);
  const connection = Connection.fromFd(fd, 1000);
  return {
    session: new FrontendSession(connection),
    got,
    async tearDown() {
      connection.close();
      await done;
      channel.close();
    },
  };
}

describe('frontend/device-state', () => {
  expectNoFdLeaks();

  it('uses the channel a back-end passes back, for a save and for a load ("discard its channel")', async () => {
    const state = Buffer.from('the state, through its own pipe');
    const a = setUp(0n, state);
    try {
      const saved = await saveDeviceState(a.session, { timeoutMs: 1000 });
      expect(saved).to.deep.include({ end: 'eof', backendChannel: true });
      expect(saved.data.equals(state)).to.equal(true);
      const loaded = await loadDeviceState(a.session, state, { timeoutMs: 1000 });
      expect(loaded).to.deep.equal({ written: state.length, end: 'done', backendChannel: true });
      expect(await checkDeviceState(a.session)).to.equal(0n);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(a.got[0]?.equals(state)).to.equal(true);
    } finally {
      await a.tearDown();
    }
  });

  it('fails a reply that says error and passes an fd ("must not both"), and a plain error', async () => {
    const both = setUp(1n);
    try {
      const err = await saveDeviceState(both.session, { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(err).to.be.instanceOf(BackendError);
      expect((err as Error).message).to.contain(
        'must not both indicate an error and return a file descriptor',
      );
    } finally {
      await both.tearDown();
    }
    const refused = setUp(0x105n);
    try {
      const err = await loadDeviceState(refused.session, Buffer.from('x'), { timeoutMs: 1000 }).catch(
        (e: unknown) => e,
      );
      expect((err as Error).message).to.equal(
        "SET_DEVICE_STATE_FD (load, phase stopped) failed: the reply's bits 0-7 say error 5",
      );
    } finally {
      await refused.tearDown();
    }
  });
});
