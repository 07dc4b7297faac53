/**
 * The audit's outputs: text lines for a terminal, a Markdown report (links to the image files) and a self-contained
 * HTML report (thumbnails as data: URIs). Everything from the audited pages is escaped: an alt text is untrusted.
 */
import { dirname, isAbsolute, relative, sep } from 'node:path';
import sharp from 'sharp';
import { loadOriginalRgb } from '../image/index.js';
import type { AuditRecord, AuditReport, AuditResult, AuditSummary } from './audit.js';

/** Longer side of the HTML report's thumbnails, in pixels. */
export const THUMBNAIL_SIDE = 128;

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '' : x.toFixed(2));
const where = (r: AuditRecord) => `${r.page}:${r.line}:${r.col}`;

/** In the reports, pages are named relative to the folder audited (the JSON and the text output keep the full path). */
function shortWhere(report: AuditReport, r: AuditRecord): string {
  const rel = relative(report.target, r.page);
  const page = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : r.page;
  return `${page}:${r.line}:${r.col}`;
}

/** One line of the summary: counts of everything, attention first. */
export function summaryLine(s: AuditSummary, minScore: number): string {
  const parts = [
    `${s.attention} need attention`,
    `missing ${s.missing}`,
    `empty ${s.empty} (${s.decorative} decorative)`,
    `placeholder ${s.placeholder}`,
    `mismatch ${s.mismatch}`,
    `ok ${s.ok}`,
    `unchecked ${s.unchecked}`,
    `skipped ${s.skipped}`,
    `broken ${s.errors}`,
  ];
  return `${s.images} images in ${s.pages} page${s.pages === 1 ? '' : 's'}: ${parts.join(', ')} (minimum match score ${minScore})`;
}

/** Text lines, one per image, then the summary. */
export function textLines(report: AuditReport): string[] {
  const lines = report.images.map((r) => {
    const mark = r.attention ? '!' : ' ';
    const parts = [`${mark} ${where(r)}`, statusText(r).padEnd(11), r.src ?? '(no src)'];
    if (r.alt !== null && r.alt.trim() !== '') parts.push(`alt ${JSON.stringify(r.alt)}`);
    if (r.score !== undefined) parts.push(`score ${fmt(r.score)}`);
    if (r.error) parts.push(r.error.message);
    else if (r.skipped) parts.push(`skipped: ${r.skipped}`);
    if (r.attention && r.suggestion) parts.push(`→ suggested ${JSON.stringify(r.suggestion.text)}${r.suggestion.confidence === undefined ? '' : ` (${fmt(r.suggestion.confidence)})`}`);
    return parts.join('  ');
  });
  return [...lines, summaryLine(report.summary, report.minScore)];
}

/** Markdown cell text: one line, Markdown and HTML punctuation escaped. */
function mdCell(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[\\`*_[\]<>|#!&]/g, '\\$&');
}

/** A relative link from the report's folder to `path`, percent-encoded. */
function mdLink(path: string, reportFile: string): string {
  const rel = relative(dirname(reportFile), path).split(sep).join('/');
  return rel.split('/').map(encodeURIComponent).join('/');
}

function statusText(r: AuditRecord): string {
  if (r.error) return `broken (${r.error.code})`;
  return r.status + (r.decorative && r.status === 'empty' ? ' (decorative)' : '');
}

function detail(r: AuditRecord): string {
  return r.error?.message ?? (r.skipped ? `skipped: ${r.skipped}` : r.note ?? '');
}

/** The Markdown report; image links are relative to `reportFile`'s folder. */
export function markdownReport(report: AuditReport, reportFile: string): string {
  const out = [`# Alt-text audit: ${mdCell(report.target)}`, '', summaryLine(report.summary, report.minScore), ''];
  const section = (title: string, records: AuditRecord[]) => {
    out.push(`## ${title}`, '');
    if (records.length === 0) {
      out.push('None.', '');
      return;
    }
    out.push('| where | image | alt | status | score | suggested alt (confidence) | note |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const r of records) {
      const image = r.image && !r.image.startsWith('data:') ? `[${mdCell(r.src ?? r.image)}](${mdLink(r.image, reportFile)})` : mdCell(r.src ? (r.src.startsWith('data:') ? (r.image ?? 'data: URI') : r.src) : '(no src)');
      const alt = r.alt === null ? '(none)' : r.alt.trim() === '' ? '(empty)' : mdCell(r.alt);
      const suggestion = r.suggestion ? `${mdCell(r.suggestion.text)}${r.suggestion.confidence === undefined ? '' : ` (${fmt(r.suggestion.confidence)})`}` : '';
      out.push(`| [${mdCell(shortWhere(report, r))}](${mdLink(r.page, reportFile)}) | ${image} | ${alt} | ${mdCell(statusText(r))} | ${fmt(r.score)} | ${suggestion} | ${mdCell(detail(r))} |`);
    }
    out.push('');
  };
  section('Needs attention', report.images.filter((r) => r.attention));
  section('Fine or not checked', report.images.filter((r) => !r.attention));
  return out.join('\n');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A small JPEG of the image as a data: URI; undefined when it cannot be read. */
export async function thumbnailDataUri(input: string | Buffer, side = THUMBNAIL_SIDE): Promise<string | undefined> {
  try {
    const { data, width, height } = await loadOriginalRgb(input, side);
    const jpeg = await sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 70 }).toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  } catch {
    return undefined;
  }
}

