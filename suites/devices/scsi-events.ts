/**
 * virtio-scsi's event queue (virtio spec, SCSI Host Device, Device Operation: eventq): the driver keeps
 * buffers there for the device to report events on its logical units. Without hot-plug nothing happens on
 * the bus while a check runs, so no event is due; what a back-end can be held to is what it must not send:
 * a LUN removed or rescanned (VIRTIO_SCSI_T_TRANSPORT_RESET with REMOVED or RESCAN) unless
 * VIRTIO_SCSI_F_HOTPLUG was negotiated, which the harness never acks; and an event it sends is written as
 * its used.len says. Every event that comes is reported, decoded.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  decodeEvent,
  describeEvent,
  EVENT_SIZE,
  ScsiQueue,
  testUnitReadyCdb,
  VirtioScsiEventType,
  VirtioScsiResetReason,
} from '../../harness/devices/scsi/scsi.js';
import { BackendError } from '../../harness/errors.js';
import { type CheckContext, defineChecks } from '../../harness/runner/check.js';
import { openScsi } from '../common/scsi.js';
import { quietMs } from '../vring/common.js';
import { answer, command } from './scsi.js';

/** Event buffers posted: the 10-15 the spec calls sufficient, less a few, as no event is due. */
const EVENT_BUFFERS = 8;

const EVENTQ = 'virtio spec, SCSI Host Device, Device Operation: eventq';
const HOTPLUG_RULE =
  `${EVENTQ}: "The device MUST NOT send VIRTIO_SCSI_T_TRANSPORT_RESET messages with reason set to ` +
  'VIRTIO_SCSI_EVT_RESET_REMOVED or VIRTIO_SCSI_EVT_RESET_RESCAN unless VIRTIO_SCSI_F_HOTPLUG was negotiated."; ' +
  'and virtio spec, Device Requirements: The Virtqueue Used Ring: "The device MUST write at least len bytes to ' +
  'descriptor, beginning at the first device-writable buffer, prior to updating the used idx."';

/** What became of the event buffers: the events the device used them for, judged; or none. */
async function eventsAfterCommands(ctx: CheckContext): Promise<string> {
  const { scsi, device, config } = await openScsi(ctx, { config: true });
  // "SHOULD be at least event_info_size bytes long, and MUST be at least the size of struct virtio_scsi_event."
  const size = Math.max(EVENT_SIZE, config?.eventInfoSize ?? 0);
  const eventq = device.ring(ScsiQueue.EVENT);
  const memory = device.memory;
  for (let i = 0; i < EVENT_BUFFERS; i++) {
    const gpa = memory.alloc(size, 16);
    memory.fillGuard(gpa, size);
    eventq.queue.addRequest([{ gpa, len: size, write: true }], { token: gpa });
  }
  eventq.notify();
  // Commands that change nothing on the bus: no event is due for them.
  const tur = await command(scsi, testUnitReadyCdb());
  await sleep(quietMs(ctx));
  eventq.drainCalls();
  const used = eventq.takeUsed();
  const posted = `${EVENT_BUFFERS} event buffers of ${size} bytes on the eventq (VIRTIO_SCSI_F_HOTPLUG not negotiated), TEST UNIT READY on target 0 LUN 0 (${answer(tur)})`;
  if (!used.length) return `${posted}: no event within ${quietMs(ctx)} ms, none being due`;
  const seen: string[] = [];
  for (const u of used) {
    const gpa = u.token as bigint;
    if (u.len > size)
      throw new BackendError(
        `${posted}: an event buffer used with used.len ${u.len}, more than its ${size} bytes: not all written`,
      );
    // checkGuard lists the bytes that no longer hold guard bytes: none, and nothing was written there.
    if (u.len > 0 && memory.checkGuard(gpa, Math.min(u.len, EVENT_SIZE)).length === 0)
      throw new BackendError(
        `${posted}: an event buffer used with used.len ${u.len}, yet its first bytes are the driver's guard bytes: not written`,
      );
    const event = decodeEvent(memory.read(gpa, EVENT_SIZE));
    const what = `${describeEvent(event)} (used.len ${u.len})`;
    if (
      event.type === VirtioScsiEventType.TRANSPORT_RESET &&
      (event.reason === VirtioScsiResetReason.REMOVED || event.reason === VirtioScsiResetReason.RESCAN)
    )
      throw new BackendError(
        `${posted}: the device sent ${what}, a logical unit removed or rescanned, though VIRTIO_SCSI_F_HOTPLUG was not negotiated`,
      );
    seen.push(what);
  }
  return `${posted}: ${seen.length} event${seen.length === 1 ? '' : 's'}: ${seen.join('; ')}`;
}

export const scsiEventChecks = defineChecks('scsi', [
  {
    id: 'scsi.eventq',
    detail: `(scsi) ${EVENT_BUFFERS} device-writable buffers of \`event_info_size\` bytes (16 at least, struct virtio_scsi_event) posted on the eventq and kicked, VIRTIO_SCSI_F_HOTPLUG never acked, a TEST UNIT READY on target 0 LUN 0, then a quiet window: no event is due, and none may be a VIRTIO_SCSI_T_TRANSPORT_RESET with VIRTIO_SCSI_EVT_RESET_REMOVED or _RESCAN; an event used is written as its used.len says (no more than the buffer, not the driver's guard bytes); each one that comes is reported, decoded (type, EVENTS_MISSED, lun, reason)`,
    title:
      'event buffers on the eventq: no LUN removed or rescanned without VIRTIO_SCSI_F_HOTPLUG, every event written as used.len says',
    severity: 'MUST',
    rule: HOTPLUG_RULE,
    spec: 'virtio-spec#sec-device-types-scsi-host-device-device-operation-device-operation-eventq',
    needs: ['scsi.test-unit-ready'],
    run: eventsAfterCommands,
  },
]);
