/**
 * Alt texts that say nothing about the image: a file name, a camera's default name, or only generic words. The
 * rules (and the word lists) are documented in the README's audit section; they need no model.
 */

/** Words that name the medium, not the content ("image", "photo"...), or are left over from a template or a CMS. */
export const GENERIC_ALT_WORDS: readonly string[] = [
  'alt', 'alttext', 'banner', 'blank', 'default', 'description', 'dummy', 'empty', 'fig', 'figure', 'file', 'graphic', 'graphics',
  'icon', 'illustration', 'image', 'images', 'img', 'jpeg', 'jpg', 'null', 'pic', 'pics', 'picture', 'pictures', 'photo',
  'photograph', 'photos', 'pixel', 'placeholder', 'png', 'gif', 'screenshot', 'spacer', 'tbd', 'text', 'thumb', 'thumbnail',
  'todo', 'undefined', 'untitled', 'webp',
];

/** Words that may surround the generic ones without adding content ("an image of", "insert alt text here"). */
const FILLER_WORDS = new Set(['a', 'an', 'the', 'of', 'this', 'that', 'my', 'our', 'your', 'here', 'insert', 'enter', 'add', 'no', 'for', 'goes', 'x']);

const GENERIC = new Set(GENERIC_ALT_WORDS);

/** A file name: word characters, dashes, dots or spaces, then an image extension. */
const FILE_NAME = /^[\w\- .()~%]+\.(jpe?g|png|gif|webp|avif|svg|bmp|tiff?|heic|heif|ico)$/i;

/**
 * Camera, phone and tool default names: IMG_1234, IMG-20230101-WA0001, DSC0001, DSCN1234, DSCF0042, P1000123, PXL_20230101_123456,
 * MVIMG_..., GOPR0042, DCIM, Screenshot 2023-01-01 at 10.00.00, image001, photo-2, Untitled-1, 1234 (digits only).
 */
const CAMERA_NAME =
  /^(?:(?:img|dsc[nf]?|dcim|pxl|mvimg|gopr|gp|dji|sam|wp|pict?|p|image|photo|pic|picture|untitled|scan|capture|video)[\s_\-.]*\d[\w\-.]*|screen ?shot[\s_\-]+\d[\w\s\-.:]*)$/i;

export type PlaceholderReason = 'file-name' | 'src-name' | 'camera-name' | 'generic' | 'no-words';

export interface PlaceholderCheck {
  placeholder: boolean;
  /** Why it is one: the alt is the src's own file name, a file name, a camera default name, only generic words, or no word at all. */
  reason?: PlaceholderReason;
}

/**
 * Whether `alt` (a non-empty alt text) is a placeholder for the image at `src` (the attribute as written; its file
 * name, with or without extension, counts as a placeholder alt).
 */
export function checkPlaceholder(alt: string, src?: string): PlaceholderCheck {
  const text = alt.trim().replace(/\s+/g, ' ');
  const bare = text.replace(/[.!?,;:]+$/, '').trim();
  const name = src ? srcBaseName(src) : undefined;
  if (name) {
    const lower = bare.toLowerCase();
    const stem = name.replace(/\.[^.]*$/, '');
    if (lower === name || (stem.length > 0 && (lower === stem || lower === stem.replace(/[_-]+/g, ' ')))) return { placeholder: true, reason: 'src-name' };
  }
  if (FILE_NAME.test(bare)) return { placeholder: true, reason: 'file-name' };
  if (CAMERA_NAME.test(bare) || /^\d[\d\s_\-.]*$/.test(bare)) return { placeholder: true, reason: 'camera-name' };
  const words = bare.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const content = words.filter((w) => !FILLER_WORDS.has(w) && !/^\d+$/.test(w));
  if (content.length === 0) return { placeholder: true, reason: 'no-words' };
  if (content.every((w) => GENERIC.has(w))) return { placeholder: true, reason: 'generic' };
  return { placeholder: false };
}

/** The last path segment of a src (URL or path), decoded and lower case, without query or fragment; undefined for data: URIs. */
export function srcBaseName(src: string): string | undefined {
  const s = src.trim();
  if (/^data:/i.test(s)) return undefined;
  const path = s.replace(/[?#].*$/, '');
  const last = path.split(/[\\/]/).filter(Boolean).pop();
  if (!last) return undefined;
  try {
    return decodeURIComponent(last).toLowerCase();
  } catch {
    return last.toLowerCase();
  }
}
