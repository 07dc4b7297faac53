/**
 * Attention heat-maps as PNG files: a word's 7x7 attention weights, upsampled bilinearly to the image size,
 * coloured with the turbo colour map and blended over the image, with the word written in the top-left corner.
 * The colours and the upsampling are those of the web page (src/render/colormap.ts).
 */
import sharp from 'sharp';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { TURBO_LUT, turboOffset, upsampleBilinear } from './colormap.js';

export interface RgbImage {
  /** width × height × 3 bytes, row-major RGB. */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface HeatmapOptions {
  /** Attention grid [rows, cols]; default [7, 7] (weights are row-major). */
  grid?: [number, number];
  /** Written on the image when given. */
  word?: string;
  /** Weight of the colour map in the blend, 0..1. Default 0.5. */
  opacity?: number;
}

/** The heat-map as a PNG of the image's size. */
export async function renderAttentionHeatmap(image: RgbImage, weights: ArrayLike<number>, options: HeatmapOptions = {}): Promise<Buffer> {
  const [rows, cols] = options.grid ?? [7, 7];
  const opacity = options.opacity ?? 0.5;
  const { width, height, data } = image;
  if (weights.length !== rows * cols) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `expected ${rows * cols} attention weights, got ${weights.length}`);
  }
  if (data.length !== width * height * 3) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `expected ${width}x${height} RGB pixels, got ${data.length} bytes`);
  }
  if (!(opacity >= 0 && opacity <= 1)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `opacity must be in 0..1, got ${opacity}`);

  const heat = upsampleBilinear(weights, rows, cols, width, height);
  const out = new Uint8Array(data.length);
  for (let p = 0, i = 0; p < heat.length; p++, i += 3) {
    const c = turboOffset(heat[p]);
    out[i] = Math.round(data[i] * (1 - opacity) + TURBO_LUT[c] * opacity);
    out[i + 1] = Math.round(data[i + 1] * (1 - opacity) + TURBO_LUT[c + 1] * opacity);
    out[i + 2] = Math.round(data[i + 2] * (1 - opacity) + TURBO_LUT[c + 2] * opacity);
  }
  let png = sharp(out, { raw: { width, height, channels: 3 } });
  if (options.word) png = png.composite([{ input: labelSvg(options.word, width, height), top: 0, left: 0 }]);
  return png.png().toBuffer();
}

function labelSvg(word: string, width: number, height: number): Buffer {
  const fontSize = Math.max(10, Math.min(48, Math.round(Math.min(width, height) * 0.09)));
  const pad = Math.round(fontSize * 0.35);
  const boxW = Math.min(width, Math.ceil(word.length * fontSize * 0.62 + 2 * pad));
  const boxH = Math.min(height, fontSize + 2 * pad);
  const text = word.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${boxW}" height="${boxH}">` +
      `<rect width="100%" height="100%" fill="black" fill-opacity="0.6"/>` +
      `<text x="${pad}" y="${pad + fontSize * 0.8}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${fontSize}" fill="white">${text}</text>` +
      `</svg>`,
  );
}
