/**
 * virtio-input (virtio spec, "Input Device"): the harness is the guest driver. The config space is queried
 * as the spec has a driver query it (select and subsel written with SET_CONFIG, the answer read with
 * GET_CONFIG); events come from an event source of the harness's own (harness/devices/input/source.ts: a
 * uinput device where /dev/uinput exists, else a FIFO of struct input_event records), named to the back-end
 * it launches as --evdev-path, and are read from the eventq; status events go on the statusq. The one
 * device MUST of the input section (an unsupported select/subsel has size 0) and the used ring's rules are
 * MUST checks; what the config's answers hold and the events' delivery have no normative word but a SHOULD
 * or an interoperability fact, and are judged as such.
 */

import { describeReceived, InputDriver, type ReceivedEvent } from '../../harness/devices/input/driver.js';
import {
  answerBytes,
  bitmapCodes,
  decodeAbsInfo,
  decodeDevIds,
  describeEvent,
  describeSelect,
  EV_MAX,
  EvType,
  evTypeName,
  INPUT_ABSINFO_SIZE,
  INPUT_CONFIG_UNION_SIZE,
  INPUT_DEVIDS_SIZE,
  INPUT_EVENT_SIZE,
  InputConfigSelect,
  type InputEvent,
  InputQueue,
  isSynReport,
  Led,
  queryInputConfig,
  SYN_REPORT,
} from '../../harness/devices/input/input.js';
import { type EventSource, openEventSource } from '../../harness/devices/input/source.js';
import { BackendError, SkipError } from '../../harness/errors.js';
import { frontendConnection, serveOnSocketPath } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import type { FrontendSession } from '../../harness/transport/session.js';
import { openDevice, requireDevice } from '../common/device.js';
import { sessionWith } from '../protocol/common.js';

const InputSpec = {
  config: 'virtio-spec#sec-device-types-input-device-device-configuration-layout',
  initDevice:
    'virtio-spec#sec-device-types-input-device-device-initialization-device-requirements-device-initialization',
  operation:
    'virtio-spec#sec-device-types-input-device-device-operation-device-requirements-device-operation',
  usedRing: 'virtio-spec#sec-virtqueues-the-virtqueue-used-ring',
} as const;

const LAYOUT = 'virtio spec, Input Device, Device configuration layout';

/** The back-end an input check talks to, and the event source it reads (none in attach mode). */
interface InputBackend {
  connection: Connection;
  source: EventSource | undefined;
}

/**
 * The back-end under test, launched with an event source of the check's own as its --evdev-path (after the
 * run's extra arguments, so that it is the one taken); in attach mode, a connection to the running one, which
 * reads what someone else gave it. Without /dev/uinput the source is a FIFO: a back-end that does not start
 * on one (it needs a real evdev device, as contrib/vhost-user-input does) is a SkipError saying that
 * /dev/uinput is missing.
 */
async function launchInput(ctx: CheckContext): Promise<InputBackend> {
  requireDevice(ctx, 'input');
  if (ctx.target.connect !== null) return { connection: await frontendConnection(ctx), source: undefined };
  const { source, noUinput } = await openEventSource(ctx.scope, ctx.timeoutMs);
  const program = {
    binary: ctx.target.binary,
    extraArgs: [...ctx.target.extraArgs, `--evdev-path=${source.path}`],
  };
  try {
    const served = await serveOnSocketPath(ctx, [], program);
    return { connection: served.connection, source };
  } catch (err) {
    const backend = ctx.launched.at(-1);
    if (noUinput === undefined || !(err instanceof BackendError) || backend?.alive !== false) throw err;
    throw new SkipError(
      `${noUinput}: no evdev device to give the back-end as --evdev-path, and it did not start on ${source.what} ` +
        `instead (${err.message}); on a machine with /dev/uinput the check makes a uinput device for it`,
    );
  }
}

/** A session of a freshly launched input back-end (launchInput) with CONFIG negotiated, or a skip. */
async function configSession(ctx: CheckContext): Promise<FrontendSession> {
  const { connection } = await launchInput(ctx);
  return sessionWith(ctx, ProtocolFeature.CONFIG, 'CONFIG', connection);
}

/** The codes EV_BITS lists for event type `type` (none when its size is 0). */
async function evBits(session: FrontendSession, type: number): Promise<number[]> {
  return bitmapCodes(await queryInputConfig(session, InputConfigSelect.EV_BITS, type));
}

