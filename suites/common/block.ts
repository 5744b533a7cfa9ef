/**
 * A block device started as the run's front-end profile starts one (`openBlock`): what the vring, protocol and
 * migrate checks make virtio-blk requests on, with a scratch area of the disk each check restores when done.
 */

import {
  BLK_DRIVER_FEATURES,
  type BlkConfig,
  BlkErrorCode,
  readBlkConfig,
  VirtioBlkFeature,
} from '../../harness/devices/block/blk.js';
import { BlkDriver } from '../../harness/devices/block/driver.js';
import { SkipError } from '../../harness/errors.js';
import { FrontendDevice, type Vring } from '../../harness/frontend/device.js';
import {
  ackFeatures,
  addMemoryRegions,
  initTargetSession,
  requireProtocol,
  type Started,
  startDevice,
} from '../../harness/frontend/profiles.js';
import { frontendConnection } from '../../harness/process/probes.js';
import { hasBit, ProtocolFeature, VirtioFeature } from '../../harness/protocol/spec.js';
import type { CheckContext } from '../../harness/runner/check.js';
import type { Connection } from '../../harness/transport/connection.js';
import { FrontendSession } from '../../harness/transport/session.js';
import type { PackedVirtqueue } from '../../harness/virtqueue/packed.js';
import type { DriverQueue } from '../../harness/virtqueue/port.js';
import type { SplitVirtqueue } from '../../harness/virtqueue/split.js';
import { requireDevice } from './device.js';
import { type RingChoice, requireOffered, ringFeatures } from './ring-features.js';

/**
 * The rules a completion can break while the request did its work (data moved): used.len counting no byte
 * the device did not write, and the device-readable parts left alone. They are vring.blk.read-write's, where
 * a failure of one skips none of the checks needing it (`holdingGate`), and those of the few checks that
 * judge them on requests read-write does not make (FLUSH and GET_ID, requests past the capacity). Every other
 * check judges a rule of its own: its driver keeps such a finding and its message names it (`namingFindings`),
 * so that one defect of the back-end is one failure.
 */
export const COMPLETION_RULES: readonly BlkErrorCode[] = [
  BlkErrorCode.USED_LEN,
  BlkErrorCode.READONLY_WRITTEN,
];

/** Ring size the checks use: small, and a power of two every back-end takes. */
export const QUEUE_SIZE = 64;

/** What a block check asks of the device; the ring layout and features (RingChoice) skip when not offered. */
export interface BlockOptions extends RingChoice {
  /**
   * VHOST_USER_F_PROTOCOL_FEATURES, with the protocol features the front-end profile acknowledges: 'prefer'
   * (default) negotiates it when offered, 'require' skips without it, 'none' leaves it out (the legacy start).
   */
  protocolFeatures?: 'prefer' | 'require' | 'none';
  /** The ring's size (default QUEUE_SIZE). */
  size?: number;
  /** The check writes: skip when the device is read-only (VIRTIO_BLK_F_RO). */
  writes?: boolean;
  /** SET_VRING_ENABLE 1 after the set-up (default: when bit 30 was negotiated, as QEMU does). */
  enable?: boolean;
  /** The available index a split ring starts at. */
  base?: number;
  /** The driver's largest request, in sectors (default 16). */
  maxSectors?: number;
  /**
   * Protocol features the check needs negotiated when offered: skip, naming the profile, when the front-end
   * profile does not negotiate one (whether it is offered stays the check's to ask).
   */
  requiredProtocolFeatures?: bigint;
  /** A connection to start the device on, instead of a fresh one (`frontendConnection`). */
  connection?: Connection;
  /**
   * Build guest memory with ADD_MEM_REG, one region at a time, instead of SET_MEM_TABLE, as QEMU does with
   * VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS (skip when not offered, or when GET_MAX_MEM_SLOTS allows
   * fewer slots than the regions).
   */
  memorySlots?: boolean;
  /**
   * The check's rule is (or includes) a completion rule, used.len or the device-readable parts left alone
   * (COMPLETION_RULES): its driver fails on them. Otherwise the driver keeps such a finding, for the check's
   * message to name (`namingFindings`).
   */
  judgesCompletions?: boolean;
}

/** A block device started: vring 0 is a split ring (`Q`: SplitVirtqueue), or a packed one with `packed`. */
export interface BlockSetup<Q extends DriverQueue<unknown> = SplitVirtqueue<unknown>> {
  session: FrontendSession;
  device: FrontendDevice;
  ring: Vring<unknown, Q>;
  blk: BlkDriver;
  /** The features acknowledged with SET_FEATURES. */
  features: bigint;
  /** GET_CONFIG's view of the device, when CONFIG was negotiated. */
  config: BlkConfig | undefined;
  /** The first sector of the 64 the check may write (and restores). */
  scratch: bigint;
  /** What the front-end profile's start-up learnt (the profile, and whether bit 30 is negotiated). */
  started: Started;
}

/** Sectors of the scratch area. */
export const SCRATCH_SECTORS = 64;
/**
 * Where the scratch area starts: 32 KiB in, past a GPT's entries (sectors 0-33) and before where the first
 * partition usually starts (sector 2048), so a failure that leaves it unrestored harms the least. It also
 * fits small disks, whose capacity is unknown without VHOST_USER_PROTOCOL_F_CONFIG.
 */
