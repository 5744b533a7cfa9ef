/**
 * Where the input checks' events come from: an evdev device of the harness's own, named to the back-end as
 * its --evdev-path (vhost-user.rst's option for vhost-user-input back-ends; contrib/vhost-user-input spells
 * it -p too). With /dev/uinput, a uinput device (below): what any back-end that reads evdev takes.
 * Without it (this machine's CI), a FIFO the harness writes struct input_event records into, 24 bytes each
 * as a 64-bit Linux's evdev node gives them: the fixture's input device reads it as it reads an evdev node,
 * so the same checks drive both; a back-end that needs a real evdev device (contrib/vhost-user-input asks
 * EVIOCGVERSION of it) does not start on it, and its checks are skipped saying that /dev/uinput is missing.
 */
import fs, { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Scope } from '../../process/scope.js';
import { ioctl, mkfifo } from '../../sys/libc.js';
import { pollUntil } from '../../util/deadline.js';
import { EvType, encodeEvdevEvent, type InputEvent, Led } from './input.js';

export interface EventSource {
  /** uinput: a real evdev device; fifo: records in a named pipe. */
  readonly kind: 'uinput' | 'fifo';
  /** What --evdev-path names. */
  readonly path: string;
  /** For messages. */
  readonly what: string;
  /** The codes of event type `type` it can deliver (a FIFO: any, undefined). */
  codes(type: number): ReadonlySet<number> | undefined;
  /** Writes `events` in order (a report's EV_SYN SYN_REPORT is the caller's to include). */
  write(events: readonly InputEvent[]): void;
}

/** An event source, and why it is not a uinput device when it is not (for a skip's reason). */
export interface OpenedSource {
  source: EventSource;
  noUinput?: string;
}

/**
 * A FIFO in a temp folder of `scope`'s, held open read-write (so writes never block on a reader, and the
 * back-end, opening it read-write as contrib/vhost-user-input opens its evdev node, never sees its end).
 */
export async function createFifoSource(scope: Scope): Promise<EventSource> {
  const fifo = path.join(await scope.tempDir('vhu-input-'), 'events');
  mkfifo(fifo);
  const fd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  scope.defer(`the event FIFO ${fifo}`, () => fs.closeSync(fd));
  return {
    kind: 'fifo',
    path: fifo,
    what: `a FIFO of struct input_event records at ${fifo}`,
    codes: () => undefined,
    write(events) {
      const bytes = Buffer.concat(events.map(encodeEvdevEvent));
      let at = 0;
      while (at < bytes.length) at += fs.writeSync(fd, bytes, at, bytes.length - at);
    },
  };
}

/** A uinput device when /dev/uinput can be used, else a FIFO with the reason. */
export async function openEventSource(scope: Scope, timeoutMs: number): Promise<OpenedSource> {
  if (!existsSync(UINPUT_PATH))
    return {
      source: await createFifoSource(scope),
      noUinput: `${UINPUT_PATH} does not exist on this machine`,
    };
  try {
    return { source: await createUinputSource(scope, timeoutMs) };
  } catch (err) {
    const why = `${UINPUT_PATH} could not make an evdev device (${(err as Error).message})`;
    return { source: await createFifoSource(scope), noUinput: why };
  }
}

// ---- uinput: a virtual evdev device (linux/uinput.h); the events written to its fd come out of its evdev
// node (/dev/input/eventN) through the kernel's input core. This machine's CI has no /dev/uinput. ----

export const UINPUT_PATH = '/dev/uinput';

/** linux/uinput.h request numbers (_IO/_IOW/_IOR of 'U', the same on x86_64 and aarch64). */
const UI_DEV_CREATE = 0x5501;
const UI_DEV_DESTROY = 0x5502;
/** _IOW('U', 3, struct uinput_setup): 92 bytes, input_id, name[80], ff_effects_max. */
const UI_DEV_SETUP = 0x405c5503;
/** _IOW('U', 4, struct uinput_abs_setup): 28 bytes, code then struct input_absinfo at 4. */
const UI_ABS_SETUP = 0x401c5504;
const UI_SET_EVBIT = 0x40045564;
const UI_SET_KEYBIT = 0x40045565;
const UI_SET_ABSBIT = 0x40045567;
const UI_SET_LEDBIT = 0x40045569;
/** _IOC(_IOC_READ, 'U', 44, len). */
const uiGetSysname = (len: number) => ((2 << 30) | (len << 16) | 0x552c) >>> 0;
const UINPUT_SETUP_SIZE = 92;
const UINPUT_ABS_SETUP_SIZE = 28;
const BUS_VIRTUAL = 0x06;

