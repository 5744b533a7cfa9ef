/**
 * virtio-net traffic (virtio spec, "Network Device"): frames through receiveq0 / transmitq0 of a back-end
 * that loops them back, as dpdk-testpmd does in io forwarding on one port, and the fixture's net device.
 * A back-end that does not return a probe frame does not loop: the checks that need it are skipped.
 */

import { expect } from 'chai';
import {
  checksumTestFrame,
  completeChecksum,
  MAX_FRAME,
  MIN_FRAME,
  NET_HDR_SIZE,
  type NetDriver,
  type ReceivedFrame,
  type SendOptions,
  testFrame,
  testFrameTag,
  VirtioNetFeature,
  VirtioNetGso,
  VirtioNetHdrFlag,
} from '../../harness/devices/net/net.js';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { VirtioFeature } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { openNet, PACKED_SIZE } from '../common/net.js';
import { freshSeed } from '../common/seed.js';
import { quietMs } from '../vring/common.js';

const NetSpec = {
  multiQueue: 'vhost-user.rst#multiple-queue-support',
  packedRing: 'virtio-spec#sec-basic-facilities-of-a-virtio-device-packed-virtqueues',
  operation: 'virtio-spec#sec-device-types-network-device-device-operation',
  packetReceive:
    'virtio-spec#sec-device-types-network-device-device-operation-processing-of-incoming-packets',
  packetTransmit: 'virtio-spec#sec-device-types-network-device-device-operation-packet-transmission',
  checksum:
    'virtio-spec#sec-device-types-network-device-device-operation-processing-of-incoming-packets-device-requirements-processing-of-incoming-packets',
  inOrder: 'virtio-spec#sec-basic-facilities-of-a-virtio-device-split-virtqueues-in-order-use-of-descriptors',
  packedInOrder: 'virtio-spec#sec-packed-virtqueues-in-order-use-of-descriptors',
} as const;

/** Frame lengths the checks cycle through: the smallest, odd ones, page-ish ones, the largest. */
export const LENGTHS = [
  MIN_FRAME,
  61,
  64,
  127,
  128,
  255,
  256,
  511,
  512,
  1000,
  1023,
  1024,
  1499,
  MAX_FRAME - 1,
  MAX_FRAME,
];

/**
 * One frame out and, within the quiet window, back: a SkipError when it does not come back (the back-end
 * does not loop traffic), a FAIL when something else comes back.
 */
async function requireLoopback(ctx: CheckContext, net: NetDriver, run: number): Promise<void> {
  const probe = testFrame(run, 0xffff_ffff, MIN_FRAME);
  await net.send([probe]);
  let back: ReceivedFrame[];
  try {
    back = await net.receive(1, Math.max(quietMs(ctx), 1000));
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    throw new SkipError(
      'a probe frame sent on transmitq0 did not come back on receiveq0: the back-end does not loop traffic ' +
        '(dpdk-testpmd does with --forward-mode=io on one port)',
    );
  }
  expectFrame(back[0]!, probe, 'the probe frame');
}

export function expectFrame(got: ReceivedFrame, sent: Uint8Array, what: string): void {
  const tag = testFrameTag(got.frame);
  if (got.frame.length !== sent.length || !Buffer.from(got.frame).equals(Buffer.from(sent))) {
    let first = 0;
    while (first < Math.min(got.frame.length, sent.length) && got.frame[first] === sent[first]) first++;
    throw new BackendError(
      `${what} (${sent.length} bytes) came back as ${got.frame.length} bytes (used.len ${got.usedLen}), ` +
        `first difference at byte ${first}${tag ? `; it names frame ${tag.sequence} of run ${tag.run}` : ''}`,
    );
  }
}

/**
 * Sends `count` test frames of cycling lengths and checks that exactly they come back, in order. A frame
 * whose receive buffer an IN_ORDER batch covered (no used element of its own) must fill it.
 */
