import { expect } from 'chai';
import { validateCapabilities, validateCapabilitiesStrict, validateDescriptor } from './validate.js';

describe('schemas', () => {
  it('accepts what real back-ends print', () => {
    const gpu = { type: 'gpu', features: ['render-node', 'virgl'] };
    for (const doc of [gpu, { type: 'fs' }, { type: 'block', features: [] }]) {
      expect(validateCapabilities(doc), JSON.stringify(doc)).to.deep.equal([]);
      expect(validateCapabilitiesStrict(doc), JSON.stringify(doc)).to.deep.equal([]);
    }
  });

  it('refuses a type outside the enum, a missing type, and gpu without features', () => {
    expect(validateCapabilities({ type: 'blok' }).join()).to.match(
      /type must be equal to one of the allowed values/,
    );
    expect(validateCapabilities({ features: [] }).join()).to.match(/must have required property 'type'/);
    expect(validateCapabilities({ type: 'gpu' }).join()).to.match(/features/);
    expect(validateCapabilities([1, 2]).join()).to.match(/must be object/);
  });

  it('leaves unknown features to the strict schema', () => {
    const doc = { type: 'block', features: ['read-only', 'turbo'] };
    expect(validateCapabilities(doc)).to.deep.equal([]);
    expect(validateCapabilitiesStrict(doc).join()).to.match(/features\/1/);
    expect(validateCapabilitiesStrict({ type: 'fs', features: ['x'] }).join()).to.match(/features/);
  });

  it('lints descriptors', () => {
    const good = { description: 'QEMU vhost-user-gpu', type: 'gpu', binary: '/usr/lib/qemu/vhost-user-gpu' };
    expect(validateDescriptor(good)).to.deep.equal([]);
    expect(validateDescriptor({ ...good, tags: ['CONFIG_OPENGL_DMABUF=y'] })).to.deep.equal([]);
    expect(validateDescriptor({ type: 'gpu', binary: 'x' }).join()).to.match(/description/);
    expect(validateDescriptor({ ...good, extra: 1 }).join()).to.match(/extra/);
  });
});
