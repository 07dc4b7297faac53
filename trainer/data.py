"""Feature store + captions.json (docs/formats.md) → in-memory training data.

All features of the images used are copied once into one tensor (GPU memory when training on CUDA: 8091 x 49 x 2048
fp16 is 1.6 GB for ResNet50's 7x7 grid), so a batch is an index into it and there is no DataLoader, no worker and no
host→device copy per step. The geometry (regions x channels) is the store's, from its index.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

TRAIN_SPLITS = ("train", "restval")


class DataError(ValueError):
    """A feature store or captions file that does not follow docs/formats.md."""


def sha256_file(path: str, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


@dataclass
class FeatureStore:
    path: str
    index: dict
    spatial: np.ndarray  # memmap [count, regions, channels] <f2
    spatial_hflip: Optional[np.ndarray]
    row_of: Dict[str, int]
    failed: set

    @property
    def count(self) -> int:
        return int(self.index["count"])

    @property
    def regions(self) -> int:
        return int(self.index["regions"])

    @property
    def channels(self) -> int:
        return int(self.index["channels"])


def open_feature_store(path: str) -> FeatureStore:
    index_path = os.path.join(path, "index.json")
    if not os.path.isfile(index_path):
        raise DataError(f"{path}: not a feature store (no index.json)")
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    if index.get("format") != "pixel-info-features":
        raise DataError(f"{index_path}: format is {index.get('format')!r}, expected 'pixel-info-features'")
    regions, channels, grid = index.get("regions"), index.get("channels"), index.get("grid")
    if not (isinstance(regions, int) and regions > 0 and isinstance(channels, int) and channels > 0):
        raise DataError(f"{index_path}: regions and channels must be positive integers, got {regions!r} x {channels!r}")
    if grid is not None and (not isinstance(grid, list) or int(np.prod(grid)) != regions):
        raise DataError(f"{index_path}: grid {grid!r} does not have {regions} regions")
    if index.get("dtype", "float16") != "float16":
        raise DataError(f"{index_path}: dtype {index.get('dtype')!r}, expected float16")
    if not index.get("complete", False) or index.get("done") != index.get("count"):
        raise DataError(f"{index_path}: extraction not complete ({index.get('done')}/{index.get('count')} rows)")
    count = int(index["count"])
    images = index["images"]
    if len(images) != count:
        raise DataError(f"{index_path}: {len(images)} images listed, count is {count}")

    def mm(name: str) -> Optional[np.ndarray]:
        p = os.path.join(path, name)
        if not os.path.isfile(p):
            return None
        expected = count * regions * channels * 2
        if os.path.getsize(p) != expected:
            raise DataError(f"{p}: {os.path.getsize(p)} bytes, expected {expected}")
        return np.memmap(p, dtype="<f2", mode="r", shape=(count, regions, channels))

    spatial = mm("spatial.f16")
    if spatial is None:
        raise DataError(f"{path}: spatial.f16 missing")
    return FeatureStore(
        path=path, index=index, spatial=spatial, spatial_hflip=mm("spatial_hflip.f16"),
        row_of={im["name"]: r for r, im in enumerate(images)},
        failed={im["name"] for im in images if im.get("error")},
    )


@dataclass
class Captions:
    path: str
    vocab: List[str]
    specials: Dict[str, int]
    max_length: int
    images: List[dict]
    meta: dict = field(default_factory=dict)

    @property
    def pad(self) -> int:
        return self.specials["pad"]

    @property
    def start(self) -> int:
        return self.specials["start"]

    @property
    def end(self) -> int:
        return self.specials["end"]

    @property
    def unk(self) -> int:
        return self.specials["unk"]

    def words(self, ids: Sequence[int]) -> List[str]:
        """Decoder ids → words, stopping at <end> and dropping <pad>/<start>."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end:
                break
            if i in (self.pad, self.start):
                continue
            out.append(self.vocab[i])
        return out


def load_captions(path: str) -> Captions:
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if d.get("format") != "pixel-info-captions":
        raise DataError(f"{path}: format is {d.get('format')!r}, expected 'pixel-info-captions'")
    specials = d["specials"]
    vocab = d["vocab"]
    for name, i in (("pad", 0), ("start", 1), ("end", 2), ("unk", 3)):
        if specials.get(name) != i:
            raise DataError(f"{path}: specials.{name} is {specials.get(name)}, expected {i}")
    meta = {k: v for k, v in d.items() if k not in ("vocab", "images")}
    return Captions(path=path, vocab=vocab, specials=specials, max_length=int(d["maxLength"]), images=d["images"], meta=meta)


def swap_map(vocab: Sequence[str], pairs=(("left", "right"),)) -> torch.Tensor:
    """id → id table that swaps 'left' and 'right' (identity elsewhere), for horizontally flipped images."""
    table = torch.arange(len(vocab), dtype=torch.long)
    pos = {w: i for i, w in enumerate(vocab)}
    for a, b in pairs:
        if a in pos and b in pos:
            table[pos[a]], table[pos[b]] = pos[b], pos[a]
    return table


def swap_tokens(tokens: Sequence[str], pairs=(("left", "right"),)) -> List[str]:
    m = {}
    for a, b in pairs:
        m[a], m[b] = b, a
    return [m.get(t, t) for t in tokens]


