/**
 * `vhu-conform compat`: whether a guest started against the source back-end (under a front-end profile) can
 * move to the destination without renegotiating. The front-end keeps what the guest has: the virtio
 * features, the queues and their sizes, the config space; each thing the destination lacks is one reason.
 */
import { UsageError } from '../errors.js';
import { profileNamed } from '../frontend/profiles.js';
import { hasBit, ProtocolFeature, protocolFeatureList } from '../protocol/spec.js';
import { virtioNames } from './features.js';
import type { AbiFingerprint, RingProbeMethod } from './format.js';

export interface CompatResult {
  compatible: boolean;
  frontend: string;
  /** Why the move would break, one line each; empty when compatible. */
  reasons: string[];
  /** What could not be decided (not probed, not read), which does not make the move fail. */
  notes: string[];
}

/** Device types whose device keeps state a move must carry over (open files, for fs): DEVICE_STATE. */
const STATEFUL_TYPES: readonly string[] = ['fs'];

/**
 * Protocol features whose absence on the destination changes what the guest sees when the source's
 * front-end negotiated them: the queue count (MQ), the config space (CONFIG), the MTU (NET_MTU).
 */
const GUEST_VISIBLE_PROTOCOL = [ProtocolFeature.MQ, ProtocolFeature.CONFIG, ProtocolFeature.NET_MTU];

/** How each probing method found a ring size, for notes. */
const METHOD_WORDS: Readonly<Record<RingProbeMethod, string>> = {
  'reply-ack': 'SET_VRING_NUM acknowledged with REPLY_ACK',
  request: 'a request moved through the ring',
};

function bits(set: { hex: string } | null): bigint {
  return set === null ? 0n : BigInt(set.hex);
}

function protocolName(bit: number): string {
  return protocolFeatureList(1n << BigInt(bit))[0]!;
}

/** Throws a usage error when `a` and `b` are of different device types: no guest moves between them. */
export function expectSameType(
  a: { name: string; abi: AbiFingerprint },
  b: { name: string; abi: AbiFingerprint },
) {
  if (a.abi.type !== b.abi.type)
    throw new UsageError(
      `${a.name} is a ${a.abi.type} device and ${b.name} a ${b.abi.type} device: no guest moves between them`,
    );
}

/** The negotiation of `frontend` recorded in `abi`; a usage error when the file has none for it. */
export function negotiationOf(abi: AbiFingerprint, frontend: string, name: string) {
  profileNamed(frontend);
  const found = abi.profiles[frontend];
  if (!found) throw new UsageError(`${name} records no negotiation for the ${frontend} profile`);
  return found;
}

/**
 * What the guest has that the destination cannot give it, one reason a feature: each virtio feature
 * negotiated on the source and not offered by the destination, and each guest-visible protocol feature
 * (MQ, CONFIG, NET_MTU) likewise. `negotiated` is the source's negotiation, `offered` the destination's offer.
 */
export function featuresLacking(
  negotiated: { virtio: bigint; protocol: bigint },
  offered: { virtio: bigint; protocol: bigint },
  type: string,
): string[] {
  const reasons = virtioNames(negotiated.virtio & ~offered.virtio, type).map(
    (name) => `virtio feature ${name}: negotiated on the source, not offered by the destination`,
  );
  for (const bit of GUEST_VISIBLE_PROTOCOL) {
    if (hasBit(negotiated.protocol, bit) && !hasBit(offered.protocol, bit))
      reasons.push(
        `protocol feature ${protocolName(bit)}: negotiated on the source, not offered by the destination`,
      );
  }
  return reasons;
}

