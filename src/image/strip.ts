/**
 * An upload as the library keeps it: without what a photo says about its owner — EXIF (GPS position, camera and
 * its serial number, artist, copyright, description, dates), XMP, IPTC, comments — and with its EXIF orientation
 * applied to the pixels (so it still shows upright). The ICC profile stays: it is about colour, not the owner.
 *
 * An image that carries none of this is kept byte for byte. Otherwise it is re-encoded in its own format: PNG,
 * GIF and TIFF losslessly, JPEG, WebP and AVIF at a high quality.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import { classifyDecodeError } from './probe.js';

export interface StrippedImage {
  bytes: Buffer;
  /** False when there was nothing to remove (the bytes are the input's). */
  stripped: boolean;
}

const QUALITY = 92;

/** Whether the image carries metadata about its owner or an orientation still to apply. */
export function carriesMetadata(meta: Metadata): boolean {
  return Boolean(meta.exif || meta.xmp || meta.iptc || meta.tifftagPhotoshop || meta.comments?.length || (meta.orientation ?? 1) > 1);
}

/** `bytes` without its metadata (see the module comment). `maxPixels` bounds the decode as for captioning. */
export async function stripMetadata(bytes: Buffer, maxPixels: number, source = 'image'): Promise<StrippedImage> {
  try {
    const input = { limitInputPixels: Number.isFinite(maxPixels) ? Math.max(1, Math.floor(maxPixels)) : false, failOn: 'error' } as const;
    const meta = await sharp(bytes, input).metadata();
    if (!carriesMetadata(meta)) return { bytes, stripped: false };
    const animated = (meta.pages ?? 1) > 1 && (meta.format === 'gif' || meta.format === 'webp');
    let image = sharp(bytes, { ...input, animated }).keepIccProfile();
    if (!animated) image = image.rotate(); // EXIF orientation into the pixels; the tag goes with the rest
    return { bytes: await encodeAs(image, meta.format).toBuffer(), stripped: true };
  } catch (err) {
    throw classifyDecodeError(err, bytes, source, maxPixels);
  }
}

function encodeAs(image: Sharp, format: Metadata['format']): Sharp {
  switch (format) {
    case 'jpeg':
      return image.jpeg({ quality: QUALITY });
    case 'png':
      return image.png();
    case 'webp':
      return image.webp({ quality: QUALITY });
    case 'gif':
      return image.gif();
    case 'tiff':
      return image.tiff({ compression: 'lzw' });
    case 'heif':
      return image.avif({ quality: QUALITY });
    default:
      return image; // sharp writes the input's format
  }
}