/** The device the harness makes: its name, and the codes it enables of each event type. */
export const UINPUT_DEVICE = {
  name: 'vhu-conform input',
  /** KEY_ESC (1) to KEY_KPDOT (83): a keyboard's main block. */
  keys: Array.from({ length: 83 }, (_, i) => i + 1),
  leds: [Led.NUML, Led.CAPSL, Led.SCROLLL],
  /** ABS_X and ABS_Y, 0 to 32767. */
  axes: [0, 1],
  absMax: 32767,
} as const;

/** A uinput device, destroyed when `scope` closes; its evdev node found under /sys (within `timeoutMs`). */
export async function createUinputSource(scope: Scope, timeoutMs: number): Promise<EventSource> {
  const fd = fs.openSync(UINPUT_PATH, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  let created = false;
  scope.defer(`the uinput device (fd ${fd})`, () => {
    try {
      if (created) ioctl(fd, UI_DEV_DESTROY, 0, 'UI_DEV_DESTROY');
    } finally {
      fs.closeSync(fd);
    }
  });
  const d = UINPUT_DEVICE;
  ioctl(fd, UI_SET_EVBIT, EvType.KEY, 'UI_SET_EVBIT');
  for (const key of d.keys) ioctl(fd, UI_SET_KEYBIT, key, 'UI_SET_KEYBIT');
  ioctl(fd, UI_SET_EVBIT, EvType.LED, 'UI_SET_EVBIT');
  for (const led of d.leds) ioctl(fd, UI_SET_LEDBIT, led, 'UI_SET_LEDBIT');
  ioctl(fd, UI_SET_EVBIT, EvType.ABS, 'UI_SET_EVBIT');
  for (const axis of d.axes) {
    ioctl(fd, UI_SET_ABSBIT, axis, 'UI_SET_ABSBIT');
    const abs = Buffer.alloc(UINPUT_ABS_SETUP_SIZE);
    abs.writeUInt16LE(axis, 0);
    abs.writeInt32LE(0, 8); // minimum (value at 4 stays 0)
    abs.writeInt32LE(d.absMax, 12); // maximum; fuzz, flat, resolution 0
    ioctl(fd, UI_ABS_SETUP, abs, 'UI_ABS_SETUP');
  }
  const setup = Buffer.alloc(UINPUT_SETUP_SIZE);
  setup.writeUInt16LE(BUS_VIRTUAL, 0);
  setup.writeUInt16LE(0x1af4, 2); // vendor
  setup.writeUInt16LE(0x0001, 4); // product
  setup.writeUInt16LE(0x0001, 6); // version
  setup.write(d.name, 8, 'latin1');
  ioctl(fd, UI_DEV_SETUP, setup, 'UI_DEV_SETUP');
  ioctl(fd, UI_DEV_CREATE, 0, 'UI_DEV_CREATE');
  created = true;
  const sysname = Buffer.alloc(64);
  ioctl(fd, uiGetSysname(sysname.length), sysname, 'UI_GET_SYSNAME');
  const input = sysname.toString('latin1', 0, sysname.indexOf(0));
  const sys = path.join('/sys/devices/virtual/input', input);
  const node = await pollUntil(
    () => {
      const event = readdirSync(sys).find((name) => /^event\d+$/.test(name));
      const dev = event && path.join('/dev/input', event);
      return dev && existsSync(dev) ? dev : undefined;
    },
    timeoutMs,
    `the evdev node of uinput device ${input} (${sys}/eventN, then /dev/input/eventN)`,
  );
  const codes: Readonly<Record<number, ReadonlySet<number>>> = {
    [EvType.SYN]: new Set([0]),
    [EvType.KEY]: new Set(d.keys),
    [EvType.LED]: new Set(d.leds),
    [EvType.ABS]: new Set(d.axes),
  };
  return {
    kind: 'uinput',
    path: node,
    what: `the uinput device "${d.name}" at ${node}`,
    codes: (type) => codes[type] ?? new Set(),
    write(events: readonly InputEvent[]) {
      const bytes = Buffer.concat(events.map(encodeEvdevEvent));
      let at = 0;
      while (at < bytes.length) at += fs.writeSync(fd, bytes, at, bytes.length - at);
    },
  };
}
