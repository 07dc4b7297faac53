"""CIDEr-D and BLEU exactly as the COCO caption toolkit (pycocoevalcap) computes them.

Inputs are token lists (captions.json is already PTB-tokenised, so nothing here tokenises).

- `cider_d(hyps, refs)`: pycocoevalcap `Cider().compute_score` (CIDEr-D: n=1..4, sigma=6, clipped tf-idf, x10),
  document frequencies taken from the references of the scored set, like the toolkit.
- `CiderD`: the same formula with document frequencies fixed once from a reference corpus (the TRAIN split for SCST
  rewards) and the reference vectors of every image precomputed, so a reward costs one pass over the hypothesis n-grams.
- `bleu(hyps, refs)`: pycocoevalcap `Bleu(4).compute_score` corpus BLEU-1..4 (option "closest").

The toolkit's quirks are kept on purpose, so numbers match it: the length used by the Gaussian penalty is the number of
*bigrams* (its `if n == 1: length += term_freq` counts index 1), and an n-gram absent from every reference has df 1.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Dict, Hashable, List, Sequence, Tuple

N_MAX = 4
SIGMA = 6.0

NGram = Tuple[str, ...]
Counts = Dict[NGram, int]
# One CIDEr vector: per n (0..3) a dict ngram -> tf-idf weight, per n its L2 norm, and the "length" (bigram count).
Vec = Tuple[List[Dict[NGram, float]], List[float], int]


def ngram_counts(tokens: Sequence[str], n: int = N_MAX) -> Counts:
    """All 1..n-grams of a token list with their counts (pycocoevalcap `precook`)."""
    counts: Counts = defaultdict(int)
    words = list(tokens)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def document_frequency(refs: Sequence[Sequence[Sequence[str]]]) -> Dict[NGram, int]:
    """df[ngram] = number of images whose references contain the ngram (pycocoevalcap `compute_doc_freq`)."""
    df: Dict[NGram, int] = defaultdict(int)
    for image_refs in refs:
        seen = set()
        for ref in image_refs:
            seen.update(ngram_counts(ref).keys())
        for g in seen:
            df[g] += 1
    return df


def _to_vec(counts: Counts, df: Dict[NGram, int], ref_len: float) -> Vec:
    vec: List[Dict[NGram, float]] = [{} for _ in range(N_MAX)]
    norm = [0.0] * N_MAX
    length = 0
    for g, tf in counts.items():
        n = len(g) - 1
        w = float(tf) * (ref_len - math.log(max(1.0, float(df.get(g, 0)))))
        vec[n][g] = w
        norm[n] += w * w
        if n == 1:  # toolkit quirk: the "length" is the bigram count
            length += tf
    return vec, [math.sqrt(x) for x in norm], length


def _sim(hyp: Vec, ref: Vec, sigma: float) -> float:
    """Sum over n of the clipped cosine similarity with the Gaussian length penalty."""
    vh, nh, lh = hyp
    vr, nr, lr = ref
    delta = float(lh - lr)
    penalty = math.exp(-(delta * delta) / (2.0 * sigma * sigma))
    total = 0.0
    for n in range(N_MAX):
        val = 0.0
        ref_n = vr[n]
        for g, w in vh[n].items():
            r = ref_n.get(g, 0.0)
            val += min(w, r) * r
        if nh[n] != 0 and nr[n] != 0:
            val /= nh[n] * nr[n]
        total += val * penalty
    return total


def _score(hyp: Vec, ref_vecs: Sequence[Vec], sigma: float) -> float:
    s = 0.0
    for rv in ref_vecs:
        s += _sim(hyp, rv, sigma)
    # mean over the N_MAX n-gram orders, mean over references, x10
    return s / N_MAX / len(ref_vecs) * 10.0


def cider_d(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]],
            sigma: float = SIGMA) -> Tuple[float, List[float]]:
    """Corpus CIDEr-D and per-image scores, df from `refs` themselves (what the COCO toolkit reports)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference sets")
    if not hyps:
        return 0.0, []
    df = document_frequency(refs)
    ref_len = math.log(float(len(refs)))
    scores = []
    for hyp, image_refs in zip(hyps, refs):
        if not image_refs:
            raise ValueError("an image has no references")
        hv = _to_vec(ngram_counts(hyp), df, ref_len)
        scores.append(_score(hv, [_to_vec(ngram_counts(r), df, ref_len) for r in image_refs], sigma))
    return sum(scores) / len(scores), scores


class CiderD:
    """CIDEr-D against a fixed corpus: df and ref_len from `corpus_refs` (one list of references per image), reference
    vectors precomputed per key. Used for SCST rewards with the TRAIN split as the corpus (Rennie et al. 2017)."""

    def __init__(self, corpus_refs: Dict[Hashable, Sequence[Sequence[str]]], sigma: float = SIGMA):
        if not corpus_refs:
            raise ValueError("empty reference corpus")
        self.sigma = sigma
        self.df = dict(document_frequency(list(corpus_refs.values())))
        self.ref_len = math.log(float(len(corpus_refs)))
        self._ref_vecs: Dict[Hashable, List[Vec]] = {
            key: [_to_vec(ngram_counts(r), self.df, self.ref_len) for r in refs] for key, refs in corpus_refs.items()
        }

    def score(self, key: Hashable, hyp: Sequence[str]) -> float:
        return _score(_to_vec(ngram_counts(hyp), self.df, self.ref_len), self._ref_vecs[key], self.sigma)

    def scores(self, keys: Sequence[Hashable], hyps: Sequence[Sequence[str]]) -> List[float]:
        return [self.score(k, h) for k, h in zip(keys, hyps)]


def bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[Sequence[str]]], n: int = 4) -> List[float]:
    """Corpus BLEU-1..n as pycocoevalcap `Bleu(n)` (closest reference length, its tiny/small smoothing)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference sets")
    tiny, small = 1e-15, 1e-9
    guess = [0] * n
    correct = [0] * n
    test_len = 0
    ref_len = 0
    for hyp, image_refs in zip(hyps, refs):
        max_ref: Dict[NGram, int] = {}
        for r in image_refs:
            for g, c in ngram_counts(r, n).items():
                if c > max_ref.get(g, 0):
                    max_ref[g] = c
        hc = ngram_counts(hyp, n)
        tl = len(hyp)
        test_len += tl
        ref_len += min((abs(len(r) - tl), len(r)) for r in image_refs)[1]
        for k in range(n):
            guess[k] += max(0, tl - k)
        for g, c in hc.items():
            correct[len(g) - 1] += min(max_ref.get(g, 0), c)
    scores = []
    prod = 1.0
    for k in range(n):
        prod *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
        scores.append(prod ** (1.0 / (k + 1)))
    ratio = (test_len + tiny) / (ref_len + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores
