/**
 * Teacher-forced likelihood of given captions under a decoder: the log-probability the StepModel assigns to each
 * word of a caption and to the closing <end>, given the image and the true preceding words. This is the same
 * quantity the beam search sums into a hypothesis' `logProb` (./search.ts: raw log-probabilities, no decoding rule
 * and no length penalty), so a caption the search found scores here exactly as the search scored it.
 *
 * Batched like the search: every row (one image–caption pair) of a call goes through one `step` call per time
 * step. Shapes (R rows, V vocabulary, N images, F = regions × channels floats per image):
 *
 *     features  [N, F]          init → state with N rows (one per image)
 *     select(state, rowImage)   → state with R rows (row r starts from image rowImage[r]; images may repeat)
 *     step t = 0..T-1           input tokens [R]: <start>, then word t-1 of the row (or <pad> once the row ended)
 *                               → logProbs [R, V]; row r adds logProbs[r, target] where the target is word t
 *                               (t < length) or <end> (t = length); T = longest caption + 1
 *
 * Rows that have ended are dropped from the state (select) once a quarter of the live rows have, so a batch of
 * mixed lengths does not keep stepping rows whose sums are complete.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { SPECIALS } from '../text/vocabulary.js';
import type { SpecialTokens } from './rules.js';
import type { DecoderState, StepModel } from './step-model.js';

export interface TeacherForcedRow {
  /** Index of the row's image in the `features` given to captionLogProbs (0 ≤ image < count). */
  image: number;
  /** Word ids of the caption, without <start> and <end> (unknown words as <unk>). */
  tokens: ArrayLike<number>;
}

export interface CaptionLikelihood {
  /** Sum of the log-probabilities of the words and of <end> (Hypothesis.logProb for the same tokens). */
  logProb: number;
  /** Predicted tokens: words + 1 (<end>). */
  predicted: number;
  /** logProb / predicted: mean per-token log-probability. */
  meanLogProb: number;
}

/**
 * Log-probability of each row's caption given its image; one result per row, in row order.
 * `features` holds `count` images ([count, regions, channels] for the real decoder).
 */
export async function captionLogProbs<S extends DecoderState>(
  model: StepModel<S>,
  features: Float32Array,
  count: number,
  rows: readonly TeacherForcedRow[],
  specials: Pick<SpecialTokens, 'start' | 'end'> & { pad?: number } = SPECIALS,
): Promise<CaptionLikelihood[]> {
  if (rows.length === 0) return [];
  rows.forEach((row, r) => {
    if (!(Number.isInteger(row.image) && row.image >= 0 && row.image < count)) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `row ${r} refers to image ${row.image}; there are ${count}`);
    }
  });
  const pad = specials.pad ?? SPECIALS.pad;
  const sums = new Float64Array(rows.length);
  const lengths = rows.map((row) => row.tokens.length);
  const steps = Math.max(...lengths) + 1;

  // state: N rows (images) → R rows (pairs); `live[i]` is the row index (into `rows`) of state row i.
  const initial = await model.init(features, count);
  let state = model.select(initial, rows.map((row) => row.image));
  let live = rows.map((_, r) => r);
  let tokens = new Array<number>(live.length).fill(specials.start);

  for (let t = 0; t < steps && live.length > 0; t++) {
    const out = await model.step(tokens, state); // logProbs [live, V]
    const V = out.logProbs.length / live.length;
    if (!Number.isInteger(V) || V < 1) throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `step gave ${out.logProbs.length} log-probabilities for ${live.length} rows`);
    let ended = 0;
    const next = new Array<number>(live.length);
    live.forEach((r, i) => {
      const length = lengths[r];
      if (t > length) {
        ended++; // ended at an earlier step; kept until the state is compacted
        next[i] = pad;
        return;
      }
      const target = t < length ? rows[r].tokens[t] : specials.end;
      if (!(Number.isInteger(target) && target >= 0 && target < V)) {
        throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `row ${r}: token ${target} is outside the vocabulary (size ${V})`);
      }
      sums[r] += out.logProbs[i * V + target];
      if (t === length) {
        ended++;
        next[i] = pad;
      } else next[i] = rows[r].tokens[t];
    });
    state = out.state;
    tokens = next;
    if (ended > 0 && (ended * 4 >= live.length || ended === live.length)) {
      const keep: number[] = [];
      live.forEach((r, i) => {
        if (lengths[r] > t) keep.push(i);
      });
      if (keep.length === 0) break;
      state = model.select(state, keep);
      live = keep.map((i) => live[i]);
      tokens = keep.map((i) => tokens[i]);
    }
  }
  return rows.map((_, r) => {
    const predicted = lengths[r] + 1;
    return { logProb: sums[r], predicted, meanLogProb: sums[r] / predicted };
  });
}
