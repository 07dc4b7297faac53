/**
 * The image-input backend, browser side (package.json "browser" field maps ./image.js here): any image the
 * browser can decode (a Blob or File, an <img>, <video>, <canvas>, ImageBitmap, ImageData, VideoFrame, or a URL)
 * → the encoder's 224x224 RGB input, as the Node side does it with sharp: EXIF orientation applied, alpha
 * flattened on white, sRGB, a plain (aspect-ignoring) resize to 224x224. An image already 224x224 (the
 * Flickr8k copies) is not resampled at all, so only the JPEG decoder can differ from Node's.
 */
import { asPixelInfoError, ErrorCodes, PixelInfoError } from '../errors.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, IMAGE_SIZE, type LoadedImage, type LoadOptions, type ImageLimits } from '../image/types.js';

/** What this side accepts as an image. */
export type ImageInput = Blob | ImageBitmapSource | string;

export type LoadResult = { ok: true; image: LoadedImage } | { ok: false; source: string; error: PixelInfoError };

/** One image → 224x224 RGB; every failure is a PixelInfoError naming `opts.name`. */
export async function loadImage(input: ImageInput, opts: LoadOptions = {}): Promise<LoadedImage> {
  const source = opts.name ?? (typeof input === 'string' ? input : describe(input));
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let blob: Blob | undefined;
  if (typeof input === 'string') {
    const response = await fetch(input).catch((err: Error) => {
      throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: cannot be fetched (${err.message})`, { subject: source });
    });
    if (!response.ok) throw new PixelInfoError(ErrorCodes.FILE_NOT_FOUND, `${source}: HTTP ${response.status}`, { subject: source });
    blob = await response.blob();
  } else if (typeof Blob !== 'undefined' && input instanceof Blob) {
    blob = input;
  }
  let format = 'bitmap';
  if (blob) {
    if (blob.size === 0) throw new PixelInfoError(ErrorCodes.FILE_EMPTY, `${source}: file is empty (0 bytes)`, { subject: source });
    if (blob.size > maxBytes) throw new PixelInfoError(ErrorCodes.IMAGE_TOO_LARGE, `${source}: ${blob.size} bytes is more than the ${maxBytes}-byte limit`, { subject: source });
    format = sniffFormat(new Uint8Array(await blob.slice(0, 32).arrayBuffer())) ?? '';
    if (!format) throw new PixelInfoError(ErrorCodes.NOT_AN_IMAGE, `${source}: not an image (unrecognised content)`, { subject: source });
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap((blob ?? input) as ImageBitmapSource, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
  } catch (err) {
    throw new PixelInfoError(ErrorCodes.DECODE_FAILED, `${source}: cannot decode image (${(err as Error).message})`, { subject: source, cause: err });
  }
  try {
    const { width, height } = bitmap;
    if (!(width > 0 && height > 0)) throw new PixelInfoError(ErrorCodes.DECODE_FAILED, `${source}: the image has no size`, { subject: source });
    if (width * height > maxPixels) {
      throw new PixelInfoError(ErrorCodes.IMAGE_TOO_LARGE, `${source}: ${width}x${height} is ${width * height} pixels, more than the ${maxPixels}-pixel limit`, { subject: source });
    }
    return { source, format, width, height, pixels: toRgb224(bitmap) };
  } finally {
    bitmap.close();
  }
}

/** Many images, at most `concurrency` decoding at once (default 2); results in input order, a bad one never fails the rest. */
export async function loadImagesSettled(
  inputs: ReadonlyArray<ImageInput>,
  opts: ImageLimits & { concurrency?: number; names?: readonly string[] } = {},
): Promise<LoadResult[]> {
  const results: LoadResult[] = new Array(inputs.length);
  let next = 0;
  const work = async () => {
    while (next < inputs.length) {
      const i = next++;
      const input = inputs[i];
      const source = opts.names?.[i] ?? (typeof input === 'string' ? input : describe(input, i));
      try {
        results[i] = { ok: true, image: await loadImage(input, { ...opts, name: source }) };
      } catch (err) {
        results[i] = { ok: false, source, error: asPixelInfoError(err, source) };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 2, inputs.length)) }, work));
  return results;
}

let canvas: OffscreenCanvas | HTMLCanvasElement | undefined;

/** Draws the bitmap stretched to 224x224 over white and reads it back as RGB. */
function toRgb224(bitmap: ImageBitmap): Uint8Array {
  canvas ??= typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(IMAGE_SIZE, IMAGE_SIZE) : Object.assign(document.createElement('canvas'), { width: IMAGE_SIZE, height: IMAGE_SIZE });
  const ctx = canvas.getContext('2d', { willReadFrequently: true, alpha: false, colorSpace: 'srgb' }) as OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D | null;
  if (!ctx) throw new PixelInfoError(ErrorCodes.INTERNAL, 'this browser gives no 2D canvas');
  ctx.globalCompositeOperation = 'copy';
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, IMAGE_SIZE, IMAGE_SIZE);
  ctx.globalCompositeOperation = 'source-over';
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, 0, 0, IMAGE_SIZE, IMAGE_SIZE);
  const rgba = ctx.getImageData(0, 0, IMAGE_SIZE, IMAGE_SIZE, { colorSpace: 'srgb' }).data;
  const rgb = new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

function describe(input: unknown, index?: number): string {
  const name = (input as { name?: unknown }).name;
  if (typeof name === 'string' && name) return name;
  return index === undefined ? '<image>' : `<image ${index}>`;
}

/** The format by magic number (what the browser will be asked to decode). */
function sniffFormat(b: Uint8Array): string | undefined {
  const ascii = (start: number, end: number) => String.fromCharCode(...b.subarray(start, end));
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b[0] === 0x89 && ascii(1, 4) === 'PNG') return 'png';
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'gif';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (ascii(4, 8) === 'ftyp' && /^(avif|avis)/.test(ascii(8, 12))) return 'avif';
  if (ascii(0, 2) === 'BM') return 'bmp';
  return undefined;
}
