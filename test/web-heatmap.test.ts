/**
 * The web page's heat-map overlay (web/src/heatmap.ts): pure pixel code on the shared colour map, run in Node
 * (the module touches the DOM only when its canvas class is used).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heatmapRgba } from '../web/src/heatmap.js';
import { TURBO_LUT, turboOffset, upsampleBilinear } from '../src/render/colormap.js';

test('heatmapRgba: turbo colours, alpha growing with attention; rows or flat grids alike', () => {
  const rows = Array.from({ length: 7 }, (_, r) => Array.from({ length: 7 }, (_, c) => (r === 0 && c === 0 ? 1 : 0)));
  const rgba = heatmapRgba(rows, 7, 7, { minAlpha: 0.1, maxAlpha: 0.7 });
  assert.equal(rgba.length, 7 * 7 * 4);
  assert.deepEqual(rgba, heatmapRgba(rows.flat(), 7, 7, { minAlpha: 0.1, maxAlpha: 0.7 }));
  assert.deepEqual(Array.from(rgba.slice(0, 4)), [TURBO_LUT[765], TURBO_LUT[766], TURBO_LUT[767], Math.round(255 * 0.7)]);
  const last = rgba.length - 4;
  assert.deepEqual(Array.from(rgba.slice(last, last + 4)), [TURBO_LUT[0], TURBO_LUT[1], TURBO_LUT[2], Math.round(255 * 0.1)]);
});

test('heatmapRgba: every pixel is the shared colour map of the shared upsampling', () => {
  const grid = Array.from({ length: 7 }, (_, r) => Array.from({ length: 7 }, (_, c) => Math.exp(-((r - 2) ** 2 + (c - 4) ** 2) / 4)));
  const [width, height] = [40, 30];
  const rgba = heatmapRgba(grid, width, height);
  const heat = upsampleBilinear(grid.flat(), 7, 7, width, height);
  for (let p = 0; p < heat.length; p++) {
    const c = turboOffset(heat[p]);
    const expected = [TURBO_LUT[c], TURBO_LUT[c + 1], TURBO_LUT[c + 2], Math.round(255 * (0.12 + 0.6 * heat[p]))];
    assert.deepEqual(Array.from(rgba.subarray(p * 4, p * 4 + 4)), expected, `pixel ${p}`);
  }
});
