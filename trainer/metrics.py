"""Validation decoding + metrics shared by training and trainer.evaluate."""

from __future__ import annotations

from typing import Dict, List

import torch

from .cider import bleu, cider_d
from .decoding import DecodingConfig, beam_search
from .models import autocast


@torch.no_grad()
def decode_split(model, dataset, split: str, config: DecodingConfig, batch_size: int = 500,
                 amp: bool = False) -> List[List[int]]:
    """Decode every image of `split` with the beam search of trainer/decoding.py (the TypeScript search, same
    rules) → the best hypothesis of each image as an id list (no <end>; empty if the search found none)."""
    c = dataset.captions
    config = config.replace(n_best=1)
    was_training = model.training
    model.eval()
    out: List[List[int]] = []
    dev = dataset.features.device
    try:
        for _, feats in dataset.image_batches(split, batch_size):
            with autocast(amp and dev.type == "cuda"):
                hyps = beam_search(model, feats.float(), config, c.vocab, c.specials)
            out.extend(h[0].tokens if h else [] for h in hyps)
    finally:
        model.train(was_training)
    return out


def score_split(dataset, split: str, seqs: List[List[int]]) -> Dict[str, float]:
    """CIDEr-D (df from this split's references, as the COCO toolkit) and BLEU-1..4 of decoded id lists."""
    c = dataset.captions
    hyps = [c.words(s) for s in seqs]
    refs = dataset.splits[split].refs
    cider, _ = cider_d(hyps, refs)
    b = bleu(hyps, refs)
    vocab_used = len({w for h in hyps for w in h})
    mean_len = sum(len(h) for h in hyps) / max(1, len(hyps))
    return {"cider": cider, "bleu1": b[0], "bleu2": b[1], "bleu3": b[2], "bleu4": b[3],
            "mean_length": mean_len, "vocab_used": vocab_used}


def evaluate(model, dataset, split: str, config: DecodingConfig, amp: bool = False, examples: int = 0,
             batch_size: int = 500) -> Dict[str, object]:
    seqs = decode_split(model, dataset, split, config, batch_size=batch_size, amp=amp)
    res: Dict[str, object] = dict(score_split(dataset, split, seqs))
    if examples:
        names = dataset.splits[split].image_names
        res["examples"] = [{"image": names[i], "caption": " ".join(dataset.captions.words(seqs[i]))}
                           for i in range(min(examples, len(seqs)))]
    return res