const SCRATCH_START = 64n;

/**
 * A block device started on a fresh connection as the run's front-end profile starts one: the protocol
 * features it acknowledges, SET_FEATURES with what the driver understands (as the profile lets it through),
 * the memory (three regions, skewed addresses), vring 0 set up (packed with `packed`) and (unless told
 * otherwise) enabled.
 */
export function openBlock(
  ctx: CheckContext,
  options: BlockOptions & { packed: true },
): Promise<BlockSetup<PackedVirtqueue<unknown>>>;
export function openBlock(
  ctx: CheckContext,
  options?: BlockOptions & { packed?: false },
): Promise<BlockSetup>;
export async function openBlock(
  ctx: CheckContext,
  options: BlockOptions = {},
): Promise<BlockSetup<DriverQueue<unknown>>> {
  requireDevice(ctx, 'block', 'this check makes virtio-blk requests (sectors written and read back)');
  const session = new FrontendSession(options.connection ?? (await frontendConnection(ctx)));
  const protocol = options.protocolFeatures ?? (options.memorySlots ? 'require' : 'prefer');
  const started = await initTargetSession(ctx, session, {
    protocol: protocol !== 'none',
    required:
      (options.requiredProtocolFeatures ?? 0n) |
      (options.memorySlots ? 1n << BigInt(ProtocolFeature.CONFIGURE_MEM_SLOTS) : 0n),
  });
  const offered = started.offered;
  if (protocol === 'require') requireProtocol(started, 'the check needs them');
  const ringBits = requireOffered(offered, ringFeatures(options));
  if (options.writes && hasBit(offered, VirtioBlkFeature.RO)) {
    throw new SkipError('the device is read-only (VIRTIO_BLK_F_RO): the check needs to write');
  }
  const useProtocol = started.protocol;
  const asBits = (list: readonly number[]) => list.reduce((acc, bit) => acc | (1n << BigInt(bit)), 0n);
  const features = ackFeatures(
    started,
    asBits([...BLK_DRIVER_FEATURES, VirtioFeature.VIRTIO_F_VERSION_1]) | ringBits,
    ringBits,
  );
  const config = hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIG)
    ? await readBlkConfig(session)
    : undefined;
  const scratch = scratchStart(config);
  const device = new FrontendDevice(session, ctx.scope);
  let memory: (() => Promise<void>) | undefined;
  if (options.memorySlots) {
    if (!hasBit(session.ackedProtocolFeatures, ProtocolFeature.CONFIGURE_MEM_SLOTS)) {
      throw new SkipError('VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS is not offered');
    }
    // QEMU asks before it sends a region (the reply has a check of its own); a profile that does not ask
    // at start-up asks here.
    memory = () => addMemoryRegions(device, started.maxMemSlots);
  }
  await startDevice(started, session, device, ctx.scope, {
    features,
    rings: [
      {
        index: 0,
        size: options.size ?? QUEUE_SIZE,
        packed: options.packed ?? false,
        eventIdx: options.eventIdx ?? false,
        indirect: options.indirect ?? false,
        ...(options.base === undefined ? {} : { base: options.base }),
      },
    ],
    enable: options.enable ?? useProtocol,
    ...(memory ? { memory } : {}),
  });
  const ring = options.packed ? device.packedRing(0) : device.ring(0);
  const blk = new BlkDriver(ring, {
    timeoutMs: ctx.timeoutMs,
    maxSectors: maxSectors(options.maxSectors ?? 16, features, config),
    keep: options.judgesCompletions ? [] : COMPLETION_RULES,
  });
  return { session, device, ring, blk, features, config, scratch, started };
}

/**
 * The largest request the driver may make: its data goes in two segments, each within size_max when
 * VIRTIO_BLK_F_SIZE_MAX was negotiated (0 read as no limit), and seg_max must allow two.
 */
function maxSectors(wanted: number, features: bigint, config: BlkConfig | undefined): number {
  if (!config) return wanted;
  if (hasBit(features, VirtioBlkFeature.SEG_MAX) && config.segMax > 0 && config.segMax < 2) {
    throw new SkipError(`seg_max is ${config.segMax}: the driver puts a request's data in two segments`);
  }
  if (!hasBit(features, VirtioBlkFeature.SIZE_MAX) || config.sizeMax === 0) return wanted;
  const perSegment = Math.floor(config.sizeMax / 512);
  if (perSegment < 1) throw new SkipError(`size_max is ${config.sizeMax}: not even one sector per segment`);
  return Math.min(wanted, 2 * perSegment);
}

function scratchStart(config: BlkConfig | undefined): bigint {
  if (!config) return SCRATCH_START;
  if (config.capacity >= SCRATCH_START + BigInt(SCRATCH_SECTORS)) return SCRATCH_START;
  if (config.capacity >= BigInt(SCRATCH_SECTORS)) return 0n;
  throw new SkipError(
    `the disk has ${config.capacity} sectors: fewer than the ${SCRATCH_SECTORS} the checks use`,
  );
}
