"""Train the image–text matcher: a dual encoder over the stored ResNet50 grid and our vocabulary, contrastive
(symmetric InfoNCE with a learned temperature, plus VSE++'s hardest-negative hinge), on the train split; selected on
val (R@1 + R@5 + R@10 of both directions); calibrated on val (Platt scaling of the cosine); exported to ONNX.

  python3 -m trainer.match --features STORE --captions captions.json --out RUN_DIR [--epochs 30]
  python3 -m trainer.match --export RUN_DIR/best.pt --captions captions.json --out models/flickr8k-match

Image side: the 7x7x2048 grid → [mean over regions ; max over regions] (4096) → a fixed PCA to 512 (fitted on train)
→ LayerNorm → Linear + residual MLP → D (1024) → L2-normalised. Text side ("bow", the default): the masked mean of the
word embeddings (300) → Linear + residual MLP → D → L2-normalised; "gru" (word embedding → GRU → the mean and last
states → Linear) is there too, but an epoch costs several times more on a CPU. Both graphs are in docs/formats.md ("Matcher model
directory"); the pair construction for the calibration mirrors src/eval/match (calibrationPairs).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import TRAIN_SPLITS, DataError, load_captions, open_feature_store, sha256_file

CARD_FORMAT = "pixel-info-matcher"
CHECKPOINT_FORMAT = "pixel-info-matcher-checkpoint"
# The shipped model's settings (chosen on val among a few runs on 2 CPU cores; see trainer/README.md)
DEFAULT_CONFIG = dict(text="bow", pca_dim=512, embed_dim=1024, word_dim=300, hidden_dim=1024, feature_dim=2048,
                      image_hidden=1024, dropout=0.5, max_tokens=32)


# --------------------------------------------------------------------------------------------------------- model
class ImageEncoder(nn.Module):
    """features [B, R, C] → embedding [B, D] (unit length).

    The [mean ; max] pooled vector (2C) is first reduced by a fixed PCA to P components (fitted on the train
    images before training, a buffer: `reduce` [2C, P], `center` [2C]); training then runs on the reduced vectors,
    which makes an epoch several times cheaper on a CPU. With pca_dim 0 there is no reduction."""

    def __init__(self, feature_dim: int, embed_dim: int, hidden: int, dropout: float, pca_dim: int = 0):
        super().__init__()
        width = pca_dim or 2 * feature_dim
        self.register_buffer("center", torch.zeros(2 * feature_dim))
        self.register_buffer("reduce", torch.eye(2 * feature_dim)[:, :width].clone())
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, embed_dim))
        self.drop = nn.Dropout(dropout)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        # features [B, R, C] → [B, P]: mean and max over the regions, centred and projected
        x = torch.cat([features.mean(dim=1), features.amax(dim=1)], dim=1)  # [B, 2C]
        return (x - self.center) @ self.reduce  # [B, P]

    def from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.norm(pooled))  # [B, P]
        return F.normalize(self.proj(x) + self.mlp(x), dim=-1)  # [B, D]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.from_pooled(self.pooled(features))

    def fit_pca(self, raw: torch.Tensor) -> None:
        """raw [N, 2C] pooled train vectors → center and projection onto the top P components (unit mean variance)."""
        center = raw.mean(dim=0)
        u, s, v = torch.linalg.svd(raw - center, full_matrices=False)  # v [K, 2C]
        p = self.reduce.shape[1]
        scale = (s[:p].pow(2).mean() / max(len(raw) - 1, 1)).sqrt()  # one scale: the components keep their ratios
        self.center.copy_(center)
        self.reduce.copy_(v[:p].t() / scale.clamp(min=1e-6))


class TextEncoder(nn.Module):
    """tokens [B, T] (right-padded with 0), lengths [B] → embedding [B, D] (unit length).

    kind "gru": word embedding → GRU → average of the state at the last word and the masked mean of the states.
    kind "bow": the masked mean of the word embeddings → MLP (word order ignored; far cheaper on a CPU)."""

    def __init__(self, vocab_size: int, word_dim: int, hidden: int, embed_dim: int, dropout: float, kind: str = "gru"):
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        if kind == "gru":
            self.gru = nn.GRU(word_dim, hidden, batch_first=True)
            self.out = nn.Linear(hidden, embed_dim)
        elif kind == "bow":
            self.out = nn.Sequential(nn.Linear(word_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, embed_dim))
            self.skip = nn.Linear(word_dim, embed_dim)
        else:
            raise DataError(f"unknown text encoder kind {kind!r} (gru, bow)")

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.embed(tokens))  # [B, T, W]
        T = tokens.shape[1]
        mask = (torch.arange(T, device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)).to(x.dtype)  # [B, T]
        count = lengths.to(x.dtype).unsqueeze(1)  # [B, 1]
        if self.kind == "bow":
            mean = (x * mask.unsqueeze(2)).sum(dim=1) / count  # [B, W]
            return F.normalize(self.out(mean) + self.skip(mean), dim=-1)  # [B, D]
        h0 = x.new_zeros((1, x.shape[0], self.gru.hidden_size))  # explicit, so the ONNX graph's batch stays dynamic
        states, _ = self.gru(x, h0)  # [B, T, H]; right padding leaves states before it untouched
        mean = (states * mask.unsqueeze(2)).sum(dim=1) / count  # [B, H]
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, states.shape[2])  # [B, 1, H]
        last = states.gather(1, idx).squeeze(1)  # [B, H]
        return F.normalize(self.out(self.drop(0.5 * (mean + last))), dim=-1)  # [B, D]


class Matcher(nn.Module):
    def __init__(self, vocab_size: int, config: dict):
        super().__init__()
        c = {**DEFAULT_CONFIG, **config}
        self.config = c
        self.vocab_size = vocab_size
        self.image = ImageEncoder(c["feature_dim"], c["embed_dim"], c["image_hidden"], c["dropout"], c["pca_dim"])
        self.text = TextEncoder(vocab_size, c["word_dim"], c["hidden_dim"], c["embed_dim"], c["dropout"], c["text"])
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # InfoNCE temperature, learned


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------------------------------------- data
class Split:
    def __init__(self, name: str, names: List[str], pooled: torch.Tensor, cap_image: torch.Tensor,
                 cap_tokens: torch.Tensor, cap_len: torch.Tensor, raws: List[str]):
        self.name, self.names, self.pooled = name, names, pooled  # pooled [N, 2C] float32
        self.cap_image, self.cap_tokens, self.cap_len, self.raws = cap_image, cap_tokens, cap_len, raws


def pooled_rows(spatial: np.ndarray, rows: Sequence[int], chunk: int = 256) -> torch.Tensor:
    """[mean ; max] over regions of the stored fp16 grid rows → [len(rows), 2C] float32."""
    out = []
    for i in range(0, len(rows), chunk):
        f = torch.from_numpy(np.asarray(spatial[list(rows[i:i + chunk])], dtype=np.float32))  # [b, R, C]
        out.append(torch.cat([f.mean(dim=1), f.amax(dim=1)], dim=1))
    return torch.cat(out) if out else torch.zeros(0, 2 * spatial.shape[2])


def load_splits(store_path: str, captions_path: str, splits: Sequence[str], max_tokens: int, log=print) -> Tuple[dict, Dict[str, Split]]:
    store = open_feature_store(store_path)
    caps = load_captions(captions_path)
    pad = caps.pad
    word_id = {w: i for i, w in enumerate(caps.vocab)}
    out: Dict[str, Split] = {}
    for s in splits:
        ims = [im for im in caps.images if ("train" if im["split"] in TRAIN_SPLITS else im["split"]) == s
               and im["name"] in store.row_of and im["name"] not in store.failed]
        names = [im["name"] for im in ims]
        pooled = pooled_rows(store.spatial, [store.row_of[n] for n in names])
        cap_image, toks, lens, raws = [], [], [], []
        for i, im in enumerate(ims):
            for cap in im["captions"]:
                # as src/match tokenises: PTB tokens → ids (<unk> for unknown words), cut to max_tokens
                ids = [word_id.get(t, caps.unk) for t in cap["tokens"]][:max_tokens] or [caps.unk]
                toks.append(ids + [pad] * (max_tokens - len(ids)))
                lens.append(len(ids))
                cap_image.append(i)
                raws.append(cap["raw"])
        out[s] = Split(s, names, pooled, torch.tensor(cap_image), torch.tensor(toks, dtype=torch.long),
                       torch.tensor(lens, dtype=torch.long), raws)
        log(f"[data] {s}: {len(names)} images, {len(toks)} captions")
    meta = {"vocab": caps.vocab, "features_index_sha256": sha256_file(os.path.join(store_path, "index.json")),
            "captions_sha256": sha256_file(captions_path)}
    return meta, out


# ------------------------------------------------------------------------------------------------ loss and eval
def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, img_ids: torch.Tensor, log_scale: torch.Tensor,
                     margin: float, hard_weight: float) -> torch.Tensor:
    """img [B, D] (one row per caption's image), txt [B, D]; rows with the same image id are not negatives."""
    sim = txt @ img.t()  # [B, B]
    same = img_ids.unsqueeze(0) == img_ids.unsqueeze(1)  # [B, B]
    eye = torch.eye(len(sim), dtype=torch.bool, device=sim.device)
    scale = log_scale.exp().clamp(max=100)
    logits = (sim * scale).masked_fill(same & ~eye, -1e4)
    targets = torch.arange(len(sim), device=sim.device)
    loss = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets))
    if hard_weight > 0:  # VSE++: the hardest negative of each row and column
        pos = sim.diag()
        neg = sim.masked_fill(same, -2)
        loss = loss + hard_weight * (F.relu(margin + neg.max(dim=1).values - pos).mean() +
                                     F.relu(margin + neg.max(dim=0).values - pos).mean())
    return loss


