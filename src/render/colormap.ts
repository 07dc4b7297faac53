/**
 * The colours of an attention heat-map, shared by the Node renderer (src/render/heatmap.ts) and the web page's
 * canvas (web/src/heatmap.ts): the turbo colour map and the bilinear upsampling of a word's attention grid.
 *
 * Pure functions over typed arrays, with no Node or DOM imports, so the browser bundle uses this same file.
 */

/** An attention grid: rows of weights (`number[][]`, as the HTTP API sends them) or flat, row-major. */
export type AttentionGrid = readonly (readonly number[])[] | ArrayLike<number>;

/** A grid as one row-major array with its shape. */
export interface FlatGrid {
  flat: Float32Array;
  rows: number;
  cols: number;
}

/** Turbo (Mikhail, Google 2019) as a degree-5 polynomial fit per channel: coefficients of x^0..x^5. */
const TURBO_FIT = {
  r: [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
  g: [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
  b: [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
} as const;

/** Horner evaluation of the polynomial with coefficients `c` (lowest degree first) at `x`. */
const polynomial = (c: readonly number[], x: number): number => c.reduceRight((acc, k) => acc * x + k, 0);

const toByte = (v: number): number => Math.round(255 * Math.min(1, Math.max(0, v)));

/** The turbo colour map sampled at 256 levels: RGB of level i at [3i, 3i + 2]. Blue (0) through green to red (255). */
export const TURBO_LUT: Uint8ClampedArray = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    lut[i * 3] = toByte(polynomial(TURBO_FIT.r, x));
    lut[i * 3 + 1] = toByte(polynomial(TURBO_FIT.g, x));
    lut[i * 3 + 2] = toByte(polynomial(TURBO_FIT.b, x));
  }
  return lut;
})();

/** Offset in TURBO_LUT of the colour of a heat value in 0..1 (values outside are clamped). */
export function turboOffset(value: number): number {
  return toByte(value) * 3;
}

/** A grid given as rows or flat → one Float32Array and its shape (a flat grid is taken to be square, e.g. 49 → 7x7). */
export function toFlatGrid(grid: AttentionGrid): FlatGrid {
  if (isRows(grid)) {
    const rows = grid.length;
    const cols = rows > 0 ? grid[0].length : 0;
    const flat = new Float32Array(rows * cols);
    grid.forEach((row, r) => flat.set(row, r * cols));
    return { flat, rows, cols };
  }
  const side = Math.round(Math.sqrt(grid.length));
  return { flat: Float32Array.from(grid), rows: side, cols: side };
}

function isRows(grid: AttentionGrid): grid is readonly (readonly number[])[] {
  return Array.isArray(grid) && Array.isArray(grid[0]);
}

/**
 * Bilinear upsampling of a rows×cols grid (flat, row-major) to width×height, cell centres aligned as image
 * resizers do: output pixel x samples grid coordinate (x + 0.5)·cols/width − 0.5, clamped at the borders.
 * Values are divided by the grid's maximum, so the most attended region is 1 (absolute weights of 49 regions
 * are small; the map shows where the word looked relative to elsewhere); negatives become 0.
 */
export function upsampleBilinear(flat: ArrayLike<number>, rows: number, cols: number, width: number, height: number): Float32Array {
  let max = 0;
  for (let i = 0; i < flat.length; i++) if (flat[i] > max) max = flat[i];
  const scale = max > 0 ? 1 / max : 0;
  const out = new Float32Array(width * height);
  // Per output column: the two grid columns and the weight of the right one, computed once.
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const gx = Math.min(cols - 1, Math.max(0, ((x + 0.5) * cols) / width - 0.5));
    x0s[x] = Math.floor(gx);
    x1s[x] = Math.min(cols - 1, x0s[x] + 1);
    fxs[x] = gx - x0s[x];
  }
  for (let y = 0; y < height; y++) {
    const gy = Math.min(rows - 1, Math.max(0, ((y + 0.5) * rows) / height - 0.5));
    const y0 = Math.floor(gy);
    const y1 = Math.min(rows - 1, y0 + 1);
    const fy = gy - y0;
    for (let x = 0; x < width; x++) {
      const a = flat[y0 * cols + x0s[x]];
      const b = flat[y0 * cols + x1s[x]];
      const c = flat[y1 * cols + x0s[x]];
      const d = flat[y1 * cols + x1s[x]];
      const top = a + (b - a) * fxs[x];
      const bottom = c + (d - c) * fxs[x];
      out[y * width + x] = Math.max(0, (top + (bottom - top) * fy) * scale);
    }
  }
  return out;
}
