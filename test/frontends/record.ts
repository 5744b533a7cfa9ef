/**
 * Recordings of real front-ends through the recording relay (test/frontends/relay.ts): QEMU 7.2
 * (qemu-system-x86_64, TCG) with a vhost-user-blk, vhost-user-net and vhost-user-fs device, and DPDK 22.11's
 * virtio-user (dpdk-testpmd as the front-end), each against our reference fixture of that device type. Each
 * scenario starts the front-end, stops and restarts the device (QMP `stop`/`cont`; testpmd's
 * `port stop 0`, a tx offload changed, `port start 0`), then quits; the recording marks where each phase began.
 *
 * Re-record (after `npx tsc -p tsconfig.json`; writes test/data/frontends/<scenario>.json):
 *
 *     node dist/test/frontends/record.js [scenario ...]
 *
 * with no scenario: all of them (qemu-7.2-blk, qemu-7.2-net, qemu-7.2-fs, dpdk-net).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { isListeningAt } from '../../harness/process/procfs.js';
import { pollUntil } from '../../harness/util/deadline.js';
import { bootDisk, fixture, ROOT } from '../helpers.js';
import { Qmp } from './qmp.js';
import { type RecordedMessage, RecordingRelay } from './relay.js';

export const QEMU = '/usr/bin/qemu-system-x86_64';
export const TESTPMD = '/usr/bin/dpdk-testpmd';
export const SCENARIOS = ['qemu-7.2-blk', 'qemu-7.2-net', 'qemu-7.2-fs', 'dpdk-net'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** The phases of a scenario, in order; `quit` is the front-end ending. */
export type Phase = 'start' | 'stop' | 'restart' | 'quit';

export interface Recording {
  scenario: Scenario;
  /** The front-end and how it was run. */
  frontend: string;
  /** The back-end it drove. */
  backend: string;
  /** What the start covers (whether the device started), in words. */
  note: string;
  /** Where each phase begins in `messages`. */
  phases: Record<Phase, number>;
  messages: RecordedMessage[];
}

export const dataFile = (scenario: Scenario) => path.join(ROOT, 'test/data/frontends', `${scenario}.json`);

export function loadRecording(scenario: Scenario): Recording {
  return JSON.parse(readFileSync(dataFile(scenario), 'utf8')) as Recording;
}

/** Every process and file a recording made; `cleanup` ends and removes them all. */
class Run {
  readonly dir: string;
  readonly processes: ResultPromise[] = [];
  relay: RecordingRelay | undefined;
  readonly extra: (() => Promise<void>)[] = [];

  constructor(readonly options: RecordOptions) {
    this.dir = mkdtempSync(path.join(options.parent ?? tmpdir(), 'vhu-frontrec-'));
  }

  spawn(file: string, args: string[], stdin: 'ignore' | 'pipe' = 'ignore'): ResultPromise {
    const env = this.options.marker ? { VHU_SELFTEST_MARKER: this.options.marker } : {};
    const child = execa(file, args, { reject: false, stdin, all: true, env });
    this.processes.push(child);
    return child;
  }

  /** Waits until `predicate` holds on the relay's messages, naming `what` otherwise. */
  async until(
    what: string,
    predicate: (m: readonly RecordedMessage[]) => boolean,
    ms: number,
  ): Promise<void> {
    const relay = this.relay!;
    await pollUntil(
      () => {
        if (relay.errors.length) throw relay.errors[0];
        return predicate(relay.messages) ? true : undefined;
      },
      ms,
      what,
      20,
    );
  }

  /** Until nothing new arrived for `quietMs`. */
  async settle(quietMs = 500): Promise<void> {
    let seen = -1;
    let since = Date.now();
    await pollUntil(
      () => {
        const n = this.relay!.messages.length;
        if (n !== seen) {
          seen = n;
          since = Date.now();
        }
        return Date.now() - since >= quietMs ? true : undefined;
      },
      30_000,
      'the front-end to go quiet',
      20,
    );
  }

