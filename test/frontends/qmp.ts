/**
 * A QMP client, just enough to drive QEMU from a test: the greeting, qmp_capabilities, then one command at a
 * time, each answered by a `return` (events in between are kept, not waited for).
 */
import net from 'node:net';
import { pollUntil } from '../../harness/util/deadline.js';

export class Qmp {
  readonly events: string[] = [];
  readonly #socket: net.Socket;
  #buffered = '';
  readonly #lines: unknown[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.#buffered += text;
      for (let nl = this.#buffered.indexOf('\n'); nl >= 0; nl = this.#buffered.indexOf('\n')) {
        const line = this.#buffered.slice(0, nl).trim();
        this.#buffered = this.#buffered.slice(nl + 1);
        if (!line) continue;
        const message = JSON.parse(line) as { event?: string };
        if (message.event) this.events.push(message.event);
        else this.#lines.push(message);
      }
      this.#wake?.();
    });
    const end = () => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  /** Connects to QEMU's `-qmp unix:PATH,server=on,wait=off` (once it exists), reads the greeting, negotiates. */
  static async connect(path: string, timeoutMs: number): Promise<Qmp> {
    const socket = await pollUntil(
      () =>
        new Promise<net.Socket | undefined>((resolve) => {
          const s = net.connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(undefined));
        }),
      timeoutMs,
      `QMP to listen at ${path}`,
      50,
    );
    const qmp = new Qmp(socket);
    const greeting = (await qmp.#next(timeoutMs)) as { QMP?: unknown };
    if (!greeting.QMP) throw new Error(`QMP greeting expected, got ${JSON.stringify(greeting)}`);
    await qmp.execute('qmp_capabilities', timeoutMs);
    return qmp;
  }

  async #next(timeoutMs: number): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#ended) throw new Error('QMP connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no QMP answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    return this.#lines.shift();
  }

  /** Runs `command`; resolves with its `return`, rejects with its `error`. */
  async execute(command: string, timeoutMs: number): Promise<unknown> {
    this.#socket.write(`${JSON.stringify({ execute: command })}\n`);
    const answer = (await this.#next(timeoutMs)) as { return?: unknown; error?: { desc?: string } };
    if (answer.error) throw new Error(`QMP ${command}: ${answer.error.desc ?? JSON.stringify(answer.error)}`);
    return answer.return;
  }

  close(): void {
    this.#socket.destroy();
  }
}
