/**
 * One sharp pipeline per image: header check → decode (first frame/page) → EXIF orientation →
 * alpha flattened on white → 8-bit sRGB → plain 224x224 resize → raw RGB bytes.
 *
 * The pixel data must cover the size the header claims. libjpeg only warns when the entropy-coded data ends
 * early ("premature end of data segment") and fills the rest with grey, so a 224x224 JPEG whose header says
 * 6000x6000 would decode "fine". Each image is therefore decoded first with warnings as errors; a truncation
 * warning is IMAGE_TRUNCATED, and only an image that fails on some other, harmless warning (an odd ICC profile,
 * stray bytes before a marker) is decoded again with warnings tolerated.
 */
import sharp, { type OutputInfo, type Sharp, type SharpOptions } from 'sharp';
import { PixelInfoError, ErrorCodes } from '../errors.js';
import { readImageBytes } from './read-input.js';
import { readHeader, classifyDecodeError, type ImageHeader } from './probe.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, IMAGE_SIZE, type LoadedImage, type LoadOptions } from './types.js';

const WHITE = { r: 255, g: 255, b: 255 };
/** A valid image of any accepted size decodes in well under a second; this only stops pathological files. */
const DECODE_TIMEOUT_S = 30;

/**
 * Lanczos3, sharp's default: an antialiased reduction (its support widens with the shrink factor, so big
 * photos do not alias) and the sharpest of sharp's kernels, at the same cost as cubic (≈25 ms either way for
 * a 4000x3000 JPEG). The Flickr8k copies are already 224x224, so for them the resize is the identity and the
 * kernel cannot matter; for any other image we want the cleanest downscale. sharp's default fastShrinkOnLoad
 * stays on: libjpeg first scales by 1/8 in the DCT domain (a block average, itself antialiased), which made a
 * 4000x3000 → 224x224 resize ~25% faster and changed pixels by 0.5/255 on average in our measurement.
 */
const RESIZE_KERNEL = sharp.kernel.lanczos3;

/** Decodes an image to the encoder's 224x224 RGB input. Every user-caused failure is a PixelInfoError. */
export async function loadImage(input: string | Buffer, opts: LoadOptions = {}): Promise<LoadedImage> {
  const opened = await openImage(input, opts);
  const { header, source } = opened;
  const resize = (image: Sharp) => image.resize(IMAGE_SIZE, IMAGE_SIZE, { fit: 'fill', kernel: RESIZE_KERNEL });
  const { data } = await toRaw(opened, resize, IMAGE_SIZE, IMAGE_SIZE);
  return { source, format: header.format, width: header.width, height: header.height, pixels: data };
}

/**
 * The oriented, flattened sRGB image scaled down (never up) so its longer side is at most `maxSide`,
 * for drawing attention heat-maps over what the user sent.
 */
export async function loadOriginalRgb(
  input: string | Buffer,
  maxSide: number,
  opts: LoadOptions = {},
): Promise<{ data: Uint8Array; width: number; height: number }> {
  if (!Number.isInteger(maxSide) || maxSide < 1) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `maxSide must be a positive integer, got ${maxSide}`);
  }
  const opened = await openImage(input, opts);
  const { header } = opened;
  const scale = Math.min(1, maxSide / Math.max(header.width, header.height));
  const width = Math.max(1, Math.round(header.width * scale));
  const height = Math.max(1, Math.round(header.height * scale));
  // Exact target size (fill) rather than fit:'inside', so the returned size is the one computed here.
  const resize = (image: Sharp) => (scale < 1 ? image.resize(width, height, { fit: 'fill', kernel: RESIZE_KERNEL }) : image);
  return toRaw(opened, resize, width, height);
}

interface OpenedImage {
  /** A fresh decoder of the image, failing on `failOn` (see the module comment). */
  decoder: (failOn: SharpOptions['failOn']) => Sharp;
  bytes: Buffer;
  maxPixels: number;
  header: ImageHeader;
  source: string;
}

async function openImage(input: string | Buffer, opts: LoadOptions): Promise<OpenedImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const { bytes, source } = await readImageBytes(input, maxBytes, opts.name);
  const header = await readHeader(bytes, source, maxPixels);
  const decoder = (failOn: SharpOptions['failOn']) =>
    sharp(bytes, {
      failOn,
      // Second guard behind readHeader's check: libvips refuses from the header, before decoding.
      limitInputPixels: Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : false,
      autoOrient: true,
      pages: 1, // first frame of an animated GIF/WebP, first page of a TIFF
      page: 0,
    }).timeout({ seconds: DECODE_TIMEOUT_S });
  return { decoder, bytes, maxPixels, header, source };
}

async function toRaw(
  { decoder, bytes, source, maxPixels }: OpenedImage,
  resize: (image: Sharp) => Sharp,
  width: number,
  height: number,
): Promise<{ data: Uint8Array; width: number; height: number }> {
  const decode = (failOn: SharpOptions['failOn']) =>
    resize(decoder(failOn))
      .flatten({ background: WHITE })
      .toColourspace('srgb') // grey, CMYK (via its ICC or a built-in profile) and 16-bit all become 3 × 8-bit sRGB
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await decode('warning');
  } catch (strictErr) {
    const strict = classifyDecodeError(strictErr, bytes, source, maxPixels);
    if (strict.code === ErrorCodes.IMAGE_TRUNCATED || strict.code === ErrorCodes.IMAGE_TOO_LARGE || strict.code === ErrorCodes.TIMEOUT) throw strict;
    try {
      // Truncated or corrupt pixel data stays an error here, not a grey half-image; harmless warnings pass.
      out = await decode('error');
    } catch (err) {
      throw classifyDecodeError(err, bytes, source, maxPixels);
    }
  }
  const { data, info } = out;
  if (info.channels !== 3 || info.width !== width || info.height !== height || data.length !== width * height * 3) {
    throw new PixelInfoError(
      ErrorCodes.DECODE_FAILED,
      `${source}: decoder produced ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`,
      { subject: source },
    );
  }
  // A plain Uint8Array view of sharp's buffer: no copy.
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width, height };
}

