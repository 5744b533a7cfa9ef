/**
 * `vhu-conform compat --common`: the compatibility mode of a set of hosts, as CPU models are compared: the
 * virtio features, queue count and ring size every one of them supports (what a management layer masks a
 * guest to so that it can move between any two), and which host limits each item.
 */
import { UsageError } from '../errors.js';
import { expectSameType, negotiationOf } from './compat.js';
import { virtioFeatureSet, virtioNames } from './features.js';
import type { AbiFingerprint, FeatureSet } from './format.js';

export interface Host {
  name: string;
  abi: AbiFingerprint;
}

/** A common value and the hosts that set it (those with the lowest); hosts that do not say are `unknown`. */
export interface Limit {
  value: number | null;
  limitedBy: string[];
  unknown: string[];
}

export interface CommonMode {
  type: string;
  frontend: string;
  hosts: string[];
  /** Features the profile negotiates on every host. */
  virtioFeatures: FeatureSet;
  /** Each feature negotiated on some hosts but not all, with the hosts that lack it. */
  dropped: Array<{ feature: string; lackedBy: string[] }>;
  queueCount: Limit;
  /** The ring size every queue of every host accepts. */
  ringSize: Limit;
  maxMemSlots: Limit;
}

function lowest(hosts: readonly Host[], value: (abi: AbiFingerprint) => number | null): Limit {
  const known = hosts.flatMap((h) => {
    const v = value(h.abi);
    return v === null ? [] : [{ name: h.name, v }];
  });
  const unknown = hosts.filter((h) => value(h.abi) === null).map((h) => h.name);
  if (!known.length) return { value: null, limitedBy: [], unknown };
  const min = Math.min(...known.map((k) => k.v));
  return { value: min, limitedBy: known.filter((k) => k.v === min).map((k) => k.name), unknown };
}

export function commonMode(hosts: readonly Host[], frontend: string): CommonMode {
  if (hosts.length < 2) throw new UsageError('compat --common needs two ABI files or more');
  for (const host of hosts.slice(1)) expectSameType(hosts[0]!, host);
  const type = hosts[0]!.abi.type;
  const sets = hosts.map((h) => ({
    name: h.name,
    bits: BigInt(negotiationOf(h.abi, frontend, h.name).virtioFeatures.hex),
  }));
  const all = sets.reduce((acc, s) => acc & s.bits, 0xffff_ffff_ffff_ffffn);
  const any = sets.reduce((acc, s) => acc | s.bits, 0n);
  const dropped: CommonMode['dropped'] = [];
  for (let n = 0; n < 64; n++) {
    const bit = 1n << BigInt(n);
    if ((any & ~all & bit) === 0n) continue;
    dropped.push({
      feature: virtioNames(bit, type)[0]!,
      lackedBy: sets.filter((s) => (s.bits & bit) === 0n).map((s) => s.name),
    });
  }
  return {
    type,
    frontend,
    hosts: hosts.map((h) => h.name),
    virtioFeatures: virtioFeatureSet(all, type),
    dropped,
    queueCount: lowest(hosts, (abi) => abi.queueCount),
    ringSize: lowest(hosts, (abi) => {
      if (abi.ringSizes.status !== 'probed') return null;
      // Queues not measured (null, by request: a net device's receive queues) do not bound it.
      const sizes: ReadonlyArray<number | null> = abi.ringSizes.maxPerQueue;
      const measured = sizes.filter((n): n is number => n !== null);
      return measured.length ? Math.min(...measured) : null;
    }),
    maxMemSlots: lowest(hosts, (abi) => abi.maxMemSlots),
  };
}

/** The common mode as lines for people. */
export function formatCommonMode(mode: CommonMode): string {
  const limit = (what: string, l: Limit) =>
    `${what}: ${l.value ?? 'unknown'}${l.limitedBy.length ? ` (limited by ${l.limitedBy.join(', ')})` : ''}${
      l.unknown.length ? `; not known for ${l.unknown.join(', ')}` : ''
    }\n`;
  return [
    `common mode of ${mode.hosts.length} ${mode.type} hosts under the ${mode.frontend} profile\n`,
    `virtio features: ${mode.virtioFeatures.hex} ${mode.virtioFeatures.names.join(' ')}\n`,
    ...mode.dropped.map((d) => `  without ${d.feature} (lacked by ${d.lackedBy.join(', ')})\n`),
    limit('queue count', mode.queueCount),
    limit('ring size', mode.ringSize),
    limit('memory slots', mode.maxMemSlots),
  ].join('');
}