/**
 * A started input device and its driver, on a back-end launched with the check's event source. CONFIG (to
 * learn the keys and LEDs the device has) is the front-end profile's where its front-end has an input device
 * (QEMU and crosvm keep it for input); the extra asks it only under a profile whose front-end has none (dpdk,
 * cloud-hypervisor), where the driver's own choice stands.
 */
async function openInput(ctx: CheckContext): Promise<{
  driver: InputDriver;
  session: FrontendSession;
  source: EventSource | undefined;
  /** Whether CONFIG was negotiated: the config can be queried. */
  config: boolean;
}> {
  const { connection, source } = await launchInput(ctx);
  const setup = await openDevice(ctx, {
    connection,
    protocolExtra: 1n << BigInt(ProtocolFeature.CONFIG),
  });
  const driver = new InputDriver(setup.device.ring(InputQueue.EVENT), setup.device.ring(InputQueue.STATUS), {
    timeoutMs: ctx.timeoutMs,
  });
  const config = hasBit(setup.session.ackedProtocolFeatures, ProtocolFeature.CONFIG);
  return { driver, session: setup.session, source, config };
}

/** How many reports input.events sends in each of its two rounds, and the keys it presses in them. */
const REPORTS = 8;
const KEYS = 8;

/**
 * The reports of a round: pairs of keys pressed together, then released together, each report ended by
 * EV_SYN SYN_REPORT (every event a change of state, which a uinput device's input core passes on).
 */
function keyReports(codes: readonly number[]): InputEvent[][] {
  const reports: InputEvent[][] = [];
  for (let k = 0; reports.length < REPORTS; k++) {
    const keys = [...new Set([codes[(2 * k) % codes.length]!, codes[(2 * k + 1) % codes.length]!])];
    for (const value of [1, 0])
      reports.push([
        ...keys.map((code) => ({ type: EvType.KEY, code, value })),
        { type: EvType.SYN, code: SYN_REPORT, value: 0 },
      ]);
  }
  return reports;
}

/**
 * What is wrong with the events received for `sent`, in order, as far as they came: undefined when nothing
 * (fewer than were sent is the caller's to say).
 */
function eventsProblem(sent: readonly InputEvent[], got: readonly ReceivedEvent[]): string | undefined {
  const over = got.find((r) => r.usedLen > INPUT_EVENT_SIZE);
  if (over)
    return `used.len ${over.usedLen} of an eventq buffer of ${INPUT_EVENT_SIZE} device-writable bytes`;
  const empty = got.find((r) => r.event === undefined);
  if (empty) return `${describeReceived(empty)}: an event dropped, its buffer consumed`;
  const events = got.map((r) => r.event!);
  const at = sent.findIndex((e, i) => {
    const g = events[i];
    return g !== undefined && (g.type !== e.type || g.code !== e.code || g.value !== e.value);
  });
  if (at < 0)
    return events.length > sent.length
      ? `${events.length - sent.length} events more than the ${sent.length} sent: ${events
          .slice(sent.length, sent.length + 4)
          .map(describeEvent)
          .join(', ')}`
      : undefined;
  const syn = events.filter(isSynReport).length;
  const expectedSyn = sent.filter(isSynReport).length;
  const list = (es: readonly InputEvent[]) => es.map(describeEvent).join(', ');
  const around = (es: readonly InputEvent[]) => list(es.slice(Math.max(0, at - 2), at + 4));
  const syns =
    syn === expectedSyn
      ? ''
      : `; ${syn} EV_SYN SYN_REPORT among them where ${expectedSyn} reports were sent${syn === 0 ? ': the reports run together' : ''}`;
  return (
    `event ${at + 1} of ${sent.length}: ${describeEvent(events[at]!)}, expected ` +
    `${describeEvent(sent[at]!)} (sent from there: ${around(sent)}; delivered: ${around(events)})${syns}`
  );
}

/** The first axis (0 to ABS_MAX) that `listed` does not name. */
function unlistedAxis(listed: readonly number[]): number {
  for (let axis = 0; axis <= 0x3f; axis++) if (!listed.includes(axis)) return axis;
  return 0x3f;
}