@dataclass
class Split:
    """The images of one split: their feature rows (into Dataset.features), names and reference token lists."""
    name: str
    image_names: List[str]
    feature_rows: torch.Tensor  # [N] long, rows of Dataset.features
    refs: List[List[List[str]]]  # per image, its reference captions (tokens)
    # one entry per caption: the image (index into this split) and ids with <start> ... <end>, padded
    cap_image: torch.Tensor  # [C] long
    cap_ids: torch.Tensor  # [C, max_length + 2] long
    cap_len: torch.Tensor  # [C] long, tokens after <start> incl. <end>

    def __len__(self) -> int:
        return len(self.image_names)


class Dataset:
    """Features of all used images in one tensor on `device` + the train/val/test splits."""

    def __init__(self, store_path: str, captions_path: str, device: torch.device = torch.device("cpu"),
                 splits: Sequence[str] = ("train", "val"), hflip: bool = False, log=print):
        self.store = open_feature_store(store_path)
        self.captions = load_captions(captions_path)
        self.device = device
        if hflip and self.store.spatial_hflip is None:
            raise DataError(f"{store_path}: --hflip-aug needs spatial_hflip.f16 (extract with --hflip)")
        vocab_size = len(self.captions.vocab)
        c = self.captions
        wanted = {s: [] for s in splits}
        skipped = 0
        for im in c.images:
            s = "train" if im["split"] in TRAIN_SPLITS else im["split"]
            if s not in wanted:
                continue
            if im["name"] not in self.store.row_of or im["name"] in self.store.failed:
                skipped += 1
                continue
            wanted[s].append(im)
        if skipped:
            log(f"[data] {skipped} captioned images have no (valid) features and are left out")
        rows = sorted({self.store.row_of[im["name"]] for s in splits for im in wanted[s]})
        local = {r: i for i, r in enumerate(rows)}
        self.features = self._load_rows(self.store.spatial, rows)
        self.features_hflip = self._load_rows(self.store.spatial_hflip, rows) if hflip else None
        self.flip_ids = swap_map(c.vocab).to(device)
        L = c.max_length + 2
        self.splits: Dict[str, Split] = {}
        for s in splits:
            ims = wanted[s]
            cap_image, cap_ids, cap_len = [], [], []
            for i, im in enumerate(ims):
                for cap in im["captions"]:
                    ids = [int(x) for x in cap["ids"]][: c.max_length]
                    if any(x < 0 or x >= vocab_size for x in ids):
                        raise DataError(f"{captions_path}: {im['name']}: caption id out of range")
                    seq = [c.start] + ids + [c.end]
                    cap_ids.append(seq + [c.pad] * (L - len(seq)))
                    cap_len.append(len(ids) + 1)
                    cap_image.append(i)
            self.splits[s] = Split(
                name=s, image_names=[im["name"] for im in ims],
                feature_rows=torch.tensor([local[self.store.row_of[im["name"]]] for im in ims], dtype=torch.long,
                                          device=device),
                refs=[[list(cap["tokens"]) for cap in im["captions"]] for im in ims],
                cap_image=torch.tensor(cap_image, dtype=torch.long, device=device),
                cap_ids=torch.tensor(cap_ids, dtype=torch.long, device=device).reshape(-1, L),
                cap_len=torch.tensor(cap_len, dtype=torch.long, device=device),
            )
            log(f"[data] {s}: {len(ims)} images, {len(cap_ids)} captions")

    @property
    def geometry(self) -> Dict[str, int]:
        """What a decoder's config must match: regions per image and channels (feature_dim) per region."""
        return {"regions": self.store.regions, "feature_dim": self.store.channels}

    def check_geometry(self, config: dict, what: str) -> None:
        """DataError unless a model config (dict) was made for this store's regions x channels."""
        for k, v in self.geometry.items():
            if k in config and config[k] != v:
                raise DataError(f"{what}: the model has {k} {config[k]}, the feature store {self.store.path} has {v}")

    def _load_rows(self, mm: np.ndarray, rows: List[int]) -> torch.Tensor:
        out = torch.empty((len(rows), self.store.regions, self.store.channels), dtype=torch.float16,
                          device=self.device)
        # copy in chunks: bounded host memory, and contiguous runs of rows read sequentially from the memmap
        step = 512
        for a in range(0, len(rows), step):
            chunk = np.ascontiguousarray(mm[rows[a:a + step]])
            out[a:a + len(chunk)] = torch.from_numpy(chunk).to(self.device)
        return out

    def caption_batches(self, split: str, batch_size: int, generator: torch.Generator, hflip_p: float = 0.0):
        """Shuffled teacher-forcing batches over every caption of `split`:
        (features fp16 [B,R,D], ids [B,L] with <start>..<end>, lengths [B] counting tokens after <start>)."""
        sp = self.splits[split]
        order = torch.randperm(len(sp.cap_image), generator=generator).to(self.device)
        flips = (torch.rand(len(order), generator=generator) < hflip_p).to(self.device) if hflip_p > 0 else None
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            rows = sp.feature_rows[sp.cap_image[idx]]
            lens = sp.cap_len[idx]
            T = int(lens.max()) + 1
            ids = sp.cap_ids[idx, :T]
            feats = self.features[rows]
            if flips is not None:
                f = flips[a:a + batch_size]
                feats = torch.where(f[:, None, None], self.features_hflip[rows], feats)
                ids = torch.where(f[:, None], self.flip_ids[ids], ids)
            yield feats, ids, lens

    def image_batches(self, split: str, batch_size: int, generator: Optional[torch.Generator] = None):
        """Batches of images of `split` (shuffled when a generator is given): (image indices [B], features fp16)."""
        sp = self.splits[split]
        n = len(sp)
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        order = order.to(self.device)
        for a in range(0, n, batch_size):
            idx = order[a:a + batch_size]
            yield idx, self.features[sp.feature_rows[idx]]


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
