/**
 * Every check says which sentence of the spec it enforces, and its severity is that sentence's word: a MUST
 * quotes a must (or a mandatory option), a SHOULD a should; a check of what real peers do (interop) is never a
 * MUST.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
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

/** QEMU 7.2's tree, which .ci/install-backends fetches with `apt-get source qemu` and keeps. */
const QEMU_CACHE = '/var/cache/vhu-conform/qemu-7.2';

/** The section anchors of a reStructuredText file, as docutils (and GitHub's rendering) makes them. */
function sectionAnchors(rst: string): Set<string> {
  const lines = rst.split('\n');
  const anchors = new Set<string>();
  lines.forEach((line, i) => {
    const under = lines[i + 1] ?? '';
    if (!line.trim() || !/^([=\-^~"'`#*+])\1{2,}\s*$/.test(under) || under.trim().length < line.trim().length)
      return;
    anchors.add(
      line
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-|-$/g, ''),
    );
  });
  return anchors;
}

describe('the spec anchors of the checks', () => {
  it("every vhost-user.rst and vhost-user-gpu.rst anchor is a section of QEMU 7.2's document (the report links to it)", () => {
    const tree = existsSync(QEMU_CACHE)
      ? readdirSync(QEMU_CACHE).find((name) => name.startsWith('qemu-7.2'))
      : undefined;
    if (tree === undefined)
      throw new Error(`no QEMU 7.2 tree under ${QEMU_CACHE}: run .ci/install-backends (as root)`);
    const missing: string[] = [];
    for (const doc of ['vhost-user.rst', 'vhost-user-gpu.rst']) {
      const anchors = sectionAnchors(readFileSync(path.join(QEMU_CACHE, tree, 'docs/interop', doc), 'utf8'));
      for (const check of allChecks) {
        const [file, anchor] = check.spec.split('#');
        if (file === doc && anchor !== undefined && !anchors.has(anchor))
          missing.push(`${check.id}: ${check.spec}`);
      }
    }
    expect(missing).to.deep.equal([]);
  });
});
