/**
 * Spec tables of the virtio-gpu device (virtio spec, "GPU Device"), whose commands travel on the control and
 * cursor queues; its structures are little-endian. The vhost-user-gpu socket protocol the back-end speaks to
 * the display is harness/protocol/gpu-spec.ts.
 */

/** virtio-gpu control types: commands (0x1xx 2D, 0x2xx 3D, 0x3xx cursor) and responses (0x11xx ok, 0x12xx errors). */
export const VirtioGpuCtrlType = {
  CMD_GET_DISPLAY_INFO: 0x0100,
  CMD_RESOURCE_CREATE_2D: 0x0101,
  CMD_RESOURCE_UNREF: 0x0102,
  CMD_SET_SCANOUT: 0x0103,
  CMD_RESOURCE_FLUSH: 0x0104,
  CMD_TRANSFER_TO_HOST_2D: 0x0105,
  CMD_RESOURCE_ATTACH_BACKING: 0x0106,
  CMD_RESOURCE_DETACH_BACKING: 0x0107,
  CMD_GET_CAPSET_INFO: 0x0108,
  CMD_GET_CAPSET: 0x0109,
  CMD_GET_EDID: 0x010a,
  CMD_RESOURCE_ASSIGN_UUID: 0x010b,
  CMD_RESOURCE_CREATE_BLOB: 0x010c,
  CMD_SET_SCANOUT_BLOB: 0x010d,
  CMD_UPDATE_CURSOR: 0x0300,
  CMD_MOVE_CURSOR: 0x0301,
  RESP_OK_NODATA: 0x1100,
  RESP_OK_DISPLAY_INFO: 0x1101,
  RESP_OK_CAPSET_INFO: 0x1102,
  RESP_OK_CAPSET: 0x1103,
  RESP_OK_EDID: 0x1104,
  RESP_OK_RESOURCE_UUID: 0x1105,
  RESP_OK_MAP_INFO: 0x1106,
  RESP_ERR_UNSPEC: 0x1200,
  RESP_ERR_OUT_OF_MEMORY: 0x1201,
  RESP_ERR_INVALID_SCANOUT_ID: 0x1202,
  RESP_ERR_INVALID_RESOURCE_ID: 0x1203,
  RESP_ERR_INVALID_CONTEXT_ID: 0x1204,
  RESP_ERR_INVALID_PARAMETER: 0x1205,
} as const;
export type VirtioGpuCtrlTypeName = keyof typeof VirtioGpuCtrlType;

/** virtio_gpu_ctrl_hdr.flags bits. */
export const VirtioGpuFlag = {
  FENCE: 1 << 0, // the response echoes fence_id once the command's work is done
  INFO_RING_IDX: 1 << 1, // ring_idx is valid (VIRTIO_GPU_F_CONTEXT_INIT)
} as const;

/** Device feature bits (VIRTIO_GPU_F_*). */
export const VirtioGpuFeature = {
  VIRGL: 0,
  EDID: 1,
  RESOURCE_UUID: 2,
  RESOURCE_BLOB: 3,
  CONTEXT_INIT: 4,
} as const;

/**
 * Pixel formats of RESOURCE_CREATE_2D (enum virtio_gpu_formats). Each name gives the order of the bytes in
 * memory: B8G8R8A8 is blue, green, red, alpha at increasing addresses.
 */
export const VirtioGpuFormat = {
  B8G8R8A8_UNORM: 1,
  B8G8R8X8_UNORM: 2,
  A8R8G8B8_UNORM: 3,
  X8R8G8B8_UNORM: 4,
  R8G8B8A8_UNORM: 67,
  X8B8G8R8_UNORM: 68,
  A8B8G8R8_UNORM: 121,
  R8G8B8X8_UNORM: 134,
} as const;
export type VirtioGpuFormatName = keyof typeof VirtioGpuFormat;

/** VIRTIO_GPU_MAX_SCANOUTS: the pmodes of a display info, and the scanout ids that exist at most. */
export const VIRTIO_GPU_MAX_SCANOUTS = 16;

/** Sizes of virtio-gpu structures. */
export const VirtioGpuSize = {
  CTRL_HDR: 24, // le32 type, le32 flags, le64 fence_id, le32 ctx_id, u8 ring_idx, u8 padding[3]
  RECT: 16, // le32 x, y, width, height
  DISPLAY_ONE: 24, // rect, le32 enabled, le32 flags
  RESP_DISPLAY_INFO: 24 + 16 * 24,
  RESOURCE_CREATE_2D: 24 + 16, // resource_id, format, width, height
  RESOURCE_UNREF: 24 + 8, // resource_id, padding
  SET_SCANOUT: 24 + 16 + 8, // rect, scanout_id, resource_id
  RESOURCE_FLUSH: 24 + 16 + 8, // rect, resource_id, padding
  TRANSFER_TO_HOST_2D: 24 + 16 + 16, // rect, le64 offset, resource_id, padding
  RESOURCE_ATTACH_BACKING: 24 + 8, // resource_id, nr_entries; then the entries
  MEM_ENTRY: 16, // le64 addr, le32 length, le32 padding
  RESOURCE_DETACH_BACKING: 24 + 8,
  GET_EDID: 24 + 8, // scanout, padding
  RESP_EDID: 24 + 8 + 1024, // size, padding, edid[1024]
  UPDATE_CURSOR: 24 + 16 + 16, // cursor_pos {scanout_id, x, y, padding}, resource_id, hot_x, hot_y, padding
  CONFIG: 16, // le32 events_read, events_clear, num_scanouts, num_capsets
} as const;

/** The queues of a virtio-gpu device. */
export const GpuQueue = {
  CONTROL: 0,
  CURSOR: 1,
} as const;

function reverse<T extends Record<string, number>>(table: T): Map<number, keyof T & string> {
  const names = new Map<number, keyof T & string>();
  for (const [name, value] of Object.entries(table)) names.set(value, name as keyof T & string);
  return names;
}

const ctrlTypeNames = reverse(VirtioGpuCtrlType);
const formatNames = reverse(VirtioGpuFormat);

/** `0x1203 (RESP_ERR_INVALID_RESOURCE_ID)`, or the number alone with a note. */
export function ctrlTypeName(type: number): string {
  const name = ctrlTypeNames.get(type);
  return `0x${type.toString(16)} (${name ?? 'not a VIRTIO_GPU_* type'})`;
}

export function formatName(format: number): string {
  return formatNames.get(format) ?? `format ${format}`;
}
