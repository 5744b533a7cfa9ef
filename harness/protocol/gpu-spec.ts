/**
 * Spec tables of the two protocols a vhost-user gpu back-end speaks besides vhost-user itself:
 * - the vhost-user-gpu protocol (QEMU docs/interop/vhost-user-gpu.rst), on the socket the front-end hands over
 *   with VHOST_USER_GPU_SET_SOCKET: the back-end sends requests, the front-end (the display) replies to some;
 * - the virtio-gpu device (virtio spec, "GPU Device"), whose commands travel on the control and cursor queues.
 * Numbers on the vhost-user-gpu socket are in native byte order, virtio-gpu structures are little-endian;
 * vhu-conform supports little-endian hosts only, so both are read and written little-endian.
 */

/** vhost-user-gpu requests (back-end -> front-end), "Message types" in vhost-user-gpu.rst. */
export const GpuRequest = {
  GET_PROTOCOL_FEATURES: 1, // reply: u64
  SET_PROTOCOL_FEATURES: 2, // no reply
  GET_DISPLAY_INFO: 3, // reply: struct virtio_gpu_resp_display_info
  CURSOR_POS: 4,
  CURSOR_POS_HIDE: 5,
  CURSOR_UPDATE: 6,
  SCANOUT: 7,
  UPDATE: 8,
  DMABUF_SCANOUT: 9, // the DMABUF fd in the ancillary data (none when disabling)
  DMABUF_UPDATE: 10, // reply: empty payload, once the display presented the update
  GET_EDID: 11, // reply: struct virtio_gpu_resp_edid; with PROTOCOL_F_EDID
  DMABUF_SCANOUT2: 12, // DMABUF_SCANOUT plus a u64 modifier; with PROTOCOL_F_DMABUF2
} as const;
export type GpuRequestName = keyof typeof GpuRequest;

/** vhost-user-gpu protocol feature bits (VHOST_USER_GPU_PROTOCOL_F_*). */
export const GpuProtocolFeature = {
  EDID: 0,
  DMABUF2: 1,
} as const;

/** Header flags: "Bit 2 is the reply flag - needs to be set on each reply". */
export const GPU_FLAG_REPLY = 0x4;

/** Payload sizes of vhost-user-gpu messages (packed structures). */
export const GpuPayloadSize = {
  CURSOR_POS: 12, // scanout_id, x, y
  CURSOR_UPDATE: 12 + 8 + 64 * 64 * 4, // pos, hot_x, hot_y, 64x64 a8r8g8b8
  SCANOUT: 12, // scanout_id, width, height
  UPDATE_HEADER: 20, // scanout_id, x, y, width, height, then the pixels
  DMABUF_SCANOUT: 40, // scanout_id, x, y, w, h, fd_width, fd_height, fd_stride, fd_flags, fd_drm_fourcc
  DMABUF_SCANOUT2: 48, // DMABUF_SCANOUT, u64 modifier
  EDID_REQUEST: 4, // scanout_id
} as const;

/** The cursor image of CURSOR_UPDATE: 64 x 64 pixels. */
export const CURSOR_SIZE = 64;

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

const gpuRequestNames = reverse(GpuRequest);
const ctrlTypeNames = reverse(VirtioGpuCtrlType);
const formatNames = reverse(VirtioGpuFormat);

export function gpuRequestName(request: number): string {
  return gpuRequestNames.get(request) ?? `UNKNOWN(${request})`;
}

/** `0x1203 (RESP_ERR_INVALID_RESOURCE_ID)`, or the number alone with a note. */
export function ctrlTypeName(type: number): string {
  const name = ctrlTypeNames.get(type);
  return `0x${type.toString(16)} (${name ?? 'not a VIRTIO_GPU_* type'})`;
}

export function formatName(format: number): string {
  return formatNames.get(format) ?? `format ${format}`;
}
