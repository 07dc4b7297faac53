"""Validation decoding + metrics shared by training and trainer.evaluate."""

from __future__ import annotations

from typing import Dict, List, Optional

import torch

from .cider import bleu, cider_d
from .model import autocast


@torch.no_grad()
def decode_split(model, dataset, split: str, batch_size: int = 500, beam: int = 1, length_penalty: float = 0.0,
                 amp: bool = False) -> List[List[int]]:
    """Decode every image of `split` (greedy for beam 1, batched beam search otherwise) → id lists (no <end>)."""
    from .beam import beam_search
    c = dataset.captions
    max_len = c.max_length + 1
    was_training = model.training
    model.eval()
    out: List[List[int]] = []
    dev = dataset.features.device
    try:
        for _, feats in dataset.image_batches(split, batch_size):
            with autocast(amp and dev.type == "cuda"):
                if beam <= 1:
                    seqs = model.greedy(feats.float(), c.start, c.end, max_len).tolist()
                else:
                    seqs = beam_search(model, feats.float(), c.start, c.end, max_len, beam, length_penalty)
            for s in seqs:
                out.append([i for i in _cut(s, c.end)])
    finally:
        model.train(was_training)
    return out


def _cut(ids: List[int], end: int) -> List[int]:
    r = []
    for i in ids:
        if i == end:
            break
        r.append(int(i))
    return r


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


def evaluate(model, dataset, split: str = "val", beam: int = 1, length_penalty: float = 0.0, amp: bool = False,
             examples: int = 0) -> Dict[str, object]:
    seqs = decode_split(model, dataset, split, beam=beam, length_penalty=length_penalty, amp=amp)
    res: Dict[str, object] = dict(score_split(dataset, split, seqs))
    if examples:
        names = dataset.splits[split].image_names
        res["examples"] = [{"image": names[i], "caption": " ".join(dataset.captions.words(seqs[i]))}
                           for i in range(min(examples, len(seqs)))]
    return res
