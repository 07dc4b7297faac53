/** N-gram counting shared by BLEU and CIDEr-D (the toolkit's `precook`). */

/** Key of an n-gram: tokens joined by a separator that cannot occur inside a token. */
export const NGRAM_SEP = '\u0000';

/** Counts of all 1..n-grams of `words`, keyed by the joined n-gram; `order` gives each key's n. */
export function countNgrams(words: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let k = 1; k <= n; k++) {
    for (let i = 0; i + k <= words.length; i++) {
      const key = words.slice(i, i + k).join(NGRAM_SEP);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** The n of an n-gram key. */
export function ngramOrder(key: string): number {
  let n = 1;
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) === 0) n++;
  return n;
}
