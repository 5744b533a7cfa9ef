import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { PNG } from 'pngjs';
import { dir } from 'tmp-promise';
import { TimeoutError } from '../../errors.js';
import { FrameDecoder } from '../../protocol/decoder.js';
import { encodeFrame } from '../../protocol/encoder.js';
import { encodeScanout, encodeUpdate } from '../../protocol/gpu-messages.js';
import { GpuRequest } from '../../protocol/gpu-spec.js';
import { expectNoFdLeaks } from '../../sys/testing.js';
import { UnixChannel } from '../../sys/unix-channel.js';
import { formatWireLog, WireLog, wireLogContext } from '../../transport/wire-log.js';
import { GpuDisplay } from './display.js';
import { decodeDisplayInfo } from './gpu.js';

/** Plays the back-end: frames written by hand to the display, its replies read back. */
class FakeBackend {
  readonly #decoder = new FrameDecoder(1 << 20);
  constructor(readonly channel: UnixChannel) {}
  send(request: number, payload: Buffer = Buffer.alloc(0), flags = 0): Promise<void> {
    return this.channel.send(encodeFrame({ request, flags, payload }));
  }
  async reply(): Promise<{ request: number; flags: number; payload: Buffer }> {
    for (;;) {
      const message = await this.channel.receive(2000);
      if (!message) throw new Error('display closed');
      const [frame] = this.#decoder.push(message.data, message.fds);
      if (frame) return frame;
    }
  }
}

