/**
 * A device type's config space (virtio spec, each device's "Device configuration layout") as the harness
 * knows it: its size, a read-only field a guest reads at an offset other than 0, the guest-visible fields a
 * migration must keep; and the one way the drivers read it whole, GET_CONFIG.
 */
import { BackendError } from '../errors.js';
import { hasBit, ProtocolFeature } from '../protocol/spec.js';
import type { FrontendSession } from '../transport/session.js';

/** A field of the config space, by the virtio spec's name. */
export interface ConfigField {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface ConfigSpace {
  /** The struct's name in the virtio spec ("virtio_blk_config"), for messages. */
  readonly struct: string;
  /** Its size: the bytes GET_CONFIG asks for. */
  readonly size: number;
  /** A field at an offset other than 0, as a guest reads one alone: what partial reads ask for. */
  readonly field?: ConfigField;
  /** A field only the device writes: what a driver's write must not change. */
  readonly readOnly?: ConfigField;
  /**
   * The guest-visible fields a move must keep, by the spec's names; 64-bit values as decimal strings. Fields
   * the device changes at run time (events_read, net status, blk writeback) are left out: they differ between
   * two hosts without a guest noticing.
   */
  fields(bytes: Buffer): Record<string, number | string>;
}

/**
 * The whole config space by GET_CONFIG: its bytes. An empty reply (the back-end's error) is a BackendError,
 * a reply of another size a ProtocolError (FrontendSession.getConfig). Needs PROTOCOL_F_CONFIG negotiated.
 */
export async function readConfigSpace(session: FrontendSession, space: ConfigSpace): Promise<Buffer> {
  if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG)) {
    throw new Error(`reading ${space.struct} needs VHOST_USER_PROTOCOL_F_CONFIG negotiated`);
  }
  const bytes = await session.getConfig(space.size, 0, `the ${space.size}-byte ${space.struct}`);
  if (!bytes)
    throw new BackendError(`GET_CONFIG of the ${space.size}-byte ${space.struct} answered an error`);
  return bytes;
}
