/**
 * CIDEr-D exactly as pycocoevalcap's `Cider` scorer computes it (the number COCO reports as "CIDEr"):
 * TF-IDF vectors of 1..4-grams with document frequencies counted over the evaluated images'
 * references (idf = log(#images) - log(max(1, df))), cosine similarity per n with clipping of the
 * candidate's weights by the reference's, a Gaussian length penalty with sigma = 6, averaged over n
 * and over the references, times 10.
 *
 * Two details of the toolkit are kept on purpose: the "length" in the penalty counts bigrams (the
 * toolkit adds term frequencies where its n-gram index equals 1), and a norm of 0 skips the division.
 */
import { countNgrams, ngramOrder } from './ngrams.js';
import { numpyMean } from './numeric.js';

export interface CiderOptions {
  n?: number;
  sigma?: number;
}

interface Vec {
  weights: Map<string, number>[];
  norms: number[];
  length: number;
}

function toVec(counts: Map<string, number>, df: Map<string, number>, refLen: number, n: number): Vec {
  const weights = Array.from({ length: n }, () => new Map<string, number>());
  const sq = new Array<number>(n).fill(0);
  let length = 0;
  for (const [g, tf] of counts) {
    const dfLog = Math.log(Math.max(1, df.get(g) ?? 0));
    const k = ngramOrder(g) - 1;
    const w = tf * (refLen - dfLog);
    weights[k].set(g, w);
    sq[k] += w ** 2;
    if (k === 1) length += tf;
  }
  return { weights, norms: sq.map(Math.sqrt), length };
}

function similarity(hyp: Vec, ref: Vec, n: number, sigma: number): number[] {
  const delta = hyp.length - ref.length;
  const val = new Array<number>(n).fill(0);
  for (let k = 0; k < n; k++) {
    for (const [g, w] of hyp.weights[k]) {
      const r = ref.weights[k].get(g) ?? 0;
      val[k] += Math.min(w, r) * r;
    }
    if (hyp.norms[k] !== 0 && ref.norms[k] !== 0) val[k] /= hyp.norms[k] * ref.norms[k];
    val[k] *= Math.E ** (-(delta ** 2) / (2 * sigma ** 2));
  }
  return val;
}

/**
 * Per-image and corpus CIDEr-D. `refs[i]`/`cands[i]` are image i's tokenised references/candidate.
 * `docFreqRefs` sets where document frequencies come from (default: `refs`, as the toolkit does).
 */
export function ciderD(
  refs: readonly (readonly (readonly string[])[])[],
  cands: readonly (readonly string[])[],
  options: CiderOptions & { docFreqRefs?: readonly (readonly (readonly string[])[])[] } = {},
): { score: number; perImage: number[] } {
  const n = options.n ?? 4;
  const sigma = options.sigma ?? 6;
  if (refs.length !== cands.length) throw new RangeError(`ciderD: ${refs.length} reference sets but ${cands.length} candidates`);
  const dfSource = options.docFreqRefs ?? refs;
  const df = new Map<string, number>();
  for (const imageRefs of dfSource) {
    const seen = new Set<string>();
    for (const r of imageRefs) for (const g of countNgrams(r, n).keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const refLen = Math.log(dfSource.length);
  const perImage = cands.map((cand, i) => {
    if (refs[i].length === 0) throw new RangeError(`ciderD: image ${i} has no references`);
    const hyp = toVec(countNgrams(cand, n), df, refLen, n);
    const total = new Array<number>(n).fill(0);
    for (const r of refs[i]) {
      const sim = similarity(hyp, toVec(countNgrams(r, n), df, refLen, n), n, sigma);
      for (let k = 0; k < n; k++) total[k] += sim[k];
    }
    return (numpyMean(total) / refs[i].length) * 10;
  });
  return { score: numpyMean(perImage), perImage };
}
