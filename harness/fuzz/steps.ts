/**
 * The steps of a generated sequence: control messages and data-plane requests, valid and invalid, as plain
 * JSON data (a case file stores them and `replay` sends them again, byte for byte). A step is drawn as a
 * small abstract choice (operation, valid or not, a number) and made concrete against a model of what the
 * sequence has set up so far (features, memory table, each ring's size, addresses, kick), so that valid
 * steps build a working device and invalid ones hit it in every state; shrinking removes abstract steps and
 * the rest is made concrete again.
 */
import fc from 'fast-check';
import { encodeFrame } from '../protocol/encoder.js';
import {
  encodeMemoryRegions,
  encodeU64,
  encodeVringAddress,
  encodeVringState,
} from '../protocol/messages.js';
import { FrontendRequest, type FrontendRequestName, HeaderFlag } from '../protocol/spec.js';

/** The fds a step sends, by kind: made fresh when the step runs (the guest memory is the sequence's one). */
export type FdKind = 'memory' | 'eventfd' | 'memfd';

/** One control message, exactly as sent: header fields, payload, fds. */
export interface MessageStep {
  kind: 'message';
  /** What it is, for reports: the request name and, for an invalid one, what is wrong with it. */
  what: string;
  request: number;
  flags: number;
  /** The header's size field, normally the payload's length (a lie only when `closes` says the stream ends). */
  size: number;
  payload: string;
  fds: FdKind[];
  /** For SET_VRING_KICK with an eventfd: the ring it kicks, so that later requests can kick it. */
  kickRing?: number;
}

/** One data-plane request: descriptors written into the guest memory, an avail entry, a kick. */
export interface RequestStep {
  kind: 'request';
  what: string;
  ring: number;
  /** Descriptor table entries written (index -> addr, len, flags, next). */
  descriptors: Array<{ index: number; addr: string; len: number; flags: number; next: number }>;
  /** The head put in the avail ring, at avail.ring[availSlot]. */
  head: number;
  availSlot: number;
  /** avail.idx afterwards: one more than before, or past the queue size for an invalid step. */
  availIdx: number;
}

export type Step = MessageStep | RequestStep;

/** The abstract choice a step is made from: shrinking works on these. */
export interface Draw {
  op: Op;
  valid: boolean;
  pick: number;
}

/** The guest memory every sequence sets up: one region, at a fixed guest-physical and user address. */
export const GUEST = { gpa: 0n, uva: 0x7f00_0000_0000n, size: 256 * 1024 } as const;
/** Where ring `r`'s parts go in guest memory, and where request buffers go. */
const ringBase = (ring: number) => 0x1000 + ring * 0x4000;
export const RING_LAYOUT = { desc: 0, avail: 0x1000, used: 0x2000 } as const;
const BUFFERS = 0x10000;
const RINGS = 2;
const VALID_NUMS = [8, 16, 64, 256];
const INVALID_NUMS = [0, 3, 100, 32768 * 2, 0xffff_ffff];

/** GET_FEATURES is the oracle's probe: no step sends it, so that every GET_FEATURES reply answers a probe. */
const OPS = [
  'SET_FEATURES',
  'SET_OWNER',
  'GET_PROTOCOL_FEATURES',
  'SET_PROTOCOL_FEATURES',
  'GET_QUEUE_NUM',
  'SET_MEM_TABLE',
  'SET_VRING_NUM',
  'SET_VRING_ADDR',
  'SET_VRING_BASE',
  'GET_VRING_BASE',
  'SET_VRING_KICK',
  'SET_VRING_CALL',
  'SET_VRING_ENABLE',
  'unknown-request',
  'bad-header',
  'request',
] as const;
export type Op = (typeof OPS)[number];

/** What the sequence has set up, as far as the front-end knows: valid steps follow it. */
export interface Model {
  features: boolean;
  memTable: boolean;
  rings: Array<{ num: number; addr: boolean; kick: boolean; availIdx: number }>;
}

export function initialModel(): Model {
  return {
    features: false,
    memTable: false,
    rings: Array.from({ length: RINGS }, () => ({ num: 0, addr: false, kick: false, availIdx: 0 })),
  };
}

/** The abstract steps: valid three times in four, ring set-up and data-plane requests more often. */
export const drawArbitrary: fc.Arbitrary<Draw> = fc.record({
  op: fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...OPS) },
    // Ring set-up and traffic again: the states where rings run are where sequences find what single inputs
    // cannot.
    {
      weight: 10,
      arbitrary: fc.constantFrom<Op>(
        'SET_MEM_TABLE',
        'SET_VRING_NUM',
        'SET_VRING_ADDR',
        'SET_VRING_KICK',
        'request',
      ),
    },
  ),
  valid: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  pick: fc.nat({ max: 0xffff }),
});

