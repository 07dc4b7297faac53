/**
 * Kendall's tau-b rank correlation with ties on both sides, in O(n log n) (Knight 1966, "A computer method for
 * calculating Kendall's tau with ungrouped data", JASA 61: the algorithm scipy.stats.kendalltau uses).
 *
 *     tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2))
 *
 * with C concordant and D discordant pairs, n0 = n(n-1)/2, n1 = Σ t(t-1)/2 over groups of tied x, n2 the same for
 * y. Knight's method: sort by (x, y); count the tied-x pairs (n1) and the pairs tied in both (n3); then merge-sort
 * the y's in that order, counting the swaps S (pairs with x_i < x_j but y_i > y_j: the discordant ones); count the
 * tied-y pairs (n2) in the sorted y's. Then C - D = n0 - n1 - n2 + n3 - 2S.
 *
 * Counts stay below 2^53 for n < 1.3e8, so every count is exact in a double.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';

export interface KendallTauB {
  /** In [-1, 1]; NaN when one side is constant (the denominator is 0) or n < 2. */
  tau: number;
  n: number;
  /** C - D. */
  numerator: number;
  /** Pairs tied in x (n1), in y (n2), in both (n3); all pairs n0. */
  pairs: number;
  tiesX: number;
  tiesY: number;
  tiesXY: number;
}

/** Kendall's tau-b of x and y (same length, finite values). */
export function kendallTauB(x: ArrayLike<number>, y: ArrayLike<number>): KendallTauB {
  const n = x.length;
  if (y.length !== n) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `kendallTauB: ${n} x values but ${y.length} y values`);
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `kendallTauB: value ${i} is not finite (x ${x[i]}, y ${y[i]})`);
    }
  }
  const pairs = (n * (n - 1)) / 2;
  // Order by x, then y (a stable typed sort of indices).
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b] || y[a] - y[b]);

  // n1: pairs tied in x; n3: pairs tied in x and y (runs in the (x, y) order).
  let tiesX = 0;
  let tiesXY = 0;
  for (let i = 0, runX = 1, runXY = 1; i < n; i++) {
    const last = i === n - 1;
    const sameX = !last && x[order[i + 1]] === x[order[i]];
    const sameXY = sameX && y[order[i + 1]] === y[order[i]];
    if (sameXY) runXY++;
    else {
      tiesXY += (runXY * (runXY - 1)) / 2;
      runXY = 1;
    }
    if (sameX) runX++;
    else {
      tiesX += (runX * (runX - 1)) / 2;
      runX = 1;
    }
  }

  // S: swaps a stable bottom-up merge sort of the y's (in x order) makes, i.e. pairs i < j with y_i > y_j.
  let ys = Float64Array.from(order, (i) => y[i]);
  let buffer = new Float64Array(n);
  let swaps = 0;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        if (ys[j] < ys[i]) {
          swaps += mid - i; // ys[j] jumps every element left in the left run
          buffer[k++] = ys[j++];
        } else buffer[k++] = ys[i++];
      }
      while (i < mid) buffer[k++] = ys[i++];
      while (j < hi) buffer[k++] = ys[j++];
    }
    [ys, buffer] = [buffer, ys];
  }

  // n2: pairs tied in y (runs in the sorted y's).
  let tiesY = 0;
  for (let i = 0, run = 1; i < n; i++) {
    if (i < n - 1 && ys[i + 1] === ys[i]) run++;
    else {
      tiesY += (run * (run - 1)) / 2;
      run = 1;
    }
  }

  const numerator = pairs - tiesX - tiesY + tiesXY - 2 * swaps;
  const denominator = Math.sqrt((pairs - tiesX) * (pairs - tiesY));
  const tau = n < 2 || denominator === 0 ? Number.NaN : Math.max(-1, Math.min(1, numerator / denominator));
  return { tau, n, numerator, pairs, tiesX, tiesY, tiesXY };
}
