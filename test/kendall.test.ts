import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kendallTauB } from '../src/metrics/kendall.js';
import { mulberry32 } from '../src/eval/match-metrics.js';

/** The definition, O(n²): every pair once. */
function bruteForceTauB(x: number[], y: number[]): number {
  let concordant = 0;
  let discordant = 0;
  let tiedXOnly = 0;
  let tiedYOnly = 0;
  for (let i = 0; i < x.length; i++) {
    for (let j = i + 1; j < x.length; j++) {
      const dx = Math.sign(x[i] - x[j]);
      const dy = Math.sign(y[i] - y[j]);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tiedXOnly++;
      else if (dy === 0) tiedYOnly++;
      else if (dx === dy) concordant++;
      else discordant++;
    }
  }
  return (concordant - discordant) / Math.sqrt((concordant + discordant + tiedXOnly) * (concordant + discordant + tiedYOnly));
}

test('kendallTauB: the values scipy.stats.kendalltau documents and tests', () => {
  // scipy.stats.kendalltau docstring example (ties on both sides)
  assert.ok(Math.abs(kendallTauB([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]).tau - -0.47140452079103173) < 1e-12);
  // scipy's test_kendalltau cases (cross-checked there against R's cor.test)
  assert.ok(Math.abs(kendallTauB([5, 2, 1, 3, 6, 4, 7, 8], [5, 2, 6, 3, 1, 8, 7, 4]).tau - 0.0) < 1e-12);
  assert.ok(Math.abs(kendallTauB([0, 5, 2, 1, 3, 6, 4, 7, 8], [5, 2, 0, 6, 3, 1, 8, 7, 4]).tau - 0.0) < 1e-12);
  assert.ok(Math.abs(kendallTauB([5, 2, 1, 3, 6, 4, 7], [5, 2, 6, 3, 1, 7, 4]).tau - -0.14285714286) < 1e-10);
  assert.ok(Math.abs(kendallTauB([2, 1, 3, 6, 4, 7, 8], [2, 6, 3, 1, 8, 7, 4]).tau - 0.047619047619) < 1e-10);
  const ten = Array.from({ length: 10 }, (_, i) => i);
  assert.equal(kendallTauB(ten, ten).tau, 1);
  const swapped = [0, 2, 1, 3, 4, 5, 6, 7, 8, 9];
  assert.ok(Math.abs(kendallTauB(ten, swapped).tau - 0.9555555555555556) < 1e-12);
  assert.equal(kendallTauB(ten, [...ten].reverse()).tau, -1);
});

test('kendallTauB: hand-counted ties on both sides', () => {
  // x = [1, 1, 2, 3], y = [1, 2, 2, 3]: pairs (0,1) tied in x only, (1,2) tied in y only, the other 4 concordant.
  const r = kendallTauB([1, 1, 2, 3], [1, 2, 2, 3]);
  assert.equal(r.numerator, 4);
  assert.equal(r.tiesX, 1);
  assert.equal(r.tiesY, 1);
  assert.equal(r.tiesXY, 0);
  assert.ok(Math.abs(r.tau - 4 / Math.sqrt(5 * 5)) < 1e-15);
  // joint ties: (0,1) tied in both
  const j = kendallTauB([1, 1, 2], [5, 5, 4]);
  assert.equal(j.tiesXY, 1);
  assert.ok(Math.abs(j.tau - -1) < 1e-15);
});

test('kendallTauB equals the O(n²) definition on random data with many ties on both sides', () => {
  const next = mulberry32(7);
  const uniform = () => next() / 4294967296;
  for (let trial = 0; trial < 60; trial++) {
    const n = 2 + Math.floor(uniform() * 300);
    const levelsX = 1 + Math.floor(uniform() * 12); // few levels: heavy ties
    const levelsY = trial % 3 === 0 ? 1000 : 1 + Math.floor(uniform() * 6);
    const x = Array.from({ length: n }, () => Math.floor(uniform() * levelsX) / 3);
    // y partly follows x so the correlations are spread out, not all near 0
    const y = x.map((v) => Math.floor((trial % 2 ? v * 2 : -v) + uniform() * levelsY));
    const fast = kendallTauB(x, y).tau;
    const slow = bruteForceTauB(x, y);
    if (Number.isNaN(slow)) assert.ok(Number.isNaN(fast), `trial ${trial}: expected NaN, got ${fast}`);
    else assert.ok(Math.abs(fast - slow) < 1e-12, `trial ${trial} (n=${n}): ${fast} vs ${slow}`);
  }
});

test('kendallTauB: constant side gives NaN; bad input is refused; n = 47k runs fast', () => {
  assert.ok(Number.isNaN(kendallTauB([1, 2, 3], [4, 4, 4]).tau));
  assert.ok(Number.isNaN(kendallTauB([1], [2]).tau));
  assert.throws(() => kendallTauB([1, 2], [1]), /2 x values but 1/);
  assert.throws(() => kendallTauB([1, Number.NaN], [1, 2]), /not finite/);
  const next = mulberry32(3);
  const n = 47_830;
  const x = Array.from({ length: n }, () => next() / 4294967296);
  const y = x.map((v) => Math.round(v * 3 + (next() / 4294967296) * 2) / 3); // ~12 levels, like the % yes
  const t0 = performance.now();
  const r = kendallTauB(x, y);
  assert.ok(performance.now() - t0 < 3000, 'n log n');
  assert.ok(r.tau > 0.3 && r.tau < 1, `tau ${r.tau}`);
});
