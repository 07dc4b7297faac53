/**
 * The alt-text audit: every `<img>` of an HTML page or a folder of pages, its alt attribute judged by rules
 * (missing, empty, placeholder) and, when it is real text, by the matcher (ok or mismatch), with a suggested alt
 * text from the captioner. One captioner for the whole run; each distinct image is captioned once (in batches) and
 * matched once against all the alt texts it carries.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { asPixelInfoError, ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';
import type { CaptionOutcome } from '../pipeline/core.js';
import type { MatchScore } from '../match/types.js';
import { toAltText } from '../text/alt-text.js';
import { decodeHtml, findHtmlFiles, findImages, type HtmlImage } from './html.js';
import { checkPlaceholder, type PlaceholderReason } from './placeholder.js';
import { resolveSrc, type ResolvedSrc } from './resolve.js';

/** The match score (a calibrated probability that the alt text describes this image) below which an alt is a mismatch. */
export const DEFAULT_MIN_SCORE = 0.5;

/**
 * - `missing`: no alt attribute;
 * - `empty`: alt="" (right for a decorative image: needs attention unless role="presentation"/"none" or aria-hidden="true" says so);
 * - `placeholder`: a file name, a camera default name or only generic words (./placeholder.ts);
 * - `ok` / `mismatch`: real text whose match score is at least / below the minimum;
 * - `unchecked`: real text, but the image could not be read (remote, unsupported or broken), so it was not matched.
 */
export type AltStatus = 'missing' | 'empty' | 'placeholder' | 'ok' | 'mismatch' | 'unchecked';

/** What a run needs from the models: Captioner has both methods. */
export interface AuditEngine {
  caption(inputs: ReadonlyArray<string | Buffer>): Promise<CaptionOutcome[]>;
  match(image: string | Buffer, texts: string[]): Promise<MatchScore[]>;
}

export interface AuditRecord {
  /** The HTML file, as reached from the audited path. */
  page: string;
  /** 1-based position of the `<img` tag. */
  line: number;
  col: number;
  /** The source checked (src, else the largest srcset candidate, else the picture's first source), as written; null when none. */
  src: string | null;
  /** The local file it resolved to, or `data:<type> (<n> bytes)` for a data: URI. */
  image?: string;
  /** The alt attribute as written; null when missing. */
  alt: string | null;
  /** Present when role="presentation"/"none" or aria-hidden="true" marks the image decorative. */
  decorative?: true;
  status: AltStatus;
  /** Whether a person should look at this image: bad alt (missing, empty on a non-decorative image, placeholder, mismatch) or a broken image. */
  attention: boolean;
  /** Why the status, in words (placeholder rule, decorative markup, ...). */
  note?: string;
  /** The match score of the alt text, in [0, 1] (ok and mismatch only). */
  score?: number;
  /** The captioner's best caption as alt text, and its confidence in [0, 1] (the matcher's score of it; absent without a matcher). */
  suggestion?: { text: string; confidence?: number };
  /** Why the image was not read (remote URL, no src, unsupported format); not an error of the page. */
  skipped?: string;
  /** A broken image: the file is missing, empty, not an image, truncated... */
  error?: { code: ErrorCode; message: string };
}

export interface AuditSummary {
  pages: number;
  images: number;
  attention: number;
  missing: number;
  empty: number;
  /** Empty alt on an image marked decorative (counted in `empty` too, not needing attention). */
  decorative: number;
  placeholder: number;
  ok: number;
  mismatch: number;
  unchecked: number;
  skipped: number;
  errors: number;
}

export interface AuditReport {
  /** The file or folder audited, as given. */
  target: string;
  minScore: number;
  summary: AuditSummary;
  /** Pages in path order, images in document order. */
  images: AuditRecord[];
}

export interface AuditResult {
  report: AuditReport;
  /** Per record (same index): what was captioned (a path or a data: URI's bytes), for thumbnails; undefined if nothing. */
  inputs: Array<string | Buffer | undefined>;
}

/** An image found in a page, with its source resolved; before any model runs. */
export interface FoundImage {
  page: string;
  html: HtmlImage;
  resolved: ResolvedSrc;
}

export interface FoundImages {
  /** The root for root-relative sources: the folder audited, or the page's folder. */
  root: string;
  pages: string[];
  images: FoundImage[];
}

/**
 * The pages under `target` (an HTML file or a folder searched recursively) and their images. Root-relative sources
 * (`/x.jpg`) resolve against `root`, default the folder audited (for one page: its folder). INVALID_ARGUMENT if
 * there is nothing to audit.
 */
