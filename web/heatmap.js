// Attention heat-maps in the browser: a word's 7x7 attention weights, bilinearly upsampled to the picture's size,
// coloured with the turbo colour map, with an alpha that grows with the weight so unattended regions stay clear.
// Pure functions (no DOM), so Node tests can import this module too.

/** Turbo (Mikhail, Google 2019) as a polynomial fit: x in 0..1 → [r, g, b] 0..255. Same fit as src/render/heatmap.ts. */
const TURBO_R = [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943];
const TURBO_G = [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604];
const TURBO_B = [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973];

function poly(c, x) {
  let acc = 0;
  for (let i = c.length - 1; i >= 0; i--) acc = acc * x + c[i];
  return acc;
}

/** 256-entry RGB lookup table of the turbo colour map. */
export const TURBO_LUT = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    lut[i * 3] = Math.round(255 * Math.min(1, Math.max(0, poly(TURBO_R, x))));
    lut[i * 3 + 1] = Math.round(255 * Math.min(1, Math.max(0, poly(TURBO_G, x))));
    lut[i * 3 + 2] = Math.round(255 * Math.min(1, Math.max(0, poly(TURBO_B, x))));
  }
  return lut;
})();

/** A grid given as rows (number[][]) or flat row-major → { flat: Float32Array, rows, cols }. */
export function toFlatGrid(grid) {
  if (Array.isArray(grid) && Array.isArray(grid[0])) {
    const rows = grid.length;
    const cols = grid[0].length;
    const flat = new Float32Array(rows * cols);
    grid.forEach((row, r) => row.forEach((v, c) => (flat[r * cols + c] = v)));
    return { flat, rows, cols };
  }
  const side = Math.round(Math.sqrt(grid.length));
  return { flat: Float32Array.from(grid), rows: side, cols: side };
}

/**
 * Bilinear upsampling of a rows×cols grid to width×height, cell centres aligned (as image resizers do: output
 * pixel x samples grid coordinate (x + 0.5)·cols/width − 0.5, clamped at the borders). Values are divided by the
 * grid's maximum, so the most attended region is 1.
 */
export function upsampleBilinear(flat, rows, cols, width, height) {
  let max = 0;
  for (let i = 0; i < flat.length; i++) if (flat[i] > max) max = flat[i];
  const scale = max > 0 ? 1 / max : 0;
  const out = new Float32Array(width * height);
  // Per column: the two grid columns and the weight of the right one; computed once.
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
      const fx = fxs[x];
      const top = a + (b - a) * fx;
      const bottom = c + (d - c) * fx;
      out[y * width + x] = Math.max(0, (top + (bottom - top) * fy) * scale);
    }
  }
  return out;
}

/**
 * RGBA pixels (width×height×4) of the heat-map overlay for one word's attention grid: turbo colours, alpha from
 * `minAlpha` (weight 0) to `maxAlpha` (the most attended region).
 */
export function heatmapRgba(grid, width, height, { minAlpha = 0.12, maxAlpha = 0.72 } = {}) {
  const { flat, rows, cols } = toFlatGrid(grid);
  const heat = upsampleBilinear(flat, rows, cols, width, height);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0, i = 0; p < heat.length; p++, i += 4) {
    const v = heat[p];
    const c = Math.min(255, Math.round(v * 255)) * 3;
    rgba[i] = TURBO_LUT[c];
    rgba[i + 1] = TURBO_LUT[c + 1];
    rgba[i + 2] = TURBO_LUT[c + 2];
    rgba[i + 3] = Math.round(255 * (minAlpha + (maxAlpha - minAlpha) * v));
  }
  return rgba;
}
