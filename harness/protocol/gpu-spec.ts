/**
 * Spec tables of the vhost-user-gpu protocol (QEMU docs/interop/vhost-user-gpu.rst), on the socket the
 * front-end hands over with VHOST_USER_GPU_SET_SOCKET: the back-end sends requests, the front-end (the
 * display) replies to some. Numbers on it are in native byte order; vhu-conform supports little-endian hosts
 * only, so they are read and written little-endian. The virtio-gpu device's own tables (the commands on its
 * queues) are harness/devices/gpu/spec.ts.
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

const gpuRequestNames = new Map(Object.entries(GpuRequest).map(([name, value]) => [value as number, name]));

export function gpuRequestName(request: number): string {
  return gpuRequestNames.get(request) ?? `UNKNOWN(${request})`;
}
