"""Throughput check and a Flickr8k-sized synthetic data set, for timing the trainer without the real features.

  python3 -m trainer.bench --batches 5 --batch-size 32 --device cpu      # XE tokens/s at the real model size
  python3 -m trainer.bench --scst-batches 3 --device cuda                  # also SCST steps
  python3 -m trainer.bench --write-store DIR                               # 8091-image synthetic store + captions.json

Flickr8k XE epoch ≈ 30,000 captions x ~12.9 tokens (words + <end>) ≈ 387k tokens, so epoch time ≈ 387k / tokens-per-s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from .cider import CiderD
from .data import Captions
from .models import DEFAULT_ARCHITECTURE, build_model
from .train import parse_args, scst_step, xe_step

FLICKR8K_TRAIN_TOKENS = 387_000


def write_realistic_store(root: str, n_images: int = 8091, vocab_size: int = 2600, concepts: int = 200,
                          seed: int = 0) -> dict:
    """A store and captions.json of Flickr8k's size: 6000/1000/1000 (+ rest train) images, 5 captions each, words
    drawn per concept from a Zipf-like distribution, features = concept pattern + noise (fp16, written in chunks)."""
    rng = np.random.default_rng(seed)
    store = os.path.join(root, "features")
    os.makedirs(store, exist_ok=True)
    names = sorted(f"{1000000 + i}_{i:06x}.jpg" for i in range(n_images))
    concept = rng.integers(0, concepts, n_images)
    patterns = np.maximum(rng.normal(0, 1, (concepts, 49, 2048)), 0).astype(np.float16)
    with open(os.path.join(store, "spatial.f16"), "wb") as f, open(os.path.join(store, "pooled.f16"), "wb") as fp:
        for a in range(0, n_images, 256):
            c = concept[a:a + 256]
            x = patterns[c].astype(np.float32) + rng.normal(0, 0.3, (len(c), 49, 2048)).astype(np.float32)
            x = np.maximum(x, 0)
            f.write(x.astype("<f2").tobytes())
            fp.write(x.mean(1).astype("<f2").tobytes())
    index = {"format": "pixel-info-features", "version": 1, "encoder": {"name": "synthetic"}, "dataset": "synthetic",
             "grid": [7, 7], "regions": 49, "channels": 2048, "dtype": "float16", "hflip": False,
             "count": n_images, "done": n_images, "complete": True, "images": [{"name": n} for n in names]}
    with open(os.path.join(store, "index.json"), "w") as f:
        json.dump(index, f)
    vocab = ["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 4)]
    ranks = np.arange(1, vocab_size - 3)
    images = []
    for i, n in enumerate(names):
        split = "train" if i < 6000 else "val" if i < 7000 else "test" if i < 8000 else "train"
        crng = np.random.default_rng(int(concept[i]))
        perm = crng.permutation(vocab_size - 4)  # the concept's word preferences
        p = 1.0 / ranks ** 1.1
        p /= p.sum()
        caps = []
        for _ in range(5):
            L = int(rng.integers(6, 18))
            ids = (perm[rng.choice(vocab_size - 4, L, p=p)] + 4).tolist()
            caps.append({"raw": "", "tokens": [vocab[j] for j in ids], "ids": ids[:20]})
        images.append({"name": n, "split": split, "captions": caps})
    cap_path = os.path.join(root, "captions.json")
    with open(cap_path, "w") as f:
        json.dump({"format": "pixel-info-captions", "version": 1, "dataset": "synthetic",
                   "source": {"file": "synthetic", "md5": ""}, "tokenizer": "ptb", "minCount": 5, "maxLength": 20,
                   "specials": {"pad": 0, "start": 1, "end": 2, "unk": 3}, "vocab": vocab, "images": images}, f)
    return {"store": store, "captions": cap_path}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m trainer.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--scst-batches", type=int, default=0)
    p.add_argument("--scst-batch", type=int, default=64)
    p.add_argument("--embed-dim", type=int, default=512)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--attention-dim", type=int, default=512)
    p.add_argument("--vocab", type=int, default=2600)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--write-store", metavar="DIR")
    a = p.parse_args(argv)
    if a.write_store:
        t0 = time.time()
        r = write_realistic_store(a.write_store)
        print(f"wrote {r['store']} and {r['captions']} in {time.time() - t0:.0f}s")
        return 0
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) or a.device == "cuda" else "cpu")
    amp = dev.type == "cuda"
    torch.manual_seed(0)
    # trainer.train's defaults, these sizes, and the ResNet50 geometry (7x7 regions of 2048 channels)
    train_defaults = vars(parse_args(["--features", "-", "--captions", "-", "--out", "-"]))
    model = build_model(DEFAULT_ARCHITECTURE, {**train_defaults, "vocab_size": a.vocab, "regions": 49,
                                               "feature_dim": 2048, "embed_dim": a.embed_dim,
                                               "hidden_dim": a.hidden_dim, "attention_dim": a.attention_dim}).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=4e-4)
    B, T = a.batch_size, 14  # Flickr8k: ~11.9 words + <end> on average, batches padded to their longest
    feats = torch.relu(torch.randn(B, 49, 2048, device=dev)).half()
    ids = torch.randint(4, a.vocab, (B, T + 1), device=dev)
    ids[:, 0] = 1
    lens = torch.randint(8, T + 1, (B,), device=dev)
    lens[0] = T
    xe_step(model, opt, feats, ids, lens, 0.0, 1.0, 5.0, amp)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(a.batches):
        xe_step(model, opt, feats, ids, lens, 0.0, 1.0, 5.0, amp)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    el = time.time() - t0
    tps = a.batches * int(lens.sum()) / el
    print(f"XE: device {dev}{' bf16' if amp else ''}, batch {B}, {el / a.batches * 1000:.0f} ms/batch, "
          f"{tps:,.0f} tokens/s → Flickr8k epoch ≈ {FLICKR8K_TRAIN_TOKENS / tps / 60:.1f} min (without val)")
    if a.scst_batches:
        vocab = ["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(a.vocab - 4)]
        cap = Captions(path="", vocab=vocab, specials={"pad": 0, "start": 1, "end": 2, "unk": 3}, max_length=20,
                       images=[])
        rng = np.random.default_rng(0)
        refs = {i: [[vocab[j] for j in rng.integers(4, a.vocab, 12)] for _ in range(5)] for i in range(a.scst_batch)}
        scorer = CiderD(refs)
        f = torch.relu(torch.randn(a.scst_batch, 49, 2048, device=dev)).half()
        t0 = time.time()
        for _ in range(a.scst_batches):
            r = scst_step(model, opt, f, list(range(a.scst_batch)), cap, scorer, 5, "greedy", True, 5.0, amp)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        el = (time.time() - t0) / a.scst_batches
        print(f"SCST: {a.scst_batch} images x 5 samples: {el * 1000:.0f} ms/batch → Flickr8k epoch (6000 images) ≈ "
              f"{6000 / a.scst_batch * el / 60:.1f} min (random model: samples run to max length)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