function message(
  what: string,
  name: FrontendRequestName | number,
  payload: Buffer = Buffer.alloc(0),
  fds: FdKind[] = [],
  flags: number = HeaderFlag.VERSION,
): MessageStep {
  const request = typeof name === 'number' ? name : FrontendRequest[name];
  return {
    kind: 'message',
    what,
    request,
    flags,
    size: payload.length,
    payload: payload.toString('hex'),
    fds,
  };
}

/**
 * What a front-end sends before a ring's addresses and before its kick, in the order QEMU's vhost_dev_start
 * sends them (the memory table, then per ring SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_KICK): the ring's
 * addresses are user addresses the memory table translates (libvhost-user closes the connection on
 * SET_VRING_ADDR before SET_MEM_TABLE: "Invalid vring_addr message"), and a ring starts on its kick.
 */
const SET_UP_ORDER = ['SET_MEM_TABLE', 'SET_VRING_NUM', 'SET_VRING_ADDR', 'SET_VRING_KICK'] as const;

/** The first step `op` needs on `ring` that the model has not seen, if any: a valid step is sent after it. */
function missingBefore(model: Model, op: Op, ring: number): Op | undefined {
  const at = SET_UP_ORDER.indexOf(op as (typeof SET_UP_ORDER)[number]);
  const state = model.rings[ring];
  if (at <= 0 || !state) return undefined;
  const done = [model.memTable, state.num !== 0, state.addr];
  return SET_UP_ORDER.slice(0, at).find((_, i) => !done[i]);
}

/**
 * Makes `draw` concrete against `model`, and updates the model as a front-end would assume it went. A valid
 * ring set-up step whose prerequisites the sequence has not sent yet becomes the first of them (SET_UP_ORDER):
 * valid steps set a device up as a front-end does; invalid ones hit it in any order.
 */
export function concretize(model: Model, draw: Draw): Step {
  const { valid, pick } = draw;
  // Ring 0, which every device has, three times in four.
  const ring = valid ? (pick % 4 === 3 ? 1 : 0) : [RINGS, 255, 0xffff_ffff][pick % 3]!;
  const state = model.rings[ring];
  const op = (valid && missingBefore(model, draw.op, ring)) || draw.op;
  switch (op) {
    case 'GET_PROTOCOL_FEATURES':
    case 'GET_QUEUE_NUM':
    case 'SET_OWNER':
      if (valid) return message(op, op);
      // A payload where none belongs, and need_reply asked.
      return message(
        `${op} with ${pick % 64} stray payload bytes`,
        op,
        Buffer.alloc(pick % 64, 0xa5),
        [],
        HeaderFlag.VERSION | HeaderFlag.NEED_REPLY,
      );
    case 'SET_FEATURES': {
      if (!valid) return message('SET_FEATURES with every bit set', op, encodeU64(0xffff_ffff_ffff_ffffn));
      model.features = true;
      // VIRTIO_F_VERSION_1 and VHOST_USER_F_PROTOCOL_FEATURES, maybe EVENT_IDX and INDIRECT_DESC.
      const bits = (1n << 32n) | (1n << 30n) | (pick & 1 ? 1n << 29n : 0n) | (pick & 2 ? 1n << 28n : 0n);
      return message(`SET_FEATURES 0x${bits.toString(16)}`, op, encodeU64(bits));
    }
    case 'SET_PROTOCOL_FEATURES':
      return valid
        ? message('SET_PROTOCOL_FEATURES MQ|REPLY_ACK|CONFIG', op, encodeU64(0b10_0000_1001n))
        : message('SET_PROTOCOL_FEATURES with every bit set', op, encodeU64(0xffff_ffff_ffff_ffffn));
    case 'SET_MEM_TABLE':
      return memTable(model, valid, pick);
    case 'SET_VRING_NUM': {
      const num = valid ? VALID_NUMS[pick % VALID_NUMS.length]! : INVALID_NUMS[pick % INVALID_NUMS.length]!;
      const index = valid ? ring : pick % 2 ? ring : pick % RINGS;
      if (valid && state) state.num = num;
      return message(
        `SET_VRING_NUM ring ${index} num ${num}`,
        op,
        encodeVringState({ index, num: num >>> 0 }),
      );
    }
    case 'SET_VRING_ADDR': {
      const base = BigInt(ringBase(valid ? ring : pick % RINGS));
      const at = (offset: number) => GUEST.uva + base + BigInt(offset);
      if (valid && state) state.addr = true;
      const bad = [
        { what: 'outside guest memory', descriptor: GUEST.uva + BigInt(GUEST.size) + 0x1000n },
        { what: 'misaligned', descriptor: at(RING_LAYOUT.desc) + 3n },
        { what: 'of a vring that does not exist', descriptor: at(RING_LAYOUT.desc) },
      ][pick % 3]!;
      const index = valid || bad.what.endsWith('exist') ? ring : pick % RINGS;
      const address = {
        index,
        flags: 0,
        descriptor: valid ? at(RING_LAYOUT.desc) : bad.descriptor,
        available: at(RING_LAYOUT.avail),
        used: at(RING_LAYOUT.used),
        log: 0n,
      };
      return message(
        `SET_VRING_ADDR ring ${index}${valid ? '' : ` ${bad.what}`}`,
        op,
        encodeVringAddress(address),
      );
    }
    case 'SET_VRING_BASE': {
      const base = valid ? 0 : 0xffff_ffff;
      if (valid && state) state.availIdx = 0;
      return message(
        `SET_VRING_BASE ring ${ring} base ${base}`,
        op,
        encodeVringState({ index: ring, num: base }),
      );
    }
    case 'GET_VRING_BASE':
      return message(`GET_VRING_BASE ring ${ring}`, op, encodeVringState({ index: ring, num: 0 }));
    case 'SET_VRING_KICK':
    case 'SET_VRING_CALL': {
      const noFd = (pick >> 2) % 2 === 0;
      if (valid) {
        const step = message(
          `${op} ring ${ring}${noFd ? ' without an fd (polling)' : ''}`,
          op,
          encodeU64(BigInt(ring) | (noFd ? 0x100n : 0n)),
          noFd ? [] : ['eventfd'],
        );
        if (op === 'SET_VRING_KICK' && state) {
          state.kick = true;
          if (!noFd) step.kickRing = ring;
        }
        return step;
      }
      const bad = [
        { what: 'without its fd (bit 8 clear)', fds: [] as FdKind[] },
        { what: 'with a memfd for an eventfd', fds: ['memfd'] as FdKind[] },
        { what: 'with 12 fds', fds: Array<FdKind>(12).fill('eventfd') },
      ][pick % 3]!;
      return message(`${op} ring ${ring} ${bad.what}`, op, encodeU64(BigInt(pick % RINGS)), bad.fds);
    }
    case 'SET_VRING_ENABLE': {
      const num = valid ? pick & 1 : 2 + (pick % 5);
      return message(`SET_VRING_ENABLE ring ${ring} ${num}`, op, encodeVringState({ index: ring, num }));
    }
    case 'unknown-request': {
      const request = [0, 46, 47, 100, 0x7fff_ffff, 0xffff_ffff][pick % 6]!;
      return message(`unknown request ${request}`, request, Buffer.alloc(pick % 16, 0x5a));
    }
    case 'bad-header':
      return badHeader(pick);
    case 'request':
      return request(model, valid, pick);
  }
}

function memTable(model: Model, valid: boolean, pick: number): MessageStep {
  const region = {
    guestAddress: GUEST.gpa,
    size: BigInt(GUEST.size),
    userAddress: GUEST.uva,
    mmapOffset: 0n,
  };
  if (valid) {
    model.memTable = true;
    return message('SET_MEM_TABLE one region', 'SET_MEM_TABLE', encodeMemoryRegions({ regions: [region] }), [
      'memory',
    ]);
  }
  const bad = [
    { what: 'with a zero-size region', regions: [{ ...region, size: 0n }], fds: 1 },
    { what: 'whose region passes the end of its fd', regions: [{ ...region, mmapOffset: 0x10000n }], fds: 1 },
    {
      what: 'with overlapping regions',
      regions: [region, { ...region, guestAddress: 0x1000n, userAddress: GUEST.uva + 0x100000n }],
      fds: 2,
    },
    { what: 'without its fd', regions: [region], fds: 0 },
    {
      what: 'with a region of 2^64 - 4096 bytes',
      regions: [{ ...region, size: 0xffff_ffff_ffff_f000n }],
      fds: 1,
    },
  ][pick % 5]!;
  return message(
    `SET_MEM_TABLE ${bad.what}`,
    'SET_MEM_TABLE',
    encodeMemoryRegions({ regions: bad.regions }),
    Array<FdKind>(bad.fds).fill('memory'),
  );
}

function badHeader(pick: number): MessageStep {
  const queueNum = FrontendRequest.GET_QUEUE_NUM;
  switch (pick % 4) {
    case 0:
      return message('GET_QUEUE_NUM with version bits 2', queueNum, undefined, [], 0x2);
    case 1:
      return message('GET_QUEUE_NUM with the reply flag set', queueNum, undefined, [], 0x5);
    case 2:
      return message('SET_OWNER with an eventfd it does not take', 'SET_OWNER', undefined, ['eventfd']);
    default: {
      // The stream ends inside this message's payload: what a back-end makes of it is to close.
      const step = message('GET_QUEUE_NUM announcing a 4 GiB payload', queueNum, Buffer.alloc(8));
      step.size = 0xffff_ffff;
      return step;
    }
  }
}

