/**
 * The ring layout and ring features a check drives a device with (split or packed rings, indirect tables,
 * event suppression by index): their feature bits, and the skip that names those the back-end does not
 * offer. What the `open*` helpers of every device share.
 */
import { SkipError } from '../../harness/errors.js';
import { hasBit, VirtioFeature } from '../../harness/protocol/spec.js';

/** The ring layout and features a check asks for; each one not offered skips the check. */
export interface RingChoice {
  /** VIRTIO_F_RING_PACKED: every ring of the device in the packed layout. */
  packed?: boolean;
  /** VIRTIO_RING_F_EVENT_IDX. */
  eventIdx?: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC. */
  indirect?: boolean;
}

/** A feature bit a check needs, with its name for the skip. */
export type WantedFeature = readonly [bit: number, name: string];

/** The features of `choice`, in the order a skip names them. */
export function ringFeatures(choice: RingChoice): WantedFeature[] {
  const wanted: WantedFeature[] = [];
  if (choice.packed) wanted.push([VirtioFeature.VIRTIO_F_RING_PACKED, 'VIRTIO_F_RING_PACKED']);
  if (choice.eventIdx) wanted.push([VirtioFeature.VIRTIO_RING_F_EVENT_IDX, 'VIRTIO_RING_F_EVENT_IDX']);
  if (choice.indirect)
    wanted.push([VirtioFeature.VIRTIO_RING_F_INDIRECT_DESC, 'VIRTIO_RING_F_INDIRECT_DESC']);
  return wanted;
}

/** The bits of `wanted`; a SkipError naming every one `offered` lacks. */
export function requireOffered(offered: bigint, wanted: readonly WantedFeature[]): bigint {
  const missing = wanted.filter(([bit]) => !hasBit(offered, bit)).map(([, name]) => name);
  if (missing.length)
    throw new SkipError(`${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not offered`);
  return wanted.reduce((acc, [bit]) => acc | (1n << BigInt(bit)), 0n);
}
