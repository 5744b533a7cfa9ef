/** Feature sets in the fingerprint: hex and names, and what each front-end profile negotiates from an offer. */
import { ackFeatures, PROFILES, protocolMaskFor, virtioFeatureList } from '../frontend/profiles.js';
import { hasBit, protocolFeatureList, VirtioFeature } from '../protocol/spec.js';
import { type FeatureSet, featureHex, type ProfileNegotiation } from './format.js';

export function virtioFeatureSet(bits: bigint, type: string): FeatureSet {
  return { hex: featureHex(bits), names: virtioFeatureList(bits, type) };
}

export function protocolFeatureSet(bits: bigint): FeatureSet {
  return { hex: featureHex(bits), names: protocolFeatureList(bits) };
}

/** Names of the virtio feature bits in `bits`, for messages. */
export function virtioNames(bits: bigint, type: string): string[] {
  return virtioFeatureList(bits, type);
}

/**
 * What each profile negotiates with a back-end offering `offered` (and `protocolOffered`, null without bit
 * 30): the virtio features its front-end passes on to a guest driver that takes them all, and the protocol
 * features it acknowledges. VHOST_F_LOG_ALL is left out: a front-end sets it only while it logs dirty pages.
 */
export function profileNegotiations(
  offered: bigint,
  protocolOffered: bigint | null,
  type: string,
): Record<string, ProfileNegotiation> {
  const device = type;
  const out: Record<string, ProfileNegotiation> = {};
  for (const profile of PROFILES) {
    const protocol =
      profile.protocolFeatures &&
      protocolOffered !== null &&
      hasBit(offered, VirtioFeature.VHOST_USER_F_PROTOCOL_FEATURES);
    const virtio =
      ackFeatures({ profile, device, offered, protocol }, offered) &
      ~(1n << BigInt(VirtioFeature.VHOST_F_LOG_ALL));
    const acked = protocol ? (protocolOffered ?? 0n) & protocolMaskFor(profile, device) : 0n;
    out[profile.name] = {
      virtioFeatures: virtioFeatureSet(virtio, type),
      protocolFeatures: protocolFeatureSet(acked),
    };
  }
  return out;
}