@torch.no_grad()
def reduced(model: Matcher, raw: torch.Tensor) -> torch.Tensor:
    """raw pooled [N, 2C] → the image side's fixed centring and projection [N, P]."""
    return torch.cat([(raw[i:i + 2048] - model.image.center) @ model.image.reduce for i in range(0, len(raw), 2048)])


@torch.no_grad()
def embed_split(model: Matcher, split: Split, batch: int = 1000) -> Tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    imgs = torch.cat([model.image.from_pooled(split.pooled[i:i + batch]) for i in range(0, len(split.names), batch)])
    txts = torch.cat([model.text(split.cap_tokens[i:i + batch], split.cap_len[i:i + batch])
                      for i in range(0, len(split.cap_len), batch)])
    return imgs, txts  # [N, D], [C, D]


def recalls(imgs: torch.Tensor, txts: torch.Tensor, cap_image: torch.Tensor) -> Dict[str, float]:
    """VSE++ protocol: text→image rank of the caption's image; image→text best rank of any of its captions."""
    sim = txts @ imgs.t()  # [C, N]
    own = sim.gather(1, cap_image.view(-1, 1))  # [C, 1]
    t2i_rank = (sim > own).sum(dim=1)  # [C], 0 = first
    simT = sim.t()  # [N, C]
    mine = cap_image.unsqueeze(0) == torch.arange(len(imgs)).unsqueeze(1)  # [N, C]
    best_own = simT.masked_fill(~mine, -2).max(dim=1).values  # [N]
    i2t_rank = (simT > best_own.unsqueeze(1)).sum(dim=1)
    r = {}
    for k in (1, 5, 10):
        r[f"t2i_r{k}"] = 100.0 * (t2i_rank < k).float().mean().item()
        r[f"i2t_r{k}"] = 100.0 * (i2t_rank < k).float().mean().item()
    r["t2i_medr"] = float(t2i_rank.float().median().item() + 1)
    r["i2t_medr"] = float(i2t_rank.float().median().item() + 1)
    r["rsum"] = sum(r[f"{d}_r{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10))
    return r


CALIBRATION_PAIRS_SEED = 42


def mulberry32(seed: int):
    """The 32-bit generator of src/eval/match-metrics.ts (same outputs)."""
    a = seed & 0xFFFFFFFF
    while True:
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = ((a ^ (a >> 15)) * (a | 1)) & 0xFFFFFFFF
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & 0xFFFFFFFF)) & 0xFFFFFFFF
        yield (t ^ (t >> 14)) & 0xFFFFFFFF


