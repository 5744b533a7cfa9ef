/**
 * virtio-net multiqueue (virtio 1.3, 5.1.6.5.5 "Automatic receive steering in multiqueue mode") through a
 * vhost-user back-end that loops frames back. The control queue is the front-end's: the driver's
 * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET reaches the back-end as SET_VRING_ENABLE of the pairs' rings ("The
 * front-end enables queues by sending message VHOST_USER_SET_VRING_ENABLE", vhost-user.rst 7.2, Multiple
 * queue support), so a pair is in use once its rings are enabled.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  MIN_FRAME,
  type NetDriver,
  type ReceivedFrame,
  testFrame,
  testFrameTag,
} from '../../harness/devices/net/net.js';
import { BackendError, SkipError, TimeoutError } from '../../harness/errors.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { MAX_PAIRS, openNetPairs } from '../common/net.js';
import { freshSeed } from '../common/seed.js';
import { quietMs } from '../vring/common.js';
import { expectFrame, LENGTHS } from './net.js';

const STEERING =
  'virtio-spec#sec-device-types-network-device-device-operation-control-virtqueue-automatic-receive-steering-in-multiqueue-mode';

/** Frames each pair sends at once: no more than the receive buffers a pair keeps posted (32). */
const BATCH = 32;
/** Batches each serving pair sends in the all-pairs phase. */
const BATCHES = 3;

/** Where each frame a pair sent came back: the pair whose receive queue took it, by sequence. */
interface PairTraffic {
  pair: number;
  run: number;
  sent: Uint8Array[];
  /** Sequence -> the pairs it came back on (more than one: a duplicate). */
  backOn: Map<number, number[]>;
}

interface MqTraffic {
  tried: number;
  serving: number[];
  traffic: PairTraffic[];
}

/**
 * Polls every pair's receive queue until `count` frames came in (or the deadline), then a quiet window for
 * any extra; each frame is filed under the run that sent it.
 */
async function collect(
  ctx: CheckContext,
  nets: readonly NetDriver[],
  count: number,
  file: (frame: ReceivedFrame, on: number) => void,
): Promise<number> {
  let got = 0;
  const take = () => {
    for (const [on, net] of nets.entries()) {
      for (const frame of net.poll()) {
        got++;
        file(frame, on);
      }
    }
  };
  const end = performance.now() + ctx.timeoutMs;
  while (got < count && performance.now() < end) {
    take();
    if (got < count) await sleep(2);
  }
  await sleep(quietMs(ctx));
  take();
  return got;
}

/** Files a received frame under the pair whose run sent it, checking it is intact. */
function filer(traffic: readonly PairTraffic[]): (frame: ReceivedFrame, on: number) => void {
  return (frame, on) => {
    const tag = testFrameTag(frame.frame);
    // A late probe (sequence 0xffffffff) of the pairs' probing: not counted.
    if (tag?.sequence === 0xffff_ffff && traffic.some((t) => t.run === tag.run)) return;
    const from = traffic.find((t) => t.run === tag?.run);
    if (!tag || !from) {
      throw new BackendError(
        `receiveq${on + 1} got a ${frame.frame.length}-byte frame no queue pair of this check sent`,
      );
    }
    const sent = from.sent[tag.sequence];
    if (!sent)
      throw new BackendError(`receiveq${on + 1} got frame ${tag.sequence} of pair ${from.pair}, never sent`);
    expectFrame(frame, sent, `frame ${tag.sequence} of transmitq${from.pair + 1}, back on receiveq${on + 1}`);
    from.backOn.set(tag.sequence, [...(from.backOn.get(tag.sequence) ?? []), on]);
  };
}

function framesOf(run: number, count: number, first = 0): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    testFrame(run, first + i, LENGTHS[(first + i) % LENGTHS.length]!),
  );
}

