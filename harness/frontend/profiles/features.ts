/** The feature bit sets several front-end profiles are made of. */
import { VirtioBlkFeature } from '../../devices/block/blk.js';
import { VirtioNetFeature } from '../../devices/net/net.js';
import { VirtioFeature } from '../../protocol/spec.js';
import { bits } from '../profile.js';

/** Device-specific virtio feature bits 0-23 and 50-63 (crosvm's VIRTIO_DEVICE_TYPE_SPECIFIC_FEATURES_MASK). */
export const DEVICE_SPECIFIC = 0xfffc_0000_00ff_ffffn;
export const F = VirtioFeature;
export const NOTIFICATION_DATA = 38;
export const RING_RESET = 40;
export const ORDER_PLATFORM = 36;
export const ANY_LAYOUT = 27;
export const NET_GSO = 6;
export const NET_GUEST_USO4 = 54;
export const NET_GUEST_USO6 = 55;
export const NET_HOST_USO = 56;
export const NET_HASH_REPORT = 57;
export const NET_RSS = 60;
export const NET_RSC_EXT = 61;
export const N = VirtioNetFeature;
export const B = VirtioBlkFeature;

/** The blk feature bits every front-end here lets through. */
export const BLK_BITS = bits(
  B.SIZE_MAX,
  B.SEG_MAX,
  B.GEOMETRY,
  B.RO,
  B.BLK_SIZE,
  B.FLUSH,
  B.TOPOLOGY,
  B.CONFIG_WCE,
  B.DISCARD,
  B.WRITE_ZEROES,
);
/** The net offloads QEMU and cloud-hypervisor let through. */
export const NET_OFFLOADS = bits(
  N.CSUM,
  N.GUEST_CSUM,
  N.GUEST_TSO4,
  N.GUEST_TSO6,
  N.GUEST_ECN,
  N.GUEST_UFO,
  N.HOST_TSO4,
  N.HOST_TSO6,
  N.HOST_ECN,
  N.HOST_UFO,
  N.MRG_RXBUF,
);
/** The transport bits of QEMU's user_feature_bits lists (hw/net/vhost_net.c, hw/virtio/vhost-user-fs.c). */
export const QEMU_TRANSPORT = bits(
  F.VIRTIO_F_NOTIFY_ON_EMPTY,
  F.VIRTIO_RING_F_INDIRECT_DESC,
  F.VIRTIO_RING_F_EVENT_IDX,
  F.VIRTIO_F_VERSION_1,
  F.VIRTIO_F_ACCESS_PLATFORM,
  F.VIRTIO_F_RING_PACKED,
  F.VIRTIO_F_IN_ORDER,
  RING_RESET,
);