def calibration_pairs(sim: torch.Tensor, cap_image: torch.Tensor, seed: int = CALIBRATION_PAIRS_SEED,
                      hard_negatives: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """The labelled (image, caption) pairs of buildCalibrationPairs (src/eval/match-metrics.ts, whose comment is the
    specification): for each image in order, its own captions (label 1), then as many negatives (label 0): captions of
    other images drawn with mulberry32(seed) (`floor(u * M / 2^32)`, redrawn on the image's own or a repeat), and with
    `hard_negatives` half of them (floor) the other captions the matcher ranks highest instead. Images must be in the
    split's name order and captions image by image, as pixel-info eval-match lists them.
    sim [M, N] caption x image cosines. Returns (cosines [P], labels [P])."""
    gen = mulberry32(seed)
    M, N = sim.shape
    owner = cap_image.tolist()
    texts_of: List[List[int]] = [[] for _ in range(N)]
    for j, i in enumerate(owner):
        texts_of[i].append(j)
    cos, lab = [], []
    simT = sim.t()  # [N, M]
    for i in range(N):
        own = texts_of[i]
        others = M - len(own)
        k = min(len(own), others)
        hard = k // 2 if hard_negatives else 0
        random_count = k - hard
        taken: List[int] = []
        seen = set()
        if others <= random_count:
            taken = [j for j in range(M) if owner[j] != i]
        else:
            while len(taken) < random_count:
                j = (next(gen) * M) >> 32
                if owner[j] != i and j not in seen:
                    seen.add(j); taken.append(j)
        idx = list(own) + taken
        if hard:
            row = simT[i].clone()
            row[torch.tensor(own + taken)] = -3
            idx += row.topk(hard).indices.tolist()
        cos.append(simT[i, torch.tensor(idx)])
        lab.append(torch.tensor([1.0] * len(own) + [0.0] * (len(idx) - len(own))))
    return torch.cat(cos), torch.cat(lab)


def fit_platt(cos: torch.Tensor, lab: torch.Tensor, steps: int = 50) -> Tuple[float, float]:
    """Logistic regression of the label on the cosine (Platt scaling), by Newton's method (IRLS) in float64."""
    x = torch.stack([cos.double(), torch.ones_like(cos, dtype=torch.float64)], dim=1)  # [P, 2]
    y = lab.double()
    w = torch.zeros(2, dtype=torch.float64)
    for _ in range(steps):
        p = torch.sigmoid(x @ w)
        grad = x.t() @ (p - y)
        hess = (x * (p * (1 - p)).unsqueeze(1)).t() @ x + 1e-9 * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if float(step.abs().max()) < 1e-10:
            break
    return float(w[0]), float(w[1])


def reliability(prob: torch.Tensor, lab: torch.Tensor, bins: int = 10) -> Tuple[List[dict], float]:
    rows, ece = [], 0.0
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        m = (prob >= lo) & ((prob < hi) if k < bins - 1 else (prob <= hi))
        n = int(m.sum())
        if n:
            conf, acc = float(prob[m].mean()), float(lab[m].mean())
            ece += n / len(prob) * abs(conf - acc)
            rows.append(dict(bin=f"{lo:.1f}-{hi:.1f}", count=n, meanScore=round(conf, 4), observed=round(acc, 4)))
        else:
            rows.append(dict(bin=f"{lo:.1f}-{hi:.1f}", count=0, meanScore=None, observed=None))
    return rows, ece


# ------------------------------------------------------------------------------------------------------- training
def train(args) -> int:
    torch.manual_seed(args.seed); random.seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    config = {**DEFAULT_CONFIG, **json.loads(args.config or "{}")}
    meta, splits = load_splits(args.features, args.captions, ("train", "val"), config["max_tokens"])
    tr, va = splits["train"], splits["val"]
    config["feature_dim"] = tr.pooled.shape[1] // 2
    model = Matcher(len(meta["vocab"]), config)
    if config["pca_dim"]:
        model.image.fit_pca(tr.pooled)
    tr.pooled, va.pooled = reduced(model, tr.pooled), reduced(model, va.pooled)  # the fixed part, once
    print(f"[match] {count_parameters(model):,} parameters; config {json.dumps(config)}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(tr.cap_len) / args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    best, best_epoch, log = -1.0, -1, open(os.path.join(args.out, "log.jsonl"), "a")
    started = time.time()
    for epoch in range(args.epochs):
        model.train()
        # one caption per image per batch slot: shuffle captions, batches avoid duplicates mostly by chance (masked)
        perm = torch.randperm(len(tr.cap_len))
        total_loss = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            img_ids = tr.cap_image[idx]
            L = int(tr.cap_len[idx].max())
            img = model.image.from_pooled(tr.pooled[img_ids])
            txt = model.text(tr.cap_tokens[idx, :L], tr.cap_len[idx])
            hw = args.hard_weight if epoch >= args.hard_after else 0.0
            loss = contrastive_loss(img, txt, img_ids, model.log_scale, args.margin, hw)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step(); sched.step()
            total_loss += float(loss)
            if args.max_steps and s + 1 >= args.max_steps:
                break
        imgs, txts = embed_split(model, va)
        r = recalls(imgs, txts, va.cap_image)
        rec = dict(epoch=epoch + 1, loss=total_loss / steps_per_epoch, scale=float(model.log_scale.exp()),
                   seconds=round(time.time() - started, 1), **{k: round(v, 2) for k, v in r.items()})
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n"); log.flush()
        if r["rsum"] > best:
            best, best_epoch = r["rsum"], epoch + 1
            torch.save(dict(format=CHECKPOINT_FORMAT, config=config, vocab=meta["vocab"], state=model.state_dict(),
                            epoch=epoch + 1, val=r, data={k: v for k, v in meta.items() if k != "vocab"},
                            args=vars(args)), os.path.join(args.out, "best.pt"))
    print(f"[match] best val rsum {best:.1f} at epoch {best_epoch}", flush=True)
    return 0


# --------------------------------------------------------------------------------------------------------- export
class _ImageGraph(nn.Module):
    def __init__(self, m: Matcher):
        super().__init__()
        self.m = m.image

    def forward(self, features):
        return self.m(features)


class _TextGraph(nn.Module):
    def __init__(self, m: Matcher):
        super().__init__()
        self.m = m.text

    def forward(self, tokens, lengths):
        return self.m(tokens, lengths)


def _fp16_graphs(model: Matcher) -> Matcher:
    """A copy whose weights (the PCA buffers included) are float16 initializers cast to float32 on use, as the decoder
    is exported (trainer/export.py): half the file size, float32 arithmetic. The GRU text encoder stays float32."""
    from .export import fp16_export_copy
    m = copy.deepcopy(model)
    for mod in m.image.modules():  # the PCA buffers as parameters, so they are stored in float16 too
        for name in [n for n in ("center", "reduce") if n in mod._buffers]:
            mod._parameters[name] = nn.Parameter(mod._buffers.pop(name))
    gru = getattr(m.text, "gru", None)
    if gru is not None:
        m.text.gru = None
    m = fp16_export_copy(m)
    if gru is not None:
        m.text.gru = gru
    return m


def export(args) -> int:
    ck = torch.load(args.export, map_location="cpu")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{args.export}: not a matcher checkpoint")
    config = ck["config"]
    model = Matcher(len(ck["vocab"]), config)
    model.load_state_dict(ck["state"])
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    graphs = _fp16_graphs(model) if args.fp16 else model
    R, C = 49, config["feature_dim"]
    with torch.no_grad():
        torch.onnx.export(_ImageGraph(graphs), (torch.randn(2, R, C),), os.path.join(args.out, "image.onnx"),
                          input_names=["features"], output_names=["embedding"], opset_version=17, do_constant_folding=False,
                          dynamic_axes={"features": {0: "B"}, "embedding": {0: "B"}})
        toks = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
        torch.onnx.export(_TextGraph(graphs), (toks, torch.tensor([3, 4])), os.path.join(args.out, "text.onnx"),
                          input_names=["tokens", "lengths"], output_names=["embedding"], opset_version=17, do_constant_folding=False,
                          dynamic_axes={"tokens": {0: "B", 1: "T"}, "lengths": {0: "B"}, "embedding": {0: "B"}})
    with open(os.path.join(args.out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(ck["vocab"], f)
    card = dict(
        format=CARD_FORMAT, version=1, name=os.path.basename(os.path.normpath(args.out)),
        architecture=dict(
            type="dual-encoder",
            description="image: mean and max of the ResNet50 7x7x2048 grid → LayerNorm → linear + residual MLP; "
                        "text: word embedding → GRU → mean and last state → linear; both L2-normalised. Trained with "
                        "symmetric InfoNCE (learned temperature) plus VSE++'s hardest-negative hinge on Flickr8k train.",
            config=config, parameters=count_parameters(model)),
        embeddingDim=config["embed_dim"], maxTokens=config["max_tokens"],
        calibration=None, data=ck.get("data", {}), training=dict(epoch=ck.get("epoch"), args=ck.get("args")),
        metrics=dict(val=ck.get("val")), date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if args.features:
        meta, splits = load_splits(args.features, args.captions, ("val",), config["max_tokens"])
        va = splits["val"]
        va.pooled = reduced(model, va.pooled)
        imgs, txts = embed_split(model, va)
        # images in name order, captions image by image (as pixel-info eval-match lists them)
        order = sorted(range(len(va.names)), key=lambda i: va.names[i])
        rank = {old: new for new, old in enumerate(order)}
        caps = sorted(range(len(va.cap_image)), key=lambda j: (rank[int(va.cap_image[j])], j))
        cap_image = torch.tensor([rank[int(va.cap_image[j])] for j in caps])
        cos, lab = calibration_pairs(txts[torch.tensor(caps)] @ imgs[torch.tensor(order)].t(), cap_image)
        a, b = fit_platt(cos, lab)
        prob = torch.sigmoid(a * cos + b)
        table, ece = reliability(prob, lab)
        card["calibration"] = dict(
            a=a, b=b, fittedOn="flickr8k val", ece=round(ece, 4), pairs=int(len(lab)),
            meaning="the probability that the sentence was written by people to describe this image rather than "
                    "for another, randomly drawn Flickr8k image (fitted on val pairs: each image's 5 captions and 5 "
                    "captions of other images drawn at random; pixel-info eval-match builds the same pairs)",
            reliability=table)
        print(f"[export] calibration a={a:.3f} b={b:.3f} ECE={ece:.4f}", flush=True)
    for path in args.eval_metrics or []:  # pixel-info eval-match --out DIR: DIR/metrics.json
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        if m.get("format") != "pixel-info-eval-match":
            raise DataError(f"{path}: not the metrics.json of pixel-info eval-match (format {m.get('format')!r})")
        agreement = m.get("agreement") or {}
        card["metrics"][m["split"]] = dict(
            retrieval=m["retrieval"], date=m.get("date"), command=f"pixel-info eval-match --split {m['split']}",
            crowdflowerKendallTauB100={k: v for k, v in dict(
                matcher=(agreement.get("matcher") or {}).get("tauB100"),
                decoderLikelihood=(agreement.get("likelihood") or {}).get("tauB100"),
                rows=agreement.get("used")).items() if v is not None},
            calibration=dict(ece=(m.get("calibration") or {}).get("ece"), pairs=(m.get("calibration") or {}).get("pairs")))
    with open(os.path.join(args.out, "model-card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"[export] wrote {args.out}", flush=True)
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m trainer.match", description=__doc__.split("\n\n")[0])
    p.add_argument("--features", help="feature store (pixel-info features)")
    p.add_argument("--captions", required=True, help="captions.json (pixel-info prepare)")
    p.add_argument("--out", required=True, help="run directory (training) or model directory (--export)")
    p.add_argument("--export", metavar="CHECKPOINT", help="export a checkpoint to ONNX (+ calibration with --features)")
    p.add_argument("--eval-metrics", nargs="*", metavar="METRICS_JSON",
                   help="with --export: put these pixel-info eval-match results (metrics.json) into the card's metrics")
    p.add_argument("--fp32", dest="fp16", action="store_false", help="export float32 weights (default: float16 + Cast)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--hard-weight", type=float, default=1.0)
    p.add_argument("--hard-after", type=int, default=2, help="epochs of InfoNCE alone before the hardest-negative term")
    p.add_argument("--config", help="JSON overrides of the model config")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max-steps", type=int, default=0, help="steps per epoch (0: all; for smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.export:
            return export(args)
        if not args.features:
            raise DataError("--features is required for training")
        return train(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
