/**
 * The images of an HTML page, found with a real HTML parser (parse5, the WHATWG algorithm browsers use), with their
 * source position, chosen source and alt attribute.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, type DefaultTreeAdapterMap } from 'parse5';

type Node = DefaultTreeAdapterMap['node'];
type Element = DefaultTreeAdapterMap['element'];
type Template = DefaultTreeAdapterMap['template'];

export interface HtmlImage {
  /** 1-based line and column of the `<img` tag in the page. */
  line: number;
  col: number;
  /**
   * The image source the audit checks: the `src` attribute; without one, the largest candidate of `srcset`; without
   * either, the largest candidate of the first `<source srcset>` of the enclosing `<picture>`. Undefined when none.
   */
  src?: string;
  /** Where `src` came from. */
  srcFrom?: 'src' | 'srcset' | 'picture';
  /** The alt attribute as written (entities decoded); null when there is no alt attribute. */
  alt: string | null;
  /** `role="presentation"`/`role="none"` or `aria-hidden="true"`: the page says the image is decorative. */
  decorative: boolean;
}

export interface HtmlPage {
  images: HtmlImage[];
  /** The `href` of the first `<base href>`, when the page has one. */
  baseHref?: string;
}

/** Every `<img>` of a page (also inside `<template>` content), in document order. */
export function findImages(html: string): HtmlPage {
  const document = parse(html, { sourceCodeLocationInfo: true });
  const images: HtmlImage[] = [];
  let baseHref: string | undefined;
  const visit = (node: Node, picture: Element | undefined): void => {
    if (!('tagName' in node)) {
      if ('childNodes' in node) for (const child of node.childNodes) visit(child, picture);
      return;
    }
    const el = node as Element;
    if (el.tagName === 'base' && baseHref === undefined) {
      const href = attr(el, 'href');
      if (href !== undefined && href.trim() !== '') baseHref = href.trim();
    }
    if (el.tagName === 'img') images.push(imageOf(el, picture));
    const inPicture = el.tagName === 'picture' ? el : picture;
    for (const child of el.childNodes) visit(child, inPicture);
    if (el.tagName === 'template') visit((el as Template).content, undefined);
  };
  visit(document, undefined);
  return { images, baseHref };
}

function imageOf(el: Element, picture: Element | undefined): HtmlImage {
  const loc = el.sourceCodeLocation;
  const alt = attr(el, 'alt') ?? null;
  const role = (attr(el, 'role') ?? '').trim().toLowerCase().split(/\s+/)[0];
  const decorative = role === 'presentation' || role === 'none' || (attr(el, 'aria-hidden') ?? '').trim().toLowerCase() === 'true';
  let src: string | undefined;
  let srcFrom: HtmlImage['srcFrom'];
  const own = attr(el, 'src')?.trim();
  if (own) [src, srcFrom] = [own, 'src'];
  else {
    const fromSet = bestCandidate(attr(el, 'srcset'));
    if (fromSet) [src, srcFrom] = [fromSet, 'srcset'];
    else if (picture) {
      const source = picture.childNodes.find((c): c is Element => 'tagName' in c && c.tagName === 'source' && Boolean(attr(c as Element, 'srcset')?.trim()));
      const fromPicture = source ? bestCandidate(attr(source, 'srcset')) : undefined;
      if (fromPicture) [src, srcFrom] = [fromPicture, 'picture'];
    }
  }
  return { line: loc?.startLine ?? 0, col: loc?.startCol ?? 0, src, srcFrom, alt, decorative };
}

function attr(el: Element, name: string): string | undefined {
  return el.attrs.find((a) => a.name === name && !a.namespace)?.value;
}

export interface SrcsetCandidate {
  url: string;
  /** Width (`400w`) or density (`2x`; a candidate without a descriptor is 1x). */
  width?: number;
  density?: number;
}

/**
 * The candidates of a srcset attribute (the HTML standard's parsing: a URL is a run of non-space characters, so
 * data: URIs with commas survive; trailing commas end it; descriptors run to the next comma).
 */
export function parseSrcset(srcset: string): SrcsetCandidate[] {
  const out: SrcsetCandidate[] = [];
  let i = 0;
  const n = srcset.length;
  while (i < n) {
    while (i < n && (/\s/.test(srcset[i]) || srcset[i] === ',')) i++;
    if (i >= n) break;
    let start = i;
    while (i < n && !/\s/.test(srcset[i])) i++;
    let url = srcset.slice(start, i);
    let descriptors = '';
    if (url.endsWith(',')) url = url.replace(/,+$/, '');
    else {
      start = i;
      while (i < n && srcset[i] !== ',') i++; // no parentheses in width/density descriptors
      descriptors = srcset.slice(start, i).trim();
    }
    if (!url) continue;
    const candidate: SrcsetCandidate = { url };
    for (const d of descriptors.split(/\s+/).filter(Boolean)) {
      const m = /^(\d+(?:\.\d+)?)([wx])$/i.exec(d);
      if (m && m[2].toLowerCase() === 'w') candidate.width = Number(m[1]);
      else if (m) candidate.density = Number(m[1]);
    }
    if (candidate.width === undefined && candidate.density === undefined) candidate.density = 1;
    out.push(candidate);
  }
  return out;
}

/** The candidate with the most pixels: the largest width, else the largest density. */
export function bestCandidate(srcset: string | undefined): string | undefined {
  if (!srcset) return undefined;
  const candidates = parseSrcset(srcset);
  if (candidates.length === 0) return undefined;
  const rank = (c: SrcsetCandidate) => c.width ?? (c.density ?? 1) * 1e-6; // width descriptors outrank densities
  return candidates.reduce((best, c) => (rank(c) > rank(best) ? c : best)).url;
}

/**
 * The text of an HTML file: a byte-order mark, else a `<meta charset>` (or `http-equiv` content type) in the first
 * 1024 bytes, else UTF-8; as browsers do without an HTTP header. An unknown label falls back to UTF-8.
 */
export function decodeHtml(bytes: Uint8Array): string {
  let label = 'utf-8';
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) label = 'utf-8';
  else if (bytes[0] === 0xff && bytes[1] === 0xfe) label = 'utf-16le';
  else if (bytes[0] === 0xfe && bytes[1] === 0xff) label = 'utf-16be';
  else {
    const head = Buffer.from(bytes.subarray(0, 1024)).toString('latin1');
    const m = /<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head);
    if (m) label = m[1].toLowerCase();
  }
  try {
    return new TextDecoder(label).decode(bytes); // drops a BOM
  } catch {
    return new TextDecoder('utf-8').decode(bytes);
  }
}

/** `*.html` and `*.htm` files under `dir`, at any depth, sorted; hidden entries and node_modules are skipped. */
export async function findHtmlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await findHtmlFiles(path)));
    else if ((entry.isFile() || entry.isSymbolicLink()) && /\.html?$/i.test(entry.name)) out.push(path);
  }
  return out;
}
