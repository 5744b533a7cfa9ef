/**
 * A launched back-end kept from one robustness input to the next (issue 15): a launch costs far more than an
 * input (about 0.26 s of CPU for the Node reference, 35 ms for a C back-end, against a few ms an input), so a
 * back-end that keeps listening while it serves a connection, and serves a new one, takes each input on a new
 * connection to the same process instead of a launch of its own; it is launched again only after it closed
 * and exited, crashed or hung. Reconnects is the one home of how that is found and done, for robust.fuzz's
 * sequences (fuzz-backend.ts) and robust.ctl.*'s inputs (KeptBackends, below).
 *
 * Why the verdicts are those of a fresh back-end per input (what the checks did before, and still do with
 * --fresh-backends, in attach mode, and for back-ends that take no second connection):
 *
 * - A failure (a crash, a hang, a framing break) seen on a kept back-end after earlier inputs counts only when a
 *   fresh launch given the same input alone shows it again, and then it is that launch's failure, in its words:
 *   the one a fresh back-end per input gave. One that does not come back is said in the check's fact, naming
 *   the inputs before it, and does not fail the check: a fresh back-end per input could not see it either. So a
 *   kept back-end adds no failure.
 * - Nor does it hide one, as far as a new connection resets what the earlier inputs left, which is what a
 *   front-end that reconnects relies on: QEMU 7.2 reconnects to a back-end that lives on as to a new one
 *   (vhost_user_blk_connect runs vhost_dev_init again: GET_FEATURES, SET_OWNER, the whole set-up), and what it
 *   set up on the connection before (features, protocol features, memory table, rings, their fds, the back-end
 *   channel, inflight buffers) is the connection's. The bundled reference makes a Session per accepted
 *   connection (fixtures/backend/main.ts, serve.ts) that holds all of it and is dropped with the connection;
 *   what outlives it is the device model, whose connection state `disconnected()` clears as the Session ends
 *   (fixtures/backend/session.ts), and robust.ctl.*'s control messages reach the device only through that
 *   state. Three checks of it are made before a kept back-end takes an input: it took the new connection and
 *   answered GET_FEATURES on it (a back-end that listens but serves a single front-end, or drops the second, is
 *   launched afresh for every input from then on); it answered with the offer it made on the process's first
 *   new connection (an offer that moves with the connections is state the connections share: not kept from
 *   then on); and it is alive, its stderr clean (any failure drops it). The new connection's GET_FEATURES is
 *   the one message a kept back-end's input comes after that a fresh one's does not: a query that changes no
 *   state, and the first message QEMU sends on every connection.
 * - What no such check can see is a back-end whose state outlives the connection by design (a daemon serving
 *   several front-ends from one device, say) in a way that changes what a later input does: `--fresh-backends`
 *   checks such a back-end as before, one launch per input.
 */
import { BackendError, ProtocolError, SysError, TimeoutError } from '../../harness/errors.js';
import { judgeEnd } from '../../harness/process/crash.js';
import { connectAgain } from '../../harness/process/probes.js';
import { isListeningAt } from '../../harness/process/procfs.js';
import type { CheckContext } from '../../harness/runner/check.js';
import { FrontendSession } from '../../harness/transport/session.js';
import {
  answersGetFeatures,
  connectionGone,
  freshSubject,
  type Outcome,
  releaseSubject,
  type Subject,
  type Tried,
} from './oracle.js';

/** A back-end launched for robustness inputs or sequences, as its keeper sees it. */
export interface Keepable {
  subject: Subject;
  /** It listened while it served our first connection: a new connection may reset it. */
  reconnects: boolean;
  /** What GET_FEATURES answered on its first new connection: every later one must answer the same. */
  offer?: bigint;
}

/**
 * Whether a back-end takes a new connection, and the reset by one. One per check: once a new connection was
 * refused, not served, or offered other features than the process's first, no back-end of the check is kept
 * (it takes no second front-end the way a reset needs).
 */
export class Reconnects {
  readonly #ctx: CheckContext;
  #reconnecting = true;

  constructor(ctx: CheckContext) {
    this.#ctx = ctx;
  }

