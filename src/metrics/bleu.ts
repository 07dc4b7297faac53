/**
 * Corpus BLEU exactly as pycocoevalcap's Bleu(4) computes it (bleu_scorer.py, option "closest"):
 * clipped n-gram counts summed over the corpus, the reference length closest to each candidate
 * (ties: the shorter), the toolkit's smoothing constants (1e-15 added to matches, 1e-9 to guesses)
 * and its brevity penalty. Per-image scores use the same formula on one image.
 */
import { countNgrams, ngramOrder } from './ngrams.js';

const TINY = 1e-15;
const SMALL = 1e-9;

export interface BleuResult {
  /** BLEU-1..n over the corpus. */
  scores: number[];
  /** perImage[k][i]: BLEU-(k+1) of image i. */
  perImage: number[][];
}

interface Cooked {
  testLen: number;
  refLen: number;
  guess: number[];
  correct: number[];
}

function cook(refs: readonly (readonly string[])[], cand: readonly string[], n: number): Cooked {
  const maxCounts = new Map<string, number>();
  const refLens: number[] = [];
  for (const ref of refs) {
    refLens.push(ref.length);
    for (const [g, c] of countNgrams(ref, n)) maxCounts.set(g, Math.max(maxCounts.get(g) ?? 0, c));
  }
  const testLen = cand.length;
  // "closest": min over (|l - testLen|, l), so ties go to the shorter reference.
  let refLen = refLens[0];
  for (const l of refLens) {
    const d = Math.abs(l - testLen);
    const bd = Math.abs(refLen - testLen);
    if (d < bd || (d === bd && l < refLen)) refLen = l;
  }
  const guess = Array.from({ length: n }, (_, k) => Math.max(0, testLen - k));
  const correct = new Array<number>(n).fill(0);
  for (const [g, c] of countNgrams(cand, n)) correct[ngramOrder(g) - 1] += Math.min(maxCounts.get(g) ?? 0, c);
  return { testLen, refLen, guess, correct };
}

function bleuFrom(correct: number[], guess: number[], testLen: number, refLen: number, n: number): number[] {
  const out: number[] = [];
  let prod = 1;
  for (let k = 0; k < n; k++) {
    prod *= (correct[k] + TINY) / (guess[k] + SMALL);
    out.push(prod ** (1 / (k + 1)));
  }
  const ratio = (testLen + TINY) / (refLen + SMALL);
  if (ratio < 1) for (let k = 0; k < n; k++) out[k] *= Math.exp(1 - 1 / ratio);
  return out;
}

/**
 * BLEU-1..n. `refs[i]` are the tokenised references of image i, `cands[i]` its tokenised candidate.
 * Tokens as the toolkit sees them (it splits the tokenised caption with Python's `str.split()`).
 */
export function bleu(refs: readonly (readonly (readonly string[])[])[], cands: readonly (readonly string[])[], n = 4): BleuResult {
  if (refs.length !== cands.length) throw new RangeError(`bleu: ${refs.length} reference sets but ${cands.length} candidates`);
  const perImage: number[][] = Array.from({ length: n }, () => []);
  const totalGuess = new Array<number>(n).fill(0);
  const totalCorrect = new Array<number>(n).fill(0);
  let testLen = 0;
  let refLen = 0;
  for (let i = 0; i < cands.length; i++) {
    if (refs[i].length === 0) throw new RangeError(`bleu: image ${i} has no references`);
    const c = cook(refs[i], cands[i], n);
    testLen += c.testLen;
    refLen += c.refLen;
    for (let k = 0; k < n; k++) {
      totalGuess[k] += c.guess[k];
      totalCorrect[k] += c.correct[k];
    }
    const img = bleuFrom(c.correct, c.guess, c.testLen, c.refLen, n);
    for (let k = 0; k < n; k++) perImage[k].push(img[k]);
  }
  return { scores: bleuFrom(totalCorrect, totalGuess, testLen, refLen, n), perImage };
}
