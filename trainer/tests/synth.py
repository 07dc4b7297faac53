"""Synthetic feature store + captions.json (docs/formats.md) in which the caption is a function of the features.

Image i shows "concept" k = i % n_concepts: its 49x2048 feature map is a fixed non-negative random pattern of concept
k plus a little noise, and its captions are concept k's sentence. Concepts whose sentence says "left" put their
pattern in the left half of the grid, so the horizontally flipped features (grid columns mirrored) really are the
"right" version of the scene, and vice versa.
"""

from __future__ import annotations

import json
import os
from typing import List

import numpy as np

SENTENCES = [
    ["a", "dog", "runs", "on", "the", "left"],
    ["a", "man", "rides", "a", "red", "bike"],
    ["two", "children", "play", "in", "the", "water"],
    ["a", "black", "cat", "sits", "on", "the", "right"],
    ["a", "woman", "with", "a", "blue", "hat"],
    ["people", "walk", "down", "a", "busy", "street", "at", "night"],
]
SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]


def flip_grid(x: np.ndarray, grid=(7, 7)) -> np.ndarray:
    """Mirror the grid horizontally: region y*W+x ↔ y*W+(W-1-x)."""
    return x.reshape(x.shape[0], grid[0], grid[1], -1)[:, :, ::-1, :].reshape(x.shape)


def write_store(root: str, n_images: int = 24, n_concepts: int = 6, seed: int = 0, hflip: bool = True,
                splits=("train", "train", "train", "val", "test"), failed=(), grid=(7, 7),
                channels: int = 2048) -> dict:
    """Writes root/features (store) and root/captions.json; returns {'store', 'captions', 'names', 'concept'}.
    Images whose index is in `failed` get a zero row and an error in index.json, like a failed extraction.
    captions.json lists the images in reverse order, so the trainer must map them to rows by name.
    The geometry is ResNet50's (7x7 regions of 2048 channels) unless `grid`/`channels` say otherwise."""
    rng = np.random.default_rng(seed)
    regions = grid[0] * grid[1]
    patterns = np.maximum(rng.normal(0.0, 1.0, (n_concepts, regions, channels)), 0).astype(np.float32)
    for k, s in enumerate(SENTENCES[:n_concepts]):  # side-specific scenes live in one half of the grid
        cols = np.arange(regions) % grid[1]
        if "left" in s:
            patterns[k][cols > (grid[1] - 1) / 2] *= 0.1
        if "right" in s:
            patterns[k][cols < (grid[1] - 1) / 2] *= 0.1
    names = sorted(f"{1000 + i}_{i:04x}.jpg" for i in range(n_images))
    concept = [i % n_concepts for i in range(n_images)]
    feats = patterns[concept] + rng.normal(0.0, 0.05, (n_images, regions, channels)).astype(np.float32)
    feats = np.maximum(feats, 0)
    for i in failed:
        feats[i] = 0
    store = os.path.join(root, "features")
    os.makedirs(store, exist_ok=True)
    feats.astype("<f2").tofile(os.path.join(store, "spatial.f16"))
    feats.mean(axis=1).astype("<f2").tofile(os.path.join(store, "pooled.f16"))
    if hflip:
        fl = flip_grid(feats, grid)
        fl.astype("<f2").tofile(os.path.join(store, "spatial_hflip.f16"))
        fl.mean(axis=1).astype("<f2").tofile(os.path.join(store, "pooled_hflip.f16"))
    index = {"format": "pixel-info-features", "version": 1,
             "encoder": {"name": "synthetic", "source": "trainer/tests/synth.py", "modelSha256": "0" * 64},
             "dataset": "synthetic", "grid": list(grid), "regions": regions, "channels": channels, "dtype": "float16",
             "hflip": hflip, "count": n_images, "done": n_images, "complete": True,
             "images": [{"name": n, **({"error": {"code": "NOT_AN_IMAGE", "message": "synthetic failure"}}
                                       if i in failed else {})} for i, n in enumerate(names)]}
    with open(os.path.join(store, "index.json"), "w") as f:
        json.dump(index, f)

    words: dict = {}
    for s in SENTENCES[:n_concepts]:
        for w in s:
            words[w] = words.get(w, 0) + 1
    for w in ("left", "right"):
        words.setdefault(w, 1)
    vocab = SPECIALS + sorted(words, key=lambda w: (-words[w], w))
    wid = {w: i for i, w in enumerate(vocab)}
    images = []
    for i, n in enumerate(names):
        s = SENTENCES[concept[i]]
        caps = [{"raw": " ".join(s).capitalize() + ".", "tokens": list(s), "ids": [wid[w] for w in s]}
                for _ in range(2)]
        images.append({"name": n, "split": splits[i % len(splits)], "captions": caps})
    images.reverse()
    captions = {"format": "pixel-info-captions", "version": 1, "dataset": "synthetic",
                "source": {"file": "synthetic", "md5": "0" * 32}, "tokenizer": "ptb", "minCount": 1,
                "maxLength": 20, "specials": {"pad": 0, "start": 1, "end": 2, "unk": 3}, "vocab": vocab,
                "images": images}
    cap_path = os.path.join(root, "captions.json")
    with open(cap_path, "w") as f:
        json.dump(captions, f)
    return {"store": store, "captions": cap_path, "names": names, "concept": concept, "vocab": vocab,
            "features": feats, "split_of": {n: splits[i % len(splits)] for i, n in enumerate(names)}}


def tiny_train_args(paths: dict, out: str, extra: List[str] = ()) -> List[str]:
    return ["--features", paths["store"], "--captions", paths["captions"], "--out", out,
            "--embed-dim", "32", "--hidden-dim", "64", "--attention-dim", "32", "--dropout", "0.0",
            "--batch-size", "8", "--lr", "3e-3", "--patience", "1000", "--lr-schedule", "none",
            "--att-lambda", "0.1", "--log-every", "0", "--device", "cpu", "--val-batch", "64", *extra]


_TRAINED = {}


def trained_run() -> dict:
    """Train the tiny model once per test process (shared by the test modules); returns the synth paths + 'run'."""
    if "run" not in _TRAINED:
        import atexit
        import shutil
        import tempfile

        from trainer.train import main
        root = tempfile.mkdtemp(prefix="trainer-test-")
        atexit.register(shutil.rmtree, root, True)
        paths = write_store(root)
        run = os.path.join(root, "run")
        rc = main(tiny_train_args(paths, run, ["--epochs", "14", "--lr", "1e-2", "--batch-size", "4",
                                               "--feature-norm", "layernorm", "--threads", "2"]))
        assert rc == 0
        _TRAINED.update(paths, run=run, root=root)
    return _TRAINED
