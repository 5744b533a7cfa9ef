/**
 * Failing early, and the device options capabilities advertise (vhost-user.rst, Backend program
 * conventions: "should fail to start early and exit with a status != 0"; vhost-user-gpu/-input/-blk options).
 */
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { SkipError, TimeoutError } from '../../harness/errors.js';
import type { BackendProcess } from '../../harness/process/backend.js';
import {
  cpuLine,
  describeExit,
  serveOnSocketPath,
  socketPath,
  stderrLine,
} from '../../harness/process/probes.js';
import { type CheckContext, defineChecks, Spec } from '../../harness/runner/check.js';
import { FEATURES_BY_TYPE } from '../../harness/schemas/vhost-user.js';

/** Asserts that `backend` ends with a status != 0 within the deadline; a hang or a silent success fails. */
async function expectEarlyFailure(
  ctx: CheckContext,
  backend: BackendProcess,
  asked: string,
): Promise<string> {
  try {
    await backend.waitExit(ctx.timeoutMs);
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    expect.fail(
      `still running ${ctx.timeoutMs} ms after being asked ${asked} (${cpuLine(backend)}): it should exit with a status != 0`,
    );
  }
  expect(backend.exit?.signal ?? null, `asked ${asked}, it crashed (${describeExit(backend.exit)})`).to.equal(
    null,
  );
  expect(
    backend.exit?.code,
    `asked ${asked}, it ended with ${describeExit(backend.exit)} (silent success)`,
  ).to.not.equal(0);
  return `${describeExit(backend.exit)} after ${Math.round(backend.exitedAt! - backend.startedAt)} ms; ${stderrLine(backend)}`;
}

function advertised(ctx: CheckContext): string[] {
  const features = (ctx.target.capabilities as { features?: unknown } | null)?.features;
  return Array.isArray(features) ? features.filter((f): f is string => typeof f === 'string') : [];
}

/** A device option that names a missing resource, per type, and the feature that advertises it. */
const MISSING_RESOURCE: Record<string, { feature: string; option: string }> = {
  block: { feature: 'blk-file', option: '--blk-file=/nonexistent/vhu-conform/disk.img' },
  gpu: { feature: 'render-node', option: '--render-node=/nonexistent/vhu-conform/renderD128' },
  input: { feature: 'evdev-path', option: '--evdev-path=/nonexistent/vhu-conform/event0' },
};

function firstDevice(dir: string, prefix: string): string | undefined {
  try {
    const name = readdirSync(dir)
      .filter((n) => n.startsWith(prefix))
      .sort()[0];
    return name ? path.join(dir, name) : undefined;
  } catch {
    return undefined;
  }
}

/** For each feature, the options that exercise it here, or why this host cannot. */
async function optionsFor(ctx: CheckContext, type: string, feature: string): Promise<string[] | string> {
  const renderNode = firstDevice('/dev/dri', 'renderD');
  const evdev = firstDevice('/dev/input', 'event');
  const diskImage = async () => {
    const file = path.join(await ctx.scope.tempDir('vhu-disk-'), 'disk.img');
    await writeFile(file, Buffer.alloc(1024 * 1024));
    return file;
  };
  switch (`${type}/${feature}`) {
    case 'block/blk-file':
      return [`--blk-file=${await diskImage()}`];
    case 'block/read-only':
      return advertised(ctx).includes('blk-file')
        ? [`--blk-file=${await diskImage()}`, '--read-only']
        : ['--read-only'];
    case 'gpu/render-node':
      return renderNode ? [`--render-node=${renderNode}`] : 'no DRM render node on this host';
    case 'gpu/virgl':
      return renderNode
        ? ['--virgl', `--render-node=${renderNode}`]
        : 'virgl needs a DRM render node; none on this host';
    case 'input/evdev-path':
      return evdev ? [`--evdev-path=${evdev}`] : 'no evdev device on this host';
    case 'input/no-grab':
      return evdev
        ? [`--evdev-path=${evdev}`, '--no-grab']
        : 'no-grab needs an evdev device; none on this host';
    default:
      return `no known option for feature ${feature}`;
  }
}

