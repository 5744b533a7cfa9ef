/**
 * A failed chai assertion in the harness's own words. Checks write `expect(x, 'what we checked').to...`; chai
 * makes that "what we checked: expected 0n to not equal 0n". The report says "what we checked: expected a value
 * other than 0, saw 0": our message, then what was expected and what was seen, from the error's own
 * `expected` and `actual`, values shown as the report shows them (bigints without their `n`, in hex past 9).
 */
import { util } from 'chai';
import { hexdump } from '../errors.js';

/** What chai's AssertionError carries besides its message. */
interface ChaiAssertion extends Error {
  actual?: unknown;
  expected?: unknown;
}

const SHOWN_CHARS = 200;

/** How chai shows a value in its messages (its types say otherwise, but it returns the text). */
const chaiShows = util.objDisplay as unknown as (value: unknown) => string;

/** A value as a report shows it. */
export function showValue(value: unknown): string {
  const shown = show(value);
  return shown.length > SHOWN_CHARS ? `${shown.slice(0, SHOWN_CHARS)}...` : shown;
}

function show(value: unknown): string {
  if (typeof value === 'bigint') {
    const magnitude = value < 0n ? -value : value;
    const text = magnitude <= 9n ? magnitude.toString() : `0x${magnitude.toString(16)}`;
    return value < 0n ? `-${text}` : text;
  }
  if (typeof value === 'number') return Object.is(value, -0) ? '0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Uint8Array) return `${value.length} bytes (${hexdump(value, 32)})`;
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  if (value instanceof RegExp || value === null || typeof value !== 'object') return String(value);
  if (value.constructor !== Object) return util.inspect(value) as string;
  return `{ ${Object.entries(value)
    .map(([key, v]) => `${key}: ${show(v)}`)
    .join(', ')} }`;
}

/** chai's words after "expected <this> to ", split from our message before them, when they can be found. */
function split(err: ChaiAssertion): { ours: string | undefined; phrase: string } | undefined {
  const message = err.message;
  const starts = [0];
  for (let at = message.indexOf(': expected '); at >= 0; at = message.indexOf(': expected ', at + 1))
    starts.push(at + 2);
  const shownActual = `expected ${chaiShows(err.actual)} to `;
  const candidates: Array<{ at: number; phrase: string }> = [];
  for (const at of starts) {
    const chai = message.slice(at);
    if (!chai.startsWith('expected ')) continue;
    // chai shows the object asserted on, which is `actual` for all but a few (lengthOf shows the array).
    if (chai.startsWith(shownActual))
      return { ours: ours(message, at), phrase: chai.slice(shownActual.length) };
    const verb =
      / to (?=(?:not |be |equal |deeply |have |include |contain |match |satisfy |exist|respond ))/.exec(chai);
    if (verb) candidates.push({ at, phrase: chai.slice(verb.index + 4) });
  }
  const first = candidates[0];
  return first && { ours: ours(message, first.at), phrase: first.phrase };
}

function ours(message: string, at: number): string | undefined {
  return at === 0 ? undefined : message.slice(0, at - 2);
}

/** "expected X, saw Y" from chai's phrase ("not equal 0n", "be below 3", "have a length of 2 but got 1"). */
function words(err: ChaiAssertion, chaiPhrase: string): string {
  let phrase = chaiPhrase;
  const negated = phrase.startsWith('not ');
  if (negated) phrase = phrase.slice(4);
  phrase = phrase.replace(/^be /, '').replace(/^(?:deeply |strictly )/, '');
  const saw = showValue(err.actual);
  if ('expected' in err && err.expected !== undefined) {
    const shownExpected = chaiShows(err.expected);
    if (phrase.endsWith(shownExpected))
      phrase = `${phrase.slice(0, -shownExpected.length)}${showValue(err.expected)}`;
  }
  const butGot = / but got (.*)$/.exec(phrase);
  if (butGot) return `expected to ${phrase.slice(0, butGot.index)}, saw ${butGot[1]}`;
  if (phrase.startsWith('equal ')) {
    const value = phrase.slice('equal '.length);
    return negated ? `expected a value other than ${value}, saw ${saw}` : `expected ${value}, saw ${saw}`;
  }
  // A verb stays one ("expected to include 'x'"); a state reads as what was expected ("expected below 3").
  const verb = /^(?:have|include|contain|match|satisfy|respond|exist|throw)\b/.test(phrase) ? 'to ' : '';
  return `expected ${negated ? 'not ' : ''}${verb}${phrase}, saw ${saw}`;
}

/**
 * The report's message for a failed chai assertion: our message, then what was expected and what was seen. A
 * boolean condition (`expect(ok, 'why').to.equal(true)`) is our message alone: "expected true, saw false" adds
 * nothing to it.
 */
export function describeAssertion(err: Error): string {
  const assertion = err as ChaiAssertion;
  const parts = split(assertion);
  if (!parts) {
    // expect.fail(why) carries no values: its message is ours, whole.
    if (assertion.actual === undefined && assertion.expected === undefined) return err.message;
    const at = err.message.lastIndexOf(': expected ');
    const head = at > 0 ? err.message.slice(0, at) : err.message;
    return `${head}: expected ${showValue(assertion.expected)}, saw ${showValue(assertion.actual)}`;
  }
  const boolean = typeof assertion.actual === 'boolean' && typeof assertion.expected === 'boolean';
  if (parts.ours !== undefined && boolean) return parts.ours;
  const said = words(assertion, parts.phrase);
  return parts.ours === undefined ? said : `${parts.ours}: ${said}`;
}
