/**
 * A front-end session over one connection: the negotiated state, and requests that honour REPLY_ACK. Checks
 * build on this rather than on raw frames.
 */
import { BackendError, ProtocolError } from '../errors.js';
import {
  decodeDeviceConfig,
  decodeInflightDescription,
  decodeU64,
  encodeDeviceConfig,
  encodeInflightDescription,
  encodeU64,
  INFLIGHT_DESCRIPTION_PACKED_SIZE,
  INFLIGHT_DESCRIPTION_SIZE,
  type InflightDescription,
} from '../protocol/messages.js';
import {
  type FrontendRequestName,
  hasBit,
  ProtocolFeature,
  VHOST_USER_F_PROTOCOL_FEATURES,
} from '../protocol/spec.js';
import { closeFd } from '../sys/libc.js';
import { BackendChannel } from './backend-channel.js';
import { type Connection, checkReply } from './connection.js';

export class FrontendSession {
  features: bigint | undefined;
  protocolFeatures: bigint | undefined;
  /** The protocol features acknowledged with SET_PROTOCOL_FEATURES. */
  ackedProtocolFeatures = 0n;
  /**
   * Which requests without a reply of their own go with need_reply once REPLY_ACK is negotiated: all (true,
   * the default), none (false: crosvm negotiates REPLY_ACK yet never asks for a reply), or those named (as
   * QEMU and DPDK choose them). The others are followed by a GET_FEATURES round trip.
   */
  needReply: boolean | ReadonlySet<FrontendRequestName> = true;

  constructor(readonly connection: Connection) {}

  get offersProtocolFeatures(): boolean {
    return this.features !== undefined && hasBit(this.features, VHOST_USER_F_PROTOCOL_FEATURES);
  }

  offers(protocolFeature: number): boolean {
    return this.protocolFeatures !== undefined && hasBit(this.protocolFeatures, protocolFeature);
  }

  /** Whether `name` goes with need_reply (REPLY_ACK negotiated, and `needReply` says so for it). */
  replyAckFor(name: FrontendRequestName): boolean {
    const chosen = typeof this.needReply === 'boolean' ? this.needReply : this.needReply.has(name);
    return chosen && hasBit(this.ackedProtocolFeatures, ProtocolFeature.REPLY_ACK);
  }

  async getFeatures(): Promise<bigint> {
    this.features = await this.connection.requestU64('GET_FEATURES');
    return this.features;
  }

  async getProtocolFeatures(): Promise<bigint> {
    this.protocolFeatures = await this.connection.requestU64('GET_PROTOCOL_FEATURES');
    return this.protocolFeatures;
  }

  /** SET_PROTOCOL_FEATURES; with REPLY_ACK among `bits`, asks for (and returns) the ack. */
  async setProtocolFeatures(bits: bigint): Promise<bigint | undefined> {
    this.ackedProtocolFeatures = bits;
    return this.request('SET_PROTOCOL_FEATURES', encodeU64(bits));
  }

  /**
   * A request without a reply of its own. With REPLY_ACK negotiated it goes with need_reply and the ack
   * (0 = success) is returned; without, a GET_FEATURES round trip proves the back-end read it.
   */
  async request(
    name: FrontendRequestName,
    payload?: Buffer,
    options: { sync?: boolean; fds?: number[] } = {},
  ): Promise<bigint | undefined> {
    const fds = options.fds ? { fds: options.fds } : {};
    if (this.replyAckFor(name)) {
      const reply = await this.connection.request(name, 8, {
        ...(payload ? { payload } : {}),
        ...fds,
        needReply: true,
      });
      return decodeU64(reply, name);
    }
    await this.connection.send(name, { ...(payload ? { payload } : {}), ...fds });
    if (options.sync !== false) await this.connection.requestU64('GET_FEATURES');
    return undefined;
  }

  /**
   * The start of a session: GET_FEATURES; when `want.protocolFeatures` is given and bit 30 offered,
   * GET/SET_PROTOCOL_FEATURES with those of them that are offered; SET_FEATURES (the whole offer unless
   * `want.features`); SET_OWNER. Without protocol features it relies on nothing but the oldest messages.
   */
  async negotiate(want: { protocolFeatures?: bigint; features?: bigint } = {}): Promise<void> {
    const features = await this.getFeatures();
    if (want.protocolFeatures !== undefined && this.offersProtocolFeatures) {
      const offered = await this.getProtocolFeatures();
      const acked = await this.setProtocolFeatures(offered & (want.protocolFeatures ?? 0n));
      if (acked !== undefined && acked !== 0n)
        throw new BackendError(`SET_PROTOCOL_FEATURES was acked with ${acked}`);
    }
    await this.expectAck('SET_FEATURES', encodeU64(want.features ?? features));
    await this.expectAck('SET_OWNER');
  }

