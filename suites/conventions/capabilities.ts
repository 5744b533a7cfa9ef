/** `--print-capabilities` (vhost-user.rst, Backend program conventions; vhost-user.json). */
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { SkipError, TimeoutError } from '../../harness/errors.js';
import { type CapabilitiesProbe, probeCapabilities } from '../../harness/process/capabilities.js';
import { describeExit } from '../../harness/process/probes.js';
import { type CheckContext, defineChecks, Spec } from '../../harness/runner/check.js';
import { printable } from '../../harness/runner/console.js';
import { validateCapabilities, validateCapabilitiesStrict } from '../../harness/schemas/validate.js';

function capabilities(ctx: CheckContext): Promise<CapabilitiesProbe> {
  return ctx.memo('capabilities', () =>
    probeCapabilities(ctx.scope, ctx.target.binary, ctx.target.extraArgs, ctx.timeoutMs),
  );
}

function excerpt(text: string): string {
  return `"${printable(text.slice(0, 160))}${text.length > 160 ? '...' : ''}"`;
}

export const capabilityChecks = defineChecks('conventions', [
  {
    id: 'conv.caps.exit',
    detail: '`--print-capabilities` exits 0 within the deadline',
    title: '--print-capabilities exits successfully within the deadline',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "They are mandatory, unless explicitly said differently"; and --print-capabilities: "Output to stdout the back-end capabilities in JSON format, and then exit successfully."',
    async run(ctx) {
      const probe = await capabilities(ctx);
      if (probe.timedOut)
        throw new TimeoutError('--print-capabilities to exit', ctx.timeoutMs, 'it was still running');
      expect(probe.exit?.signal ?? null, `--print-capabilities was ${describeExit(probe.exit)}`).to.equal(
        null,
      );
      expect(probe.exit?.code, `--print-capabilities ended with ${describeExit(probe.exit)}`).to.equal(0);
      return `exited 0 after ${probe.durationMs} ms`;
    },
  },
  {
    id: 'conv.caps.schema',
    detail:
      'stdout is exactly one JSON document valid against `VHostUserBackendCapabilities`: `type` from the enum; for gpu, input and block a `features` list',
    title: 'stdout is one JSON document valid against VHostUserBackendCapabilities',
    severity: 'MUST',
    spec: Spec.capabilitiesSchema,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "They are mandatory, unless explicitly said differently"; and --print-capabilities: "Output to stdout the back-end capabilities in JSON format, and then exit successfully."; and "The JSON output is described in the ``vhost-user.json`` schema" (by @VHostUserBackendCapabilities)',
    async run(ctx) {
      const probe = await capabilities(ctx);
      if (probe.timedOut && !probe.stdout) {
        throw new TimeoutError('--print-capabilities to print', ctx.timeoutMs, 'nothing on stdout');
      }
      if (probe.parseError !== undefined)
        expect.fail(
          `stdout is not exactly one JSON document (${probe.parseError}); stdout: ${excerpt(probe.stdout)}`,
        );
      const errors = validateCapabilities(probe.document);
      expect(
        errors,
        `invalid capabilities ${excerpt(JSON.stringify(probe.document))}: ${errors.join('; ')}`,
      ).to.deep.equal([]);
      return `type ${probe.type}`;
    },
  },
  {
    id: 'conv.caps.features-known',
    detail: "features are from the type's enum, and no member the schema does not define",
    needs: ['conv.caps.schema'],
    title: 'capabilities name only features and members the schema defines',
    severity: 'INFO',
    spec: Spec.capabilitiesSchema,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "The JSON output is described in the ``vhost-user.json`` schema" (by @VHostUserBackendCapabilities; no normative word for what is not in it, and a later schema may define more features)',
    async run(ctx) {
      const probe = await capabilities(ctx);
      if (probe.document === undefined || validateCapabilities(probe.document).length) {
        throw new SkipError('no valid capabilities document to inspect (see conv.caps.schema)');
      }
      const errors = validateCapabilitiesStrict(probe.document);
      expect(
        errors,
        `capabilities ${excerpt(JSON.stringify(probe.document))}: ${errors.join('; ')}`,
      ).to.deep.equal([]);
      const features = (probe.document as { features?: string[] }).features;
      return features?.length ? `features: ${features.join(', ')}` : 'no features';
    },
  },
  {
    id: 'conv.caps.no-normal-function',
    // 'Still only prints' means something only from a back-end whose --print-capabilities works.
    needs: ['conv.caps.exit'],
    refusal: true,
    detail:
      '`--print-capabilities --socket-path=P` still only prints: exits within the deadline, no socket at P',
    title: '--print-capabilities with --socket-path still only prints, and creates no socket',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: --print-capabilities: "Other options and arguments should be ignored, and the back-end program should not perform its normal function."',
    async run(ctx) {
      const dir = await ctx.scope.tempDir('vhu-caps-');
      const socket = `${dir}/backend.sock`;
      const probe = await probeCapabilities(
        ctx.scope,
        ctx.target.binary,
        ctx.target.extraArgs,
        ctx.timeoutMs,
        [`--socket-path=${socket}`],
      );
      if (probe.timedOut) {
        throw new TimeoutError(
          '--print-capabilities --socket-path=PATH to exit',
          ctx.timeoutMs,
          'it kept running, as if serving',
        );
      }
      expect(existsSync(socket), `a socket file was created at ${socket}`).to.equal(false);
      return `ended (${describeExit(probe.exit)}) after ${probe.durationMs} ms, no socket created`;
    },
  },
]);
