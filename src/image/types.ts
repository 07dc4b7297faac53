/** Limits applied before any pixel is decoded. */
export interface ImageLimits {
  /** Largest accepted input width × height (after reading the header, before decoding). Default 100_000_000. */
  maxPixels?: number;
  /** Largest accepted file/buffer size in bytes. Default 50 MiB. */
  maxBytes?: number;
}

export interface LoadedImage {
  /** The file path, or '<buffer>' / a caller-given name. */
  source: string;
  /** 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'avif' */
  format: string;
  /** Original size after EXIF orientation. */
  width: number;
  height: number;
  /** 224*224*3 RGB, row-major, HWC, 8-bit sRGB, alpha flattened on white. */
  pixels: Uint8Array;
}

export type LoadOptions = ImageLimits & { name?: string };

export const IMAGE_SIZE = 224;
export const DEFAULT_MAX_PIXELS = 100_000_000;
export const DEFAULT_MAX_BYTES = 50 * 1024 * 1024;