export async function collectImages(target: string, siteRoot?: string): Promise<FoundImages> {
  const st = await stat(target).catch((err: NodeJS.ErrnoException) => {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${target}: ${err.code === 'ENOENT' ? 'no such file or folder' : err.message}`, { subject: target, cause: err });
  });
  let root: string;
  let pages: string[];
  if (st.isDirectory()) {
    root = target;
    pages = await findHtmlFiles(target);
    if (pages.length === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${target}: no .html or .htm files in this folder`, { subject: target });
  } else {
    root = dirname(target);
    pages = [target];
  }
  if (siteRoot !== undefined) {
    const rootStat = await stat(siteRoot).catch(() => undefined);
    if (!rootStat?.isDirectory()) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${siteRoot}: the site root must be a folder`, { subject: siteRoot });
    root = siteRoot;
  }
  const images: FoundImage[] = [];
  for (const page of pages) {
    const found = findImages(decodeHtml(await readFile(page)));
    for (const img of found.images) images.push({ page, html: img, resolved: resolveSrc(img.src, page, root, found.baseHref) });
  }
  return { root, pages, images };
}

export interface AuditOptions {
  minScore?: number;
  /** Images per caption call (the captioner batches within it too). Default 8. */
  batchSize?: number;
  /** Called after each caption batch and each matched image. */
  onProgress?: (done: number, total: number) => void;
}

/** Audits `target`; `engine` is called for only when some image can be read. */
export async function runAudit(target: string, engine: () => Promise<AuditEngine>, options: AuditOptions & { root?: string } = {}): Promise<AuditResult> {
  const found = await collectImages(target, options.root);
  return auditImages(target, found, engine, options);
}

interface Pending {
  input: string | Buffer;
  texts: Set<string>;
  caption?: CaptionOutcome;
  scores?: Map<string, MatchScore>;
  matchError?: { code: ErrorCode; message: string };
}

export async function auditImages(target: string, found: FoundImages, getEngine: () => Promise<AuditEngine>, options: AuditOptions = {}): Promise<AuditResult> {
  const minScore = options.minScore ?? DEFAULT_MIN_SCORE;
  const batchSize = options.batchSize ?? 8;
  if (!(minScore >= 0 && minScore <= 1)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `minScore must be in [0, 1], got ${minScore}`);

  // Static judgement first: what needs no model.
  const judged = found.images.map((img) => ({ img, rule: judgeStatic(img.html) }));

  // Distinct readable images, by path or by data: URI bytes, each with the alt texts to match against it.
  const pending = new Map<string, Pending>();
  const keyOf = (r: ResolvedSrc): string | undefined =>
    r.kind === 'file' ? `file:${r.path}` : r.kind === 'data' ? `data:${r.mime}:${r.bytes.toString('base64')}` : undefined;
  for (const { img, rule } of judged) {
    const key = keyOf(img.resolved);
    if (!key) continue;
    let p = pending.get(key);
    if (!p) {
      p = { input: img.resolved.kind === 'file' ? img.resolved.path : (img.resolved as { bytes: Buffer }).bytes, texts: new Set() };
      pending.set(key, p);
    }
    if (rule.status === undefined) p.texts.add(img.html.alt!.trim());
  }

  const work = [...pending.values()];
  const matchCount = work.filter((p) => p.texts.size > 0).length;
  const total = work.length + matchCount;
  let done = 0;
  if (work.length > 0) {
    const engine = await getEngine();
    for (let start = 0; start < work.length; start += batchSize) {
      const chunk = work.slice(start, start + batchSize);
      const outcomes = await engine.caption(chunk.map((p) => p.input));
      chunk.forEach((p, i) => (p.caption = outcomes[i]));
      done += chunk.length;
      options.onProgress?.(done, total);
    }
    for (const p of work) {
      if (p.texts.size === 0) continue;
      if (p.caption && !('error' in p.caption)) {
        const texts = [...p.texts];
        try {
          const scores = await engine.match(p.input, texts);
          p.scores = new Map(texts.map((t, i) => [t, scores[i]]));
        } catch (err) {
          p.matchError = asPixelInfoError(err).toJSON();
        }
      }
      options.onProgress?.(++done, total);
    }
  }

  const inputs: AuditResult['inputs'] = [];
  const images = judged.map(({ img, rule }): AuditRecord => {
    const { html, resolved } = img;
    const record: AuditRecord = { page: img.page, line: html.line, col: html.col, src: html.src ?? null, alt: html.alt, status: 'unchecked', attention: false };
    if (html.decorative) record.decorative = true;
    if (resolved.kind === 'file') record.image = resolved.path;
    if (resolved.kind === 'data') record.image = `data:${resolved.mime} (${resolved.bytes.length} bytes)`;
    const p = pending.get(keyOf(resolved) ?? '');
    inputs.push(p?.input);
    if (resolved.kind === 'skipped') record.skipped = resolved.reason;
    if (resolved.kind === 'error') record.error = { code: resolved.code, message: resolved.message };
    const outcome = p?.caption;
    if (outcome && 'error' in outcome) {
      const error = { code: outcome.error.code, message: renameBuffer(outcome.error.message, record.image) };
      // A format the captioner does not read (SVG...) is a valid image left unchecked; anything else is a broken image.
      if (error.code === ErrorCodes.UNSUPPORTED_FORMAT) record.skipped = error.message;
      else record.error = error;
    } else if (outcome) {
      const best = outcome.captions[0];
      if (best) record.suggestion = best.confidence === undefined ? { text: toAltText(best.text) } : { text: toAltText(best.text), confidence: best.confidence };
    }
    if (rule.status !== undefined) {
      record.status = rule.status;
      record.attention = rule.attention;
      if (rule.note) record.note = rule.note;
    } else {
      const alt = html.alt!.trim();
      const score = p?.scores?.get(alt);
      if (score) {
        record.score = score.score;
        record.status = score.score >= minScore ? 'ok' : 'mismatch';
        record.attention = record.status === 'mismatch';
        if (record.status === 'mismatch') record.note = `the alt text matches the image with probability ${score.score.toFixed(2)} (< ${minScore})`;
      } else if (p?.matchError) {
        record.error = p.matchError;
        record.note = 'the alt text could not be matched';
      } else {
        record.note = 'the image could not be read, so the alt text was not checked';
      }
    }
    if (record.error) record.attention = true;
    return inKeyOrder(record);
  });

  return { report: { target, minScore, summary: summarize(found.pages.length, images), images }, inputs };
}

/** The record's fields in the documented order (JSON output), undefined ones left out. */
const KEY_ORDER: ReadonlyArray<keyof AuditRecord> = ['page', 'line', 'col', 'src', 'image', 'alt', 'decorative', 'status', 'attention', 'note', 'score', 'suggestion', 'skipped', 'error'];
function inKeyOrder(record: AuditRecord): AuditRecord {
  const out: Record<string, unknown> = {};
  for (const key of KEY_ORDER) if (record[key] !== undefined) out[key] = record[key];
  return out as unknown as AuditRecord;
}

interface StaticJudgement {
  /** Undefined: real text, for the matcher to judge. */
  status?: 'missing' | 'empty' | 'placeholder';
  attention: boolean;
  note?: string;
}

const PLACEHOLDER_NOTES: Record<PlaceholderReason, string> = {
  'src-name': "the alt text is the image's file name",
  'file-name': 'the alt text is a file name',
  'camera-name': "the alt text is a camera's or tool's default file name",
  generic: 'the alt text has only generic words (image, photo, picture...)',
  'no-words': 'the alt text has no words',
};

/** The rules that need no model: missing, empty (decorative or not) and placeholder alt texts. */
export function judgeStatic(img: HtmlImage): StaticJudgement {
  if (img.alt === null) return { status: 'missing', attention: true, note: 'no alt attribute: screen readers read the file name or nothing' };
  if (img.alt.trim() === '') {
    return img.decorative
      ? { status: 'empty', attention: false, note: 'empty alt on an image marked decorative: right' }
      : {
          status: 'empty',
          attention: true,
          note: 'empty alt: right only for a decorative image (then say so with role="presentation" or aria-hidden="true"); otherwise describe it',
        };
  }
  const placeholder = checkPlaceholder(img.alt, img.src);
  if (placeholder.placeholder) return { status: 'placeholder', attention: true, note: PLACEHOLDER_NOTES[placeholder.reason!] };
  return { attention: false };
}

/** The captioner names buffers `<buffer i>`; the report names the data: URI. */
function renameBuffer(message: string, name: string | undefined): string {
  return name ? message.replace(/<buffer(?: \d+)?>/g, name) : message;
}

export function summarize(pages: number, images: readonly AuditRecord[]): AuditSummary {
  const count = (f: (r: AuditRecord) => boolean) => images.filter(f).length;
  return {
    pages,
    images: images.length,
    attention: count((r) => r.attention),
    missing: count((r) => r.status === 'missing'),
    empty: count((r) => r.status === 'empty'),
    decorative: count((r) => r.status === 'empty' && r.decorative === true),
    placeholder: count((r) => r.status === 'placeholder'),
    ok: count((r) => r.status === 'ok'),
    mismatch: count((r) => r.status === 'mismatch'),
    unchecked: count((r) => r.status === 'unchecked'),
    skipped: count((r) => r.skipped !== undefined),
    errors: count((r) => r.error !== undefined),
  };
}

/** A path for people: relative to the working directory when under it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}
