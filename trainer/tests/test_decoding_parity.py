"""trainer/decoding.py against the TypeScript search (test/fixtures/decoder/beam-parity.json, written from
src/decoder/search.ts), against small cases worked out by hand, and each decoding rule on its own.

A case's toy model: a row's state is its prefix (the words so far); the step output of a row is
steps[",".join(prefix)] of its image ("" for the first step). All images of a case go through one search call."""

import json
import math
import unittest
from pathlib import Path

import torch

from trainer.decoding import (DEFAULTS_PATH, RULE_NAMES, DecodingConfig, Rules, beam_search, decoding_config,
                              default_config)

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "test" / "fixtures" / "decoder" / "beam-parity.json"
SPECIALS = {"pad": 0, "start": 1, "end": 2, "unk": 3}


class TableModel:
    """Log-probabilities looked up by (image, prefix); a prefix the case does not list fails the test. As in the
    fixture's TypeScript toy (test/fixtures/decoder/beam-parity.ts), the prefix is the words written: every step's
    input token but the first step's <start>."""

    def __init__(self, images):
        self.tables = [im["steps"] for im in images]

    def init_state(self, features):
        n = features.shape[0]
        return {"image": features.long(), "prefix": torch.zeros((n, 0), dtype=torch.long),
                "started": torch.zeros(n, dtype=torch.bool)}

    def step_state(self, tokens, state):
        rows, prefixes = [], []
        for image, p, token, started in zip(state["image"].tolist(), state["prefix"].tolist(), tokens.tolist(),
                                            state["started"].tolist()):
            p = [i for i in p if i >= 0] + ([token] if started else [])
            key = ",".join(str(i) for i in p)
            if key not in self.tables[image]:
                raise AssertionError(f"image {image}: the search asked for prefix [{key}], which the case lacks")
            rows.append([_number(x) for x in self.tables[image][key]])
            prefixes.append(p)
        width = max(len(p) for p in prefixes)  # rows of one tensor: padded with -1
        prefix = torch.tensor([p + [-1] * (width - len(p)) for p in prefixes], dtype=torch.long).view(len(rows), width)
        return (torch.tensor(rows, dtype=torch.float32), torch.zeros(len(rows), 1),
                {"image": state["image"], "prefix": prefix, "started": torch.ones_like(state["started"])})


def _number(x):
    return float("-inf") if x is None else float(x)  # JSON has no -Infinity: null stands for it


def run_case(case):
    config = DecodingConfig.from_json(case["config"])
    model = TableModel(case["images"])
    return beam_search(model, torch.arange(len(case["images"])), config, case["vocab"], SPECIALS)


