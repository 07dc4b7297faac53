/**
 * Attention heat-maps: a word's 7x7 attention weights, upsampled smoothly to the image size, coloured with
 * the turbo colour map and blended over the image, with the word written in the top-left corner.
 */
import sharp from 'sharp';
import { ErrorCodes, PixelInfoError } from '../errors.js';

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

/** Turbo (Mikhail, Google 2019) as a polynomial fit, sampled into a 256-entry RGB table. */
const TURBO = (() => {
  const lut = new Uint8Array(256 * 3);
  const poly = (c: number[], x: number) => c.reduceRight((acc, k) => acc * x + k, 0);
  const R = [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943];
  const G = [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604];
  const B = [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973];
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    [R, G, B].forEach((c, ch) => (lut[i * 3 + ch] = Math.round(255 * Math.min(1, Math.max(0, poly(c, x))))));
  }
  return lut;
})();

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

  const heat = await upsampleWeights(weights, rows, cols, width, height);
  const out = new Uint8Array(data.length);
  for (let p = 0, i = 0; p < heat.length; p++, i += 3) {
    const c = (heat[p] >> 8) * 3; // 16-bit heat → colour table index
    out[i] = Math.round(data[i] * (1 - opacity) + TURBO[c] * opacity);
    out[i + 1] = Math.round(data[i + 1] * (1 - opacity) + TURBO[c + 1] * opacity);
    out[i + 2] = Math.round(data[i + 2] * (1 - opacity) + TURBO[c + 2] * opacity);
  }
  let png = sharp(out, { raw: { width, height, channels: 3 } });
  if (options.word) png = png.composite([{ input: labelSvg(options.word, width, height), top: 0, left: 0 }]);
  return png.png().toBuffer();
}

/**
 * Weights scaled so the most attended region is 1 (absolute weights of 49 regions are small; the map shows
 * where the word looked, relative to elsewhere), then resized with sharp's Mitchell filter: smooth, with less
 * ringing than Catmull-Rom. Kept at 16 bits until the colour lookup.
 */
async function upsampleWeights(weights: ArrayLike<number>, rows: number, cols: number, width: number, height: number): Promise<Uint16Array> {
  let max = 0;
  for (let i = 0; i < weights.length; i++) if (weights[i] > max) max = weights[i];
  const grid = new Uint16Array(rows * cols);
  for (let i = 0; i < grid.length; i++) grid[i] = max > 0 ? Math.round((65535 * Math.max(0, weights[i])) / max) : 0;
  const { data } = await sharp(grid, { raw: { width: cols, height: rows, channels: 1 } })
    .resize(width, height, { kernel: sharp.kernel.mitchell, fit: 'fill' })
    .toColourspace('grey16')
    .raw({ depth: 'ushort' })
    .toBuffer({ resolveWithObject: true });
  return new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
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