/**
 * With `firstPairOnly`: frames through the first pair while the others are set up but not enabled, each
 * of which must come back on receiveq1 ("After initialization of reset, the device MUST queue packets only
 * on receiveq1"). Then every pair enabled, a probe on each (GET_QUEUE_NUM is an upper bound: dpdk-testpmd
 * answers 128 whatever --rxq says, and leaves the transmit buffers of a pair it does not serve unused), and
 * BATCHES x BATCH frames on every serving pair at once.
 */
async function mqTraffic(ctx: CheckContext, firstPairOnly: boolean): Promise<MqTraffic> {
  const { nets, enable } = await openNetPairs(ctx, { allPairs: true, firstPairOnly });
  const base = freshSeed();
  const traffic: PairTraffic[] = nets.map((_, pair) => ({
    pair,
    run: (base + pair) >>> 0,
    sent: [],
    backOn: new Map(),
  }));
  const file = filer(traffic);
  if (firstPairOnly) {
    const first = traffic[0]!;
    first.sent.push(...framesOf(first.run, BATCH));
    await nets[0]!.send(first.sent);
    await collect(ctx, nets, BATCH, file);
    const elsewhere = [...first.backOn].filter(([, on]) => on.some((p) => p !== 0));
    if (elsewhere.length) {
      const [sequence, on] = elsewhere[0]!;
      throw new BackendError(
        `with only the first queue pair enabled, ${elsewhere.length} of ${BATCH} frames sent on transmitq1 came ` +
          `back on another receive queue (frame ${sequence} on receiveq${on.find((p) => p !== 0)! + 1}): ` +
          '"After initialization of reset, the device MUST queue packets only on receiveq1"',
      );
    }
    for (let pair = 1; pair < nets.length; pair++) await enable(pair);
    const missing = first.sent.length - first.backOn.size;
    if (missing) {
      // Queued for a receive queue not yet in use, they show up there once it is.
      await collect(ctx, nets, missing, file);
      const late = [...first.backOn].filter(([, on]) => on.some((p) => p !== 0));
      throw new BackendError(
        `with only the first queue pair enabled, ${missing} of ${BATCH} frames sent on transmitq1 did not come ` +
          'back on receiveq1' +
          (late.length
            ? `; ${late.length} came back on receiveq${late[0]![1].find((p) => p !== 0)! + 1} once the other pairs ` +
              'were enabled: "After initialization of reset, the device MUST queue packets only on receiveq1"'
            : ', nor anywhere once the other pairs were enabled'),
      );
    }
    first.sent.length = 0;
    first.backOn.clear();
  }
  const serving: number[] = [];
  for (const [pair, net] of nets.entries()) {
    const probe = testFrame(traffic[pair]!.run, 0xffff_ffff, MIN_FRAME);
    try {
      await net.send([probe], {}, Math.max(quietMs(ctx), 500));
      serving.push(pair);
    } catch (err) {
      if (!(err instanceof TimeoutError)) throw err;
    }
  }
  // The probes come back (or not) before the counted traffic: taken and dropped.
  await sleep(quietMs(ctx));
  for (const net of nets) net.poll();
  if (serving.length < 2) {
    throw new SkipError(
      `of the ${nets.length} queue pairs GET_QUEUE_NUM allows (up to ${MAX_PAIRS} tried), ${serving.length} take frames to transmit`,
    );
  }
  for (let batch = 0; batch < BATCHES; batch++) {
    await Promise.all(
      serving.map((pair) => {
        const t = traffic[pair]!;
        const frames = framesOf(t.run, BATCH, t.sent.length);
        t.sent.push(...frames);
        return nets[pair]!.send(frames);
      }),
    );
    const expected = serving.reduce(
      (n, pair) => n + traffic[pair]!.sent.length - traffic[pair]!.backOn.size,
      0,
    );
    await collect(ctx, nets, expected, file);
  }
  return { tried: nets.length, serving, traffic: serving.map((pair) => traffic[pair]!) };
}