export const inputChecks = defineChecks('input', [
  {
    id: 'input.config.unsupported',
    detail:
      '(input) with `CONFIG`, select/subsel combinations no device supports (`UNSET`, an undefined select, `ID_NAME` with subsel 1, `EV_BITS` of an undefined event type, `ABS_INFO` of an axis `EV_BITS` does not list), each queried right after `ID_NAME`: `size` 0',
    title: 'an unsupported select/subsel combination answers size 0',
    severity: 'MUST',
    rule:
      'virtio spec, Input Device, Device Requirements: Device Initialization: "A device MUST set the size field ' +
      'to zero if it doesn\'t support a given select and subsel combination."',
    spec: InputSpec.initDevice,
    async run(ctx) {
      const session = await configSession(ctx);
      const axes = await evBits(session, EvType.ABS);
      const unsupported: Array<[number, number]> = [
        [InputConfigSelect.UNSET, 0],
        [0x7f, 0],
        [InputConfigSelect.ID_NAME, 1],
        [InputConfigSelect.EV_BITS, EV_MAX],
        [InputConfigSelect.ABS_INFO, unlistedAxis(axes)],
      ];
      const problems: string[] = [];
      let nameSize = 0;
      for (const [select, subsel] of unsupported) {
        // A selection that has an answer first: a device that keeps the last answer shows it here.
        nameSize = (await queryInputConfig(session, InputConfigSelect.ID_NAME, 0)).size;
        const answer = await queryInputConfig(session, select, subsel);
        if (answer.size !== 0)
          problems.push(
            `${describeSelect(select, subsel)}: size ${answer.size} (${answerBytes(answer).toString('hex')})`,
          );
      }
      if (problems.length)
        throw new BackendError(
          `unsupported select/subsel combinations answered with a size (each queried after ID_NAME/0, size ${nameSize}): ${problems.join('; ')}`,
        );
      return `size 0 for ${unsupported.map(([s, sub]) => describeSelect(s, sub)).join(', ')} (each after ID_NAME/0, size ${nameSize})`;
    },
  },
  {
    id: 'input.config.id-name',
    detail:
      '(input) with `CONFIG`, `ID_NAME` (subsel 0): a name of 1 to 128 bytes, no NUL among them; `ID_SERIAL` and `ID_DEVIDS` reported',
    title: 'ID_NAME answers the device name: not empty, no NUL terminator',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${LAYOUT}: "VIRTIO_INPUT_CFG_ID_NAME subsel is zero. Returns the name of the device, in u.string." and ` +
      '"Strings do not include a NUL terminator." (no normative word); interoperability: Linux\'s virtio_input ' +
      "names the guest's input device by it, as udev and libinput see it",
    spec: InputSpec.config,
    async run(ctx) {
      const session = await configSession(ctx);
      const name = await queryInputConfig(session, InputConfigSelect.ID_NAME, 0);
      if (name.size === 0) throw new BackendError('ID_NAME/0 answered size 0: the device has no name');
      if (name.size > INPUT_CONFIG_UNION_SIZE)
        throw new BackendError(
          `ID_NAME/0 answered size ${name.size}: more than the ${INPUT_CONFIG_UNION_SIZE}-byte string`,
        );
      const bytes = answerBytes(name);
      const nul = bytes.indexOf(0);
      if (nul >= 0)
        throw new BackendError(
          `ID_NAME/0, size ${name.size}: a NUL at byte ${nul} ("${bytes.toString('latin1', 0, nul)}"), where strings have no NUL terminator`,
        );
      const serial = await queryInputConfig(session, InputConfigSelect.ID_SERIAL, 0);
      const ids = await queryInputConfig(session, InputConfigSelect.ID_DEVIDS, 0);
      const devids =
        ids.size === INPUT_DEVIDS_SIZE
          ? (() => {
              const d = decodeDevIds(ids);
              const h = (n: number) => n.toString(16).padStart(4, '0');
              return `bustype ${h(d.bustype)} vendor ${h(d.vendor)} product ${h(d.product)} version ${h(d.version)}`;
            })()
          : `size ${ids.size}`;
      return `"${bytes.toString('latin1')}" (${name.size} bytes); ID_SERIAL ${serial.size ? `"${answerBytes(serial).toString('latin1')}"` : 'size 0'}; ID_DEVIDS ${devids}`;
    },
  },
  {
    id: 'input.config.ev-bits',
    detail:
      '(input) with `CONFIG`, `EV_BITS` of every event type (subsel 1 to `EV_MAX`): at least one type supported, and each with a non-zero size (at most 128) names at least one code',
    title: 'EV_BITS lists the event types it supports, each with its codes',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${LAYOUT}: "VIRTIO_INPUT_CFG_EV_BITS subsel specifies the event type using EV_* constants in the ` +
      'underlying evdev implementation. If size is non-zero the event type is supported and a bitmap of ' +
      'supported event codes is returned in u.bitmap." (no normative word); interoperability: Linux\'s ' +
      "virtio_input registers the guest's input device with these types and codes, and its input core drops " +
      'every event of a code not among them',
    spec: InputSpec.config,
    async run(ctx) {
      const session = await configSession(ctx);
      const supported: string[] = [];
      const problems: string[] = [];
      for (let type = 1; type <= EV_MAX; type++) {
        const answer = await queryInputConfig(session, InputConfigSelect.EV_BITS, type);
        if (answer.size === 0) continue;
        const codes = bitmapCodes(answer);
        if (answer.size > INPUT_CONFIG_UNION_SIZE)
          problems.push(
            `${evTypeName(type)}: size ${answer.size}, more than the ${INPUT_CONFIG_UNION_SIZE}-byte bitmap`,
          );
        else if (codes.length === 0)
          problems.push(`${evTypeName(type)}: size ${answer.size}, and no code set in its bitmap`);
        else supported.push(`${evTypeName(type)} (${codes.length} code${codes.length === 1 ? '' : 's'})`);
      }
      if (problems.length)
        throw new BackendError(
          `EV_BITS: ${problems.join('; ')}${supported.length ? `; supported: ${supported.join(', ')}` : ''}`,
        );
      if (!supported.length)
        throw new BackendError(
          'EV_BITS answered size 0 for every event type: the device says it sends nothing',
        );
      return supported.join(', ');
    },
  },
  {
    id: 'input.config.abs-info',
    detail:
      '(input) with `CONFIG`, `ABS_INFO` of each axis `EV_BITS`/`EV_ABS` lists: size 20 (a `virtio_input_absinfo`), min no more than max; skipped for a device with no absolute axis',
    title: 'ABS_INFO describes each absolute axis the device lists',
    severity: 'SHOULD',
    interop: true,
    rule:
      `${LAYOUT}: "VIRTIO_INPUT_CFG_ABS_INFO subsel specifies the absolute axis using ABS_* constants in the ` +
      'underlying evdev implementation. Information about the axis will be returned in u.abs." (no normative ' +
      "word); interoperability: Linux's virtio_input sets each axis's range from u.abs whatever size says " +
      '(virtinput_cfg_abs): an axis with no answer gets the range 0 to 0',
    spec: InputSpec.config,
    async run(ctx) {
      const session = await configSession(ctx);
      const axes = await evBits(session, EvType.ABS);
      if (!axes.length) throw new SkipError('EV_BITS/EV_ABS lists no axis: no ABS_INFO to ask');
      const problems: string[] = [];
      const ranges: string[] = [];
      for (const axis of axes) {
        const answer = await queryInputConfig(session, InputConfigSelect.ABS_INFO, axis);
        if (answer.size !== INPUT_ABSINFO_SIZE) {
          problems.push(`axis ${axis}: size ${answer.size}, not ${INPUT_ABSINFO_SIZE}`);
          continue;
        }
        const abs = decodeAbsInfo(answer);
        if (abs.min > abs.max) problems.push(`axis ${axis}: min ${abs.min} above max ${abs.max}`);
        else ranges.push(`axis ${axis} ${abs.min}..${abs.max}`);
      }
      if (problems.length)
        throw new BackendError(
          `ABS_INFO of the ${axes.length} axes EV_BITS/EV_ABS lists: ${problems.join('; ')}`,
        );
      return ranges.join(', ');
    },
  },
  {
    id: 'input.status',
    detail:
      '(input) four status events (`EV_LED`, a LED the device lists, else `LED_NUML`, on and off) on the statusq, one 8-byte device-readable buffer each: every buffer used, used.len 0, the buffer left as it was',
    title: 'status events on the statusq are consumed: used, with used.len 0',
    severity: 'MUST',
    rule:
      'virtio spec, Input Device, Device Operation: "Status feedback such as keyboard LED updates are sent from ' +
      'the driver to the device using the statusq."; The Virtqueue Used Ring: "len: The number of bytes written ' +
      'into the device writable portion of the buffer described by the descriptor chain.", Device Requirements: ' +
      '"The device MUST write at least len bytes to descriptor, beginning at the first device-writable buffer, ' +
      'prior to updating the used idx." (a status buffer has no device-writable part: len 0); The Virtqueue ' +
      'Descriptor Table: "A device MUST NOT write to a device-readable buffer"',
    spec: InputSpec.usedRing,
    async run(ctx) {
      const { driver, session, config } = await openInput(ctx);
      const leds = config ? await evBits(session, EvType.LED) : [];
      const led = leds[0] ?? Led.NUML;
      const basis = leds.length
        ? `a LED EV_BITS/EV_LED lists`
        : config
          ? 'EV_BITS/EV_LED lists none'
          : 'no CONFIG';
      const events = [1, 0, 1, 0].map((value) => ({ type: EvType.LED, code: led, value }));
      const done = await driver.sendStatus(events);
      const problems: string[] = [];
      if (done.some((c) => c.usedLen !== 0))
        problems.push(
          `used.len ${done.map((c) => c.usedLen).join(', ')} for the ${done.length} status events ` +
            `(${done.map((c) => describeEvent(c.event)).join(', ')}): a status buffer has no device-writable part, so 0`,
        );
      const written = done.filter((c) => c.overwritten).length;
      if (written) problems.push(`the device wrote into ${written} of the device-readable status buffers`);
      if (problems.length) throw new BackendError(problems.join('; '));
      return `${done.length} status events EV_LED ${led} (${basis}) used, used.len 0 each`;
    },
  },
  {
    id: 'input.events',
    detail:
      '(input) 64 eventq buffers posted; two rounds of 8 reports (two keys `EV_BITS`/`EV_KEY` lists pressed, then released, each report ended by `EV_SYN` `SYN_REPORT`) written to the event source the check gave the back-end as `--evdev-path`: every event delivered, in order, none dropped, none added, each buffer written',
    title:
      'events from the evdev source are delivered in order, each report with its SYN_REPORT, none dropped',
    severity: 'SHOULD',
    launchOnly:
      'its events come from an evdev device (or FIFO) the check makes and names to the back-end it launches',
    rule:
      'virtio spec, Input Device, Device Operation: "Input events such as press and release events for keys and ' +
      'buttons, and motion events for pointing devices are sent from the device to the driver using the ' +
      'eventq."; Device Requirements: Device Operation: "A device MAY drop input events if the eventq does not ' +
      'have enough available buffers. It SHOULD NOT drop individual input events if they are part of a sequence ' +
      'forming one input device update. For example, a pointing device update typically consists of several ' +
      'input events, one for each axis, and a terminating EV_SYN event. A device SHOULD either buffer or drop ' +
      'the entire sequence." (with buffers enough for every event, none may go)',
    spec: InputSpec.operation,
    async run(ctx) {
      const { driver, session, source, config } = await openInput(ctx);
      if (!source) throw new SkipError("attach mode: no event source of the check's own");
      const listed = config ? await evBits(session, EvType.KEY) : undefined;
      const possible = source.codes(EvType.KEY);
      const codes = (listed ?? [...(possible ?? [])])
        .filter((c) => !possible || possible.has(c))
        .slice(0, KEYS);
      if (!codes.length)
        throw new SkipError(
          listed === undefined
            ? 'no CONFIG to learn the keys the device has, and the source names none'
            : `EV_BITS/EV_KEY lists no key ${possible ? `that ${source.what} has` : ''}: no key event to send`,
        );
      driver.fill();
      const rounds: string[] = [];
      for (let round = 1; round <= 2; round++) {
        const sent = keyReports(codes).flat();
        source.write(sent);
        // What came by the deadline is judged: a report that lost its EV_SYN shows as such, not as a wait.
        const got = await driver.receive(sent.length, { partial: true });
        const problem =
          eventsProblem(sent, got) ??
          (got.length < sent.length
            ? `${got.length} of the ${sent.length} events came within ${ctx.timeoutMs} ms, each as sent: the last ${sent.length - got.length} dropped (from ${describeEvent(sent[got.length]!)})`
            : undefined);
        if (problem)
          throw new BackendError(
            `round ${round} of 2 (${REPORTS} reports, ${sent.length} events written to ${source.what}, ${driver.eventBuffers} buffers posted): ${problem}`,
          );
        const lens = [...new Set(got.map((r) => r.usedLen))].join(', ');
        rounds.push(`${sent.length} events (used.len ${lens})`);
      }
      // Nothing more: an event the source did not send (a duplicate) would come now.
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, ctx.timeoutMs)));
      const extra = driver.takeNow();
      if (extra.length)
        throw new BackendError(
          `after the ${2 * REPORTS} reports, ${extra.length} more events came that the source did not send: ${extra.slice(0, 4).map(describeReceived).join(', ')}`,
        );
      return `${rounds.join(', then ')} through ${source.what}, keys ${codes.join(', ')}: in order, each report ending with EV_SYN SYN_REPORT`;
    },
  },
]);
