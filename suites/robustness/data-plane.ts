/**
 * Data plane robustness (issue 5): a running device of any kind the harness drives (harness/devices: block,
 * net, fs, gpu, scsi; started as openDevice starts one, gpu with its display attached) is fed malformed
 * virtqueue content, made from its kind's sample request (data-plane/lane.ts), through the split driver's raw access (descriptors, indirect tables and avail
 * entries written as given). Each input goes to a fresh subject (oracle.ts) and is judged by two oracles: the
 * crash/hang oracle (it must answer, or close the connection cleanly) and the out-of-bounds oracle (guard bytes
 * around every buffer and ring part, and over all free guest memory; what the device only reads, and the
 * request's buffers no device-writable descriptor covers, unchanged; checked after each request: a write outside
 * the buffers it was given is a failure naming the address, the bytes and what it is next to). What the device
 * does with the bad request itself (complete it with an error status, stop the queue, close) is free, and
 * reported.
 */
import { allKinds } from '../../harness/devices/kinds.js';
import { defineChecks } from '../../harness/runner/check.js';
import { runInputs } from './data-plane/attempt.js';
import { BUFFER_INPUTS, CHAIN_INPUTS, type Input } from './data-plane/inputs.js';
import { HARDENING_RULE } from './oracle.js';

const DataPlaneSpec = {
  descriptorTable: 'virtio-spec#sec-virtqueues-the-virtqueue-descriptor-table',
  memoryAccess: 'vhost-user.rst#memory-access',
} as const;

/** Each check builds on the data path of every device kind: one that is broken skips it, naming the check. */
const DATA_PATHS = allKinds().map((kind) => kind.dataPath);

/**
 * The time a check may take: every input tried one after the other (attach mode), each at worst a set-up tried
 * twice, a hang the oracle waits out, and a back-end killed after its grace.
 */
function budget(inputs: readonly Input[], timeoutMs: number): number {
  return inputs.length * (3 * timeoutMs + 2000);
}

/**
 * The out-of-bounds oracle enforces two MUST NOTs (a write into a device-readable buffer or a descriptor table),
 * hence the severity. The crash and hang oracle, and writes into free guest memory or past a writable buffer's
 * end, have no sentence behind them (HARDENING_RULE) and fail at MUST too: stronger than the sentences, said
 * in the rule, until they are checks of their own.
 */
const DATA_PLANE_RULE =
  'virtio spec, Device Requirements: The Virtqueue Descriptor Table: "A device MUST NOT write to a ' +
  'device-readable buffer" and "A device MUST NOT write to any descriptor table entry." Stronger than these, ' +
  "the check also fails writes into free guest memory or past a writable buffer's end, and a crash or a hang, " +
  `for which there is no sentence (${HARDENING_RULE}; the nearest is virtio spec, Device Requirements: Device ` +
  'Status Field: "The device SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a reset is needed.")';

export const dataPlaneChecks = defineChecks(
  'robustness',
  [
    {
      id: 'robust.data.chain',
      detail:
        "(every device kind: block, net, fs, gpu, scsi) malformed chains made of the kind's sample request, each posted raw on its ring on a fresh back-end (block a read on requestq, net a frame on transmitq0, fs a FUSE_INIT on the first request queue, gpu a GET_DISPLAY_INFO on the control queue, its display attached first, scsi a TEST UNIT READY on the first request queue): next pointing to itself, a chain looping back to its head, a loop inside an indirect table, next past the queue size and past an indirect table, an indirect table of queue size + 2 descriptors, an indirect descriptor inside an indirect table or with NEXT, a table of 17 bytes, an avail entry past the queue size, avail.idx queue size + 1 ahead: the back-end answers a well-formed request (or `GET_VRING_BASE` once the queue stopped) or closes the connection, never crashes or hangs (a failed assertion on stderr is a crash too), and writes no guest byte outside the buffers it may write (guard bytes around every buffer and ring part and over all free guest memory; tables, available rings, device-readable buffers and the request's buffers no device-writable descriptor covers unchanged); what it did with each is reported, with the kind's judgement of what it wrote",
      title:
        'descriptor chains that loop (on one descriptor, back to the head, inside an indirect table), next past the queue or the table, longer than the queue, an indirect table inside one or with NEXT, a bad avail entry or avail.idx: no crash, no hang, no write outside the buffers',
      severity: 'MUST',
      rule: DATA_PLANE_RULE,
      spec: DataPlaneSpec.descriptorTable,
      needs: DATA_PATHS,
      budgetMs: (timeoutMs) => budget(CHAIN_INPUTS, timeoutMs),
      run: (ctx) => runInputs(ctx, CHAIN_INPUTS),
    },
    {
      id: 'robust.data.buffers',
      detail:
        "(every device kind) malformed buffers, the same way (writable ones on the kind's request with device-writable buffers: net a receive buffer on receiveq0, filled by a frame sent): a readable and a writable buffer outside guest memory, one running past its region's end into unmapped memory, addr + len wrapping past 2^64, an indirect table outside guest memory, a zero-length first, last and every buffer, the buffer the device reads marked device-writable and the ones it writes device-readable, a head-only request: the same oracles",
      title:
        'buffers outside guest memory, past a region end, wrapping past 2^64, of zero length, writable where the device reads and the reverse, a head-only request: no crash, no hang, no write outside the buffers',
      severity: 'MUST',
      rule: DATA_PLANE_RULE,
      spec: DataPlaneSpec.memoryAccess,
      needs: DATA_PATHS,
      budgetMs: (timeoutMs) => budget(BUFFER_INPUTS, timeoutMs),
      run: (ctx) => runInputs(ctx, BUFFER_INPUTS),
    },
  ],
  { destructive: true },
);