/** A virtio-blk GET_ID request (header, 20-byte id, status), or one broken as the data-plane suite breaks it. */
function request(model: Model, valid: boolean, pick: number): RequestStep {
  const ring = pick % 4 === 3 ? 1 : 0;
  const state = model.rings[ring]!;
  const num = state.num || 8;
  const head = (state.availIdx * 3) % num;
  const idx = (k: number) => (head + k) % num;
  const buffers = BigInt(BUFFERS + ring * 0x1000);
  const header = { index: idx(0), addr: buffers, len: 16, flags: 1, next: idx(1) };
  const data = { index: idx(1), addr: buffers + 0x100n, len: 20, flags: 3, next: idx(2) };
  const status = { index: idx(2), addr: buffers + 0x200n, len: 1, flags: 2, next: 0 };
  let chain = [header, data, status];
  let what = `blk GET_ID on ring ${ring}`;
  let availAdvance = 1;
  if (!valid) {
    switch (pick % 7) {
      case 0:
        what = 'a descriptor outside guest memory';
        chain = [{ ...header, addr: BigInt(GUEST.size) + 0x10_0000n }, data, status];
        break;
      case 1:
        what = 'a descriptor that loops to itself';
        chain = [{ ...header, next: header.index }];
        break;
      case 2:
        what = 'next beyond the queue size';
        chain = [{ ...header, next: num + 5 }];
        break;
      case 3:
        what = 'zero-length buffers';
        chain = [{ ...header, len: 0 }, { ...data, len: 0 }, status];
        break;
      case 4:
        what = 'a write-only header';
        chain = [{ ...header, flags: 3 }, data, status];
        break;
      case 5:
        what = `avail.idx moved ${num + 1} ahead`;
        availAdvance = num + 1;
        break;
      default:
        what = 'addr + len wrapping past 2^64';
        chain = [{ ...header, addr: 0xffff_ffff_ffff_fff0n, len: 0x100 }, data, status];
    }
  }
  const availSlot = state.availIdx % num;
  state.availIdx = (state.availIdx + availAdvance) & 0xffff;
  return {
    kind: 'request',
    what: `${what} (head ${head})`,
    ring,
    descriptors: chain.map((d) => ({ ...d, addr: `0x${d.addr.toString(16)}` })),
    head,
    availSlot,
    availIdx: state.availIdx,
  };
}

/**
 * What a step does to the rings the back-end runs, as far as a front-end can tell: a SET_VRING_KICK of one of
 * the sequence's rings with its one fd, or none and bit 8 set (polling), starts it (libvhost-user starts a ring
 * on its kick); GET_VRING_BASE stops it.
 */
export function ringEffect(step: Step): { start?: number; stop?: number } {
  if (step.kind !== 'message' || step.payload.length < 16) return {};
  const u64 = Buffer.from(step.payload, 'hex').readBigUInt64LE();
  const ring = Number(u64 & 0xffn);
  if (step.request === FrontendRequest.SET_VRING_KICK && ring < RINGS) {
    const polling = (u64 & 0x100n) !== 0n;
    return (polling ? step.fds.length === 0 : step.fds.length === 1) ? { start: ring } : {};
  }
  if (step.request === FrontendRequest.GET_VRING_BASE) return { stop: Number(u64 & 0xffff_ffffn) };
  return {};
}

/**
 * What a front-end sends to stop the rings it started (GET_VRING_BASE for each, as QEMU's vhost_dev_stop
 * does, never for one it did not start): between two sequences on a back-end kept from one to the next, when
 * it takes no second connection.
 */
export function stopRingSteps(started: Iterable<number>): MessageStep[] {
  return [...started]
    .sort((a, b) => a - b)
    .map((ring) =>
      message(`GET_VRING_BASE ring ${ring}`, 'GET_VRING_BASE', encodeVringState({ index: ring, num: 0 })),
    );
}

/** The concrete steps of a drawn sequence, from the initial model. */
export function concretizeAll(draws: readonly Draw[]): Step[] {
  const model = initialModel();
  return draws.map((draw) => concretize(model, draw));
}

/** The bytes of a message step: its header (with the size field as given) and payload. */
export function messageBytes(step: MessageStep): Buffer {
  return encodeFrame(
    { request: step.request, flags: step.flags, payload: Buffer.from(step.payload, 'hex') },
    step.size,
  );
}

/** Where ring `ring`'s parts are, as guest-physical offsets into the one region. */
export function ringOffsets(ring: number): { desc: number; avail: number; used: number } {
  const base = ringBase(ring);
  return { desc: base + RING_LAYOUT.desc, avail: base + RING_LAYOUT.avail, used: base + RING_LAYOUT.used };
}
