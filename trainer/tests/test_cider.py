"""CIDEr-D / BLEU: hand-computed values and pycocoevalcap's own numbers (fixture made by fixtures/make_*.py)."""

import json
import math
import os
import unittest

from trainer.cider import CiderD, bleu, cider_d, document_frequency

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "pycocoevalcap_scores.json")


class CiderHandComputed(unittest.TestCase):
    def test_exact_match_two_images(self):
        # every n-gram has df 1 of 2 images → weight log 2; unigram and bigram cosines are 1, 3/4-grams empty:
        # (1 + 1 + 0 + 0) / 4 * 10 = 5
        score, per = cider_d([["a", "b"], ["c", "d"]], [[["a", "b"]], [["c", "d"]]])
        self.assertAlmostEqual(score, 5.0, places=12)
        self.assertEqual(len(per), 2)

    def test_length_penalty_and_clipping(self):
        score, per = cider_d([["a", "b", "z"], ["c", "d"]], [[["a", "b"]], [["c", "d"]]])
        # unigrams: 2 l^2 / (sqrt3 l * sqrt2 l); bigrams: l^2 / (sqrt2 l * l); "length" = bigram count: 2 vs 1
        expected = (2 / math.sqrt(6) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4 * 10
        self.assertAlmostEqual(per[0], expected, places=12)
        self.assertAlmostEqual(per[1], 5.0, places=12)
        self.assertAlmostEqual(score, (expected + 5.0) / 2, places=12)

    def test_single_image_corpus_scores_zero(self):
        # log(1 image) = 0 = idf of everything
        self.assertEqual(cider_d([["a"]], [[["a"]]])[0], 0.0)

    def test_document_frequency_counts_images_not_refs(self):
        df = document_frequency([[["a", "b"], ["a"]], [["a"]]])
        self.assertEqual(df[("a",)], 2)
        self.assertEqual(df[("a", "b")], 1)

    def test_bleu_exact_match(self):
        b = bleu([["a", "b", "c", "d"]], [[["a", "b", "c", "d"]]])
        for x in b:
            self.assertAlmostEqual(x, 1.0, places=6)

    def test_bleu_brevity_penalty(self):
        b = bleu([["a", "b"]], [[["a", "b", "c", "d"]]])
        self.assertAlmostEqual(b[0], math.exp(1 - 4 / 2), places=6)


class CiderMatchesPycocoevalcap(unittest.TestCase):
    def test_fixture(self):
        with open(FIXTURE) as f:
            cases = json.load(f)["cases"]
        for case in cases:
            c, per = cider_d(case["hyps"], case["refs"])
            self.assertAlmostEqual(c, case["cider"], places=10)
            for a, b in zip(per, case["cider_per_image"]):
                self.assertAlmostEqual(a, b, places=10)
            for a, b in zip(bleu(case["hyps"], case["refs"]), case["bleu"]):
                self.assertAlmostEqual(a, b, places=10)

    def test_fixed_corpus_scorer_equals_toolkit_on_its_own_corpus(self):
        with open(FIXTURE) as f:
            case = json.load(f)["cases"][2]
        keys = list(range(len(case["refs"])))
        fast = CiderD({k: case["refs"][k] for k in keys}).scores(keys, case["hyps"])
        for a, b in zip(fast, case["cider_per_image"]):
            self.assertAlmostEqual(a, b, places=10)

    def test_fixed_corpus_uses_its_own_df(self):
        corpus = {0: [["a", "dog"]], 1: [["a", "cat"]], 2: [["the", "bird"]]}
        s = CiderD(corpus)
        self.assertGreater(s.score(0, ["a", "dog"]), s.score(0, ["a", "cat"]))
        self.assertAlmostEqual(s.score(0, ["a", "dog"]),
                               s.score(0, ["a", "dog"]))  # precomputed refs are not mutated by scoring


if __name__ == "__main__":
    unittest.main()