describe('devices/gpu-display', () => {
  // Outside the suite below, so the fd count is taken before its beforeEach and checked after its afterEach.
  expectNoFdLeaks();
  describe('GpuDisplay', displayTests);

  it('records what the back-end sends and what it answers in the wire log of the check that opened it', async () => {
    const log = new WireLog();
    const created = wireLogContext.run(log, () => GpuDisplay.create());
    const backend = new FakeBackend(UnixChannel.fromFd(created.backendFd));
    try {
      await backend.send(GpuRequest.GET_PROTOCOL_FEATURES);
      await backend.reply();
      await backend.send(GpuRequest.SCANOUT, encodeScanout({ scanoutId: 0, width: 4, height: 2 }));
      await backend.send(GpuRequest.SCANOUT, Buffer.alloc(3));
      await created.display.waitFor('the SCANOUT', ['SCANOUT'], 2000);
      // The malformed one, which makes no event but a problem, follows on the same stream.
      for (const end = performance.now() + 2000; !created.display.problems.length; ) {
        if (performance.now() > end) throw new Error('the malformed SCANOUT was not seen');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const lines = formatWireLog(log.data()).map((line) => line.replace(/^\+[\d.]+ms /, ''));
      expect(lines).to.deep.equal([
        '#1 <- GPU_GET_PROTOCOL_FEATURES [v0] size=0',
        '#1 -> GPU_GET_PROTOCOL_FEATURES reply [v0 reply] size=8',
        '#1 <- GPU_SCANOUT [v0] size=12 scanout=0 4x2',
        `#1 <- GPU request 7 [v0] size=3 malformed: ${created.display.problems[0]}`,
      ]);
    } finally {
      backend.channel.close();
      created.display.close();
      await created.display.closed;
    }
  });
});

function displayTests(): void {
  let display: GpuDisplay;
  let backend: FakeBackend;
  beforeEach(() => {
    const created = GpuDisplay.create({
      modes: [{ rect: { x: 0, y: 0, width: 4, height: 2 }, enabled: true, flags: 0 }],
    });
    display = created.display;
    backend = new FakeBackend(UnixChannel.fromFd(created.backendFd));
  });
  afterEach(async () => {
    backend.channel.close();
    display.close();
    await display.closed;
  });

  it('answers GET_PROTOCOL_FEATURES and GET_DISPLAY_INFO with the reply flag, and records SET_PROTOCOL_FEATURES', async () => {
    await backend.send(GpuRequest.GET_PROTOCOL_FEATURES);
    const features = await backend.reply();
    expect(features).to.deep.include({ request: 1, flags: 0x4 });
    expect(features.payload.readBigUInt64LE()).to.equal(1n);
    await backend.send(GpuRequest.SET_PROTOCOL_FEATURES, Buffer.from('0100000000000000', 'hex'));
    await backend.send(GpuRequest.GET_DISPLAY_INFO);
    const info = await backend.reply();
    expect(info.request).to.equal(3);
    expect(info.payload.length).to.equal(408);
    expect(decodeDisplayInfo(info.payload).modes[0]).to.deep.equal({
      rect: { x: 0, y: 0, width: 4, height: 2 },
      enabled: true,
      flags: 0,
    });
    expect(display.acceptedFeatures).to.equal(1n);
    expect(display.problems).to.deep.equal([]);
    expect(display.events.map((e) => e.request)).to.deep.equal([
      'GET_PROTOCOL_FEATURES',
      'SET_PROTOCOL_FEATURES',
      'GET_DISPLAY_INFO',
    ]);
  });

  it('draws UPDATE pixels into the scanout, waits for events, and saves a PNG', async () => {
    await backend.send(GpuRequest.SCANOUT, encodeScanout({ scanoutId: 0, width: 4, height: 2 }));
    const pixels = Buffer.from('0000ff00' + '00ff0000', 'hex'); // x8r8g8b8: red, then green
    await backend.send(
      GpuRequest.UPDATE,
      encodeUpdate({ scanoutId: 0, x: 1, y: 1, width: 2, height: 1, data: pixels }),
      0x30,
    );
    const update = await display.waitFor('an UPDATE', ['UPDATE'], 2000);
    expect(update.update).to.deep.include({ x: 1, y: 1, width: 2, height: 1 });
    expect(display.strayFlags).to.deep.equal([{ request: 'UPDATE', flags: 0x30 }]);
    const fb = display.framebuffers.get(0)!;
    expect(fb.pixels.subarray((4 + 1) * 4, (4 + 3) * 4)).to.deep.equal(pixels);
    const tmp = await dir({ unsafeCleanup: true });
    try {
      const file = path.join(tmp.path, 'scanout.png');
      await display.savePng(0, file);
      const png = PNG.sync.read(await readFile(file));
      expect([png.width, png.height]).to.deep.equal([4, 2]);
      expect([...png.data.subarray((4 + 1) * 4, (4 + 3) * 4)]).to.deep.equal([
        255, 0, 0, 255, 0, 255, 0, 255,
      ]);
    } finally {
      await tmp.cleanup();
    }
  });

  it('records an UPDATE outside the scanout, or of the wrong size, as a problem', async () => {
    await backend.send(GpuRequest.SCANOUT, encodeScanout({ scanoutId: 0, width: 4, height: 2 }));
    await backend.send(
      GpuRequest.UPDATE,
      encodeUpdate({ scanoutId: 0, x: 3, y: 0, width: 2, height: 1, data: Buffer.alloc(8) }),
    );
    const bad = encodeUpdate({ scanoutId: 0, x: 0, y: 0, width: 2, height: 1, data: Buffer.alloc(4) });
    await backend.send(GpuRequest.UPDATE, bad);
    await backend.send(GpuRequest.GET_DISPLAY_INFO);
    await backend.reply();
    expect(display.problems).to.have.length(2);
    expect(display.problems[0]).to.match(/UPDATE of 2x1 at \(3,0\) on scanout 0: outside the 4x2 scanout/);
    expect(display.problems[1]).to.match(/carries 4 bytes of pixels, expected 8/);
  });

  it('times out naming what came, and ends a wait when the back-end closes the socket', async () => {
    await backend.send(GpuRequest.SCANOUT, encodeScanout({ scanoutId: 0, width: 4, height: 2 }));
    const err = await display.waitFor('an UPDATE', ['UPDATE'], 100).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(TimeoutError);
    expect((err as Error).message).to.match(/it sent: SCANOUT\(0: 4x2\)/);
    const waiting = display.waitFor('an UPDATE', ['UPDATE'], 5000).catch((e: unknown) => e);
    backend.channel.close();
    expect(((await waiting) as Error).message).to.match(/closed the vhost-user-gpu socket before an UPDATE/);
  });
}