export function compareAbi(
  source: AbiFingerprint,
  destination: AbiFingerprint,
  frontend: string,
  names = { source: 'source', destination: 'destination' },
): CompatResult {
  expectSameType({ name: names.source, abi: source }, { name: names.destination, abi: destination });
  const profile = profileNamed(frontend);
  const negotiated = negotiationOf(source, frontend, names.source);
  const reasons: string[] = [];
  const notes: string[] = [];
  const type = source.type;

  const sourceProtocol = bits(negotiated.protocolFeatures);
  const destinationProtocol = bits(destination.protocolFeatures);
  reasons.push(
    ...featuresLacking(
      { virtio: bits(negotiated.virtioFeatures), protocol: sourceProtocol },
      { virtio: bits(destination.virtioFeatures), protocol: destinationProtocol },
      type,
    ),
  );
  if (!hasBit(sourceProtocol, ProtocolFeature.LOG_SHMFD))
    reasons.push(
      `protocol feature LOG_SHMFD: not negotiated on the source, so the ${frontend} front-end cannot log the pages it dirties during the move`,
    );
  if (
    profile.inflight.some((t) => t === type) &&
    hasBit(sourceProtocol, ProtocolFeature.INFLIGHT_SHMFD) &&
    !hasBit(destinationProtocol, ProtocolFeature.INFLIGHT_SHMFD)
  )
    reasons.push(
      'protocol feature INFLIGHT_SHMFD: the source keeps an inflight buffer, the destination does not offer it',
    );
  if (STATEFUL_TYPES.includes(type)) {
    for (const [side, set] of [
      ['source', bits(source.protocolFeatures)],
      ['destination', destinationProtocol],
    ] as const) {
      if (!hasBit(set, ProtocolFeature.DEVICE_STATE))
        reasons.push(
          `protocol feature DEVICE_STATE: not offered by the ${side}, and a ${type} device keeps state the move must carry`,
        );
    }
  }

  if (source.queueCount !== null) {
    if (destination.queueCount === null)
      reasons.push(
        `queue count: the source has ${source.queueCount}, the destination does not say (MQ not offered)`,
      );
    else if (destination.queueCount < source.queueCount)
      reasons.push(
        `queue count: the source has ${source.queueCount}, the destination ${destination.queueCount}`,
      );
  }

  const from = source.ringSizes;
  const to = destination.ringSizes;
  if (from.status === 'probed' && to.status === 'probed') {
    if (from.method !== to.method)
      notes.push(
        `ring sizes of the source found by ${METHOD_WORDS[from.method]}, of the destination by ` +
          `${METHOD_WORDS[to.method]}: a size acknowledged need not be one the back-end serves`,
      );
    from.maxPerQueue.forEach((size, queue) => {
      const there = to.maxPerQueue[queue];
      if (size === null) return;
      if (there === null)
        notes.push(
          `ring size of queue ${queue}: the source accepts ${size} entries, the destination's was not measured`,
        );
      else if (there === undefined)
        reasons.push(
          `ring size of queue ${queue}: the source accepts ${size} entries, the destination has no such queue`,
        );
      else if (there < size)
        reasons.push(
          `ring size of queue ${queue}: the source accepts ${size} entries, the destination at most ${there}`,
        );
    });
  } else {
    for (const [side, sizes] of [
      ['source', from],
      ['destination', to],
    ] as const)
      if (sizes.status === 'not-probed') notes.push(`ring sizes of the ${side} not probed: ${sizes.reason}`);
  }

  if (
    source.maxMemSlots !== null &&
    destination.maxMemSlots !== null &&
    destination.maxMemSlots < source.maxMemSlots
  )
    notes.push(
      `memory slots: the source takes ${source.maxMemSlots}, the destination ${destination.maxMemSlots} (a guest with more regions cannot move)`,
    );

  if (source.config.status === 'read') {
    if (destination.config.status !== 'read')
      reasons.push(`config space: the destination's was not read (${destination.config.reason})`);
    else {
      const there = destination.config.fields;
      const here = source.config.fields;
      for (const field of [...new Set([...Object.keys(here), ...Object.keys(there)])].sort()) {
        if (here[field] !== there[field])
          reasons.push(
            `config field ${field}: source ${show(here[field])}, destination ${show(there[field])}`,
          );
      }
    }
  } else notes.push(`config space of the source not read: ${source.config.reason}`);

  return { compatible: reasons.length === 0, frontend, reasons, notes };
}

function show(value: number | string | undefined): string {
  return value === undefined ? '(absent)' : JSON.stringify(value);
}
