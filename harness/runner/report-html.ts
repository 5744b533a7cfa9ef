/**
 * The HTML report, for a person: one self-contained file (inline CSS and a few lines of inline JS, no network:
 * its Content-Security-Policy forbids any fetch) with a summary of the run, a filter by verdict, and every
 * check with its verdict, severity, spec anchor (a link to the section), the rule it enforces, its message,
 * the back-end's stderr, and for a check that failed its wire log. Every text from the run is escaped: a
 * back-end's output is hostile.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatWireLog } from '../transport/wire-log.js';
import { ensureDir } from '../util/fs.js';
import { printable } from './console.js';
import { showsWireLog } from './report-wire.js';
import { type CheckResult, checkKey, type RunResult, type Verdict } from './types.js';

const VERDICTS: readonly Verdict[] = ['fail', 'timeout', 'error', 'skip', 'pass'];

/** Text as HTML text or attribute value: markup characters escaped, control characters shown as `\xNN`. */
export function escapeHtml(text: string): string {
  return printable(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The documents the checks' spec anchors name, and where they are published. The vhost-user documents at the
 * QEMU release whose sentences the checks quote (7.2, Debian 12's), as GitHub renders them: their section
 * anchors are the checks' (`#ring-states`); qemu.org publishes only the latest, whose wording has moved on.
 */
const QEMU_DOCS = 'https://github.com/qemu/qemu/blob/v7.2.0/docs/interop';
const SPEC_DOCUMENTS: Readonly<Record<string, { url: string; anchors: boolean }>> = {
  'vhost-user.rst': { url: `${QEMU_DOCS}/vhost-user.rst`, anchors: true },
  // Sections 7.2 lacks, quoted from the release that brought them ("Migrating back-end state": QEMU 8.2).
  'vhost-user.rst@8.2': {
    url: 'https://github.com/qemu/qemu/blob/v8.2.0/docs/interop/vhost-user.rst',
    anchors: true,
  },
  'vhost-user-gpu.rst': { url: `${QEMU_DOCS}/vhost-user-gpu.rst`, anchors: true },
  'vhost-user.json': { url: `${QEMU_DOCS}/vhost-user.json`, anchors: false },
  // The published HTML names its sections x1-NNNN, not by the spec's labels: the link is to the document.
  'virtio-spec': {
    url: 'https://docs.oasis-open.org/virtio/virtio/v1.2/cs01/virtio-v1.2-cs01.html',
    anchors: false,
  },
};

/** The URL of a spec anchor (`vhost-user.rst#communication`), or undefined for a document we do not know. */
export function specUrl(anchor: string): string | undefined {
  const at = anchor.indexOf('#');
  const doc = SPEC_DOCUMENTS[at < 0 ? anchor : anchor.slice(0, at)];
  if (!doc) return undefined;
  return doc.anchors && at >= 0 ? `${doc.url}#${encodeURIComponent(anchor.slice(at + 1))}` : doc.url;
}

/** The style of every HTML page vhu-conform writes (a report, the back-end matrix of --all). */
export const REPORT_CSS = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .5em}
figure{margin:0}figure img{max-width:100%;border:1px solid #ccc;image-rendering:pixelated}
table.facts{border-collapse:collapse;margin:.5em 0 1em}
table.facts th,table.facts td{text-align:left;padding:.15em .8em .15em 0;vertical-align:top}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;word-break:break-word;margin:.3em 0;font-size:12px}
.badge{display:inline-block;min-width:4.5em;text-align:center;border-radius:3px;padding:0 .4em;font-weight:bold;color:#fff}
.v-pass{background:#2a7d2a}.v-fail{background:#c62828}.v-timeout{background:#8e24aa}.v-skip{background:#9e8a00}.v-error{background:#d84315}
.check{border-top:1px solid #ddd;padding:.5em 0}
.check h2{font-size:1em;margin:0;font-weight:normal}
.check .id{font-family:monospace;font-weight:bold}
.check dl{margin:.3em 0 0 1em}.check dt{font-weight:bold;margin-top:.3em}.check dd{margin-left:1em}
#filter label{margin-right:1em}
.interrupted{background:#fff3cd;border:1px solid #e0c060;padding:.5em;margin:.5em 0}
table.matrix{border-collapse:collapse}table.matrix td,table.matrix th{border:1px solid #ddd;padding:.1em .4em}
`;

/** Hides the checks of the verdicts unticked; without JS every check stays shown. */
const SCRIPT = `
for (const box of document.querySelectorAll('#filter input')) {
  box.addEventListener('change', () => {
    for (const el of document.querySelectorAll('.check[data-verdict="' + box.value + '"]')) el.hidden = !box.checked;
  });
}
`;

function verdictCount(result: RunResult, verdict: Verdict): number {
  return result.checks.filter((c) => c.verdict === verdict).length;
}

function factsTable(rows: Array<[string, string]>): string {
  return `<table class="facts">${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function summaryHtml(result: RunResult): string {
  const s = result.summary;
  const backend = result.backend;
  const counts = VERDICTS.map(
    (v) => `<span class="badge v-${v}">${v}</span> ${verdictCount(result, v)}`,
  ).join(' &nbsp; ');
  const rows: Array<[string, string]> = [
    ['checks', `${s.total}: ${counts}`],
    ['failed', `MUST ${s.mustFailed}, SHOULD ${s.shouldFailed}`],
    [
      'back-end',
      escapeHtml(
        backend.connect !== undefined ? `attached to ${backend.connect}` : `${backend.binary ?? ''}`,
      ) + (backend.args.length ? ` <code>${escapeHtml(backend.args.join(' '))}</code>` : ''),
    ],
    ['device type', escapeHtml(backend.type ?? 'unknown')],
    ['started', escapeHtml(result.startedAt)],
    ['duration', `${(s.durationMs / 1000).toFixed(2)} s`],
    ['interrupted', result.interrupted ? 'yes' : 'no'],
    ['tool', escapeHtml(`${result.tool.name} ${result.tool.version}`)],
  ];
  const options = Object.entries(result.options).map(([k, v]): [string, string] => [
    k,
    escapeHtml(Array.isArray(v) ? v.join(':') : String(v)),
  ]);
  const b = result.baseline;
  const baseline = b
    ? factsTable([
        ['expected failures', String(b.expectedFailures)],
        ['new failures', escapeHtml(b.newFailures.join(', ') || 'none')],
        ['fixed (remove from the baseline)', escapeHtml(b.fixed.join(', ') || 'none')],
        ['not run', escapeHtml(b.notRun.join(', ') || 'none')],
      ])
    : '';
  const interrupted = result.interrupted
    ? '<p class="interrupted">The run was interrupted (SIGINT or SIGTERM): the checks not run are missing, the last ones skipped.</p>'
    : '';
  return (
    `${interrupted}${factsTable(rows)}` +
    `<details><summary>options of the run</summary>${factsTable(options)}</details>` +
    (baseline ? `<h3>baseline</h3>${baseline}` : '') +
    matrixHtml(result)
  );
}

function matrixHtml(result: RunResult): string {
  const m = result.matrix;
  if (!m) return '';
  const head = `<tr><th>check</th>${m.profiles.map((p) => `<th>${escapeHtml(p)}</th>`).join('')}</tr>`;
  const rows = Object.entries(m.checks).map(
    ([id, byProfile]) =>
      `<tr><td class="id">${escapeHtml(id)}</td>${m.profiles
        .map((p) => {
          const v = byProfile[p];
          return `<td>${v ? `<span class="badge v-${v}">${v}</span>` : ''}</td>`;
        })
        .join('')}</tr>`,
  );
  return `<h3>front-end profiles</h3><table class="matrix">${head}${rows.join('')}</table>`;
}

function filterHtml(result: RunResult): string {
  const boxes = VERDICTS.map(
    (v) =>
      `<label><input type="checkbox" value="${v}" checked> <span class="badge v-${v}">${v}</span> ${verdictCount(result, v)}</label>`,
  );
  return `<p id="filter">show: ${boxes.join('')}</p>`;
}

function specHtml(anchor: string): string {
  const url = specUrl(anchor);
  return url ? `<a href="${escapeHtml(url)}">${escapeHtml(anchor)}</a>` : escapeHtml(anchor);
}

function checkHtml(check: CheckResult, images: Images): string {
  const key = checkKey(check);
  const items: string[] = [
    `<dt>spec</dt><dd>${specHtml(check.spec)}${check.interop ? ' (interoperability: no sentence binds the back-end)' : ''}</dd>`,
  ];
  if (check.rule) items.push(`<dt>rule</dt><dd class="rule">${escapeHtml(check.rule)}</dd>`);
  if (check.message)
    items.push(`<dt>message</dt><dd><pre class="message">${escapeHtml(check.message)}</pre></dd>`);
  if (check.expected)
    items.push(`<dt>expected by the baseline</dt><dd>${escapeHtml(check.expected.reason)}</dd>`);
  if (check.stderrTail)
    items.push(
      `<dt>back-end stderr (tail)</dt><dd><pre class="stderr">${escapeHtml(check.stderrTail)}</pre></dd>`,
    );
  for (const file of check.files ?? []) {
    const image = images.get(file);
    items.push(
      image
        ? `<dt>saved</dt><dd><figure><img src="${image}" alt="${escapeHtml(file)}"><figcaption>${escapeHtml(file)}</figcaption></figure></dd>`
        : `<dt>saved</dt><dd>${escapeHtml(file)}</dd>`,
    );
  }
  if (showsWireLog(check)) {
    const lines = check.wire ? formatWireLog(check.wire) : [];
    const count = check.wire ? check.wire.records.length + check.wire.cut : 0;
    items.push(
      lines.length
        ? `<dt>wire log</dt><dd><details class="wire"><summary>${count} message${count === 1 ? '' : 's'} on the back-end socket</summary><pre>${escapeHtml(lines.join('\n'))}</pre></details></dd>`
        : '<dt>wire log</dt><dd>no message on the back-end socket</dd>',
    );
  }
  return (
    `<section class="check" id="${escapeHtml(`check-${key}`)}" data-verdict="${check.verdict}">` +
    `<h2><span class="badge v-${check.verdict}">${check.verdict}</span> ${check.severity} ` +
    `<span class="id">${escapeHtml(key)}</span> ${escapeHtml(check.title)} ` +
    `<small>(${check.durationMs} ms)</small></h2><dl>${items.join('')}</dl></section>`
  );
}

/** Saved PNG files as data: URLs, by path: the page shows them without fetching anything. */
type Images = ReadonlyMap<string, string>;

/** A PNG larger than this is named, not inlined: the report stays a file a browser opens at once. */
const INLINE_IMAGE_BYTES = 8 * 1024 * 1024;

/** The whole report as one HTML document; `images` holds the saved PNGs to show inline. */
export function toHtml(result: RunResult, images: Images = new Map()): string {
  const who = result.backend.connect ?? result.backend.binary ?? '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vhu-conform: ${escapeHtml(who)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<h1>vhu-conform report: ${escapeHtml(who)}</h1>
${summaryHtml(result)}
${filterHtml(result)}
<main>
${result.checks.map((c) => checkHtml(c, images)).join('\n')}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** Writes {@link toHtml} of `result` to `file`, creating its parent folders. */
export async function writeHtmlReport(result: RunResult, file: string): Promise<void> {
  await ensureDir(dirname(file));
  await writeFile(file, toHtml(result, await readImages(result)), 'utf8');
}

/** The saved PNGs of the run that can still be read and are small enough, as data: URLs. */
async function readImages(result: RunResult): Promise<Images> {
  const images = new Map<string, string>();
  for (const file of result.checks.flatMap((c) => c.files ?? [])) {
    if (!file.endsWith('.png') || images.has(file)) continue;
    const size = await stat(file).then(
      (s) => (s.isFile() ? s.size : undefined),
      () => undefined,
    );
    if (size === undefined || size > INLINE_IMAGE_BYTES) continue;
    images.set(file, `data:image/png;base64,${(await readFile(file)).toString('base64')}`);
  }
  return images;
}