  /**
   * Whether `subject`, just launched and connected, may be kept: launch mode, no reconnection failed so far in
   * the check, and it still listens while it serves us (libvhost-user's back-ends take one front-end and end
   * when it leaves; one still seen listening just after it took us is no proof: `reconnect` tells).
   */
  listensWhileServing(subject: Subject): boolean {
    return this.#reconnecting && this.#ctx.target.connect === null && isListeningAt(subject.socket);
  }

  /** Whether reconnections are still tried (none failed in the check). */
  get reconnecting(): boolean {
    return this.#reconnecting;
  }

  /**
   * The reset between two uses of a kept back-end, as a front-end that reconnects makes it: our connection
   * closed, a new one made (once, not retried: one that was seen listening as it served may have been closing
   * its listener then) and GET_FEATURES answered on it with the process's first answer. 'closed' when it was not
   * (from then on no back-end of the check is kept); `kept.subject.session` is the new connection's.
   */
  async reconnect(kept: Keepable): Promise<Outcome> {
    const { subject } = kept;
    subject.session.connection.close();
    let session: FrontendSession;
    try {
      session = new FrontendSession(connectAgain(this.#ctx, subject.backend, subject.socket));
    } catch (err) {
      if (!(err instanceof SysError)) throw err;
      this.#reconnecting = false;
      return 'closed';
    }
    subject.session = session;
    // Served, not only queued: one that listens but takes a single front-end (or drops a second) is launched
    // fresh for every input from now on, as before: serving a second front-end is not what these checks judge.
    let offer: bigint;
    try {
      offer = await answersGetFeatures(session.connection, this.#ctx.timeoutMs);
    } catch (err) {
      if (!(err instanceof TimeoutError || connectionGone(err) || err instanceof ProtocolError)) throw err;
      this.#reconnecting = false;
      return 'closed';
    }
    kept.offer ??= offer;
    if (offer !== kept.offer) {
      this.#reconnecting = false;
      return 'closed';
    }
    return 'answered';
  }

  /**
   * Whether a new connection may reset `kept` for the next use after `outcome`: it listens while it serves, no
   * reconnection failed, it lives, and it answered or, having closed our connection, still listens.
   */
  carriesOn(kept: Keepable, outcome: Outcome): boolean {
    if (!kept.reconnects || !this.#reconnecting || !kept.subject.backend?.alive) return false;
    return outcome === 'answered' || isListeningAt(kept.subject.socket);
  }
}

/** How one input is tried on a subject (no launch, no release: the keeper's): what the oracle judged. */
export type TryOn<I> = (subject: Subject, input: I) => Promise<Tried>;

/** A kept back-end of a lane, and the inputs it took since its launch, in order. */
interface Kept extends Keepable {
  history: string[];
}

/** A verdict of the oracle (tryInputs' failures): what a kept back-end's error must be to be tried again fresh. */
function isVerdict(err: unknown): err is Error {
  return err instanceof BackendError || err instanceof TimeoutError || err instanceof ProtocolError;
}

/**
 * The back-ends a check's inputs run on (tryInputs' attempt): in each lane, one back-end kept from input to
 * input while it serves new connections (see the top of this file), else one launched for each input. A
 * failure on a kept back-end after earlier inputs is tried again on a fresh launch, with the input alone: it
 * counts (that launch's failure is thrown) only if it comes back; otherwise the input's line says what was
 * seen and after which inputs, `notCounted`. The first input a launch takes is judged as a fresh back-end's
 * is: it is one. With --fresh-backends, in attach mode and for back-ends that take no second connection, every
 * input has a fresh subject (a launch, or a new connection to the attached daemon), as before.
 */
export class KeptBackends<I extends { input: string }> {
  readonly #ctx: CheckContext;
  readonly #tryOn: TryOn<I>;
  readonly #keep: boolean;
  readonly #reconnects: Reconnects;
  readonly #lanes: Array<Kept | undefined> = [];

  constructor(ctx: CheckContext, tryOn: TryOn<I>) {
    this.#ctx = ctx;
    this.#tryOn = tryOn;
    this.#keep = ctx.target.connect === null && ctx.target.freshBackends !== true;
    this.#reconnects = new Reconnects(ctx);
  }

  /** Tries `input` in `lane`, on the lane's kept back-end or a fresh one (see the class). */
  readonly attempt = async (input: I, lane = 0): Promise<Tried> => {
    if (!this.#keep) return this.#once(input);
    const { kept, before } = await this.#take(lane);
    const earlier = [...kept.history];
    let tried: Tried;
    try {
      tried = await this.#tryOn(kept.subject, input);
    } catch (err) {
      await releaseSubject(kept.subject);
      if (!earlier.length || !isVerdict(err)) throw err;
      return this.#confirm(input, lane, err, earlier);
    }
    await this.#keepOrRelease(kept, input, tried, lane);
    return before ? { ...withLine(tried, input, before), notCounted: true } : tried;
  };

  /** Ends the kept back-ends. */
  async close(): Promise<void> {
    const kept = this.#lanes.splice(0);
    for (const lane of kept) if (lane) await releaseSubject(lane.subject);
  }

  /** `input` on a fresh subject, ended once judged: the way before issue 15. */
  async #once(input: I): Promise<Tried> {
    const subject = await freshSubject(this.#ctx);
    try {
      return await this.#tryOn(subject, input);
    } finally {
      await releaseSubject(subject);
    }
  }

  /**
   * The lane's kept back-end, reset by a new connection, or a fresh launch when there is none, it ended, the
   * reset failed, or no back-end is kept any more; `before` says how a kept one that ended between two inputs
   * went, when it crashed then.
   */
  async #take(lane: number): Promise<{ kept: Kept; before?: string }> {
    const kept = this.#lanes[lane];
    this.#lanes[lane] = undefined;
    if (kept) {
      const reset = !this.#reconnects.reconnecting
        ? 'closed'
        : kept.subject.backend?.alive
          ? await this.#reconnects.reconnect(kept).catch(async (err: unknown) => {
              await releaseSubject(kept.subject);
              throw err;
            })
          : 'closed';
      if (reset === 'answered') return { kept };
      const before = diedBetween(kept);
      await releaseSubject(kept.subject);
      return before ? { kept: await this.#launch(), before } : { kept: await this.#launch() };
    }
    return { kept: await this.#launch() };
  }

  async #launch(): Promise<Kept> {
    const subject = await freshSubject(this.#ctx);
    return { subject, reconnects: this.#reconnects.listensWhileServing(subject), history: [] };
  }

  async #keepOrRelease(kept: Kept, input: I, tried: Tried, lane: number): Promise<void> {
    kept.history.push(input.input);
    if (this.#reconnects.carriesOn(kept, tried.outcome)) this.#lanes[lane] = kept;
    else await releaseSubject(kept.subject);
  }

  /**
   * A failure `err` a kept back-end showed on `input` after `earlier`: tried again on a fresh launch, the input
   * alone. Its failure there is thrown (it counts, in that launch's words); else the input's line says what the
   * kept one did, after which inputs, and what the fresh one did instead. The fresh one is kept in turn.
   */
  async #confirm(input: I, lane: number, err: Error, earlier: string[]): Promise<Tried> {
    const fresh = await this.#launch();
    let tried: Tried;
    try {
      tried = await this.#tryOn(fresh.subject, input);
    } catch (again) {
      await releaseSubject(fresh.subject);
      throw again;
    }
    await this.#keepOrRelease(fresh, input, tried, lane);
    const instead = tried.outcome === 'answered' ? 'answered' : 'closed the connection';
    const note =
      `seen only after earlier inputs, not counted: on a back-end kept from [${earlier.join('; ')}], ` +
      `${err.message}; a fresh back-end given it alone ${instead}`;
    return {
      outcome: tried.outcome,
      line: tried.line ? `${tried.line}; ${note}` : `${input.input}: ${note}`,
      notCounted: true,
    };
  }
}

/** A line for an input whose lane's kept back-end crashed after the input before it had been judged. */
function diedBetween(kept: Kept): string | undefined {
  const { backend } = kept.subject;
  if (!backend?.exit) return undefined;
  const end = judgeEnd(backend.exit, backend.stderrTail);
  if (!end.crashed) return undefined;
  return (
    `not counted: before it, the back-end kept from [${kept.history.join('; ')}] ended (${end.how}) after the ` +
    'last of them was judged: a fresh back-end per input, ended once judged, would not have seen it'
  );
}

/** `tried` with `note` added to its line. */
function withLine<I extends { input: string }>(tried: Tried, input: I, note: string): Tried {
  return { ...tried, line: tried.line ? `${tried.line}; ${note}` : `${input.input}: ${note}` };
}
