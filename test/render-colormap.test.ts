/**
 * src/render/colormap.ts, the colours and upsampling shared by the PNG heat-maps (src/render/heatmap.ts) and the
 * web page's canvas: the turbo table is the one both used before they shared it, and the upsampling is bilinear
 * with cell centres aligned.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { toFlatGrid, TURBO_LUT, turboOffset, upsampleBilinear } from '../src/render/colormap.js';
import { renderAttentionHeatmap } from '../src/render/heatmap.js';

const close = (a: ArrayLike<number>, b: number[], eps = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) < eps, `[${i}] ${a[i]} vs ${b[i]}`);
};

test('TURBO_LUT: the same 256 colours as the two copies it replaces, blue through green to red', () => {
  assert.equal(TURBO_LUT.length, 256 * 3);
  // sha256 of the 768 bytes of the previous tables (web/heatmap.js and src/render/heatmap.ts had equal ones).
  assert.equal(createHash('sha256').update(TURBO_LUT).digest('hex'), 'd7247ecd29c299dee87122cf603afbffa6b9632ff50fdcd1e12a39c3202d44ec');
  const expected: Array<[number, number, number, number]> = [
    [0, 35, 23, 27], [32, 68, 106, 239], [64, 38, 189, 224], [96, 65, 243, 145], [128, 152, 250, 79],
    [160, 239, 206, 45], [192, 255, 126, 29], [224, 198, 43, 11], [255, 144, 13, 0],
  ];
  for (const [level, r, g, b] of expected) assert.deepEqual(Array.from(TURBO_LUT.subarray(level * 3, level * 3 + 3)), [r, g, b], `level ${level}`);
  const at = (v: number) => Array.from(TURBO_LUT.subarray(turboOffset(v), turboOffset(v) + 3));
  assert.ok(at(0.2)[2] > at(0.2)[0], `0.2 is bluish: ${at(0.2)}`);
  assert.ok(at(0.55)[1] > 200, `0.55 is green-yellow: ${at(0.55)}`);
  assert.ok(at(0.9)[0] > at(0.9)[2], `0.9 is reddish: ${at(0.9)}`);
});

test('turboOffset: 0..1 to a table offset, clamped', () => {
  assert.equal(turboOffset(0), 0);
  assert.equal(turboOffset(1), 255 * 3);
  assert.equal(turboOffset(0.5), 128 * 3);
  assert.equal(turboOffset(-1), 0);
  assert.equal(turboOffset(7), 255 * 3);
});

test('toFlatGrid: rows or flat (square) alike', () => {
  const rows = [
    [1, 2, 3],
    [4, 5, 6],
  ];
  assert.deepEqual(toFlatGrid(rows), { flat: Float32Array.from([1, 2, 3, 4, 5, 6]), rows: 2, cols: 3 });
  assert.deepEqual(toFlatGrid(Array.from({ length: 49 }, (_, i) => i)), { flat: Float32Array.from({ length: 49 }, (_, i) => i), rows: 7, cols: 7 });
});

test('upsampleBilinear: exact at the grid points, scaled so the maximum is 1', () => {
  const grid = Float32Array.from({ length: 49 }, (_, i) => ((i * 37) % 49) / 100);
  const max = Math.max(...grid);
  // Same size: every pixel is a grid point.
  close(upsampleBilinear(grid, 7, 7, 7, 7), Array.from(grid, (v) => v / max));
  // 9 pixels per cell: pixel 9c + 4 is the centre of cell c, where the value is the cell's own.
  const heat = upsampleBilinear(grid, 7, 7, 63, 63);
  for (let r = 0; r < 7; r++) {
    for (let c = 0; c < 7; c++) assert.ok(Math.abs(heat[(9 * r + 4) * 63 + 9 * c + 4] - grid[r * 7 + c] / max) < 1e-6, `cell ${r},${c}`);
  }
  // Non-square grids and outputs.
  close(upsampleBilinear(Float32Array.from([0, 1, 1, 1]), 2, 2, 2, 2), [0, 1, 1, 1]);
  close(upsampleBilinear(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3, 3, 2), [1, 2, 3, 4, 5, 6].map((v) => v / 6));
});

test('upsampleBilinear: cell-centre aligned between grid points, clamped at the borders; zeros stay zero', () => {
  // 1 row, 2 columns [0, 2] → 4 pixels: sample points -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
  close(upsampleBilinear(Float32Array.from([0, 2]), 1, 2, 4, 1), [0, 0.25, 0.75, 1]);
  close(upsampleBilinear(new Float32Array(49), 7, 7, 3, 3), new Array(9).fill(0));
  close(upsampleBilinear(Float32Array.from([-1, 1]), 1, 2, 2, 1), [0, 1]);
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

test('renderAttentionHeatmap (PNG files) colours with the same map and upsampling as the web page', async () => {
  const [width, height] = [50, 30];
  const weights = Float32Array.from({ length: 49 }, (_, i) => Math.exp(-(((i % 7) - 5) ** 2 + (Math.floor(i / 7) - 1) ** 2) / 3));
  const png = await renderAttentionHeatmap({ data: new Uint8Array(width * height * 3), width, height }, weights, { opacity: 1 });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const heat = upsampleBilinear(weights, 7, 7, width, height);
  for (let p = 0; p < heat.length; p++) {
    const c = turboOffset(heat[p]);
    const pixel = Array.from(data.subarray(p * info.channels, p * info.channels + 3));
    assert.deepEqual(pixel, [TURBO_LUT[c], TURBO_LUT[c + 1], TURBO_LUT[c + 2]], `pixel ${p}`);
  }
});