/** The self-contained HTML report: thumbnails embedded, no outside resources. */
export async function htmlReport(result: AuditResult): Promise<string> {
  const { report, inputs } = result;
  const thumbs = new Map<string | Buffer, Promise<string | undefined>>();
  const thumbOf = (input: string | Buffer | undefined) => {
    if (input === undefined) return Promise.resolve(undefined);
    if (!thumbs.has(input)) thumbs.set(input, thumbnailDataUri(input));
    return thumbs.get(input)!;
  };
  const rows: string[] = [];
  for (const [i, r] of report.images.entries()) {
    const thumb = await thumbOf(inputs[i]);
    const thumbAlt = r.suggestion?.text ?? '';
    const img = thumb ? `<img src="${thumb}" alt="${escapeHtml(thumbAlt)}">` : '<span class="none">no image</span>';
    const alt = r.alt === null ? '<em>(none)</em>' : r.alt.trim() === '' ? '<em>(empty)</em>' : escapeHtml(r.alt);
    const suggestion = r.suggestion ? `${escapeHtml(r.suggestion.text)}${r.suggestion.confidence === undefined ? '' : ` <span class="num">(${fmt(r.suggestion.confidence)})</span>`}` : '';
    rows.push(
      `<tr class="${r.attention ? 'attention' : 'fine'}"><td>${img}</td><td>${escapeHtml(shortWhere(report, r))}<br><code>${escapeHtml(r.src ?? '(no src)')}</code></td>` +
        `<td>${alt}</td><td class="status">${escapeHtml(statusText(r))}</td><td class="num">${fmt(r.score)}</td><td>${suggestion}</td><td>${escapeHtml(detail(r))}</td></tr>`,
    );
  }
  const s = report.summary;
  const counts: Array<[string, number]> = [
    ['need attention', s.attention], ['missing', s.missing], ['empty', s.empty], ['decorative', s.decorative], ['placeholder', s.placeholder],
    ['mismatch', s.mismatch], ['ok', s.ok], ['unchecked', s.unchecked], ['skipped', s.skipped], ['broken', s.errors],
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Alt-text audit: ${escapeHtml(report.target)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }
td img { max-width: ${THUMBNAIL_SIDE}px; max-height: ${THUMBNAIL_SIDE}px; display: block; }
tr.attention td.status { color: #b00020; font-weight: 600; }
tr.fine td.status { color: #1b5e20; }
.num { font-variant-numeric: tabular-nums; }
.none, em { color: #777; }
dl.summary { display: flex; flex-wrap: wrap; gap: 0 1.5rem; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0 0 0.3rem; }
code { word-break: break-all; }
</style>
</head>
<body>
<h1>Alt-text audit: ${escapeHtml(report.target)}</h1>
<p>${s.images} images in ${s.pages} page${s.pages === 1 ? '' : 's'}; an alt text is a mismatch when its match score is below ${report.minScore}.</p>
<dl class="summary">${counts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join('')}</dl>
<table>
<thead><tr><th>image</th><th>where</th><th>alt</th><th>status</th><th>score</th><th>suggested alt (confidence)</th><th>note</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>
</body>
</html>
`;
}
