/** The device kinds generic checks drive, by vhost-user.json type (see kind.ts). */
import { blockKind } from './block/index.js';
import { fsKind } from './fs/index.js';
import { gpuKind } from './gpu/index.js';
import { inputKind } from './input/index.js';
import type { DeviceKind } from './kind.js';
import { netKind } from './net/index.js';
import { scsiKind } from './scsi/index.js';

const KINDS: ReadonlyMap<string, DeviceKind> = new Map(
  [blockKind, netKind, fsKind, gpuKind, scsiKind, inputKind].map((kind) => [kind.type, kind]),
);

/** The kind of device type `type`, or undefined for one the harness has no driver for. */
export function deviceKind(type: string | null): DeviceKind | undefined {
  return type === null ? undefined : KINDS.get(type);
}

/** Every device kind generic checks drive. */
export function allKinds(): readonly DeviceKind[] {
  return [...KINDS.values()];
}