export const netMqChecks = defineChecks('net', [
  {
    id: 'net.mq.pairs',
    detail:
      'with `VIRTIO_NET_F_MQ` offered and negotiated (skipped without it, whatever `GET_QUEUE_NUM` says) and `MQ`: every pair `GET_QUEUE_NUM` allows (up to 4) set up, only the first enabled, 32 frames come back on receiveq1 only ("the device MUST queue packets only on receiveq1"); then every pair enabled (the front-end\'s `SET_VRING_ENABLE` stands for the driver\'s `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`), the pairs that take a probe each send 96 frames at once, every one back intact on some enabled receive queue',
    title:
      'with VIRTIO_NET_F_MQ, frames come back on receiveq1 only until more pairs are enabled; then every pair carries frames, none lost',
    // "After initialization of reset, the device MUST queue packets only on receiveq1." and "The device MUST
    // NOT queue packets on receive queues greater than virtqueue_pairs once it has placed the
    // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in a used buffer." (virtio 1.3, 5.1.6.5.5).
    severity: 'MUST',
    rule: 'virtio spec, Device Requirements: Automatic receive steering in multiqueue mode: "After initialization of reset, the device MUST queue packets only on receiveq1."; and "The device MUST NOT queue packets on receive queues greater than virtqueue_pairs once it has placed the VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET command in a used buffer."',
    spec: STEERING,
    needs: ['net.loopback'],
    async run(ctx) {
      const { tried, serving, traffic } = await mqTraffic(ctx, true);
      for (const t of traffic) {
        const lost = t.sent.length - t.backOn.size;
        const twice = [...t.backOn.values()].filter((on) => on.length > 1).length;
        if (lost || twice) {
          throw new BackendError(
            `of ${t.sent.length} frames sent on transmitq${t.pair + 1} (every pair sending at once), ` +
              `${lost} did not come back${twice ? `, ${twice} came back twice` : ''}`,
          );
        }
      }
      return (
        `${serving.length} queue pairs (of ${tried} tried), ${BATCH} frames on receiveq1 alone first, then ` +
        `${BATCH * BATCHES} frames each at once, every one back intact`
      );
    },
  },
  {
    id: 'net.mq.steering',
    detail:
      'the same traffic with every pair enabled from the start: each frame back on its own pair\'s receive queue ("the device SHOULD cause incoming packets for that flow to be steered to receiveqX")',
    title: "with VIRTIO_NET_F_MQ and every pair enabled, a pair's frames come back on its own receive queue",
    // "After the driver transmitted a packet of a flow on transmitqX, the device SHOULD cause incoming packets
    // for that flow to be steered to receiveqX." (virtio 1.3, 5.1.6.5.5).
    severity: 'SHOULD',
    rule: 'virtio spec, Automatic receive steering in multiqueue mode: "After the driver transmitted a packet of a flow on transmitqX, the device SHOULD cause incoming packets for that flow to be steered to receiveqX."',
    spec: STEERING,
    needs: ['net.mq.pairs'],
    async run(ctx) {
      const { tried, serving, traffic } = await mqTraffic(ctx, false);
      for (const t of traffic) {
        const crossed = [...t.backOn].filter(([, on]) => on.some((p) => p !== t.pair));
        if (crossed.length) {
          const [sequence, on] = crossed[0]!;
          throw new BackendError(
            `${crossed.length} of ${t.sent.length} frames sent on transmitq${t.pair + 1} came back on another ` +
              `receive queue (frame ${sequence} on receiveq${on.find((p) => p !== t.pair)! + 1}), not receiveq${t.pair + 1}`,
          );
        }
        const lost = t.sent.length - t.backOn.size;
        if (lost)
          throw new BackendError(
            `of ${t.sent.length} frames sent on transmitq${t.pair + 1}, ${lost} did not come back`,
          );
      }
      return `${serving.length} queue pairs (of ${tried} tried), ${BATCH * BATCHES} frames each at once, each back on its own pair`;
    },
  },
]);
