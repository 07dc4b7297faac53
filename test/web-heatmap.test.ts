import { test } from 'node:test';
import assert from 'node:assert/strict';
// The browser's heat-map module is plain JS with no DOM use, so it runs in Node as is.
import { heatmapRgba, toFlatGrid, TURBO_LUT, upsampleBilinear } from '../web/heatmap.js';

const close = (a: ArrayLike<number>, b: number[], eps = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < eps, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('upsampleBilinear: cell-centre aligned interpolation, clamped at the borders, scaled so the maximum is 1', () => {
  // 1 row, 2 columns [0, 2] → 4 pixels: sample points -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  close(upsampleBilinear(Float32Array.from([0, 2]), 1, 2, 4, 1), [0, 0.25, 0.75, 1]);
  // Same size: identity up to the max scaling.
  const grid = Float32Array.from({ length: 49 }, (_, i) => i / 100);
  close(upsampleBilinear(grid, 7, 7, 7, 7), Array.from(grid, (v) => v / 0.48), 1e-6);
  // Vertical and horizontal interpolation combine: 2x2 → 2x2 at half-cell offsets is the identity.
  close(upsampleBilinear(Float32Array.from([0, 1, 1, 1]), 2, 2, 2, 2), [0, 1, 1, 1]);
  // All zeros stays zero (no division by zero).
  close(upsampleBilinear(new Float32Array(49), 7, 7, 3, 3), new Array(9).fill(0));
});

test('upsampleBilinear: a single peak stays where it was, symmetric, falling off smoothly', () => {
  const grid = new Float32Array(49);
  grid[3 * 7 + 3] = 0.9; // centre cell
  const size = 63; // 9 pixels per cell: pixel 31 samples the centre cell's centre exactly
  const heat = upsampleBilinear(grid, 7, 7, size, size);
  let argmax = 0;
  for (let i = 1; i < heat.length; i++) if (heat[i] > heat[argmax]) argmax = i;
  assert.deepEqual([argmax % size, Math.floor(argmax / size)], [31, 31], 'peak in the middle');
  assert.ok(Math.abs(heat[argmax] - 1) < 1e-6, `peak value ${heat[argmax]}`);
  assert.equal(heat[0], 0, 'far corner untouched');
  const row = 31 * size;
  for (let k = 0; k < size; k++) assert.ok(Math.abs(heat[row + k] - heat[row + size - 1 - k]) < 1e-5, 'left-right symmetric');
  for (let k = 0; k < size; k++) assert.ok(Math.abs(heat[row + k] - heat[k * size + 31]) < 1e-5, 'rows and columns alike');
  for (let k = 31; k < size - 1; k++) assert.ok(heat[row + k] >= heat[row + k + 1] - 1e-6, 'decreasing away from the peak');
  assert.ok(Math.abs(heat[row + 35] - (1 - 4 / 9)) < 1e-5, 'smooth, not blocky: 4/9 of a cell away keeps 5/9');
});

test('heatmapRgba: turbo colours, alpha growing with attention; rows or flat grids alike', () => {
  const rows = Array.from({ length: 7 }, (_, r) => Array.from({ length: 7 }, (_, c) => (r === 0 && c === 0 ? 1 : 0)));
  assert.deepEqual(toFlatGrid(rows).flat, toFlatGrid(rows.flat()).flat);
  const rgba = heatmapRgba(rows, 7, 7, { minAlpha: 0.1, maxAlpha: 0.7 });
  assert.equal(rgba.length, 7 * 7 * 4);
  assert.deepEqual(Array.from(rgba.slice(0, 4)), [TURBO_LUT[765], TURBO_LUT[766], TURBO_LUT[767], Math.round(255 * 0.7)]);
  const last = rgba.length - 4;
  assert.deepEqual(Array.from(rgba.slice(last, last + 4)), [TURBO_LUT[0], TURBO_LUT[1], TURBO_LUT[2], Math.round(255 * 0.1)]);
  // Turbo runs from blue (low) to red (high).
  const at = (v: number) => Array.from(TURBO_LUT.slice(Math.round(v * 255) * 3, Math.round(v * 255) * 3 + 3));
  assert.ok(at(0.2)[2] > at(0.2)[0], `0.2 is bluish: ${at(0.2)}`);
  assert.ok(at(0.9)[0] > at(0.9)[2], `0.9 is reddish: ${at(0.9)}`);
  assert.ok(at(0.55)[1] > 200, `0.55 is green-yellow: ${at(0.55)}`);
});