export const optionChecks = defineChecks('conventions', [
  {
    id: 'conv.fail-early.unknown-option',
    // A refusal means something only from a back-end that starts when asked right (/bin/false refuses all).
    needs: ['conv.socket-path.listen'],
    refusal: true,
    detail: 'an unknown option: status != 0 within the deadline (not a hang, not a silent success)',
    title: 'an unknown option makes it exit with a status != 0',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "If the back-end is not capable of enabling a requested feature on the host (such as 3D acceleration with virgl), or the initialization failed, the back-end should fail to start early and exit with a status != 0."',
    async run(ctx) {
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`, '--vhu-conform-no-such-option']);
      return expectEarlyFailure(ctx, backend, 'to use an unknown option');
    },
  },
  {
    id: 'conv.fail-early.missing-resource',
    // A refusal means something only from a back-end that starts when asked right (/bin/false refuses all).
    needs: ['conv.socket-path.listen'],
    refusal: true,
    detail:
      '`--blk-file`, `--render-node` or `--evdev-path` naming a missing file: status != 0 within the deadline',
    title: 'a device option naming a missing resource makes it exit with a status != 0',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "If the back-end is not capable of enabling a requested feature on the host (such as 3D acceleration with virgl), or the initialization failed, the back-end should fail to start early and exit with a status != 0."',
    async run(ctx) {
      const type = ctx.target.type ?? '';
      const resource = MISSING_RESOURCE[type];
      if (!resource)
        throw new SkipError(`the conventions name no device option for type ${type || '(unknown)'}`);
      if (!advertised(ctx).includes(resource.feature)) {
        throw new SkipError(`it does not advertise the ${resource.feature} feature`);
      }
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`, resource.option]);
      return expectEarlyFailure(ctx, backend, `for ${resource.option}`);
    },
  },
  {
    id: 'conv.fail-early.bad-fd',
    // A refusal means something only from a back-end that starts when asked right (/bin/false refuses all).
    needs: ['conv.socket-path.listen'],
    refusal: true,
    detail: '`--fd=42`, not open: status != 0 within the deadline',
    title: '--fd naming a descriptor that is not open makes it exit with a status != 0',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "If the back-end is not capable of enabling a requested feature on the host (such as 3D acceleration with virgl), or the initialization failed, the back-end should fail to start early and exit with a status != 0."',
    async run(ctx) {
      const backend = ctx.launch(['--fd=42']);
      return expectEarlyFailure(ctx, backend, 'to serve --fd=42, which is not open');
    },
  },
  {
    id: 'conv.options.features',
    detail:
      'each advertised gpu, input or block feature has its option accepted (tried where the host has the resource: a render node, an evdev device)',
    needs: ['conv.socket-path.reply'],
    title: 'each advertised device feature has its command line option accepted',
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.json (QEMU 7.2), VHostUserBackendBlockFeature: "@blk-file: The --blk-file command line option is supported." (and so for each feature; no normative word, and the options themselves are "(optional)" in vhost-user.rst); interoperability (libvirt passes --render-node and --virgl to a vhost-user-gpu back-end whose capabilities list them): an advertised feature\'s option is accepted',
    interop: true,
    async run(ctx) {
      const type = ctx.target.type ?? '';
      const known = FEATURES_BY_TYPE[type];
      if (!known) throw new SkipError(`type ${type || '(unknown)'} defines no device features`);
      const features = advertised(ctx).filter((f) => known.includes(f));
      if (!features.length) throw new SkipError('it advertises no device feature');
      const tried: string[] = [];
      const untried: string[] = [];
      for (const feature of features) {
        const args = await optionsFor(ctx, type, feature);
        if (typeof args === 'string') {
          untried.push(`${feature}: ${args}`);
          continue;
        }
        const { connection, backend } = await serveOnSocketPath(ctx, args).catch((err: Error) => {
          throw Object.assign(err, { message: `with ${args.join(' ')}: ${err.message}` });
        });
        await connection.requestU64('GET_FEATURES');
        connection.close();
        await backend.terminate(ctx.timeoutMs);
        tried.push(`${feature} (${args.join(' ')})`);
      }
      if (!tried.length)
        throw new SkipError(`no advertised feature can be tried on this host: ${untried.join('; ')}`);
      return `accepted: ${tried.join(', ')}${untried.length ? `; not tried: ${untried.join('; ')}` : ''}`;
    },
  },
]);