async function loopFrames(
  net: NetDriver,
  run: number,
  count: number,
  options: SendOptions = {},
): Promise<ReceivedFrame[]> {
  const frames = Array.from({ length: count }, (_, i) => testFrame(run, i, LENGTHS[i % LENGTHS.length]!));
  let received: ReceivedFrame[];
  try {
    received = await net.roundTrip(frames, options);
  } catch (err) {
    if (err instanceof TimeoutError) {
      throw new BackendError(`of ${count} frames sent, not all came back: ${err.message}`, { cause: err });
    }
    throw err;
  }
  received.forEach((got, i) => {
    const tag = testFrameTag(got.frame);
    if (got.batched && tag && tag.length !== got.frame.length) {
      // The spec: the driver assumes the buffers a batch skips were used in full.
      throw new BackendError(
        `frame ${i}: its receive buffer had no used element of its own (a later one's covered it, as an ` +
          `in-order batch), so it counts as written in full (used.len ${got.usedLen}), yet it holds a ` +
          `${tag.length}-byte frame (number ${tag.sequence}): the device used a later buffer before this one`,
      );
    }
    if (tag?.run === run && tag.sequence !== i) {
      throw new BackendError(
        `frame ${i} expected, frame ${tag.sequence} came: ${tag.sequence > i ? 'frames were lost' : 'out of order, or twice'}`,
      );
    }
    expectFrame(got, frames[i]!, `frame ${i}`);
  });
  const extra = net.receivedNow();
  expect(extra.length, `${extra.length} frames came back beyond the ${count} sent`).to.equal(0);
  return received;
}

/** A set of frames of every length looped back, for their headers. */
async function loopHeaders(ctx: CheckContext): Promise<{ received: ReceivedFrame[] }> {
  const net = await openNet(ctx);
  const run = freshSeed();
  await requireLoopback(ctx, net, run);
  return { received: await loopFrames(net, run, LENGTHS.length) };
}

