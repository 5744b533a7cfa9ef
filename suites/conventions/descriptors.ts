/** Descriptor files (vhost-user.json @VhostUserBackend; vhost-user.rst, Backend program conventions). */
import { expect } from 'chai';
import {
  type DescriptorLint,
  discoverDescriptors,
  lintDescriptor,
  namesBinary,
} from '../../harness/descriptors/discover.js';
import { SkipError } from '../../harness/errors.js';
import { type CheckContext, defineChecks, Spec } from '../../harness/runner/check.js';

function lints(ctx: CheckContext): Promise<{ dirs: string[]; lints: DescriptorLint[] }> {
  return ctx.memo('descriptors', async () => {
    const found = discoverDescriptors(ctx.target.descriptorDirs);
    return { dirs: found.dirs, lints: found.effective.map(lintDescriptor) };
  });
}

function none(dirs: string[]): string {
  return `no descriptor files in ${dirs.join(', ')}`;
}

export const descriptorChecks = defineChecks('conventions', [
  {
    id: 'conv.descriptor.schema',
    detail: 'every descriptor file in effect is a valid `VhostUserBackend` document',
    title: 'descriptor files in effect are valid VhostUserBackend documents',
    severity: 'SHOULD',
    spec: Spec.descriptorSchema,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "Each back-end installed on a host system should come with at least one JSON file that conforms to the vhost-user.json schema."',
    async run(ctx) {
      const { dirs, lints: all } = await lints(ctx);
      const bad = all.filter((l) => l.schemaErrors.length);
      expect(bad.map((l) => `${l.file.path}: ${l.schemaErrors.join('; ')}`)).to.deep.equal([]);
      return all.length ? `${all.length} descriptor file(s) valid` : none(dirs);
    },
  },
  {
    id: 'conv.descriptor.binary',
    detail: "every descriptor's `binary` is an absolute path to an executable file",
    title: "each descriptor's binary is an absolute path to an executable",
    severity: 'SHOULD',
    spec: Spec.descriptorSchema,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "Each back-end installed on a host system should come with at least one JSON file that conforms to the vhost-user.json schema."; and vhost-user.json (QEMU 7.2), VhostUserBackend: "@binary: Absolute path to the backend binary."',
    async run(ctx) {
      const { dirs, lints: all } = await lints(ctx);
      const parsed = all.filter((l) => l.document);
      const bad = parsed.filter((l) => l.binaryErrors.length);
      expect(bad.map((l) => `${l.file.path}: ${l.binaryErrors.join('; ')}`)).to.deep.equal([]);
      return parsed.length ? `${parsed.length} descriptor binary path(s) executable` : none(dirs);
    },
  },
  {
    id: 'conv.descriptor.type',
    detail:
      'the descriptors naming the binary under test declare the type it reports (skip when none names it)',
    title: 'descriptors naming this binary declare the type it reports',
    severity: 'SHOULD',
    spec: Spec.descriptorSchema,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "Each back-end installed on a host system should come with at least one JSON file that conforms to the vhost-user.json schema."; and vhost-user.json (QEMU 7.2), VhostUserBackend: "@type: The vhost user backend type."',
    async run(ctx) {
      const { dirs, lints: all } = await lints(ctx);
      const mine = all.filter((l) => namesBinary(l, ctx.target.binary));
      if (!mine.length) throw new SkipError(`no descriptor in ${dirs.join(', ')} names ${ctx.target.binary}`);
      if (!ctx.target.type) throw new SkipError('the binary reports no type (see conv.caps.schema)');
      const wrong = mine.filter((l) => l.document?.type !== ctx.target.type);
      expect(
        wrong.map((l) => `${l.file.path} declares type ${JSON.stringify(l.document?.type)}`),
        `the binary reports type ${ctx.target.type}`,
      ).to.deep.equal([]);
      return `type ${ctx.target.type} in ${mine.map((l) => l.file.path).join(', ')}`;
    },
  },
  {
    id: 'conv.descriptor.found',
    detail: 'which descriptor file describes the binary under test, and its precedence',
    title: 'which descriptor describes this binary',
    severity: 'INFO',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "Each file informs the management applications about the back-end type, and binary location."',
    async run(ctx) {
      const { dirs, lints: all } = await lints(ctx);
      const mine = all.filter((l) => namesBinary(l, ctx.target.binary));
      if (!mine.length) return `no descriptor in ${dirs.join(', ')} names ${ctx.target.binary}`;
      return mine
        .map((l) => {
          const overrides = l.file.overrides.length ? `, overriding ${l.file.overrides.join(', ')}` : '';
          return `${l.file.path} (position ${all.indexOf(l) + 1} of ${all.length}${overrides}): ${JSON.stringify(l.document?.description ?? '')}`;
        })
        .join('; ');
    },
  },
]);