# Worked out by hand (see the comments); every log-probability is a binary fraction, so the sums are exact.
V8 = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "runs", "the"]
#                       pad start end  unk   a      dog    runs   the
HAND_CASES = [
    {
        # greedy: <end> (no-empty) and <unk> are banned at first, so "a"; after "a" <end> dangles and "a" repeats,
        # so "dog"; then <end> ranks first and finishes
        "name": "greedy with rules", "vocab": V8,
        "config": {"beamSize": 1, "maxLength": 3, "lengthPenalty": 0, "nBest": 1, "noRepeatNgram": 0,
                   "rules": list(RULE_NAMES), "danglingWords": {"article": ["a", "the"]}},
        "images": [{"steps": {"": [-8, -8, -0.5, -1, -1.5, -2, -3, -4],
                              "4": [-8, -8, -0.125, -4, -0.25, -1, -2, -5],
                              "4,5": [-8, -8, -0.25, -0.5, -2, -3, -1, -4]},
                    "expected": [{"tokens": [4, 5], "logProb": -2.75, "score": -2.75}]}],
    },
    {
        # K=2, nBest 2, lengthPenalty 1. Step 1: dog@a -0.75, end@a -1.5, end@dog -1.5 (tie: lower beam first),
        # runs@dog -1.75: "a" finishes (rank 1), the <end> of "dog" ranks 2 >= K and is dropped. Closing at 2
        # words: "a dog" -1.25 (score -1.25/3), "dog runs" -2 (-2/3); "a" (-1.5/2) comes third.
        "name": "beam 2, n-best 2, length penalty, tie and a dropped end", "vocab": V8,
        "config": {"beamSize": 2, "maxLength": 2, "lengthPenalty": 1, "nBest": 2, "noRepeatNgram": 0,
                   "rules": ["no-specials", "no-empty"], "danglingWords": {}},
        "images": [{"steps": {"": [-8, -8, -0.125, -4, -0.5, -1, -2, -3],
                              "4": [-8, -8, -1, -4, -2, -0.25, -3, -5],
                              "5": [-8, -8, -0.5, -4, -3, -2, -0.75, -6],
                              "4,5": [-8, -8, -0.5, -4, -3, -4, -5, -6],
                              "5,6": [-8, -8, -0.25, -4, -3, -4, -5, -6]},
                    "expected": [{"tokens": [4, 5], "logProb": -1.25, "score": -1.25 / 3},
                                 {"tokens": [5, 6], "logProb": -2.0, "score": -2.0 / 3}]}],
    },
    {
        # closing at 1 word: image 0's beams both end on an article, so both may end and "a" wins; image 1 keeps
        # only "dog" although "a" + <end> is likelier
        "name": "closing with dangling endings, two images in one batch", "vocab": V8,
        "config": {"beamSize": 2, "maxLength": 1, "lengthPenalty": 0, "nBest": 1, "noRepeatNgram": 0,
                   "rules": ["no-specials", "no-empty", "no-dangling-ending"],
                   "danglingWords": {"article": ["a", "the"]}},
        "images": [{"steps": {"": [-8, -8, -0.125, -4, -0.25, -2, -3, -0.5],
                              "4": [-8, -8, -0.125, -4, -3, -2, -3, -4],
                              "7": [-8, -8, -1, -4, -3, -2, -3, -4]},
                    "expected": [{"tokens": [4], "logProb": -0.375, "score": -0.375}]},
                   {"steps": {"": [-8, -8, -0.125, -4, -0.5, -0.25, -3, -4],
                              "5": [-8, -8, -1, -4, -3, -2, -3, -4],
                              "4": [-8, -8, -0.125, -4, -3, -2, -3, -4]},
                    "expected": [{"tokens": [5], "logProb": -1.25, "score": -1.25}]}],
    },
    {
        # noRepeatNgram 2: after "a dog a" the bigram "a dog" may not come again, so <end>
        "name": "no repeated bigram", "vocab": V8,
        "config": {"beamSize": 1, "maxLength": 4, "lengthPenalty": 0, "nBest": 1, "noRepeatNgram": 2,
                   "rules": ["no-specials", "no-repeated-ngram"], "danglingWords": {}},
        "images": [{"steps": {"": [-8, -8, -0.5, -4, -0.25, -1, -4, -4],
                              "4": [-8, -8, -1, -4, -4, -0.25, -4, -4],
                              "4,5": [-8, -8, -2, -4, -0.25, -4, -4, -4],
                              "4,5,4": [-8, -8, -0.5, -4, -4, -0.125, -1, -4]},
                    "expected": [{"tokens": [4, 5, 4], "logProb": -1.25, "score": -1.25}]}],
    },
    {
        # image 0 has one possible word, so at step 1 it has one live beam and image 1 two (padded rows). Image 0:
        # "a" then <end> (-0.75) beats what "a dog" can still reach. Image 1: "dog" ends at -1.25 (rank 1), "a dog"
        # closes at maxLength at -1.25 too: equal score and logProb, so the token order decides: [4, 5] < [5]
        "name": "unequal live beams per image, tie on tokens", "vocab": V8,
        "config": {"beamSize": 2, "maxLength": 2, "lengthPenalty": 0, "nBest": 1, "noRepeatNgram": 0,
                   "rules": ["no-specials", "no-empty"], "danglingWords": {}},
        "images": [{"steps": {"": [None, None, -0.125, None, -0.5, None, None, None],
                              "4": [None, None, -0.25, None, None, -1, None, None]},
                    "expected": [{"tokens": [4], "logProb": -0.75, "score": -0.75}]},
                   {"steps": {"": [-8, -8, -0.125, -8, -0.5, -1, -2, -3],
                              "4": [-8, -8, -2, -8, -8, -0.25, -3, -8],
                              "5": [-8, -8, -0.25, -8, -8, -8, -1, -8],
                              "4,5": [-8, -8, -0.5, -8, -8, -8, -8, -8],
                              "5,6": [-8, -8, -0.25, -8, -8, -8, -8, -8]},
                    "expected": [{"tokens": [4, 5], "logProb": -1.25, "score": -1.25}]}],
    },
]


class DecodingParityTest(unittest.TestCase):
    def check_cases(self, cases):
        self.assertTrue(cases)
        for case in cases:
            got = run_case(case)
            self.assertEqual(len(got), len(case["images"]), case["name"])
            for i, (hyps, image) in enumerate(zip(got, case["images"])):
                where = f"{case['name']}, image {i}"
                want = image["expected"]
                self.assertEqual([h.tokens for h in hyps], [w["tokens"] for w in want], where)
                for h, w in zip(hyps, want):
                    self.assertLessEqual(abs(h.log_prob - w["logProb"]), 1e-9, where)
                    self.assertLessEqual(abs(h.score - w["score"]), 1e-9, where)

    def test_hand_cases(self):
        self.check_cases(HAND_CASES)

    def test_typescript_fixture(self):
        self.check_cases(load_fixture()["cases"])

    def test_batching_does_not_change_results(self):
        for case in load_fixture()["cases"] + HAND_CASES:
            if len(case["images"]) > 1:
                self.check_cases([{**case, "images": [image]} for image in case["images"]])