  async cleanup(): Promise<void> {
    for (const child of this.processes) child.kill('SIGKILL');
    await Promise.all(this.processes);
    await this.relay?.close();
    for (const step of this.extra) await step();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts `backend` listening at DIR/backend.sock and the relay at DIR/relay.sock in front of it. */
async function startBackend(run: Run, backend: string, args: string[]): Promise<string> {
  const socket = path.join(run.dir, 'backend.sock');
  const child = run.spawn(fixture(backend), [`--socket-path=${socket}`, ...args]);
  await pollUntil(
    () => {
      if (child.exitCode !== null) throw new Error(`${backend} exited: ${child.exitCode}`);
      return isListeningAt(socket) ? true : undefined;
    },
    10_000,
    `${backend} to listen`,
  );
  const relaySocket = path.join(run.dir, 'relay.sock');
  run.relay = new RecordingRelay(relaySocket, socket);
  return relaySocket;
}

/** The requests recorded, in a line, for an error message. */
const summary = (m: readonly RecordedMessage[]) =>
  m
    .map(
      (x) =>
        `${x.from === 'back' ? '<' : ''}${x.request}${x.fields?.index === undefined ? '' : ` ${x.fields.index}`}`,
    )
    .join(', ');
const started = (m: readonly RecordedMessage[]) => m.some((x) => x.request === 'SET_VRING_KICK');
const count = (m: readonly RecordedMessage[], request: string) =>
  m.filter((x) => x.request === request).length;

/** QEMU 7.2 with one vhost-user device of `device`'s kind; QMP stop, cont and quit. */
async function recordQemu(run: Run, device: 'blk' | 'net' | 'fs'): Promise<Recording> {
  if (!existsSync(QEMU)) throw new Error(`${QEMU} is missing: install the Debian package qemu-system-x86`);
  const image = path.join(run.dir, 'disk.img');
  const shared = path.join(run.dir, 'shared');
  let relaySocket: string;
  let deviceArgs: string[];
  let backend: string;
  if (device === 'blk') {
    writeFileSync(image, bootDisk());
    backend = 'vhu-reference';
    relaySocket = await startBackend(run, backend, [`--blk-file=${image}`]);
    deviceArgs = ['-device', 'vhost-user-blk-pci,chardev=vu0,num-queues=1'];
  } else if (device === 'net') {
    backend = 'vhu-reference-net';
    relaySocket = await startBackend(run, backend, []);
    // iPXE (the virtio-net option ROM) drives the device when SeaBIOS boots from the network.
    deviceArgs = ['-netdev', 'vhost-user,id=net0,chardev=vu0', '-device', 'virtio-net-pci,netdev=net0'];
  } else {
    backend = 'vhu-reference-fs';
    (await import('node:fs')).mkdirSync(shared);
    relaySocket = await startBackend(run, backend, [`--shared-dir=${shared}`]);
    deviceArgs = ['-device', 'vhost-user-fs-pci,chardev=vu0,tag=vhufs'];
  }
  const qmpSocket = path.join(run.dir, 'qmp.sock');
  const debugLog = path.join(run.dir, 'debugcon.log');
  const args = [
    ['-machine', 'q35,accel=tcg', '-m', '64', '-nodefaults', '-display', 'none', '-no-reboot'],
    ['-object', 'memory-backend-memfd,id=mem,size=64M,share=on', '-numa', 'node,memdev=mem'],
    ['-chardev', `socket,id=vu0,path=${relaySocket}`, ...deviceArgs],
    ['-chardev', `file,id=dbg,path=${debugLog}`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg'],
    ['-qmp', `unix:${qmpSocket},server=on,wait=off`],
    device === 'net' ? ['-boot', 'n'] : [],
  ].flat();
  const qemu = run.spawn(QEMU, args);
  const qmp = await Qmp.connect(qmpSocket, 20_000);
  run.extra.push(async () => qmp.close());
  const relay = run.relay!;
  let note: string;
  try {
    if (device === 'blk') {
      await pollUntil(
        () => (existsSync(debugLog) && readFileSync(debugLog, 'latin1').includes('VHU') ? true : undefined),
        45_000,
        'the boot sector to print VHU',
        100,
      );
      note = 'SeaBIOS drives the device: it starts, reads the boot sector, which prints VHU and halts';
    } else if (device === 'net') {
      await run.until('iPXE to start the virtio-net device', started, 45_000);
      note = "iPXE (virtio-net-pci's option ROM, booting from the network) drives the device: it starts";
    } else {
      // No guest driver in the firmware: the device is never started; only QEMU's own start-up is seen.
      await pollUntil(
        () =>
          existsSync(debugLog) && /No bootable device/.test(readFileSync(debugLog, 'latin1'))
            ? true
            : undefined,
        45_000,
        'SeaBIOS to find no bootable device',
        100,
      );
      note = 'no firmware driver for virtio-fs: QEMU connects and sets up, the device never starts';
    }
    await run.settle();
    const phases: Record<Phase, number> = { start: 0, stop: 0, restart: 0, quit: 0 };
    phases.stop = relay.messages.length;
    await qmp.execute('stop', 20_000);
    await run.settle();
    phases.restart = relay.messages.length;
    await qmp.execute('cont', 20_000);
    await run.settle();
    phases.quit = relay.messages.length;
    await qmp.execute('quit', 20_000).catch(() => undefined);
    await pollUntil(() => (qemu.exitCode !== null ? true : undefined), 20_000, 'QEMU to quit', 50);
    await run.settle(300);
    const version = (await execa(QEMU, ['--version'])).stdout.split('\n')[0] ?? '';
    return {
      scenario: `qemu-7.2-${device}`,
      frontend: `${version}: ${args.join(' ').replaceAll(run.dir, 'DIR')}`,
      backend: `fixtures/bin/${backend}`,
      note,
      phases,
      messages: relay.messages,
    };
  } catch (err) {
    qemu.kill('SIGKILL');
    const result = await qemu;
    const debug = existsSync(debugLog) ? readFileSync(debugLog, 'latin1').slice(-1500) : '';
    throw new Error(
      `${(err as Error).message}\nrecorded: ${summary(relay.messages)}\nQEMU: ${result.all}\nSeaBIOS: ${debug}`,
      { cause: err },
    );
  }
}

/** dpdk-testpmd with a virtio-user port; `port stop 0`, `port start 0`, `quit` on its stdin. */
async function recordTestpmd(run: Run): Promise<Recording> {
  if (!existsSync(TESTPMD)) throw new Error(`${TESTPMD} is missing: install the Debian package dpdk-dev`);
  const backend = 'vhu-reference-net';
  const relaySocket = await startBackend(run, backend, []);
  const prefix = `vhu-frontrec-${process.pid}-${path.basename(run.dir)}`;
  run.extra.push(async () => void (await execa('rm', ['-rf', `/var/run/dpdk/${prefix}`], { reject: false })));
  const args = [
    '-v',
    '--no-huge',
    '--no-pci',
    '-m',
    '512',
    `--file-prefix=${prefix}`,
    '--vdev',
    `net_virtio_user0,path=${relaySocket},queues=1`,
    '--',
    '-i',
    '--total-num-mbufs=2048',
  ];
  const pmd = run.spawn(TESTPMD, args, 'pipe');
  const relay = run.relay!;
  const say = (line: string) => pmd.stdin?.write(`${line}\n`);
  try {
    const phases: Record<Phase, number> = { start: 0, stop: 0, restart: 0, quit: 0 };
    await run.until('testpmd to start its port', started, 30_000);
    await run.settle();
    phases.stop = relay.messages.length;
    say('port stop 0');
    await run.settle(1000);
    // port stop 0 alone stops nothing on the vhost-user side (virtio_dev_stop); a port started again with
    // other offloads is reset and set up again (virtio_dev_configure: "if request features changed, reinit
    // the device"), which stops the rings (virtio_user_stop_device) and starts them.
    say('port config 0 tx_offload tcp_cksum on');
    phases.restart = relay.messages.length;
    say('port start 0');
    await run.until('the port to start again', (m) => count(m, 'SET_VRING_KICK') >= 4, 20_000);
    await run.settle();
    phases.quit = relay.messages.length;
    say('quit');
    await pollUntil(() => (pmd.exitCode !== null ? true : undefined), 20_000, 'testpmd to quit', 50);
    await run.settle(300);
    const version = String((await pmd).all ?? '');
    return {
      scenario: 'dpdk-net',
      frontend: `dpdk-testpmd ${/RTE Version: '([^']+)'/.exec(version)?.[1] ?? ''}: ${args.join(' ').replaceAll(run.dir, 'DIR').replaceAll(prefix, 'PREFIX')}`,
      backend: `fixtures/bin/${backend}`,
      note:
        'testpmd starts its port at start-up (DRIVER_OK); port stop 0 sends nothing (the stop phase is empty); ' +
        'port start 0 with a tx offload changed resets the device (its rings stop) and starts it again',
      phases,
      messages: relay.messages,
    };
  } catch (err) {
    pmd.kill('SIGKILL');
    const result = await pmd;
    throw new Error(
      `${(err as Error).message}\nrecorded: ${summary(relay.messages)}\ntestpmd: ${String(result.all).slice(-3000)}`,
      { cause: err },
    );
  }
}

export interface RecordOptions {
  /** The folder its temporary folder goes in (default the system's). */
  parent?: string;
  /** VHU_SELFTEST_MARKER in the environment of every process it starts, to find any left over. */
  marker?: string;
}

/**
 * Records `scenario`; every process, socket and file it made (and testpmd's runtime folder) is gone when it
 * returns or throws.
 */
export async function record(scenario: Scenario, options: RecordOptions = {}): Promise<Recording> {
  const run = new Run(options);
  try {
    if (scenario === 'dpdk-net') return await recordTestpmd(run);
    return await recordQemu(run, scenario.slice('qemu-7.2-'.length) as 'blk' | 'net' | 'fs');
  } finally {
    await run.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const wanted = process.argv.slice(2) as Scenario[];
  for (const scenario of wanted.length ? wanted : SCENARIOS) {
    if (!SCENARIOS.includes(scenario)) throw new Error(`no scenario ${scenario}: ${SCENARIOS.join(', ')}`);
    const recording = await record(scenario);
    writeFileSync(dataFile(scenario), `${JSON.stringify(recording, null, 2)}\n`);
    console.log(`${scenario}: ${recording.messages.length} messages, ${dataFile(scenario)}`);
  }
}
