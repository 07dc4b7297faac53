/**
 * From embeddings to scores (src/match/types.ts): cosine of unit vectors, the card's calibration
 * (logit = a·cosine + b, score = sigmoid(logit)). Plain arithmetic, no runtime: shared by the matcher, the
 * pipeline and anyone holding stored embeddings.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { MatchCalibration, MatchScore, MatcherModel } from './types.js';

/** logit = a·cosine + b; score = sigmoid(logit). */
export function calibrate(cosine: number, calibration: MatchCalibration): { score: number; logit: number } {
  const logit = calibration.a * cosine + calibration.b;
  return { score: sigmoid(logit), logit };
}

/** Cosine of row `i` of `a` and row `j` of `b` (both rows of length `dim`, unit length: the dot product). */
export function cosineAt(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let dot = 0;
  const ai = i * dim;
  const bj = j * dim;
  for (let k = 0; k < dim; k++) dot += a[ai + k] * b[bj + k];
  return Math.max(-1, Math.min(1, dot));
}

/**
 * Scores of pairs: text j (row j of `textEmbeddings`) against image `imageOf[j]` (a row of `imageEmbeddings`).
 * `imageOf` defaults to image 0 for every text (one image, many sentences).
 */
export function scorePairs(
  model: Pick<MatcherModel, 'dim' | 'calibration'>,
  imageEmbeddings: Float32Array,
  texts: readonly string[],
  textEmbeddings: Float32Array,
  imageOf?: ArrayLike<number>,
): MatchScore[] {
  const { dim, calibration } = model;
  if (textEmbeddings.length < texts.length * dim) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `${texts.length} texts need ${texts.length * dim} embedding floats, got ${textEmbeddings.length}`);
  }
  const images = Math.floor(imageEmbeddings.length / dim);
  return texts.map((text, j) => {
    const image = imageOf ? imageOf[j] : 0;
    if (!(image >= 0 && image < images)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `text ${j} refers to image ${image}; there are ${images}`);
    const cosine = cosineAt(imageEmbeddings, image, textEmbeddings, j, dim);
    return { text, ...calibrate(cosine, calibration), cosine };
  });
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}
