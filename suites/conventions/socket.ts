/** `--socket-path=PATH` and `--fd=FDNUM` (vhost-user.rst, Backend program conventions). */
import { expect } from 'chai';
import { SkipError, TimeoutError } from '../../harness/errors.js';
import {
  describeExit,
  type FdForm,
  type FdProbe,
  probeFd,
  serveOnSocketPath,
  socketPath,
  stderrLine,
  waitListening,
} from '../../harness/process/probes.js';
import { isListeningAt } from '../../harness/process/procfs.js';
import { hasBit, VHOST_USER_F_PROTOCOL_FEATURES } from '../../harness/protocol/spec.js';
import { type CheckContext, defineChecks, Spec } from '../../harness/runner/check.js';
import { closeFd, socketpair } from '../../harness/sys/libc.js';

/** The fd number libvirt and most launchers use; the convention allows any. */
const FIRST_FD = 3;
/** Another number, with the ones below it closed, to catch a back-end that assumes 3. */
const OTHER_FD = 9;

function fdForms(ctx: CheckContext): Promise<FdProbe[]> {
  return ctx.memo('fd-forms', async () => {
    const forms: FdForm[] = ['connected', 'listening'];
    const probes: FdProbe[] = [];
    for (const form of forms) probes.push(await probeFd(ctx, form, FIRST_FD));
    return probes;
  });
}

function summary(probes: FdProbe[]): string {
  return probes
    .map((p) => `${p.form} socket at fd ${p.fdNumber}: ${p.ok ? 'works' : 'fails'} (${p.detail})`)
    .join('; ');
}

