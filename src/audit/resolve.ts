/**
 * An `<img>` source → what the audit can caption: a local file (relative to the page, or root-relative `/x.jpg`
 * against the audited folder), the bytes of a data: URI, or a reason it is skipped (remote URLs are not fetched).
 */
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, type ErrorCode } from '../errors.js';

export type ResolvedSrc =
  | { kind: 'file'; path: string }
  | { kind: 'data'; bytes: Buffer; mime: string }
  | { kind: 'skipped'; reason: string }
  | { kind: 'error'; code: ErrorCode; message: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

/**
 * Resolves `src` as written in `page` (a path) for a site rooted at `root` (the folder audited; a page audited
 * alone is its own root). `baseHref` is the page's `<base href>`, if any.
 */
export function resolveSrc(src: string | undefined, page: string, root: string, baseHref?: string): ResolvedSrc {
  if (src === undefined || src.trim() === '') return { kind: 'skipped', reason: 'no src or srcset attribute' };
  const s = src.trim();
  const scheme = SCHEME.exec(s)?.[1].toLowerCase();
  if (scheme === 'data') return decodeDataUri(s);
  if (scheme === 'file') {
    try {
      return { kind: 'file', path: fileURLToPath(s.replace(/[?#].*$/, '')) };
    } catch (err) {
      return { kind: 'error', code: ErrorCodes.INVALID_ARGUMENT, message: `${s}: not a local file URL (${(err as Error).message})` };
    }
  }
  if (scheme === 'http' || scheme === 'https' || s.startsWith('//')) return { kind: 'skipped', reason: 'remote image: http(s) URLs are not fetched' };
  if (scheme && scheme.length > 1) return { kind: 'skipped', reason: `${scheme}: URLs cannot be read` }; // a one-letter "scheme" is a Windows drive
  let dir = dirname(page);
  if (baseHref) {
    const base = baseHref.trim();
    const baseScheme = SCHEME.exec(base)?.[1].toLowerCase();
    if (baseScheme || base.startsWith('//')) {
      if (baseScheme === 'file') dir = dirname(fileURLToPath(base.replace(/[?#].*$/, '') + (base.endsWith('/') ? 'x' : '')));
      else return { kind: 'skipped', reason: `remote image: relative to <base href="${base}">, not fetched` };
    } else {
      const basePath = urlPath(base);
      // A base naming a folder ends with "/"; otherwise its last segment is a document and dropped.
      const baseDir = basePath.endsWith('/') ? basePath : posix.dirname(basePath);
      dir = baseDir.startsWith('/') ? join(root, baseDir) : join(dir, baseDir);
    }
  }
  const path = urlPath(s);
  if (path === '') return { kind: 'skipped', reason: 'src names no file' };
  return { kind: 'file', path: path.startsWith('/') ? join(root, path) : join(dir, path) };
}

/** The path part of a relative URL: no query or fragment, percent-escapes decoded. */
function urlPath(url: string): string {
  const path = url.replace(/[?#].*$/, '');
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** `data:[<mediatype>][;base64],<data>` → its bytes, for image media types. */
export function decodeDataUri(uri: string): ResolvedSrc {
  const comma = uri.indexOf(',');
  const shown = uri.length > 40 ? `${uri.slice(0, 40)}…` : uri;
  if (comma < 0) return { kind: 'error', code: ErrorCodes.DECODE_FAILED, message: `${shown}: malformed data: URI (no comma)` };
  const meta = uri.slice(5, comma).trim().split(';').map((p) => p.trim());
  const mime = (meta[0] || 'text/plain').toLowerCase();
  const base64 = meta.slice(1).some((p) => p.toLowerCase() === 'base64');
  const payload = uri.slice(comma + 1);
  if (!mime.startsWith('image/')) {
    return { kind: 'error', code: ErrorCodes.NOT_AN_IMAGE, message: `data: URI of type ${mime}, not an image` };
  }
  let bytes: Buffer;
  if (base64) {
    const clean = payload.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) {
      return { kind: 'error', code: ErrorCodes.DECODE_FAILED, message: `data: URI (${mime}): invalid base64` };
    }
    bytes = Buffer.from(clean, 'base64');
  } else {
    bytes = percentDecode(payload);
  }
  if (bytes.length === 0) return { kind: 'error', code: ErrorCodes.FILE_EMPTY, message: `data: URI (${mime}) holds no bytes` };
  return { kind: 'data', bytes, mime };
}

/** Percent-escapes → bytes (any byte, not only UTF-8), other characters as UTF-8. */
function percentDecode(text: string): Buffer {
  const parts: Buffer[] = [];
  let plain = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%' && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      if (plain) parts.push(Buffer.from(plain, 'utf8'));
      plain = '';
      parts.push(Buffer.from([parseInt(text.slice(i + 1, i + 3), 16)]));
      i += 2;
    } else plain += text[i];
  }
  if (plain) parts.push(Buffer.from(plain, 'utf8'));
  return Buffer.concat(parts);
}