def load_fixture():
    if not FIXTURE.is_file():
        raise AssertionError(f"{FIXTURE} is missing")
    with open(FIXTURE, encoding="utf-8") as f:
        fx = json.load(f)
    if (fx.get("format"), fx.get("version")) != ("pixel-info-beam-parity", 1):
        raise AssertionError(f"{FIXTURE}: not a version 1 beam parity fixture")
    return fx


class RulesTest(unittest.TestCase):
    VOCAB = ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "in", "the", "park"]

    def banned(self, rules, words, n=3, dangling=None):
        cfg = decoding_config(rules=rules, no_repeat_ngram=n,
                              dangling_words=dangling if dangling is not None else {"x": ["a", "in", "the"]})
        return sorted(Rules(cfg, SPECIALS, self.VOCAB).banned(words, len(self.VOCAB)))

    def test_no_specials(self):
        self.assertEqual(self.banned(["no-specials"], []), [0, 1])
        self.assertEqual(self.banned(["no-specials"], [4, 5]), [0, 1])

    def test_no_unk(self):
        self.assertEqual(self.banned(["no-unk"], [4]), [3])

    def test_no_empty(self):
        self.assertEqual(self.banned(["no-empty"], []), [2])
        self.assertEqual(self.banned(["no-empty"], [4]), [])

    def test_no_repeated_token(self):
        self.assertEqual(self.banned(["no-repeated-token"], []), [])
        self.assertEqual(self.banned(["no-repeated-token"], [4, 5]), [5])

    def test_no_repeated_ngram(self):
        r = ["no-repeated-ngram"]
        # "a dog in the dog": the last two words "the dog"? no earlier one; the last one "dog" with n=2 bans "in"
        self.assertEqual(self.banned(r, [4, 5, 6, 7, 5], n=2), [6])
        self.assertEqual(self.banned(r, [4, 5, 6, 4, 5], n=3), [6])  # "a dog" came before "in"
        self.assertEqual(self.banned(r, [4, 5, 4, 5, 4, 5], n=3), [4, 4])  # every earlier occurrence bans
        self.assertEqual(self.banned(r, [4], n=3), [])  # shorter than n-1
        self.assertEqual(self.banned(r, [5, 5], n=1), [5, 5])  # n=1: no word twice
        self.assertEqual(self.banned(r, [4, 5, 4, 5], n=0), [])  # 0 turns it off

    def test_no_dangling_ending(self):
        r = ["no-dangling-ending"]
        self.assertEqual(self.banned(r, []), [])
        self.assertEqual(self.banned(r, [5, 6]), [2])  # "dog in"
        self.assertEqual(self.banned(r, [5, 7, 8]), [])  # "dog the park"
        self.assertEqual(self.banned(r, [5, 8], dangling={"place": ["park"], "article": ["the"]}), [2])

    def test_only_named_rules_apply_and_ids_stay_in_range(self):
        self.assertEqual(self.banned([], [5, 5, 5]), [])
        cfg = decoding_config(rules=["no-specials", "no-unk"])
        self.assertEqual(Rules(cfg, {"pad": 0, "start": 1, "end": 2, "unk": 9}, self.VOCAB).banned([], 9), [0, 1])
        with self.assertRaises(ValueError):
            decoding_config(rules=["no-such-rule"])

    def test_defaults_come_from_the_shared_json(self):
        with open(DEFAULTS_PATH, encoding="utf-8") as f:
            d = json.load(f)
        self.assertEqual(default_config().to_json(), {k: d[k] for k in default_config().to_json()})
        self.assertEqual(decoding_config(beam_size=5).beam_size, 5)
        self.assertEqual(decoding_config(beam_size=None).beam_size, d["beamSize"])
        with self.assertRaises(ValueError):
            decoding_config(n_best=d["beamSize"] + 1)


class SearchBehaviourTest(unittest.TestCase):
    def test_missing_prefix_fails(self):
        case = {"name": "x", "vocab": V8, "config": {**HAND_CASES[0]["config"]},
                "images": [{"steps": {"": HAND_CASES[0]["images"][0]["steps"][""]}}]}
        with self.assertRaises(AssertionError):
            run_case(case)

    def test_impossible_continuations_are_skipped(self):
        inf = float("-inf")
        case = {"vocab": V8, "config": {"beamSize": 2, "maxLength": 2, "lengthPenalty": 0, "nBest": 1,
                                        "noRepeatNgram": 0, "rules": [], "danglingWords": {}},
                "images": [{"steps": {"": [inf, inf, inf, inf, -0.5, float("nan"), inf, inf],
                                      "4": [inf, inf, -0.25, inf, inf, inf, inf, inf]}}]}
        got = run_case(case)
        self.assertEqual([(h.tokens, h.log_prob) for h in got[0]], [([4], -0.75)])
        self.assertTrue(math.isfinite(got[0][0].score))


if __name__ == "__main__":
    unittest.main()
