/**
 * ROUGE-L as pycocoevalcap's Rouge computes it: per image, LCS-based precision and recall against
 * every reference, the maximum precision and the maximum recall (each on its own, possibly from
 * different references), F with beta = 1.2; the corpus score is the mean over images.
 */
import { numpyMean } from './numeric.js';

const BETA = 1.2;

function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length < b.length) [a, b] = [b, a];
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

// The toolkit splits captions with `split(" ")`, so an empty caption is one empty token.
const asSplit = (t: readonly string[]): readonly string[] => (t.length === 0 ? [''] : t);

/** ROUGE-L of one candidate against its references. */
export function rougeLSentence(refs: readonly (readonly string[])[], cand: readonly string[]): number {
  if (refs.length === 0) throw new RangeError('rougeL: no references');
  const c = asSplit(cand);
  let precMax = -Infinity;
  let recMax = -Infinity;
  for (const r0 of refs) {
    const r = asSplit(r0);
    const lcs = lcsLength(r, c);
    precMax = Math.max(precMax, lcs / c.length);
    recMax = Math.max(recMax, lcs / r.length);
  }
  if (precMax === 0 || recMax === 0) return 0;
  return ((1 + BETA ** 2) * precMax * recMax) / (recMax + BETA ** 2 * precMax);
}

/** Corpus ROUGE-L (mean of per-image scores) and the per-image scores. */
export function rougeL(refs: readonly (readonly (readonly string[])[])[], cands: readonly (readonly string[])[]): { score: number; perImage: number[] } {
  if (refs.length !== cands.length) throw new RangeError(`rougeL: ${refs.length} reference sets but ${cands.length} candidates`);
  const perImage = cands.map((c, i) => rougeLSentence(refs[i], c));
  return { score: numpyMean(perImage), perImage };
}