  /**
   * GET_CONFIG of `size` bytes at `offset` (flags 0): the config bytes, or undefined for the empty reply by
   * which a back-end reports that it failed ("uses zero length of payload to indicate an error"). A reply of
   * another size, or whose size field is not the one asked, is a ProtocolError. Needs PROTOCOL_F_CONFIG.
   */
  async getConfig(size: number, offset = 0, what = `${size} bytes`): Promise<Buffer | undefined> {
    const request = encodeDeviceConfig({ offset, size, flags: 0, payload: Buffer.alloc(size) });
    await this.connection.send('GET_CONFIG', { payload: request });
    const frame = await this.connection.nextFrame(`the reply to GET_CONFIG of ${what}`);
    try {
      const empty = frame.payload.length === 0;
      checkReply('GET_CONFIG', frame, empty ? 0 : request.length, 0, this.connection.recent());
      if (empty) return undefined;
    } catch (err) {
      for (const fd of frame.fds) closeFd(fd);
      throw err;
    }
    const config = decodeDeviceConfig(frame.payload, 'GET_CONFIG');
    if (config.size !== size)
      throw new ProtocolError(
        `GET_CONFIG of ${what}: the reply's size field says ${config.size}`,
        frame.payload,
      );
    return config.payload;
  }

  /** `request`, failing when an ack says the back-end refused it. */
  async expectAck(name: FrontendRequestName, payload?: Buffer): Promise<void> {
    const ack = await this.request(name, payload);
    if (ack !== undefined && ack !== 0n) throw new BackendError(`${name} was refused: REPLY_ACK ${ack}`);
  }

  /**
   * GET_INFLIGHT_FD for `numQueues` queues of `queueSize` entries: the reply (the 24-byte VhostUserInflight
   * QEMU and libvhost-user send, or the spec's 20 bytes of fields) and the buffer's fd, which the caller owns;
   * no fd when the reply says mmap_size 0 (no buffer, as QEMU takes it), a ProtocolError when a buffer comes
   * without one.
   */
  async getInflightFd(
    numQueues: number,
    queueSize: number,
  ): Promise<{ reply: InflightDescription; fd: number | undefined }> {
    const asked = { mmapSize: 0n, mmapOffset: 0n, numQueues, queueSize };
    await this.connection.send('GET_INFLIGHT_FD', { payload: encodeInflightDescription(asked) });
    const frame = await this.connection.nextFrame('the reply to GET_INFLIGHT_FD');
    try {
      const size =
        frame.payload.length === INFLIGHT_DESCRIPTION_PACKED_SIZE
          ? INFLIGHT_DESCRIPTION_PACKED_SIZE
          : INFLIGHT_DESCRIPTION_SIZE;
      checkReply('GET_INFLIGHT_FD', frame, size, frame.fds.length === 0 ? 0 : 1, this.connection.recent());
      const reply = decodeInflightDescription(frame.payload, 'GET_INFLIGHT_FD');
      if (frame.fds.length === 0 && reply.mmapSize !== 0n) {
        throw new ProtocolError(
          `GET_INFLIGHT_FD announced a ${reply.mmapSize}-byte buffer without an fd; wire: ${this.connection.recent().join(' | ')}`,
        );
      }
      return { reply, fd: frame.fds[0] };
    } catch (err) {
      for (const fd of frame.fds) closeFd(fd);
      throw err;
    }
  }

  /**
   * SET_BACKEND_REQ_FD with one end of a fresh socketpair; the other end is served as a BackendChannel that
   * the caller owns (and closes). Returns the channel and the ack (undefined without REPLY_ACK). Our copy of
   * the back-end's end is closed once sent, so that the back-end closing it shows as end of stream.
   */
  async setUpBackendChannel(
    options: { features?: bigint; log?: (line: string) => void } = {},
  ): Promise<{ channel: BackendChannel; ack: bigint | undefined }> {
    const { channel, backendFd } = BackendChannel.pair({
      protocolFeatures: this.ackedProtocolFeatures,
      ...options,
    });
    try {
      const ack = await this.request('SET_BACKEND_REQ_FD', undefined, { fds: [backendFd] });
      return { channel, ack };
    } catch (err) {
      channel.close();
      throw err;
    } finally {
      closeFd(backendFd);
    }
  }
}
