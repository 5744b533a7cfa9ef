/** Feature negotiation (vhost-user.rst: Communication, Protocol features, Multiple queue support). */
import { rm } from 'node:fs/promises';
import { expect } from 'chai';
import { BackendError, ProtocolError, SkipError } from '../../harness/errors.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { decodeDeviceConfig, encodeDeviceConfig, encodeU64 } from '../../harness/protocol/messages.js';
import { hasBit, ProtocolFeature, protocolFeatureList, VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { closeFd } from '../../harness/sys/libc.js';
import { checkReply } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import {
  configSpaceOf,
  MIN_QUEUES,
  NEEDS_SOCKET,
  offeredFeatures,
  offeredProtocolFeatures,
  openSession,
  ProtocolSpec,
  sessionWith,
} from './common.js';

const hex = (v: bigint) => `0x${v.toString(16)}`;

export const negotiationChecks = defineChecks('protocol', [
  {
    id: 'proto.features.protocol-bit',
    detail:
      '`GET_FEATURES` offers bit 30 (`VHOST_USER_F_PROTOCOL_FEATURES`), without which no protocol feature can be negotiated',
    title: 'VHOST_USER_F_PROTOCOL_FEATURES (bit 30) is offered',
    severity: 'SHOULD',
    spec: ProtocolSpec.communication,
    rule: 'vhost-user.rst (QEMU 7.2), Multiple queue support: "Back-ends should always implement the ``VHOST_USER_PROTOCOL_F_MQ`` protocol feature, even for devices with a fixed number of virtqueues, since it is simple to implement and offers a degree of introspection."; and "This is treated as a protocol extension, hence the back-end has to implement protocol features first."',
    needs: [NEEDS_SOCKET],
    async run(ctx) {
      const features = await offeredFeatures(ctx);
      expect(
        hasBit(features, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES),
        `features ${hex(features)} lack bit 30: no protocol feature (REPLY_ACK, MQ, CONFIG...) can be negotiated`,
      ).to.equal(true);
      return `features ${hex(features)}`;
    },
  },
  {
    id: 'proto.reply.get-protocol-features',
    detail: '`GET_PROTOCOL_FEATURES` has a well-formed reply',
    title: 'GET_PROTOCOL_FEATURES has a well-formed reply',
    severity: 'MUST',
    spec: ProtocolSpec.protocolFeatures,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_PROTOCOL_FEATURES: "Back-ends that report ``VHOST_USER_F_PROTOCOL_FEATURES`` must support this message even before ``VHOST_USER_SET_FEATURES`` was called."; and Communication: "Most of the requests don\'t require replies. Here is a list of the ones that do:" (among them ``VHOST_USER_GET_PROTOCOL_FEATURES``)',
    needs: [NEEDS_SOCKET],
    async run(ctx) {
      const session = await openSession(ctx);
      await session.getFeatures();
      if (!session.offersProtocolFeatures)
        throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      // After SET_FEATURES, as some front-ends ask; the order QEMU uses is checked by the next check.
      await session.expectAck('SET_FEATURES', encodeU64(session.features!));
      const bits = await session.getProtocolFeatures();
      return `protocol features ${hex(bits)}: ${protocolFeatureList(bits).join(', ') || 'none'}`;
    },
  },
  {
    id: 'proto.negotiation.before-set-features',
    detail:
      '`GET_PROTOCOL_FEATURES` and `SET_PROTOCOL_FEATURES` work before `SET_FEATURES`, as QEMU sends them',
    title: 'GET/SET_PROTOCOL_FEATURES work before SET_FEATURES',
    severity: 'MUST',
    spec: ProtocolSpec.protocolFeatures,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_PROTOCOL_FEATURES: "Back-ends that report ``VHOST_USER_F_PROTOCOL_FEATURES`` must support this message even before ``VHOST_USER_SET_FEATURES`` was called."; and VHOST_USER_SET_PROTOCOL_FEATURES: "Back-ends that report ``VHOST_USER_F_PROTOCOL_FEATURES`` must support this message even before ``VHOST_USER_SET_FEATURES`` was called."',
    needs: ['proto.reply.get-protocol-features'],
    async run(ctx) {
      const session = await openSession(ctx);
      await session.getFeatures();
      if (!session.offersProtocolFeatures)
        throw new SkipError('VHOST_USER_F_PROTOCOL_FEATURES is not offered');
      const offered = await session.getProtocolFeatures();
      // Without REPLY_ACK: acks have a check of their own.
      const accepted = offered & ~(1n << BigInt(ProtocolFeature.REPLY_ACK));
      await session.setProtocolFeatures(accepted);
      await session.expectAck('SET_FEATURES', encodeU64(session.features!));
      return `negotiated ${protocolFeatureList(accepted).join(', ') || 'no protocol feature'}`;
    },
  },
  {
    id: 'proto.reply-ack.accepted',
    detail:
      'with `REPLY_ACK`, need_reply is answered with 0 on `SET_PROTOCOL_FEATURES`, `SET_FEATURES`, `SET_OWNER`, `SET_VRING_NUM`, `SET_VRING_BASE`',
    title: 'with REPLY_ACK, need_reply is answered with 0 on every request the back-end accepts',
    severity: 'MUST',
    spec: ProtocolSpec.replyAck,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_PROTOCOL_F_REPLY_ACK: "This indicates that the back-end MUST respond with a Payload ``VhostUserMsg`` indicating success or failure."; and "The payload should be set to zero on success or non-zero on failure, unless the message already has an explicit reply body."',
    needs: ['proto.negotiation.before-set-features'],
    async run(ctx) {
      const session = await sessionWith(ctx, ProtocolFeature.REPLY_ACK, 'REPLY_ACK');
      const asked: string[] = [];
      const ask = async (name: Parameters<typeof session.request>[0], payload?: Buffer) => {
        const ack = await session.request(name, payload);
        expect(ack, `${name} with need_reply`).to.equal(0n);
        asked.push(name);
      };
      await ask('SET_FEATURES', encodeU64(session.features!));
      await ask('SET_OWNER');
      await ask('SET_VRING_NUM', Buffer.from([0, 0, 0, 0, 8, 0, 0, 0]));
      await ask('SET_VRING_BASE', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
      return `acked 0: SET_PROTOCOL_FEATURES, ${asked.join(', ')}`;
    },
  },
  {
    id: 'proto.negotiation.set-without-get',
    detail:
      '`SET_PROTOCOL_FEATURES(REPLY_ACK)` with need_reply and no `GET_PROTOCOL_FEATURES` before it is acked with 0',
    title: 'SET_PROTOCOL_FEATURES without a prior GET is acked when need_reply is set',
    severity: 'SHOULD',
    spec: ProtocolSpec.replyAck,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_SET_PROTOCOL_FEATURES: "Only legal if feature bit ``VHOST_USER_F_PROTOCOL_FEATURES`` is present in ``VHOST_USER_GET_FEATURES``." (no GET_PROTOCOL_FEATURES needed first; REPLY_ACK\'s "This indicates that the back-end MUST respond with a Payload ``VhostUserMsg`` indicating success or failure." holds "With this protocol extension negotiated", and this message negotiates it); interoperability (a front-end that knows the bits it wants sets them without asking): SET_PROTOCOL_FEATURES(REPLY_ACK) with need_reply and no GET before it is acked with 0',
    interop: true,
    needs: ['proto.reply-ack.accepted'],
    async run(ctx) {
      const protocolFeatures = await offeredProtocolFeatures(ctx);
      if (protocolFeatures === undefined || !hasBit(protocolFeatures, ProtocolFeature.REPLY_ACK)) {
        throw new SkipError('REPLY_ACK is not offered');
      }
      const session = await openSession(ctx);
      await session.getFeatures();
      const ack = await session.setProtocolFeatures(1n << BigInt(ProtocolFeature.REPLY_ACK));
      expect(ack, 'the ack of SET_PROTOCOL_FEATURES(REPLY_ACK)').to.equal(0n);
      return 'acked 0';
    },
  },
  {
    id: 'proto.negotiation.subset',
    detail:
      '`SET_FEATURES` without the optional ring features (`EVENT_IDX`, `INDIRECT_DESC`, `NOTIFY_ON_EMPTY`) is accepted',
    title: 'SET_FEATURES with a subset of the offer is accepted',
    severity: 'SHOULD',
    spec: ProtocolSpec.communication,
    rule: 'virtio spec, Device Requirements: Feature Bits: "The device SHOULD accept any valid subset of features the driver accepts, otherwise it MUST fail to set the FEATURES_OK device status bit when the driver writes it."',
    needs: [NEEDS_SOCKET],
    async run(ctx) {
      const session = await openSession(ctx);
      const features = await session.getFeatures();
      // Drop the optional ring features; keep VERSION_1 and bit 30, which a modern front-end always takes.
      const optional =
        (1n << BigInt(VirtioFeature.VIRTIO_RING_F_EVENT_IDX)) |
        (1n << BigInt(VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC)) |
        (1n << BigInt(VirtioFeature.VIRTIO_F_NOTIFY_ON_EMPTY));
      const subset = features & ~optional;
      await session.expectAck('SET_FEATURES', encodeU64(subset));
      await session.expectAck('SET_OWNER');
      const after = await session.getFeatures();
      expect(after, 'GET_FEATURES after SET_FEATURES still returns the offer').to.equal(features);
      return `accepted ${hex(subset)} out of ${hex(features)}`;
    },
  },
  {
    id: 'proto.negotiation.stable',
    detail: 'two launches with the same options offer the same features and protocol features',
    title: 'the offer is the same across two launches with the same options',
    severity: 'SHOULD',
    spec: ProtocolSpec.communication,
    rule: 'interoperability (no sentence says it; vhost-user.rst (QEMU 7.2), Communication: "An optional reconnection mechanism can be implemented."): a front-end that reconnects, or migrates to a back-end launched the same way, holds the features the first launch offered',
    interop: true,
    needs: ['proto.reply.get-protocol-features'],
    async run(ctx) {
      const dir = await ctx.scope.tempDir('vhu-stable-');
      const socket = `${dir}/backend.sock`;
      const offers: string[] = [];
      for (let launch = 0; launch < 2; launch++) {
        // In attach mode, two connections to the same back-end; else two launches with the same options.
        const connection = await frontendConnection(ctx, socket);
        const session = new FrontendSession(connection);
        const features = await session.getFeatures();
        let protocol: bigint | undefined;
        if (session.offersProtocolFeatures) {
          await session.expectAck('SET_FEATURES', encodeU64(features));
          protocol = await session.getProtocolFeatures();
        }
        offers.push(
          `features ${hex(features)}, protocol features ${protocol === undefined ? '-' : hex(protocol)}`,
        );
        connection.close();
        await ctx.launched.at(-1)?.terminate(ctx.timeoutMs);
        // A socket file left behind is conv.sigterm.socket-removed's finding; clear it as a launcher would.
        await rm(socket, { force: true });
      }
      expect(offers[1], `launch 1 offered ${offers[0]}`).to.equal(offers[0]);
      return offers[0]!;
    },
  },
  {
    id: 'proto.mq.queue-num',
    detail:
      "with `MQ`, `GET_QUEUE_NUM` is well-formed and at least the device type's minimum (for net one queue pair, as QEMU's net front-end reads it)",
    title: 'with MQ, GET_QUEUE_NUM is well-formed and at least the device minimum',
    severity: 'SHOULD',
    spec: ProtocolSpec.multiQueue,
    rule: 'vhost-user.rst (QEMU 7.2), Multiple queue support: "The max number of queues the back-end supports can be queried with message ``VHOST_USER_GET_QUEUE_NUM``. Front-end should stop when the number of requested queues is bigger than that." (no sentence binds the back-end; GET_QUEUE_NUM is not among the requests Communication lists as requiring a reply); interoperability (QEMU 7.2 hw/virtio/vhost-user.c vhost_user_backend_init reads a u64 reply and fails the device when it is below its queues; net/vhost-user.c reads it as queue pairs): a well-formed reply of at least the device type\'s queues (for net, one pair)',
    interop: true,
    needs: ['proto.negotiation.before-set-features'],
    async run(ctx) {
      const session = await sessionWith(ctx, ProtocolFeature.MQ, 'MQ');
      const queues = await session.connection.requestU64('GET_QUEUE_NUM');
      // QEMU 7.2's net front-end reads it as queue pairs (net/vhost-user.c: "you are asking more queues than
      // supported"), so one pair is enough there; the others compare it with their queues.
      const pairs = ctx.target.type === 'net';
      const min = pairs ? 1 : (MIN_QUEUES[ctx.target.type ?? ''] ?? 1);
      const unit = pairs ? 'queue pair' : 'queue';
      expect(Number(queues), `GET_QUEUE_NUM for a ${ctx.target.type} device`).to.be.at.least(min);
      return `GET_QUEUE_NUM ${queues} (a ${ctx.target.type} device needs ${min} ${unit}${min === 1 ? '' : 's'})`;
    },
  },
  {
    id: 'proto.config.get',
    detail:
      "with `CONFIG`, `GET_CONFIG` of the device's whole config space, of its first half (an older front-end's shorter struct), of a field at its offset (`blk_size`, `num_scanouts`) and of its last byte: each reply payload has the size asked (\"payload size MUST match the front-end's request\") or is empty, the error signal the same sentence allows (named in the message)",
    title:
      'with CONFIG, GET_CONFIG of the whole config space, of a shorter window, of a field at its offset and of the last byte each has a reply payload of the size asked',
    // "vhost-user back-end's payload size MUST match the front-end's request" (vhost-user.rst 7.2,
    // VHOST_USER_GET_CONFIG). Front-ends ask for less than the whole space: an older QEMU's struct is shorter
    // than the back-end's, and crosvm reads each guest access at its offset.
    severity: 'MUST',
    spec: ProtocolSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), VHOST_USER_GET_CONFIG: "vhost-user back-end\'s payload size MUST match the front-end\'s request, vhost-user back-end uses zero length of payload to indicate an error to the vhost-user front-end."',
    needs: ['proto.negotiation.before-set-features'],
    async run(ctx) {
      const session = await sessionWith(ctx, ProtocolFeature.CONFIG, 'CONFIG');
      const { size, windows } = configWindows(ctx);
      // The same sentence lets it answer any of them with the empty payload that signals an error: not a
      // failure of the size rule, said in the message.
      const refused: string[] = [];
      for (const window of [{ offset: 0, size, what: 'the whole config space' }, ...windows]) {
        if (!(await getConfigWindow(session, window))) refused.push(window.what);
      }
      const asked = `${size} bytes of config space, and windows of it (offset+size): ${windows.map((w) => `${w.offset}+${w.size}`).join(', ')}`;
      return refused.length
        ? `${asked}; answered with the empty payload that signals an error: ${refused.join(', ')}`
        : asked;
    },
  },
  {
    id: 'proto.config.window',
    detail:
      'with `CONFIG`, whether those windows hold the bytes the whole space holds at their offset (no sentence says MUST or SHOULD; libvhost-user 7.2 passes its device only the size)',
    title:
      'with CONFIG, whether GET_CONFIG of a window at an offset returns the bytes the whole space holds there',
    // Not judged: the message's layout defines "offset: a 32-bit offset of virtio device's configuration
    // space" and "payload: Size bytes array holding the contents of the virtio device's configuration space"
    // (vhost-user.rst 7.2), but no sentence says MUST or SHOULD. libvhost-user 7.2 passes only the size to
    // its device (vu_get_config), so a front-end reading a field at its offset (crosvm) gets other bytes.
    severity: 'INFO',
    spec: ProtocolSpec.messages,
    rule: 'vhost-user.rst (QEMU 7.2), Virtio device config space: ":offset: a 32-bit offset of virtio device\'s configuration space" and ":payload: Size bytes array holding the contents of the virtio device\'s configuration space" (no normative word)',
    needs: ['proto.config.get'],
    async run(ctx) {
      const session = await sessionWith(ctx, ProtocolFeature.CONFIG, 'CONFIG');
      const { size, windows } = configWindows(ctx);
      const whole = await getConfigWindow(session, { offset: 0, size, what: 'the whole config space' });
      if (!whole)
        throw new SkipError(
          'GET_CONFIG of the whole config space was answered with an error (an empty payload)',
        );
      const differ: string[] = [];
      for (const window of windows) {
        const got = await getConfigWindow(session, window);
        if (!got) {
          differ.push(`${window.what} answered with an error (an empty payload)`);
          continue;
        }
        const expected = whole.subarray(window.offset, window.offset + window.size);
        if (got.equals(expected)) continue;
        const fromStart = got.equals(whole.subarray(0, window.size))
          ? ': the bytes at offset 0, the offset ignored'
          : '';
        differ.push(
          `${window.what} reads ${bytesHex(got)}, the whole space holds ${bytesHex(expected)} there${fromStart}`,
        );
      }
      if (differ.length === 0)
        return `every window (${windows.map((w) => `${w.offset}+${w.size}`).join(', ')}) holds the bytes the whole ${size}-byte space holds there`;
      return differ.join('; ');
    },
  },
]);

interface ConfigWindow {
  offset: number;
  size: number;
  what: string;
}

/** The config size of the device type, and windows of it: a shorter struct, a field at its offset, the last byte. */
function configWindows(ctx: CheckContext): { size: number; windows: ConfigWindow[] } {
  const space = configSpaceOf(ctx);
  const size = space?.size ?? 4;
  const half = Math.floor(size / 2);
  const field = space?.field;
  const windows = [
    { offset: 0, size: half, what: 'its first half' },
    field
      ? { offset: field.offset, size: field.size, what: field.name }
      : { offset: half, size: size - half, what: 'its second half' },
    { offset: size - 1, size: 1, what: 'its last byte' },
  ];
  return {
    size,
    windows: windows.map((w) => ({ ...w, what: `${w.what} (offset ${w.offset}, size ${w.size})` })),
  };
}

/**
 * GET_CONFIG of one window: the reply payload's size, and its size field, must be the request's; undefined for
 * the empty payload "to indicate an error", which the sentence allows.
 */
async function getConfigWindow(session: FrontendSession, window: ConfigWindow): Promise<Buffer | undefined> {
  const { offset, size, what } = window;
  const request = encodeDeviceConfig({ offset, size, flags: 0, payload: Buffer.alloc(size) });
  const { connection } = session;
  await connection.send('GET_CONFIG', { payload: request });
  const frame = await connection.nextFrame(`the reply to GET_CONFIG of ${what}`);
  const reply = frame.payload;
  try {
    // Well-formed as any reply, of the size asked or empty.
    checkReply('GET_CONFIG', frame, reply.length === 0 ? 0 : request.length, 0, connection.recent());
  } catch (err) {
    for (const fd of frame.fds) closeFd(fd);
    if (!(err instanceof ProtocolError)) throw err;
    throw new BackendError(`GET_CONFIG of ${what}, a ${request.length}-byte request: ${err.message}`, {
      cause: err,
    });
  }
  if (reply.length === 0) return undefined;
  const config = decodeDeviceConfig(reply, 'GET_CONFIG');
  if (config.size !== size) {
    throw new BackendError(`GET_CONFIG of ${what}: the reply's size field says ${config.size}`);
  }
  return config.payload;
}

function bytesHex(bytes: Buffer): string {
  return bytes.length ? bytes.toString('hex').replace(/(..)(?=.)/g, '$1 ') : '(nothing)';
}
