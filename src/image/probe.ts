/**
 * Reads an image's header (no pixels) to decide, before decoding, whether we accept it:
 * the format, and the size so decompression bombs are refused from the header alone.
 * Also turns libvips error messages into our error codes.
 */
import sharp, { type Metadata } from 'sharp';
import { PixelInfoError, ErrorCodes } from '../errors.js';

export interface ImageHeader {
  /** Our name for the format: 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif'. */
  format: string;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
}

/**
 * Raster photo formats that sharp's prebuilt libvips decodes. Everything else sharp can open is
 * refused with UNSUPPORTED_FORMAT: SVG is a document rendered by librsvg from untrusted XML, its cost
 * is not bounded by a pixel header, and it is not the kind of image the captioner was trained on;
 * HEIC (HEVC) is recognised by libheif but the prebuilt build has no HEVC decoder.
 */
const ACCEPTED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff']);

export async function readHeader(bytes: Buffer, source: string, maxPixels: number): Promise<ImageHeader> {
  let meta: Metadata;
  try {
    // Header only, never pixels: no pixel limit here so the size check below can say what the size is.
    meta = await sharp(bytes, { limitInputPixels: false, pages: 1, page: 0 }).metadata();
  } catch (err) {
    throw classifyDecodeError(err, bytes, source, maxPixels);
  }
  const format = acceptedFormat(meta);
  if (!format) {
    const what = meta.format === 'heif' && meta.compression ? `heif/${meta.compression}` : meta.format;
    throw new PixelInfoError(
      ErrorCodes.UNSUPPORTED_FORMAT,
      `${source}: ${what} images are not supported (use JPEG, PNG, WebP, GIF, TIFF or AVIF)`,
      { subject: source },
    );
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!(width > 0 && height > 0)) {
    throw new PixelInfoError(ErrorCodes.DECODE_FAILED, `${source}: header has no valid size`, { subject: source });
  }
  if (width * height > maxPixels) {
    throw new PixelInfoError(
      ErrorCodes.IMAGE_TOO_LARGE,
      `${source}: ${width}x${height} is ${width * height} pixels, more than the ${maxPixels}-pixel limit`,
      { subject: source },
    );
  }
  return { format, width, height };
}

function acceptedFormat(meta: Metadata): string | undefined {
  if (ACCEPTED_FORMATS.has(meta.format)) return meta.format;
  if (meta.format === 'heif' && meta.compression === 'av1') return 'avif';
  return undefined;
}

/** Maps an error thrown by sharp while reading `bytes` to one of our codes. */
export function classifyDecodeError(err: unknown, bytes: Buffer, source: string, maxPixels?: number): PixelInfoError {
  if (err instanceof PixelInfoError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const detail = firstLine(message);
  const make = (code: (typeof ErrorCodes)[keyof typeof ErrorCodes], text: string) =>
    new PixelInfoError(code, `${source}: ${text}`, { subject: source, cause: err });

  // Check the file's own structure before trusting the message: libpng only says "read error", and a TIFF
  // cut before its directory is "unsupported image format" to libvips.
  const container = sniffContainer(bytes);
  if (container && isCutShort(bytes, container)) {
    return make(ErrorCodes.IMAGE_TRUNCATED, `${container} data is truncated (${detail})`);
  }
  if (/unsupported image format/i.test(message)) {
    if (container) return make(ErrorCodes.DECODE_FAILED, `damaged ${container} file (${detail})`);
    const known = recogniseUnsupported(bytes);
    return known
      ? make(ErrorCodes.UNSUPPORTED_FORMAT, `${known} images are not supported (use JPEG, PNG, WebP, GIF, TIFF or AVIF)`)
      : make(ErrorCodes.NOT_AN_IMAGE, 'not an image (unrecognised content)');
  }
  if (/exceeds pixel limit/i.test(message)) {
    const limit = maxPixels === undefined ? 'the pixel limit' : `the ${maxPixels}-pixel limit`;
    return make(ErrorCodes.IMAGE_TOO_LARGE, `header says the image has more pixels than ${limit}`);
  }
  if (/^timeout/i.test(message)) return make(ErrorCodes.TIMEOUT, 'decoding took too long');
  if (TRUNCATION_MESSAGE.test(message)) return make(ErrorCodes.IMAGE_TRUNCATED, `image data is truncated (${detail})`);
  return make(ErrorCodes.DECODE_FAILED, `cannot decode image (${detail})`);
}

function firstLine(message: string): string {
  const line = message.split('\n').find((l) => /\S/.test(l.replace(/^Input buffer has corrupt header:\s*/, ''))) ?? message;
  return line.replace(/^Input buffer has corrupt header:\s*/, '').trim() || 'corrupt header';
}

const TRUNCATION_MESSAGE = /premature end|unexpected end|truncat|end of (file|data|stream)|out of data|not enough data|short read/i;

type Container = 'JPEG' | 'PNG' | 'GIF' | 'WebP' | 'TIFF';

/** Which accepted format the bytes claim to be, by magic number. */
function sniffContainer(b: Buffer): Container | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'JPEG';
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47 && b.readUInt32BE(4) === 0x0d0a1a0a) return 'PNG';
  const head = b.subarray(0, 12).toString('latin1');
  if (head.startsWith('GIF87a') || head.startsWith('GIF89a')) return 'GIF';
  if (head.startsWith('RIFF') && head.slice(8, 12) === 'WEBP') return 'WebP';
  if (head.startsWith('II*\0') || head.startsWith('MM\0*')) return 'TIFF';
  return undefined;
}

/** True when the file ends before its format says it should. */
function isCutShort(b: Buffer, container: Container): boolean {
  switch (container) {
    case 'PNG':
      return b.lastIndexOf('IEND', undefined, 'latin1') < 0;
    case 'JPEG': {
      // An EOI marker (FF D9) at the end, allowing some trailing padding.
      const tail = b.subarray(Math.max(0, b.length - 64));
      for (let i = tail.length - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return false;
      return true;
    }
    case 'GIF':
      return b[b.length - 1] !== 0x3b; // the trailer byte ';'
    case 'WebP':
      return b.length < 12 || b.readUInt32LE(4) + 8 > b.length; // RIFF size
    case 'TIFF': {
      if (b.length < 8) return true;
      const firstIfd = b[0] === 0x49 ? b.readUInt32LE(4) : b.readUInt32BE(4);
      return firstIfd + 2 > b.length;
    }
  }
}

/**
 * Image formats this sharp build cannot open at all: name them, so a user with a BMP is told
 * "unsupported" rather than "not an image".
 */
function recogniseUnsupported(b: Buffer): string | undefined {
  const ascii = (start: number, end: number) => b.subarray(start, end).toString('latin1');
  if (b.length >= 26 && ascii(0, 2) === 'BM' && [12, 40, 52, 56, 64, 108, 124].includes(b.readUInt32LE(14))) return 'BMP';
  if (ascii(0, 4) === '8BPS') return 'PSD';
  if (b.length >= 2 && b[0] === 0xff && b[1] === 0x0a) return 'JPEG XL';
  if (ascii(4, 8) === 'JXL ') return 'JPEG XL';
  if (ascii(4, 8) === 'jP  ' || (b.length >= 4 && b.readUInt32BE(0) === 0xff4fff51)) return 'JPEG 2000';
  if (ascii(4, 8) === 'ftyp') return 'HEIF';
  if (/^\s*(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<svg[\s>]/i.test(ascii(0, 1024))) return 'SVG';
  return undefined;
}
