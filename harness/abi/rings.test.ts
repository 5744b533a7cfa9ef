import { expect } from 'chai';
import { createGuestMemory, SKEWED_LAYOUT } from '../memory/guest-memory.js';
import { SplitVirtqueue } from '../virtqueue/split.js';
import { layoutFor, ringsFor } from './rings.js';

describe('abi ring sizes by use: the rings of a trial', () => {
  it('starts every queue up to the one measured, that one at its last entry, the others at what they took', () => {
    expect(ringsFor(0, 32768, [])).to.deep.equal([{ index: 0, size: 32768, base: 32767 }]);
    // Net transmitq2 at 1024: receive queues (null) at 256, transmitq1 at the 512 it took.
    expect(ringsFor(3, 1024, [null, 512, null])).to.deep.equal([
      { index: 0, size: 256 },
      { index: 1, size: 512 },
      { index: 2, size: 256 },
      { index: 3, size: 1024, base: 1023 },
    ]);
    // Never above the size tried.
    expect(ringsFor(1, 64, [32768])).to.deep.equal([
      { index: 0, size: 64 },
      { index: 1, size: 64, base: 63 },
    ]);
  });

  it('gives the ring region room for every ring of the trial at the largest size, and leaves the rest as it was', () => {
    const rings = ringsFor(3, 32768, [null, 32768, null]);
    const layout = layoutFor(rings);
    // The ring region is the highest (FrontendDevice's default): only its size changes.
    const highest = SKEWED_LAYOUT.reduce((a, b) => (b.guestAddress > a.guestAddress ? b : a));
    expect(
      layout.map((r) => (r.guestAddress === highest.guestAddress ? { ...r, size: highest.size } : r)),
    ).to.deep.equal(SKEWED_LAYOUT);
    const memory = createGuestMemory({ layout });
    const region = highest.guestAddress;
    for (const ring of rings) new SplitVirtqueue(memory, ring.size, { region });
    // One ring of 1 entry still has the default region.
    expect(layoutFor(ringsFor(0, 1, []))).to.deep.equal(SKEWED_LAYOUT);
  });
});
