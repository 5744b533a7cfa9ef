/**
 * A recording (test/frontends/record.ts) in the words of the recording back-end of the profile tests
 * (harness/frontend/testing.ts): the front-end's messages on the vhost-user socket, phase by phase, as log
 * entries (`SET_VRING_CALL 0`, `SET_VRING_ENABLE 0=1`, `SET_STATUS=8`, `GET_INFLIGHT_FD 1x128`) with their
 * need_reply bit, less what the guest driver decides rather than the front-end. Also what the recorded
 * back-end offered and what the front-end acknowledged, to play a profile against the same offers.
 */
import type { Offers, Sent } from '../../harness/frontend/testing.js';
import type { Phase, Recording } from './record.js';
import type { RecordedMessage } from './relay.js';

/** One recorded message as a log entry of the recording back-end. */
function entry(m: RecordedMessage): string {
  const f = m.fields ?? {};
  let text = m.request;
  if (f.index !== undefined) text += ` ${f.index}`;
  if (m.request === 'SET_VRING_ENABLE') text += `=${f.num}`;
  if (m.request === 'SET_STATUS') text += `=${BigInt(String(f.value))}`;
  if (m.request === 'GET_INFLIGHT_FD') text += ` ${f.numQueues}x${f.queueSize}`;
  return text;
}

/**
 * What the guest driver decides, left out: GET_CONFIG (QEMU's vhost-user-blk reads the config space when
 * the device is realized and again on guest reads; a profile leaves config reads to the check, as the guest
 * drives them), and a run of SET_VRING_ENABLE repeated back to back (QEMU 7.2's virtio-net enables the
 * pair again at every guest reset and feature write, virtio_net_set_queue_pairs -> peer_attach; how many
 * depends on the firmware: kept once).
 */
function withoutGuestChoices(sent: Sent): Sent {
  const keep = sent.log.map((e) => !e.startsWith('GET_CONFIG'));
  const log = sent.log.filter((_, i) => keep[i]);
  const needReply = sent.needReply.filter((_, i) => keep[i]);
  const out: Sent = { log: [], needReply: [] };
  for (let i = 0; i < log.length; ) {
    let skip = 0;
    for (let n = 1; n <= 8 && !skip; n++) {
      const run = log.slice(i, i + n);
      const next = log.slice(i + n, i + 2 * n);
      if (
        run.length === n &&
        run.every((e) => e.startsWith('SET_VRING_ENABLE')) &&
        run.join() === next.join()
      )
        skip = n;
    }
    if (skip) {
      i += skip;
      continue;
    }
    out.log.push(log[i]!);
    out.needReply.push(needReply[i]!);
    i++;
  }
  return out;
}

/**
 * `sent` with a run of ADD_MEM_REG as one: a front-end sends one per region of guest memory, and how many
 * regions there are is the machine's (QEMU's recorded guest has one, the harness's devices three).
 */
export function memoryAsOne(sent: Sent): Sent {
  const keep = sent.log.map((e, i) => !(e === 'ADD_MEM_REG' && sent.log[i - 1] === 'ADD_MEM_REG'));
  return { log: sent.log.filter((_, i) => keep[i]), needReply: sent.needReply.filter((_, i) => keep[i]) };
}

/** The front-end's messages of `phase` (to the next phase, or the end). */
export function recordedPhase(recording: Recording, phase: Phase): Sent {
  const order: Phase[] = ['start', 'stop', 'restart', 'quit'];
  const next = order[order.indexOf(phase) + 1];
  const end = next ? recording.phases[next] : recording.messages.length;
  const sent = recording.messages
    .slice(recording.phases[phase], end)
    .filter((m) => m.channel === 'main' && m.from === 'front');
  return withoutGuestChoices({ log: sent.map(entry), needReply: sent.map((m) => m.needReply) });
}

/** The u64 value of the first message of `request` from `from`, if any. */
function firstValue(
  recording: Recording,
  request: string,
  from: RecordedMessage['from'],
): bigint | undefined {
  const m = recording.messages.find((x) => x.request === request && x.from === from && x.fields?.value);
  return m ? BigInt(String(m.fields?.value)) : undefined;
}

/** What the recorded back-end offered, what the front-end acknowledged, and the rings it set up. */
export function recordedDeal(recording: Recording): {
  offers: Offers;
  /** SET_PROTOCOL_FEATURES. */
  protocol: bigint | undefined;
  /** The first SET_FEATURES (the guest's choice among what the front-end passed on). */
  features: bigint | undefined;
  /** Rings: as many as the highest index SET_VRING_CALL names, of the size SET_VRING_NUM gave. */
  rings: { count: number; size: number };
  /** Whether the device was started (a SET_VRING_KICK was sent). */
  started: boolean;
} {
  const offers: Offers = {
    features: firstValue(recording, 'GET_FEATURES', 'back') ?? 0n,
    protocol: firstValue(recording, 'GET_PROTOCOL_FEATURES', 'back') ?? 0n,
    queueNum: firstValue(recording, 'GET_QUEUE_NUM', 'back') ?? 1n,
    maxMemSlots: firstValue(recording, 'GET_MAX_MEM_SLOTS', 'back') ?? 8n,
  };
  const indices = recording.messages
    .filter((m) => m.request === 'SET_VRING_CALL' && m.from === 'front')
    .map((m) => Number(m.fields?.index));
  const num = recording.messages.find((m) => m.request === 'SET_VRING_NUM');
  return {
    offers,
    protocol: firstValue(recording, 'SET_PROTOCOL_FEATURES', 'front'),
    features: firstValue(recording, 'SET_FEATURES', 'front'),
    rings: { count: Math.max(...indices) + 1, size: Number(num?.fields?.num ?? 128) },
    started: recording.messages.some((m) => m.request === 'SET_VRING_KICK'),
  };
}
