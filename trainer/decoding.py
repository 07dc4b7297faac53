"""Decoding rules and the batched beam search: the same search as the TypeScript one (src/decoder/search.ts and
src/decoder/rules.ts), proven equal on test/fixtures/decoder/beam-parity.json (trainer/tests/test_decoding_parity.py).

Settings come from src/decoder/generation-defaults.json, the file the TypeScript resolver reads; no decoding default is
written here. `decoding_config(**overrides)` is that file with some fields replaced.

The search, for every image in one batch:
- It starts with one live beam (no words, log-probability 0) fed <start>. At step t every live beam holds t words.
- Candidates (t < maxLength): the 2K best (beam, token) continuations over all live beams and all tokens the rules
  allow for that beam, by value = beam log-probability + token log-probability (in float64), -inf and NaN left out;
  ties go to the lower beam index (beams are kept best first), then to the lower token id.
- At t == maxLength every live beam can only end: the candidates are the beams' <end> continuations, in beam order,
  without the beams the rules forbid to end, unless that leaves none (then all of them).
- Walking the candidates by rank r: an <end> ranked below K becomes a finished hypothesis, an <end> ranked K or lower
  is dropped, and a word extends a new live beam while there are fewer than K.
- A finished hypothesis scores logProb / (words + 1) ** lengthPenalty. Finished hypotheses are sorted by score, then
  logProb (both descending), then tokens (ascending, a prefix first).
- An image is done when it has no live beam; with K == 1 as soon as something finished; otherwise once the nBest-th
  finished score is >= live[0].logProb / max(norm(t + 1), norm(maxLength)), norm(w) = (w + 1) ** lengthPenalty
  (no live beam can beat it any more: log-probabilities only fall).
All live beams of all images go through one `step_state` call per step (rows image by image, beams best first).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .models.base import select_rows

DEFAULTS_PATH = Path(__file__).resolve().parents[1] / "src" / "decoder" / "generation-defaults.json"

# field of DecodingConfig → key in generation-defaults.json and in a model card's `decoding`
_JSON_KEYS = {"beam_size": "beamSize", "max_length": "maxLength", "length_penalty": "lengthPenalty",
              "n_best": "nBest", "no_repeat_ngram": "noRepeatNgram", "rules": "rules",
              "dangling_words": "danglingWords"}


@dataclass(frozen=True)
class DecodingConfig:
    beam_size: int
    max_length: int
    length_penalty: float
    n_best: int
    no_repeat_ngram: int
    rules: Tuple[str, ...]
    dangling_words: Dict[str, List[str]] = field(hash=False)

    @classmethod
    def from_json(cls, d: dict) -> "DecodingConfig":
        """From the camelCase form (generation-defaults.json, a card's `decoding`); every field must be present."""
        missing = [k for k in _JSON_KEYS.values() if k not in d]
        if missing:
            raise ValueError(f"decoding config: missing {', '.join(missing)}")
        c = cls(**{f: d[k] for f, k in _JSON_KEYS.items()})
        return replace(c, rules=tuple(c.rules), dangling_words={g: list(w) for g, w in c.dangling_words.items()})

    def to_json(self) -> dict:
        d = {k: getattr(self, f) for f, k in _JSON_KEYS.items()}
        d["rules"] = list(self.rules)
        return d

    def replace(self, **changes) -> "DecodingConfig":
        """A copy with the fields given (None leaves a field as it is), checked."""
        c = replace(self, **{k: v for k, v in changes.items() if v is not None})
        if c.rules is not self.rules:
            c = replace(c, rules=tuple(c.rules))
        c.check()
        return c

    def check(self) -> None:
        def bad(what):
            raise ValueError(f"decoding config: {what}")
        if not (isinstance(self.beam_size, int) and 1 <= self.beam_size <= 100):
            bad(f"beamSize must be an integer from 1 to 100, got {self.beam_size!r}")
        if not (isinstance(self.max_length, int) and 1 <= self.max_length <= 500):
            bad(f"maxLength must be an integer from 1 to 500, got {self.max_length!r}")
        if not (isinstance(self.n_best, int) and 1 <= self.n_best <= self.beam_size):
            bad(f"nBest must be an integer from 1 to beamSize ({self.beam_size}), got {self.n_best!r}")
        if not (math.isfinite(self.length_penalty) and self.length_penalty >= 0):
            bad(f"lengthPenalty must be a number >= 0, got {self.length_penalty!r}")
        if not (isinstance(self.no_repeat_ngram, int) and self.no_repeat_ngram >= 0):
            bad(f"noRepeatNgram must be an integer >= 0, got {self.no_repeat_ngram!r}")
        unknown = [r for r in self.rules if r not in RULE_NAMES]
        if unknown:
            bad(f"unknown rule(s) {', '.join(unknown)} (known: {', '.join(RULE_NAMES)})")


@lru_cache(maxsize=None)
def _read_defaults(path: str) -> DecodingConfig:
    with open(path, encoding="utf-8") as f:
        c = DecodingConfig.from_json(json.load(f))
    c.check()
    return c


def default_config() -> DecodingConfig:
    """The library's decoding defaults (src/decoder/generation-defaults.json)."""
    return _read_defaults(str(DEFAULTS_PATH))


def decoding_config(**overrides) -> DecodingConfig:
    """The defaults with the given fields replaced (None: keep the default)."""
    return default_config().replace(**overrides)


# --- rules -------------------------------------------------------------------------------------------------------

Specials = Dict[str, int]
BanFn = Callable[[Sequence[int]], List[int]]


def _no_specials(config, specials, vocab) -> BanFn:
    return lambda words: [specials["pad"], specials["start"]]


def _no_unk(config, specials, vocab) -> BanFn:
    return lambda words: [specials["unk"]]


def _no_empty(config, specials, vocab) -> BanFn:
    return lambda words: [specials["end"]] if not words else []


def _no_repeated_token(config, specials, vocab) -> BanFn:
    return lambda words: [words[-1]] if words else []


def _no_repeated_ngram(config, specials, vocab) -> Optional[BanFn]:
    n = config.no_repeat_ngram
    if n <= 0:
        return None

    def ban(words):
        # every earlier occurrence of the last n-1 words bans the word that followed it
        if len(words) < n - 1:
            return []
        tail = list(words[len(words) - (n - 1):])
        return [words[i + n - 1] for i in range(len(words) - n + 1) if list(words[i:i + n - 1]) == tail]
    return ban


def _no_dangling_ending(config, specials, vocab) -> BanFn:
    dangling = {w for words in config.dangling_words.values() for w in words}
    ids = {i for i, w in enumerate(vocab) if w in dangling}
    end = specials["end"]
    return lambda words: [end] if words and words[-1] in ids else []


# rule name (as in src/decoder/rules.ts) → factory(config, specials, vocab) → ban(words) → ids, or None when off
RULES = {"no-specials": _no_specials, "no-unk": _no_unk, "no-empty": _no_empty,
         "no-repeated-token": _no_repeated_token, "no-repeated-ngram": _no_repeated_ngram,
         "no-dangling-ending": _no_dangling_ending}
RULE_NAMES = tuple(RULES)


class Rules:
    """The rules a config names, built for a vocabulary (id → word; no-dangling-ending needs it)."""

    def __init__(self, config: DecodingConfig, specials: Specials, vocab: Sequence[str]):
        config.check()
        built = [RULES[name](config, specials, vocab) for name in config.rules]
        self._bans = [b for b in built if b is not None]

    def banned(self, words: Sequence[int], vocab_size: int) -> List[int]:
        """Every id in [0, vocab_size) a live beam with these words (no <start>/<end>) may not emit next."""
        out: List[int] = []
        for ban in self._bans:
            out.extend(ban(words))
        return [i for i in out if 0 <= i < vocab_size]


# --- search ------------------------------------------------------------------------------------------------------

@dataclass
class Hypothesis:
    tokens: List[int]  # word ids, without <start>/<end>
    log_prob: float  # sum of the log-probabilities of the words and of <end>
    score: float  # log_prob / (len(tokens) + 1) ** length_penalty
    alphas: Optional[List[torch.Tensor]] = None  # per word, the attention [R] that predicted it


@dataclass
class _Beam:
    tokens: List[int]
    log_prob: float
    alphas: Optional[List[torch.Tensor]]


@dataclass
class _Search:
    image: int
    beams: List[_Beam]  # live, best first; beam b is state row first_row + b
    first_row: int
    finished: List[Hypothesis]


def _hypothesis_order(h: Hypothesis):
    return (-h.score, -h.log_prob, h.tokens)


@torch.no_grad()
def beam_search(model, features, config: DecodingConfig, vocab: Sequence[str], specials: Specials,
                return_attention: bool = False) -> List[List[Hypothesis]]:
    """Per image of `features` (first dim), up to config.n_best hypotheses, best first. `model` has
    init_state(features) and step_state(tokens, state) (trainer/models/base.py)."""
    config.check()
    K = config.beam_size
    start, end = specials["start"], specials["end"]
    lp = float(config.length_penalty)

    def norm(words: int) -> float:
        return float(words + 1) ** lp

    rules = Rules(config, specials, vocab)
    count = int(features.shape[0])
    if count == 0:
        return []
    device = features.device
    state = model.init_state(features)
    searches = [_Search(i, [_Beam([], 0.0, [] if return_attention else None)], i, []) for i in range(count)]
    results: List[List[Hypothesis]] = [[] for _ in range(count)]
    tokens = torch.full((count,), start, dtype=torch.long, device=device)
    t = 0
    while searches:
        log_probs, alpha, state = model.step_state(tokens, state)
        V = int(log_probs.shape[1])
        alpha_rows = alpha.float().cpu() if return_attention else None
        if t == config.max_length:
            candidates = _closing_candidates(searches, log_probs, rules, end, V)
        else:
            candidates = _top_candidates(searches, log_probs, rules, 2 * K, V)
        next_searches: List[_Search] = []
        parent_rows: List[int] = []
        next_tokens: List[int] = []
        for search, cands in zip(searches, candidates):
            live: List[_Beam] = []
            live_rows: List[int] = []
            for rank, (value, b, token) in enumerate(cands):
                beam = search.beams[b]
                if token == end:
                    # as in fairseq and Hugging Face: an ended beam counts only if it ranks among the step's best K
                    if rank < K and value > -math.inf:
                        search.finished.append(Hypothesis(beam.tokens, value, value / norm(len(beam.tokens)),
                                                          beam.alphas))
                elif len(live) < K:
                    row = search.first_row + b
                    alphas = beam.alphas + [alpha_rows[row]] if beam.alphas is not None else None
                    live.append(_Beam(beam.tokens + [token], value, alphas))
                    live_rows.append(row)
            search.finished.sort(key=_hypothesis_order)
            if _is_done(search.finished, live, t, config, norm):
                results[search.image] = search.finished[:config.n_best]
                continue
            next_searches.append(_Search(search.image, live, len(parent_rows), search.finished))
            parent_rows.extend(live_rows)
            next_tokens.extend(b.tokens[-1] for b in live)
        searches = next_searches
        if not searches:
            break
        state = select_rows(state, torch.tensor(parent_rows, dtype=torch.long, device=device))
        tokens = torch.tensor(next_tokens, dtype=torch.long, device=device)
        t += 1
    return results


def _is_done(finished: List[Hypothesis], live: List[_Beam], t: int, config: DecodingConfig, norm) -> bool:
    if not live:
        return True
    if config.beam_size == 1:
        return len(finished) > 0  # greedy: the argmax was <end>
    if len(finished) < config.n_best:
        return False
    bound = live[0].log_prob / max(norm(t + 1), norm(config.max_length))
    return finished[config.n_best - 1].score >= bound


def _closing_candidates(searches: List[_Search], log_probs: torch.Tensor, rules: Rules, end: int, V: int):
    """At maxLength words: each live beam's <end>, without those the rules forbid to end unless that is all."""
    end_lp = log_probs[:, end].double().cpu().tolist()
    out = []
    for s in searches:
        cands, allowed = [], []
        for b, beam in enumerate(s.beams):
            cand = (beam.log_prob + end_lp[s.first_row + b], b, end)
            cands.append(cand)
            if end not in rules.banned(beam.tokens, V):
                allowed.append(cand)
        out.append([c for c in (allowed or cands) if c[0] > -math.inf])  # NaN fails the comparison too
    return out


def _top_candidates(searches: List[_Search], log_probs: torch.Tensor, rules: Rules, limit: int, V: int):
    """Per search, its `limit` best (value, beam, token), best first, ties to the lower beam then the lower token."""
    device = log_probs.device
    neg_inf = float("-inf")
    values = log_probs.double()
    values.masked_fill_(torch.isnan(values), neg_inf)  # NaN: an impossible continuation, like -inf
    beam_lp = [b.log_prob for s in searches for b in s.beams]
    values.add_(torch.tensor(beam_lp, dtype=torch.float64, device=device).unsqueeze(1))
    ban_rows: List[int] = []
    ban_tokens: List[int] = []
    for s in searches:
        for b, beam in enumerate(s.beams):
            banned = rules.banned(beam.tokens, V)
            ban_rows.extend([s.first_row + b] * len(banned))
            ban_tokens.extend(banned)
    if ban_rows:
        values[torch.tensor(ban_rows, device=device), torch.tensor(ban_tokens, device=device)] = neg_inf
    # one row of K*V per search: beam b's token v at b*V + v, so a lower index is a lower beam, then a lower token
    K = max(len(s.beams) for s in searches)
    if all(len(s.beams) == K for s in searches):
        flat = values.view(len(searches), K * V)
    else:  # pad the searches with fewer live beams with impossible rows
        grid = torch.full((len(searches), K, V), neg_inf, dtype=torch.float64, device=device)
        rows = torch.tensor([i * K + b for i, s in enumerate(searches) for b in range(len(s.beams))], device=device)
        grid.view(-1, V)[rows] = values
        flat = grid.view(len(searches), K * V)
    k = min(limit, K * V)
    # everything at or above each search's k-th value (more than k only on ties; never -inf), then an exact sort
    threshold = flat.topk(k, dim=1).values[:, k - 1:k].clamp(min=-sys.float_info.max)
    where = (flat >= threshold).nonzero()
    vals = flat[where[:, 0], where[:, 1]].tolist()
    per_search: List[List[Tuple[float, int]]] = [[] for _ in searches]
    for (i, idx), v in zip(where.tolist(), vals):
        per_search[i].append((v, idx))
    out = []
    for entries in per_search:
        entries.sort(key=lambda e: (-e[0], e[1]))
        out.append([(v, idx // V, idx % V) for v, idx in entries[:limit]])
    return out
