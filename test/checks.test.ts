/**
 * Every check says which sentence of the spec it enforces, and its severity is that sentence's word: a MUST
 * quotes a must (or a mandatory option), a SHOULD a should; a check of what real peers do (interop) is never a
 * MUST.
 */
import { expect } from 'chai';
import { allChecks } from '../suites/index.js';

/**
 * The words that make a sentence normative at each severity: RFC 2119's, vhost-user.rst's lower case, and its
 * "require replies" and "needs to be sent" (the reply a front-end waits for).
 */
const WORDS: Record<'MUST' | 'SHOULD', RegExp> = {
  MUST: /\b(must|shall|required?|mandatory|needs to)\b/i,
  SHOULD: /\b(should|recommended)\b/i,
};

describe('the checks and the sentences they enforce', () => {
  it('every check quotes the sentence it enforces, and where it stands', () => {
    const without = allChecks.filter((c) => !c.rule?.trim()).map((c) => c.id);
    expect(without).to.deep.equal([]);
  });

  it("a MUST or SHOULD check's sentence says its word; an interoperability check is never a MUST", () => {
    const wrong = allChecks
      .filter((c) => !c.interop && c.severity !== 'INFO' && !WORDS[c.severity].test(c.rule ?? ''))
      .map((c) => `${c.id} (${c.severity}): ${c.rule}`);
    expect(wrong).to.deep.equal([]);
    expect(allChecks.filter((c) => c.interop && c.severity === 'MUST').map((c) => c.id)).to.deep.equal([]);
  });
});