export const netChecks = defineChecks('net', [
  {
    id: 'net.loopback',
    detail:
      'with a back-end that loops frames back (dpdk-testpmd `--forward-mode=io`; skipped when a probe frame does not come back), 200 frames of 60-1514 bytes come back intact, in order, none lost or added',
    title: 'frames looped back by the back-end arrive intact, in order, none lost and none added',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (dpdk-testpmd 22.11 --forward-mode=io on one port, the fixture\'s net device): a back-end that loops frames back returns each frame taken from transmitq1 on receiveq1, intact, in order, none lost and none added; the virtio spec (Network Device, Device Operation) says only "Packets are transmitted by placing them in the transmitq1...transmitqN, and buffers for incoming packets are placed in the receiveq1...receiveqN", no normative word',
    spec: NetSpec.operation,
    // The front-end profile's start-up asks it with CONFIGURE_MEM_SLOTS (qemu).
    needs: ['proto.reply.get-max-mem-slots'],
    async run(ctx) {
      const net = await openNet(ctx);
      const run = freshSeed();
      await requireLoopback(ctx, net, run);
      // The probe frame came back: data moves, what the checks needing this one rely on. A frame lost or
      // broken past it is this check's own finding; they run and give verdicts of their own.
      ctx.gateHeld();
      await loopFrames(net, run, 200);
      return `200 frames of ${MIN_FRAME}-${MAX_FRAME} bytes came back intact`;
    },
  },
  {
    id: 'net.rx.header',
    detail:
      'a received `virtio_net_hdr` has flags 0 and no gso_type of a GSO feature not negotiated (TCPV4, UDP, TCPV6, UDP_L4, the UDP tunnel bits), none being negotiated',
    title: 'a received packet header asks for no offload that was not negotiated',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Processing of Incoming Packets: "If VIRTIO_NET_F_GUEST_CSUM is not negotiated, the device MUST set flags to zero and SHOULD supply a fully checksummed packet to the driver."; and "If VIRTIO_NET_F_GUEST_TSO4 is not negotiated, the device MUST NOT set gso_type to VIRTIO_NET_HDR_GSO_TCPV4." (and the sentences after it, likewise for GSO_UDP, GSO_TCPV6, GSO_UDP_L4 and the UDP tunnel bits)',
    spec: NetSpec.packetReceive,
    needs: ['net.loopback'],
    async run(ctx) {
      const { received } = await loopHeaders(ctx);
      for (const [i, { hdr }] of received.entries()) {
        // Without VIRTIO_NET_F_GUEST_CSUM the device MUST set flags to zero; without GUEST_TSO4, GUEST_UDP,
        // GUEST_TSO6, GUEST_USO4/6 and GUEST_UDP_TUNNEL_GSO it MUST NOT set gso_type to the GSO type each
        // enables (nor the tunnel bits). Other values (ECN alone, numbers no feature defines) no sentence forbids.
        expect(hdr.flags, `frame ${i}: flags (GUEST_CSUM not negotiated)`).to.equal(0);
        const forbidden = forbiddenGso(hdr.gsoType);
        if (forbidden) {
          throw new BackendError(
            `frame ${i}: gso_type 0x${hdr.gsoType.toString(16)}, ${forbidden}, though no GUEST_TSO4/UDP/TSO6/USO or ` +
              'GUEST_UDP_TUNNEL_GSO was negotiated',
          );
        }
      }
      return `${received.length} headers: flags 0, no GSO type of a feature not negotiated`;
    },
  },
  {
    id: 'net.rx.num-buffers',
    detail:
      'without `VIRTIO_NET_F_MRG_RXBUF`, num_buffers is 1 (the spec says MUST, and so does the current draft; a 2025 proposal would soften it, as Linux tun never wrote it)',
    title: 'without VIRTIO_NET_F_MRG_RXBUF, a received header has num_buffers 1',
    // The severity is the sentence's word: MUST, as the current virtio spec draft still says (a 2025 proposal
    // would make it SHOULD, as Linux tun and vhost-net never wrote the field).
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Processing of Incoming Packets: "If VIRTIO_NET_F_MRG_RXBUF has not been negotiated, the device MUST set num_buffers to 1."',
    spec: NetSpec.packetReceive,
    needs: ['net.loopback'],
    async run(ctx) {
      const { received } = await loopHeaders(ctx);
      for (const [i, { hdr }] of received.entries()) {
        expect(
          hdr.numBuffers,
          `frame ${i}: num_buffers (0x${hdr.numBuffers.toString(16)}${hdr.numBuffers === 0xefbe ? ', the guard bytes the driver left: never written' : ''})`,
        ).to.equal(1);
      }
      return `${received.length} headers with num_buffers 1`;
    },
  },
  {
    id: 'net.packed.loopback',
    detail:
      'with `VIRTIO_F_RING_PACKED`, 480 frames loop back intact through packed rings of 48 descriptors (not a power of two), each ring wrapping ten times',
    title: 'with VIRTIO_F_RING_PACKED, frames loop back intact through packed rings, round them many times',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (dpdk-testpmd 22.11 --forward-mode=io on one port, the fixture\'s net device): a back-end that loops frames back returns each frame taken from transmitq1 on receiveq1, intact, in order, none lost and none added; the virtio spec (Network Device, Device Operation) says only "Packets are transmitted by placing them in the transmitq1...transmitqN, and buffers for incoming packets are placed in the receiveq1...receiveqN", no normative word; through packed rings, marking used descriptors as Packed Virtqueues, Driver and Device Ring Wrap Counters says, also with no normative word: "To mark a descriptor as used, the device sets the VIRTQ_DESC_F_USED bit in Flags to match the internal Device Ring Wrap Counter."',
    spec: NetSpec.packedRing,
    needs: ['net.loopback'],
    async run(ctx) {
      const net = await openNet(ctx, { packed: true });
      const run = freshSeed();
      await requireLoopback(ctx, net, run);
      // 480 frames through 48-descriptor rings: each ring wraps ten times, receive buffers re-posted as used.
      await loopFrames(net, run, 480);
      return `480 frames came back intact through packed rings of ${PACKED_SIZE} descriptors (10 laps each)`;
    },
  },
  {
    id: 'net.tx.split-header',
    detail: 'a packet with its header and frame in separate descriptors is transmitted whole',
    title: 'a packet whose header and frame are in separate descriptors is transmitted whole',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Message Framing: "The device MUST NOT make assumptions about the particular arrangement of descriptors."',
    spec: NetSpec.packetTransmit,
    needs: ['net.loopback'],
    async run(ctx) {
      const net = await openNet(ctx);
      const run = freshSeed();
      await requireLoopback(ctx, net, run);
      // "The device MUST NOT make assumptions about the framing" (message framing, virtio spec).
      await loopFrames(net, run, 60, { splitHeader: true });
      return '60 frames sent with the header in a descriptor of its own came back intact';
    },
  },
  {
    id: 'net.rx.mergeable',
    detail:
      'with `VIRTIO_NET_F_MRG_RXBUF`, 120 frames through 256-byte receive buffers: a frame larger than one is spread over several, num_buffers in the first header equal to the buffers used, all but the last used in full, the used lengths summing to header + frame, the bytes intact and in order',
    title:
      'with VIRTIO_NET_F_MRG_RXBUF, a frame larger than a receive buffer is spread over several, num_buffers counting them',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Processing of Incoming Packets: "If VIRTIO_NET_F_MRG_RXBUF has been negotiated, the device MUST set num_buffers to indicate the number of buffers the packet (including the header) is spread over."; and "If a receive packet is spread over multiple buffers, the device MUST use all buffers but the last (i.e. the first num_buffers - 1 buffers) completely up to the full length of each buffer supplied by the driver."',
    spec: NetSpec.packetReceive,
    needs: ['net.loopback'],
    async run(ctx) {
      const net = await openNet(ctx, {
        want: [[VirtioNetFeature.MRG_RXBUF, 'VIRTIO_NET_F_MRG_RXBUF']],
        rx: { buffers: MRG_BUFFERS, bufferSize: MRG_BUFFER_SIZE },
      });
      const run = freshSeed();
      await requireLoopback(ctx, net, run);
      const received = await loopFrames(net, run, 120);
      let spread = 0;
      for (const [i, got] of received.entries()) {
        const need = Math.ceil((NET_HDR_SIZE + got.frame.length) / MRG_BUFFER_SIZE);
        // "MUST set num_buffers to the number of descriptors used" and use all but the last in full.
        expect(got.hdr.numBuffers, `frame ${i} (${got.frame.length} bytes): num_buffers`).to.equal(
          got.usedLens.length,
        );
        got.usedLens.slice(0, -1).forEach((len, k) => {
          expect(
            len,
            `frame ${i}: used.len of buffer ${k + 1} of ${got.usedLens.length}, not its last`,
          ).to.equal(MRG_BUFFER_SIZE);
        });
        expect(got.usedLen, `frame ${i}: used.len summed over its buffers`).to.equal(
          NET_HDR_SIZE + got.frame.length,
        );
        expect(got.usedLens.length, `frame ${i}: buffers of ${MRG_BUFFER_SIZE} bytes it took`).to.be.at.least(
          need,
        );
        if (got.usedLens.length > 1) spread++;
      }
      if (spread === 0)
        throw new BackendError('no frame was spread over several buffers, yet most cannot fit one');
      return `120 frames through ${MRG_BUFFER_SIZE}-byte receive buffers: ${spread} spread over up to ${Math.max(
        ...received.map((r) => r.usedLens.length),
      )} buffers, num_buffers right, bytes intact`;
    },
  },
  {
    id: 'net.csum',
    detail:
      'with `VIRTIO_NET_F_CSUM` and `GUEST_CSUM`, UDP and TCP frames sent with `VIRTIO_NET_HDR_F_NEEDS_CSUM` and the checksum left partial: one that comes back marked `NEEDS_CSUM` has a csum_start and csum_offset that complete it, one marked `DATA_VALID` has a valid checksum',
    title:
      'with VIRTIO_NET_F_CSUM and GUEST_CSUM, a received frame marked NEEDS_CSUM has csum_start/csum_offset that complete it, one marked DATA_VALID a valid checksum',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Processing of Incoming Packets: "If the VIRTIO_NET_F_GUEST_CSUM feature has been negotiated, the device MAY set the VIRTIO_NET_HDR_F_NEEDS_CSUM bit in flags, if so: [...] the device MUST set csum_start and csum_offset such that calculating a ones\' complement checksum from csum_start up until the end of the packet and storing the result at offset csum_offset from csum_start will result in a fully checksummed packet"; and "If the VIRTIO_NET_F_GUEST_CSUM feature has been negotiated, the device MAY set the VIRTIO_NET_HDR_F_DATA_VALID bit in flags, if so, the device MUST validate the packet checksum"',
    spec: NetSpec.checksum,
    needs: ['net.loopback'],
    async run(ctx) {
      const outcomes = { completed: 0, partial: 0, dataValid: 0, unmarked: 0 };
      await loopChecksums(ctx, ({ what, sent, hdr, frame, field }) => {
        if (hdr.flags & VirtioNetHdrFlag.NEEDS_CSUM) {
          // Completing the checksum where csum_start and csum_offset say gives a fully checksummed packet.
          const completed = completeChecksum(frame, hdr.csumStart, hdr.csumOffset);
          if (!completed || !Buffer.from(completed).equals(Buffer.from(sent.full))) {
            throw new BackendError(
              `${what}: came back marked NEEDS_CSUM with csum_start ${hdr.csumStart}, csum_offset ${hdr.csumOffset}, ` +
                `checksum field ${field(frame)}: completing it there does not give the packet sent (checksum ${field(sent.full)})`,
            );
          }
          outcomes.partial++;
        } else if (hdr.flags & VirtioNetHdrFlag.DATA_VALID) {
          // Validated: the packet is the one sent, with its complete checksum (other bytes changed would make
          // that checksum wrong too).
          if (!Buffer.from(frame).equals(Buffer.from(sent.full))) {
            throw new BackendError(
              `${what}: came back marked DATA_VALID with checksum ${field(frame)}, and the packet with its ` +
                `complete checksum (${field(sent.full)}) is not what came: the device did not validate it`,
            );
          }
          outcomes.dataValid++;
        } else if (Buffer.from(frame).equals(Buffer.from(sent.full))) outcomes.completed++;
        // Unmarked and not complete: no sentence of this rule (net.csum.partial judges it).
        else outcomes.unmarked++;
      });
      return (
        `${CSUM_LENGTHS.length * 2} UDP and TCP frames with partial checksums: ${outcomes.completed} completed, ` +
        `${outcomes.partial} still marked NEEDS_CSUM (completing them gives the packet), ${outcomes.dataValid} completed with DATA_VALID` +
        (outcomes.unmarked ? `, ${outcomes.unmarked} unmarked and not complete (see net.csum.partial)` : '')
      );
    },
  },
  {
    id: 'net.csum.partial',
    detail:
      'with `VIRTIO_NET_F_CSUM` and `GUEST_CSUM`, UDP and TCP frames sent with `VIRTIO_NET_HDR_F_NEEDS_CSUM` and the checksum left partial come back either with the checksum completed or still marked `NEEDS_CSUM`, never partial and unmarked (a driver then drops them as corrupt), and otherwise intact',
    title:
      'with VIRTIO_NET_F_CSUM and GUEST_CSUM, a frame sent with NEEDS_CSUM comes back with its checksum completed or still marked partial',
    severity: 'SHOULD',
    interop: true,
    rule: 'interoperability (dpdk-testpmd 22.11 completes the checksum; a back-end that loops frames hands on what it was asked to checksum): the virtio spec says, with no normative word, what VIRTIO_NET_F_CSUM means (Network Device, Feature bits: "Device handles packets with partial checksum offload.") and no device requirement of a transmitted packet\'s checksum',
    spec: NetSpec.checksum,
    needs: ['net.csum'],
    async run(ctx) {
      let marked = 0;
      await loopChecksums(ctx, ({ what, sent, hdr, frame, field }) => {
        const length = sent.full.length;
        if (frame.length !== length) throw new BackendError(`${what}: came back as ${frame.length} bytes`);
        if (hdr.flags & VirtioNetHdrFlag.NEEDS_CSUM) {
          marked++;
          return;
        }
        if (Buffer.from(frame).equals(Buffer.from(sent.full))) return;
        if (Buffer.from(frame).equals(Buffer.from(sent.partial))) {
          throw new BackendError(
            `${what}: came back with flags 0x${hdr.flags.toString(16)} and its checksum still partial (${field(frame)}, ` +
              `the pseudo-header sum; complete: ${field(sent.full)}): neither completed nor marked NEEDS_CSUM, the ` +
              'driver takes it for a corrupt packet',
          );
        }
        let first = 0;
        while (first < length && frame[first] === sent.full[first]) first++;
        throw new BackendError(`${what}: came back with bytes changed from byte ${first} on`);
      });
      return `${CSUM_LENGTHS.length * 2} UDP and TCP frames with partial checksums: ${CSUM_LENGTHS.length * 2 - marked} completed, ${marked} still marked NEEDS_CSUM`;
    },
  },
  {
    id: 'net.in-order',
    detail:
      "with `VIRTIO_F_IN_ORDER` (split rings), 300 frames loop back with every buffer used in the order it was made available; a used element may stand for a batch (the spec's in-order batching: the buffers it skips count as used in full), and a skipped receive buffer that was not filled is a buffer used out of order",
    title: 'with VIRTIO_F_IN_ORDER, buffers are used in the order they were made available (batches allowed)',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Reserved Feature Bits: "If VIRTIO_F_IN_ORDER has been negotiated, a device MUST use buffers in the same order in which they have been available."',
    spec: NetSpec.inOrder,
    needs: ['net.loopback'],
    run: (ctx) => loopInOrder(ctx, false),
  },
  {
    id: 'net.in-order.packed',
    detail:
      "with `VIRTIO_F_IN_ORDER` on packed rings of 48 descriptors, 300 frames loop back with every buffer used in the order it was made available; a used descriptor may stand for a batch (the id of its last buffer, written over its first buffer's first descriptor: the driver skips the descriptors of all of them, wrap counter included, and takes the buffers it skips as used in full); a used id not in flight after the buffers already used, or a skipped receive buffer that was not filled, is a buffer used out of order",
    title:
      'with VIRTIO_F_IN_ORDER on packed rings, buffers are used in the order they were made available (batches allowed)',
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Reserved Feature Bits: "If VIRTIO_F_IN_ORDER has been negotiated, a device MUST use buffers in the same order in which they have been available."',
    spec: NetSpec.packedInOrder,
    needs: ['net.packed.loopback'],
    run: (ctx) => loopInOrder(ctx, true),
  },
]);

/**
 * net.in-order and net.in-order.packed: 300 frames looped with IN_ORDER negotiated, the driver reading
 * in-order batches (one used element or descriptor for several buffers) as such.
 */
async function loopInOrder(ctx: CheckContext, packed: boolean): Promise<string> {
  const net = await openNet(ctx, { packed, want: [[VirtioFeature.VIRTIO_F_IN_ORDER, 'VIRTIO_F_IN_ORDER']] });
  const run = freshSeed();
  await requireLoopback(ctx, net, run);
  await loopFrames(net, run, 300);
  return (
    `300 frames looped in order${packed ? ` through packed rings of ${PACKED_SIZE} descriptors` : ''}; used ` +
    `${packed ? 'descriptors' : 'elements'} covering batches: ${net.batchedTx} transmit and ${net.batchedRx} ` +
    'receive buffers had none of their own'
  );
}

/** What a received gso_type claims that no negotiated feature allows (none is negotiated here), or null. */
function forbiddenGso(gsoType: number): string | null {
  const names: Record<number, string> = {
    [VirtioNetGso.TCPV4]: 'VIRTIO_NET_HDR_GSO_TCPV4',
    [VirtioNetGso.UDP]: 'VIRTIO_NET_HDR_GSO_UDP',
    [VirtioNetGso.TCPV6]: 'VIRTIO_NET_HDR_GSO_TCPV6',
    [VirtioNetGso.UDP_L4]: 'VIRTIO_NET_HDR_GSO_UDP_L4',
  };
  const type = gsoType & ~(VirtioNetGso.ECN | VirtioNetGso.UDP_TUNNEL_IPV4 | VirtioNetGso.UDP_TUNNEL_IPV6);
  if (names[type]) return names[type];
  if (gsoType & (VirtioNetGso.UDP_TUNNEL_IPV4 | VirtioNetGso.UDP_TUNNEL_IPV6)) return 'a UDP tunnel bit';
  return null;
}

/** One frame of net.csum's traffic, for a check to judge. */
interface ChecksumFrame {
  what: string;
  sent: ReturnType<typeof checksumTestFrame>;
  hdr: ReceivedFrame['hdr'];
  frame: Uint8Array;
  /** The checksum field of a frame, in hex. */
  field: (f: Uint8Array) => string;
}

/**
 * UDP and TCP frames of CSUM_LENGTHS sent with NEEDS_CSUM and a partial checksum (CSUM and GUEST_CSUM
 * negotiated), each judged by `judge` as it comes back.
 */
async function loopChecksums(ctx: CheckContext, judge: (frame: ChecksumFrame) => void): Promise<void> {
  const net = await openNet(ctx, {
    want: [
      [VirtioNetFeature.CSUM, 'VIRTIO_NET_F_CSUM'],
      [VirtioNetFeature.GUEST_CSUM, 'VIRTIO_NET_F_GUEST_CSUM'],
    ],
  });
  const run = freshSeed();
  await requireLoopback(ctx, net, run);
  for (let i = 0; i < CSUM_LENGTHS.length * 2; i++) {
    const protocol = i % 2 === 0 ? 'udp' : 'tcp';
    const length = CSUM_LENGTHS[i >> 1]!;
    const sent = checksumTestFrame(run, i, length, protocol);
    await net.send([sent.partial], {
      hdr: { flags: VirtioNetHdrFlag.NEEDS_CSUM, csumStart: sent.csumStart, csumOffset: sent.csumOffset },
    });
    let got: ReceivedFrame;
    try {
      [got] = (await net.receive(1)) as [ReceivedFrame];
    } catch (err) {
      if (!(err instanceof TimeoutError)) throw err;
      throw new BackendError(`${protocol} frame ${i} (${length} bytes, NEEDS_CSUM) did not come back`, {
        cause: err,
      });
    }
    const at = sent.csumStart + sent.csumOffset;
    judge({
      what: `${protocol} frame ${i} (${length} bytes) sent with NEEDS_CSUM, csum_start ${sent.csumStart}, csum_offset ${sent.csumOffset}`,
      sent,
      hdr: got.hdr,
      frame: got.frame,
      field: (f) => `0x${Buffer.from(f.subarray(at, at + 2)).toString('hex')}`,
    });
  }
}

/** Receive buffers for net.rx.mergeable: small, so that most frames need several. */
const MRG_BUFFER_SIZE = 256;
const MRG_BUFFERS = 192;
/** Frame lengths of net.csum: about the smallest (a TCP one with 8 bytes of payload), odd (a checksum over an odd count of bytes), the largest. */
const CSUM_LENGTHS = [62, 75, 128, 333, 1000, 1401, MAX_FRAME];
