/**
 * The numbers of `pixel-info eval-match` that need no model: cross-modal retrieval recall (the VSE++ protocol),
 * the labelled pairs of the calibration report (mirrored by the trainer's Python calibration), the reliability
 * table and the expected calibration error.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';

// ---------------------------------------------------------------------------------------------------------------
// Similarities and retrieval

/**
 * Cosines of every image with every text: [images, texts] row-major, from unit-length embeddings
 * (imageEmbeddings [images, dim], textEmbeddings [texts, dim]).
 */
export function similarityMatrix(imageEmbeddings: Float32Array, textEmbeddings: Float32Array, dim: number): { sims: Float32Array; images: number; texts: number } {
  const images = imageEmbeddings.length / dim;
  const texts = textEmbeddings.length / dim;
  if (!Number.isInteger(images) || !Number.isInteger(texts)) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `embeddings are not whole rows of ${dim} floats`);
  }
  const sims = new Float32Array(images * texts);
  for (let i = 0; i < images; i++) {
    const a = imageEmbeddings.subarray(i * dim, (i + 1) * dim);
    for (let j = 0; j < texts; j++) {
      let dot = 0;
      const base = j * dim;
      for (let k = 0; k < dim; k++) dot += a[k] * textEmbeddings[base + k];
      sims[i * texts + j] = dot;
    }
  }
  return { sims, images, texts };
}

export interface RecallScores {
  /** Percent of queries whose match ranks first / in the top 5 / top 10. */
  r1: number;
  r5: number;
  r10: number;
  /** VSE++'s medr: floor of the median 1-based rank. */
  medianRank: number;
  meanRank: number;
  /** Queries. */
  queries: number;
}

export interface RetrievalScores {
  /** Each text finds its image among all images. */
  textToImage: RecallScores;
  /** Each image finds any of its own texts among all texts. */
  imageToText: RecallScores;
  /** r1 + r5 + r10 of both directions (VSE++'s rsum). */
  rsum: number;
}

/**
 * Recall@K both ways, the protocol of VSE++ (Faghri et al. 2018) on a split of N images and their texts:
 * text → image: the rank of the text's image among the N images; image → text: the rank of the best-ranked of the
 * image's own texts among all texts (a hit is any of them). Ranks are 1-based and ties count against the query (an
 * other candidate scoring exactly as much as the match ranks above it), so a constant scorer gets the worst rank.
 *
 * `sims` is [images, texts] (similarityMatrix); `textImage[j]` the image of text j.
 */
export function retrievalRecall(sims: Float32Array, images: number, texts: number, textImage: ArrayLike<number>): RetrievalScores {
  if (sims.length !== images * texts || textImage.length !== texts) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `retrieval: ${sims.length} similarities for ${images} images × ${texts} texts (${textImage.length} labels)`);
  }
  const t2i = new Float64Array(texts);
  for (let j = 0; j < texts; j++) {
    const own = textImage[j];
    const s = sims[own * texts + j];
    let rank = 1;
    for (let i = 0; i < images; i++) if (i !== own && sims[i * texts + j] >= s) rank++;
    t2i[j] = rank;
  }
  const i2t = new Float64Array(images);
  for (let i = 0; i < images; i++) {
    const row = sims.subarray(i * texts, (i + 1) * texts);
    let best = -Infinity;
    let hasOwn = false;
    for (let j = 0; j < texts; j++) {
      if (textImage[j] === i) {
        hasOwn = true;
        if (row[j] > best) best = row[j];
      }
    }
    if (!hasOwn) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `retrieval: image ${i} has no text`);
    let rank = 1;
    for (let j = 0; j < texts; j++) if (textImage[j] !== i && row[j] >= best) rank++;
    i2t[i] = rank;
  }
  const textToImage = recallOf(t2i);
  const imageToText = recallOf(i2t);
  const rsum = textToImage.r1 + textToImage.r5 + textToImage.r10 + imageToText.r1 + imageToText.r5 + imageToText.r10;
  return { textToImage, imageToText, rsum };
}

function recallOf(ranks: Float64Array): RecallScores {
  const n = ranks.length;
  const within = (k: number) => (100 * ranks.filter((r) => r <= k).length) / n;
  const sorted = Float64Array.from(ranks).sort();
  const median = n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return {
    r1: within(1),
    r5: within(5),
    r10: within(10),
    medianRank: Math.floor(median),
    meanRank: ranks.reduce((a, b) => a + b, 0) / n,
    queries: n,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Calibration pairs

/** Seed of the calibration pairs in `pixel-info eval-match` and in the trainer's calibration. */
export const CALIBRATION_PAIRS_SEED = 42;

/**
 * mulberry32: a 32-bit generator small enough to write identically in Python. Each call returns a uint32.
 *
 *     def mulberry32(seed):
 *         a = seed & 0xFFFFFFFF
 *         while True:
 *             a = (a + 0x6D2B79F5) & 0xFFFFFFFF
 *             t = ((a ^ (a >> 15)) * (a | 1)) & 0xFFFFFFFF
 *             t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
 *             yield (t ^ (t >> 14)) & 0xFFFFFFFF
 *
 * Seed 42 gives 2581720956, 1925393290, 3661312704, 2876485805, 750819978 (test/eval-match.test.ts checks these).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** floor(u32 · n / 2^32): an integer in [0, n), exact in doubles (and in Python integers) for n < 2^21. */
export function drawIndex(u32: number, n: number): number {
  return Math.floor((u32 * n) / 4294967296);
}

export type CalibrationPairKind = 'own' | 'random' | 'hard';

export interface CalibrationPair {
  /** Image index in the split (dataset order: names in code-point order). */
  image: number;
  /** Text index (texts listed image by image, each image's captions in file order). */
  text: number;
  /** 1: one of the image's own captions; 0: a caption of another image of the split. */
  label: 0 | 1;
  kind: CalibrationPairKind;
}

export interface CalibrationPairOptions {
  /** Default CALIBRATION_PAIRS_SEED. */
  seed?: number;
  /**
   * Half the negatives the matcher's hardest (below). Default false: the matcher's calibration is fitted on random
   * negatives only, because the hardest captions of other Flickr8k images very often describe the image too (its
   * scenes repeat: "a dog runs through the grass"), and people would say yes to them; labelled 0 they make the
   * score non-monotone in the label (the top bin of the shipped matcher was 57% positive) and no calibration fits.
   */
  hardNegatives?: boolean;
}

/**
 * The labelled (image, caption) pairs of the calibration report. The trainer's calibration (Python) builds the
 * same pairs; this comment is the specification both follow.
 *
 * Input: the split's N images in dataset order (names sorted in code-point order), its M texts listed image by
 * image (each image's captions in file order), `textImage[j]` the image of text j, and `cosine(i, j)` the
 * matcher's cosine of image i and text j. One generator, `mulberry32(seed)`, is created once and shared by all
 * images in order. For each image i = 0 .. N-1:
 *
 * 1. Positives: each own text j (textImage[j] == i), in text order, label 1, kind 'own'. Let k be their count.
 * 2. Negatives, k of them (fewer if the other images have fewer texts): with `hardNegatives`, `hard = floor(k / 2)`
 *    (5 captions: 3 random and 2 hard), else `hard = 0` (the default: 5 random); `random = k - hard`.
 *    a. Random, drawn first (so they never depend on the model): repeat `j = floor(u · M / 2^32)` with u the next
 *       uint32 of the generator; j is taken unless textImage[j] == i or j was already taken for this image (then
 *       draw again); until `random` texts are taken. When the other images have at most `random` texts, all of
 *       them are taken in text order and nothing is drawn. Label 0, kind 'random', in the order drawn.
 *    b. Hard: of the texts j with textImage[j] != i not taken in (a), the `hard` with the highest cosine(i, j)
 *       (ties: the lower j first). Label 0, kind 'hard', best first.
 *
 * Pairs are returned image by image: positives, then random, then hard negatives.
 */
export function buildCalibrationPairs(
  textImage: ArrayLike<number>,
  imageCount: number,
  cosine: (image: number, text: number) => number,
  options: CalibrationPairOptions = {},
): CalibrationPair[] {
  const M = textImage.length;
  const next = mulberry32(options.seed ?? CALIBRATION_PAIRS_SEED);
  const textsOf: number[][] = Array.from({ length: imageCount }, () => []);
  for (let j = 0; j < M; j++) {
    const i = textImage[j];
    if (!(Number.isInteger(i) && i >= 0 && i < imageCount)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `text ${j} refers to image ${i}; there are ${imageCount}`);
    textsOf[i].push(j);
  }
  const pairs: CalibrationPair[] = [];
  for (let i = 0; i < imageCount; i++) {
    const own = textsOf[i];
    for (const j of own) pairs.push({ image: i, text: j, label: 1, kind: 'own' });
    const others = M - own.length;
    const k = Math.min(own.length, others);
    const hard = options.hardNegatives ? Math.floor(k / 2) : 0;
    const random = k - hard;
    const taken = new Set<number>();
    if (others <= random) {
      for (let j = 0; j < M; j++) if (textImage[j] !== i) taken.add(j);
    } else {
      while (taken.size < random) {
        const j = drawIndex(next(), M);
        if (textImage[j] !== i) taken.add(j); // a Set ignores a repeat; the loop draws again
      }
    }
    for (const j of taken) pairs.push({ image: i, text: j, label: 0, kind: 'random' });
    if (hard > 0) {
      const best: Array<{ j: number; c: number }> = [];
      for (let j = 0; j < M; j++) {
        if (textImage[j] === i || taken.has(j)) continue;
        const c = cosine(i, j);
        if (best.length === hard && !(c > best[hard - 1].c)) continue; // ties keep the lower j already in
        let at = best.length === hard ? hard - 1 : best.length;
        while (at > 0 && best[at - 1].c < c) at--;
        best.splice(at, 0, { j, c });
        if (best.length > hard) best.pop();
      }
      for (const { j } of best) pairs.push({ image: i, text: j, label: 0, kind: 'hard' });
    }
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------------------------
// Reliability

export interface ReliabilityBin {
  /** [lo, hi) of the score (the last bin includes 1). */
  lo: number;
  hi: number;
  count: number;
  /** Mean predicted score in the bin; null when empty. */
  meanScore: number | null;
  /** Observed fraction of label 1; null when empty. */
  rate: number | null;
}

export interface Reliability {
  bins: ReliabilityBin[];
  /** Σ_b (count_b / n) · |meanScore_b − rate_b|. */
  ece: number;
  n: number;
  /** Mean score and observed rate over all pairs. */
  meanScore: number;
  rate: number;
}

/** Reliability table over `binCount` equal-width bins of [0, 1] and the expected calibration error. */
export function reliability(scores: ArrayLike<number>, labels: ArrayLike<number>, binCount = 10): Reliability {
  const n = scores.length;
  if (labels.length !== n) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `reliability: ${n} scores but ${labels.length} labels`);
  if (n === 0) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, 'reliability: no pairs');
  const count = new Float64Array(binCount);
  const sumScore = new Float64Array(binCount);
  const sumLabel = new Float64Array(binCount);
  for (let p = 0; p < n; p++) {
    const s = scores[p];
    if (!(s >= 0 && s <= 1)) throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `reliability: score ${p} is ${s}, outside [0, 1]`);
    const b = Math.min(binCount - 1, Math.floor(s * binCount));
    count[b]++;
    sumScore[b] += s;
    sumLabel[b] += labels[p];
  }
  let ece = 0;
  const bins: ReliabilityBin[] = [];
  for (let b = 0; b < binCount; b++) {
    const c = count[b];
    const meanScore = c ? sumScore[b] / c : null;
    const rate = c ? sumLabel[b] / c : null;
    if (c) ece += (c / n) * Math.abs(meanScore! - rate!);
    bins.push({ lo: b / binCount, hi: (b + 1) / binCount, count: c, meanScore, rate });
  }
  const total = (a: Float64Array) => a.reduce((x, y) => x + y, 0);
  return { bins, ece, n, meanScore: total(sumScore) / n, rate: total(sumLabel) / n };
}