export const socketChecks = defineChecks('conventions', [
  {
    id: 'conv.socket-path.listen',
    detail:
      '`--socket-path=P`: a listening socket appears at P within the deadline, its socket file in place; one that ends first fails, naming its exit status (or signal) and the last line of its stderr',
    title: '--socket-path=PATH listens on PATH within the deadline',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "They are mandatory, unless explicitly said differently"; and --socket-path=PATH: "This option specify the location of the vhost-user Unix domain socket."',
    async run(ctx) {
      const socket = await socketPath(ctx);
      const backend = ctx.launch([`--socket-path=${socket}`]);
      // Listening means a listening socket bound at the path, its socket file in place (waitListening); a
      // back-end that ends first fails, naming its exit status or signal and the end of its stderr.
      const afterMs = await waitListening(ctx, backend, socket);
      return `listening after ${afterMs} ms`;
    },
  },
  {
    id: 'conv.socket-path.reply',
    detail:
      'it answers `GET_FEATURES` with a well-formed reply: same request, flags = version 1 + reply bit, size 8, no fds',
    needs: ['conv.socket-path.listen'],
    title: 'the socket answers GET_FEATURES with a well-formed reply',
    severity: 'MUST',
    spec: Spec.communication,
    rule: 'vhost-user.rst (QEMU 7.2), Communication: "Most of the requests don\'t require replies. Here is a list of the ones that do:" (the first: ``VHOST_USER_GET_FEATURES``, whose reply payload is ``u64``); and vhost-user.rst (QEMU 7.2), Message Specification, Header: "Bit 2 is the reply flag - needs to be sent on each reply from the back-end"',
    async run(ctx) {
      const { connection } = await serveOnSocketPath(ctx);
      const features = await connection.requestU64('GET_FEATURES');
      const bit30 = hasBit(features, VHOST_USER_F_PROTOCOL_FEATURES) ? 'with' : 'without';
      return `features 0x${features.toString(16)} (${bit30} VHOST_USER_F_PROTOCOL_FEATURES)`;
    },
  },
  {
    id: 'conv.fd.works',
    detail: '`--fd=3` serves the inherited socket, as a connected socketpair end or as a listening socket',
    title: '--fd=FDNUM serves the inherited socket',
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "They are mandatory, unless explicitly said differently"; and --fd=FDNUM: "When this argument is given, the back-end program is started with the vhost-user socket as file descriptor FDNUM."',
    async run(ctx) {
      const probes = await fdForms(ctx);
      expect(
        probes.some((p) => p.ok),
        `neither a connected nor a listening socket was served: ${summary(probes)}`,
      ).to.equal(true);
      return summary(probes.filter((p) => p.ok));
    },
  },
  {
    id: 'conv.fd.form',
    detail:
      'which of the two `--fd` forms work (the spec does not say which one a back-end gets); when neither does, conv.fd.works fails, naming both',
    // When no form works the answer is conv.fd.works' failure; on its own it would pass or fail by timing
    // (a back-end that exits at once may or may not take the connection to the listening socket first).
    needs: ['conv.fd.works'],
    title: 'which --fd forms work (connected socketpair end, listening socket)',
    severity: 'INFO',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: --fd=FDNUM: "When this argument is given, the back-end program is started with the vhost-user socket as file descriptor FDNUM." (it does not say whether the socket is connected or listening)',
    async run(ctx) {
      return summary(await fdForms(ctx));
    },
  },
  {
    id: 'conv.fd.number',
    detail: '`--fd` works at fd 9 as well',
    needs: ['conv.fd.works'],
    title: `--fd works at a number other than ${FIRST_FD}`,
    severity: 'MUST',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: "They are mandatory, unless explicitly said differently"; and --fd=FDNUM: "When this argument is given, the back-end program is started with the vhost-user socket as file descriptor FDNUM."',
    async run(ctx) {
      const working = (await fdForms(ctx)).find((p) => p.ok);
      if (!working) throw new SkipError('no --fd form works (see conv.fd.works)');
      const probe = await probeFd(ctx, working.form, OTHER_FD);
      expect(probe.ok, `${working.form} socket at fd ${OTHER_FD}: ${probe.detail}`).to.equal(true);
      return `${working.form} socket at fd ${OTHER_FD}: ${probe.detail}`;
    },
  },
  {
    id: 'conv.fd.exclusive',
    // A refusal means something only from a back-end that starts when asked right (/bin/false refuses all).
    needs: ['conv.socket-path.listen'],
    refusal: true,
    detail: '`--fd` with `--socket-path` is refused: status != 0 within the deadline, nothing listening',
    title: '--fd together with --socket-path is refused',
    // "It is incompatible with --fd" binds the caller, who must not pass both; the back-end's duty is the
    // fail-early one: "If ... the initialization failed, the back-end should fail to start early and exit
    // with a status != 0" (vhost-user.rst 7.2, Backend program conventions).
    severity: 'SHOULD',
    spec: Spec.conventions,
    rule: 'vhost-user.rst (QEMU 7.2), Backend program conventions: --fd=FDNUM: "It is incompatible with --socket-path."; and "If the back-end is not capable of enabling a requested feature on the host (such as 3D acceleration with virgl), or the initialization failed, the back-end should fail to start early and exit with a status != 0."',
    async run(ctx) {
      const socket = await socketPath(ctx);
      const [ours, theirs] = socketpair();
      ctx.scope.defer('socketpair end', () => closeFd(ours));
      let backend: ReturnType<CheckContext['launch']>;
      try {
        backend = ctx.launch([`--fd=${FIRST_FD}`, `--socket-path=${socket}`], {
          fds: { [FIRST_FD]: theirs },
        });
      } finally {
        closeFd(theirs);
      }
      try {
        await backend.waitExit(ctx.timeoutMs);
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        const serving = isListeningAt(socket) ? `, listening at ${socket}` : '';
        expect.fail(
          `still running ${ctx.timeoutMs} ms after being given both --fd and --socket-path${serving}`,
        );
      }
      expect(backend.exit?.signal ?? null, `it crashed (${describeExit(backend.exit)})`).to.equal(null);
      expect(
        backend.exit?.code,
        `it ended with ${describeExit(backend.exit)}; ${stderrLine(backend)}`,
      ).to.not.equal(0);
      expect(isListeningAt(socket), `something still listens at ${socket}`).to.equal(false);
      return `refused with ${describeExit(backend.exit)}; ${stderrLine(backend)}`;
    },
  },
]);
