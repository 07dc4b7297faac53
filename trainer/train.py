"""Train a decoder (an architecture of trainer/models; show-attend-tell by default): cross-entropy (teacher forcing),
then self-critical sequence training.

  python3 -m trainer.train --features STORE --captions captions.json --out RUN_DIR [--scst-epochs 20]
  python3 -m trainer.train --features STORE --captions captions.json --out RUN_DIR --resume
  python3 -m trainer.train --features STORE --captions captions.json --out RUN_DIR --scst --init RUN_DIR/xe_best.pt

RUN_DIR gets: last.pt (full state, every epoch, for --resume), xe_best.pt / scst_best.pt (best val CIDEr-D of each
stage), best.pt (best val CIDEr-D overall: the model to export), log.jsonl (one JSON line per epoch), run.json
(arguments, model config, data checksums) and best-fp16/ (best.pt as fp16 parts of <= 15 MB, see checkpoint.py).
Selection only ever looks at the val split, decoded with the beam search of trainer/decoding.py and the library's
decoding defaults (src/decoder/generation-defaults.json; --val-beam overrides the beam size); test is never loaded here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_checkpoint, model_from_checkpoint, save_atomic, save_fp16_parts, torch_load, upgrade
from .cider import CiderD
from .data import DataError, Dataset, sha256_file
from .decoding import decoding_config
from .metrics import evaluate
from .models import ARCHITECTURES, DEFAULT_ARCHITECTURE, architecture_of, autocast, build_model, count_parameters
from .models.transformer import TransformerConfig

STATE_FORMAT = "pixel-info-train-state"
STAGE_SEED = {"xe": 0, "scst": 500_000}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m trainer.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", required=True, help="feature store directory (pixel-info features)")
    p.add_argument("--captions", required=True, help="captions.json (pixel-info prepare)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch default)")
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"], help="bf16 autocast (auto: on for CUDA)")
    g = p.add_argument_group("model")
    g.add_argument("--architecture", default=DEFAULT_ARCHITECTURE, choices=sorted(ARCHITECTURES),
                   help="decoder architecture (trainer/models); the options below are show-attend-tell's")
    g.add_argument("--embed-dim", type=int, default=512)
    g.add_argument("--hidden-dim", type=int, default=512)
    g.add_argument("--attention-dim", type=int, default=512)
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--feature-norm", default="none", choices=["none", "layernorm"])
    g.add_argument("--glove", help="GloVe text file to initialise the word embeddings (its dim must be --embed-dim)")
    g.add_argument("--freeze-embeddings", action="store_true")
    g = p.add_argument_group("transformer (--architecture transformer; trainer/models/transformer.py)")
    g.add_argument("--tf-d-model", type=int, default=TransformerConfig.d_model, help="model width")
    g.add_argument("--tf-layers", type=int, default=TransformerConfig.layers, help="decoder layers")
    g.add_argument("--tf-heads", type=int, default=TransformerConfig.heads, help="attention heads (divide d-model)")
    g.add_argument("--tf-ffn-dim", type=int, default=TransformerConfig.ffn_dim, help="feed-forward width")
    g.add_argument("--tf-dropout", type=float, default=TransformerConfig.dropout)
    g.add_argument("--tf-feature-norm", default=TransformerConfig.feature_norm, choices=["none", "layernorm"],
                   help="per-region LayerNorm of the encoder features before the projection")
    g.add_argument("--tf-max-len", type=int, default=TransformerConfig.max_len,
                   help="learned positions (longer searches reuse the last)")
    g.add_argument("--tf-tie-embeddings", action=argparse.BooleanOptionalAction,
                   default=TransformerConfig.tie_embeddings, help="output projection shares the token embedding")
    g = p.add_argument_group("cross-entropy stage")
    g.add_argument("--epochs", type=int, default=30, help="max XE epochs (early stopping usually ends it sooner)")
    g.add_argument("--batch-size", type=int, default=64, help="captions per batch")
    g.add_argument("--lr", type=float, default=4e-4)
    g.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                   help="XE optimiser (SCST always uses Adam): adam, or sgd with --momentum")
    g.add_argument("--momentum", type=float, default=0.9, help="'sgd': momentum (Nesterov off)")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--grad-clip", type=float, default=5.0, help="max gradient L2 norm (0: off)")
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--att-lambda", type=float, default=1.0, help="doubly stochastic attention regularisation")
    g.add_argument("--lr-schedule", default="plateau", choices=["plateau", "step", "none"])
    g.add_argument("--lr-gamma", type=float, default=0.5, help="LR factor at each decay")
    g.add_argument("--lr-step", type=int, default=3, help="'step': decay every N epochs")
    g.add_argument("--lr-patience", type=int, default=2, help="'plateau': decay after N epochs without val gain")
    g.add_argument("--patience", type=int, default=5, help="early stopping: epochs without val CIDEr-D gain")
    g.add_argument("--hflip-aug", type=float, default=0.0,
                   help="probability of training on the flipped-image features with left<->right swapped")
    g = p.add_argument_group("self-critical stage (Rennie et al. 2017)")
    g.add_argument("--scst", action="store_true", help="run only the SCST stage, from --init")
    g.add_argument("--init", help="checkpoint to start SCST from (best.pt, xe_best.pt or an fp16 parts dir)")
    g.add_argument("--scst-epochs", type=int, default=0, help="SCST epochs after XE (with --scst: default 20)")
    g.add_argument("--scst-lr", type=float, default=5e-5)
    g.add_argument("--scst-batch", type=int, default=64, help="images per SCST batch")
    g.add_argument("--scst-samples", type=int, default=5, help="sampled captions per image")
    g.add_argument("--scst-baseline", default="greedy", choices=["greedy", "mean"],
                   help="greedy: reward of the greedy caption (Rennie); mean: mean reward of the other samples")
    g.add_argument("--scst-patience", type=int, default=5)
    g.add_argument("--scst-eos", default="on", choices=["on", "off"],
                   help="score an end token in the CIDEr-D reward (penalises unfinished captions)")
    g = p.add_argument_group("logging / evaluation")
    g.add_argument("--log-every", type=int, default=100, help="progress line every N batches")
    g.add_argument("--val-batch", type=int, default=500)
    g.add_argument("--val-beam", type=int, default=None,
                   help="beam size of the per-epoch val search (default: beamSize of the decoding defaults)")
    g.add_argument("--max-batches", type=int, default=0, help="cap batches per epoch (smoke tests, benchmarks)")
    g.add_argument("--no-fp16-parts", action="store_true", help="do not write RUN_DIR/best-fp16 at the end")
    g.add_argument("--time-limit", type=float, default=0,
                   help="seconds: start no epoch that would end past this (0: none); continue later with --resume")
    a = p.parse_args(argv)
    if a.scst and not a.init and not a.resume:
        p.error("--scst needs --init CHECKPOINT (or --resume)")
    if a.scst and a.scst_epochs == 0:
        a.scst_epochs = 20
    if not 0.0 <= a.hflip_aug <= 1.0:
        p.error("--hflip-aug must be in [0, 1]")
    if a.val_beam is not None and not 1 <= a.val_beam <= 100:
        p.error("--val-beam must be from 1 to 100")
    return a


class LRControl:
    """LR decay by epoch count ('step') or on a val CIDEr-D plateau; its state goes into last.pt."""

    def __init__(self, opt, kind: str, gamma: float, step: int, patience: int, min_lr: float = 1e-6):
        self.opt, self.kind, self.gamma, self.step, self.patience, self.min_lr = opt, kind, gamma, step, patience, min_lr
        self.best = -math.inf
        self.bad = 0

    def after_epoch(self, epochs_done: int, metric: float) -> None:
        decay = False
        if self.kind == "step":
            decay = epochs_done % self.step == 0
        elif self.kind == "plateau":
            if metric > self.best + 1e-4:
                self.best, self.bad = metric, 0
            else:
                self.bad += 1
                if self.bad >= self.patience:
                    decay, self.bad = True, 0
        if decay:
            for g in self.opt.param_groups:
                g["lr"] = max(self.min_lr, g["lr"] * self.gamma)
            log(f"[lr] decayed to {self.opt.param_groups[0]['lr']:.2e}")

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.bad = d["best"], d["bad"]


def seed_epoch(seed: int, stage: str, epoch: int) -> torch.Generator:
    """Every epoch reseeds from (seed, stage, epoch), so a resumed run replays exactly what an uninterrupted one does."""
    s = seed * 1_000_003 + STAGE_SEED[stage] + epoch
    torch.manual_seed(s)
    g = torch.Generator()
    g.manual_seed(s)
    return g


def fmt_time(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Trainer:
    def __init__(self, args: argparse.Namespace, dataset: Optional[Dataset] = None, epoch_callback=None):
        """`dataset`: an already loaded Dataset of args.features/args.captions (the tuner shares one across trials).
        `epoch_callback(record)`: called after every finished epoch (its log.jsonl record, once last.pt is written);
        a true return value ends the stage there (self.stopped_by_callback), as --time-limit does."""
        self.args = args
        self.epoch_callback = epoch_callback
        self.stopped_by_callback = False
        self.started = time.time()
        if args.threads:
            torch.set_num_threads(args.threads)
        if args.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(args.device)
        self.amp = self.device.type == "cuda" and args.amp != "off"
        if args.amp == "on" and self.device.type != "cuda":
            log("[amp] bf16 autocast is only used on CUDA; running fp32")
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        os.makedirs(args.out, exist_ok=True)
        t0 = time.time()
        self.ds = dataset if dataset is not None else Dataset(
            args.features, args.captions, self.device, splits=("train", "val"), hflip=args.hflip_aug > 0, log=log)
        log(f"[data] features on {self.device} in {time.time() - t0:.1f}s")
        self.cap = self.ds.captions
        self.val_decoding = decoding_config(beam_size=args.val_beam, n_best=1)
        args.val_beam = self.val_decoding.beam_size  # recorded in run.json and the checkpoints
        log(f"[val] beam search: beam {self.val_decoding.beam_size}, max length {self.val_decoding.max_length}, "
            f"length penalty {self.val_decoding.length_penalty}, rules {', '.join(self.val_decoding.rules) or 'none'}")
        self.data_meta = self._data_checksums()
        self.history = []
        self.global_best = -math.inf
        self.out_of_time = False
        self.epoch_time = 0.0  # the last epoch's duration, for --time-limit

    # --- bookkeeping ------------------------------------------------------------------------------------------------

    def _data_checksums(self) -> dict:
        a = self.args
        t0 = time.time()
        d = {"captions": {"file": os.path.basename(a.captions), "sha256": sha256_file(a.captions),
                          "source": self.cap.meta.get("source")},
             "features": {"dir": os.path.basename(os.path.normpath(a.features)),
                          "index_sha256": sha256_file(os.path.join(a.features, "index.json")),
                          "spatial_sha256": sha256_file(os.path.join(a.features, "spatial.f16")),
                          "encoder": self.ds.store.index.get("encoder"), "count": self.ds.store.count}}
        log(f"[data] checksums in {time.time() - t0:.1f}s")
        return d

    def _ckpt(self, model: nn.Module, stage: str, epoch: int, val: dict) -> dict:
        return {"format": "pixel-info-decoder", "architecture": architecture_of(model),
                "config": model.cfg.to_dict(), "vocab": self.cap.vocab,
                "specials": self.cap.specials, "max_length": self.cap.max_length,
                "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                "meta": {"stage": stage, "epoch": epoch, "val": val, "val_decoding": self.val_decoding.to_json(),
                         "data": self.data_meta,
                         "train_args": vars(self.args), "history": self.history,
                         "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}

    def _path(self, name: str) -> str:
        return os.path.join(self.args.out, name)

    def _write_run_json(self, model: nn.Module) -> None:
        with open(self._path("run.json"), "w", encoding="utf-8") as f:
            json.dump({"args": vars(self.args), "architecture": architecture_of(model), "config": model.cfg.to_dict(),
                       "parameters": count_parameters(model), "val_decoding": self.val_decoding.to_json(),
                       "data": self.data_meta, "device": str(self.device), "amp": self.amp,
                       "torch": torch.__version__}, f, indent=1)

    def _log_epoch(self, rec: dict) -> None:
        self.history.append(rec)
        with open(self._path("log.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        v = rec.get("val", {})
        log(f"[{rec['stage']} epoch {rec['epoch']}] train_loss {rec.get('train_loss', float('nan')):.4f} "
            f"val CIDEr-D {v.get('cider', float('nan')):.4f} BLEU-4 {v.get('bleu4', float('nan')):.4f} "
            f"len {v.get('mean_length', 0):.1f} | {rec.get('time_s', 0):.0f}s")

    def _validate(self, model: nn.Module) -> dict:
        t0 = time.time()
        v = evaluate(model, self.ds, "val", self.val_decoding, amp=self.amp, examples=3,
                     batch_size=self.args.val_batch)
        v["time_s"] = round(time.time() - t0, 2)
        return v

    # --- model setup ------------------------------------------------------------------------------------------------

    def new_model(self) -> nn.Module:
        a = self.args
        # the architecture's config takes what it knows from the arguments, the vocabulary and the store's geometry
        model = build_model(a.architecture, {**vars(a), "vocab_size": len(self.cap.vocab), **self.ds.geometry})
        if a.glove:
            from .glove import load_glove_into
            found = load_glove_into(model.embedding, self.cap.vocab, a.glove)
            log(f"[glove] {found}/{len(self.cap.vocab)} vocabulary words initialised from {a.glove}")
        return model.to(self.device)

    def _optimizer(self, model: nn.Module, lr: float, weight_decay: float, kind: str = "adam"):
        if hasattr(model, "embedding"):  # the word embeddings (--glove, --freeze-embeddings)
            model.embedding.weight.requires_grad_(not self.args.freeze_embeddings)
        params = [p for p in model.parameters() if p.requires_grad]
        if kind == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=self.args.momentum, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    # --- stages -----------------------------------------------------------------------------------------------------

    def run(self) -> None:
        a = self.args
        state = None
        if a.resume and os.path.isfile(self._path("last.pt")):
            state = torch_load(self._path("last.pt"))
            if state.get("format") != STATE_FORMAT:
                raise SystemExit(f"{self._path('last.pt')}: not a training state")
            if state["vocab"] != self.cap.vocab:
                raise SystemExit("--resume: captions.json vocabulary differs from the one the run started with")
            self.history = state.get("history", [])
            self.global_best = state.get("global_best", -math.inf)
            log(f"[resume] {state['stage']} stage, {state['epoch']} epochs done")
            if state["stage"] == "scst" and a.scst_epochs == 0:
                log("[resume] last.pt is in the SCST stage: pass --scst-epochs N (or --scst) to continue it")
        elif a.resume:
            log("[resume] no last.pt yet: starting from scratch")

        torch.manual_seed(a.seed)  # model initialisation
        if not a.scst and (state is None or state["stage"] == "xe"):
            model = self.new_model() if state is None else self._model_from_state(state)
            self._write_run_json(model)
            self.stage(model, "xe", state)  # a finished stage (epochs or patience used up) returns at once
            state = None
        if a.scst_epochs > 0 and not self.out_of_time and not self.stopped_by_callback:
            if state is not None and state["stage"] == "scst":
                model = self._model_from_state(state)
            else:
                init = a.init if a.scst and a.init else self._path("xe_best.pt")
                ck = load_checkpoint(init)
                if ck["vocab"] != self.cap.vocab:
                    raise SystemExit(f"{init}: vocabulary differs from {a.captions}")
                self.ds.check_geometry(ck["config"], init)
                model = model_from_checkpoint(ck).to(self.device)
                log(f"[scst] starting from {init}")
                self._write_run_json(model)
                state = None
            self.stage(model, "scst", state)
        if os.path.isfile(self._path("best.pt")):
            best = load_checkpoint(self._path("best.pt"))
            best["meta"]["history"] = self.history  # the card shows the whole run, not only up to the best epoch
            save_atomic(best, self._path("best.pt"))
        if not a.no_fp16_parts and os.path.isfile(self._path("best.pt")):
            hdr = save_fp16_parts(best, self._path("best-fp16"))
            log(f"[done] best.pt as fp16 parts: {self._path('best-fp16')} ({len(hdr['parts'])} part(s), "
                f"{hdr['total_bytes'] / 1e6:.1f} MB)")

    def _model_from_state(self, state: dict) -> nn.Module:
        state = upgrade(state)
        self.ds.check_geometry(state["config"], self._path("last.pt"))
        model = build_model(state["architecture"], state["config"])
        model.load_state_dict(state["model"])
        return model.to(self.device)

    def stage(self, model: nn.Module, stage: str, state: Optional[dict]) -> None:
        a = self.args
        xe = stage == "xe"
        opt = self._optimizer(model, a.lr if xe else a.scst_lr, a.weight_decay if xe else 0.0,
                              getattr(a, "optimizer", "adam") if xe else "adam")
        lrc = LRControl(opt, a.lr_schedule if xe else "none", a.lr_gamma, a.lr_step, a.lr_patience)
        max_epochs = a.epochs if xe else a.scst_epochs
        patience = a.patience if xe else a.scst_patience
        best_path = self._path("xe_best.pt" if xe else "scst_best.pt")
        if state is not None:
            opt.load_state_dict(state["optimizer"])
            lrc.load_state_dict(state["lr_control"])
            epoch, best, bad = state["epoch"], state["best"], state["bad_epochs"]
        else:
            epoch, best, bad = 0, -math.inf, 0
        log(f"[{stage}] {count_parameters(model) / 1e6:.2f}M parameters, lr {opt.param_groups[0]['lr']:.2e}, "
            f"device {self.device}{' bf16 autocast' if self.amp else ''}")
        scorer = None
        if not xe:
            scorer = self._scst_scorer()
            if state is None:  # the starting point is the score to beat
                v = self._validate(model)
                best = v["cider"]
                self._log_epoch({"stage": "scst", "epoch": 0, "val": v, "note": "initial model"})
                if best > self.global_best:
                    self.global_best = best
                    save_atomic(self._ckpt(model, "scst", 0, v), self._path("best.pt"))
        while epoch < max_epochs and bad < patience:
            if a.time_limit and time.time() - self.started + 1.2 * self.epoch_time + 5 > a.time_limit:
                self.out_of_time = True
                log(f"[{stage}] --time-limit {a.time_limit:.0f}s reached after {epoch} epochs: "
                    f"continue with the same command plus --resume")
                break
            gen = seed_epoch(a.seed, stage, epoch)
            t0 = time.time()
            model.train()
            stats = self._xe_epoch(model, opt, gen, epoch, max_epochs) if xe else \
                self._scst_epoch(model, opt, gen, epoch, max_epochs, scorer)
            train_time = time.time() - t0
            v = self._validate(model)
            epoch += 1
            improved = v["cider"] > best
            if improved:
                best, bad = v["cider"], 0
            else:
                bad += 1
            lrc.after_epoch(epoch, v["cider"])
            rec = {"stage": stage, "epoch": epoch, **stats, "val": v, "lr": opt.param_groups[0]["lr"],
                   "train_time_s": round(train_time, 1), "time_s": round(time.time() - t0, 1),
                   "best_val_cider": best, "improved": improved}
            self._log_epoch(rec)
            if improved:
                ck = self._ckpt(model, stage, epoch, v)
                save_atomic(ck, best_path)
                if best > self.global_best:
                    self.global_best = best
                    save_atomic(ck, self._path("best.pt"))
            done = epoch >= max_epochs or bad >= patience
            save_atomic({"format": STATE_FORMAT, "architecture": architecture_of(model), "stage": stage,
                         "epoch": epoch, "stage_done": done,
                         "model": model.state_dict(), "optimizer": opt.state_dict(), "lr_control": lrc.state_dict(),
                         "best": best, "bad_epochs": bad, "global_best": self.global_best,
                         "config": model.cfg.to_dict(), "vocab": self.cap.vocab, "history": self.history,
                         "args": vars(a)}, self._path("last.pt"))
            self.epoch_time = time.time() - t0
            if self.epoch_callback is not None and self.epoch_callback(rec):
                self.stopped_by_callback = True
                break
            if bad >= patience:
                log(f"[{stage}] early stop: no val CIDEr-D gain for {bad} epochs (best {best:.4f})")
        if epoch >= max_epochs or bad >= patience:
            log(f"[{stage}] finished: best val CIDEr-D {best:.4f}")

    def _progress(self, stage: str, epoch: int, max_epochs: int, i: int, n: int, t0: float, tokens: int,
                  extra: str) -> None:
        el = time.time() - t0
        eta = el / max(1, i) * (n - i)
        log(f"[{stage} {epoch + 1}/{max_epochs}] {i}/{n} {extra} | {tokens / max(el, 1e-9):,.0f} tok/s | "
            f"elapsed {fmt_time(el)} eta {fmt_time(eta)}")

    def _xe_epoch(self, model, opt, gen, epoch, max_epochs) -> Dict[str, float]:
        a = self.args
        n_caps = len(self.ds.splits["train"].cap_image)
        n = math.ceil(n_caps / a.batch_size)
        if a.max_batches:
            n = min(n, a.max_batches)
        t0 = time.time()
        tokens = 0
        loss_sum = torch.zeros((), device=self.device)
        att_sum = torch.zeros((), device=self.device)
        for i, (feats, ids, lens) in enumerate(self.ds.caption_batches("train", a.batch_size, gen, a.hflip_aug)):
            if i >= n:
                break
            xe_loss, att = xe_step(model, opt, feats, ids, lens, a.label_smoothing, a.att_lambda, a.grad_clip,
                                   self.amp)
            loss_sum += xe_loss
            att_sum += att
            tokens += int(lens.sum())
            if a.log_every and (i + 1) % a.log_every == 0:
                self._progress("xe", epoch, max_epochs, i + 1, n, t0, tokens,
                               f"loss {float(loss_sum) / (i + 1):.4f} att {float(att_sum) / (i + 1):.4f} "
                               f"lr {opt.param_groups[0]['lr']:.1e}")
        el = time.time() - t0
        return {"train_loss": float(loss_sum) / n, "train_att_reg": float(att_sum) / n,
                "tokens_per_s": round(tokens / max(el, 1e-9)), "batches": n}

    def _scst_scorer(self) -> CiderD:
        eos = self.args.scst_eos == "on"
        refs = self.ds.splits["train"].refs
        t0 = time.time()
        scorer = CiderD({i: [r + ["<eos>"] if eos else r for r in rs] for i, rs in enumerate(refs)})
        log(f"[scst] CIDEr-D reward over {len(refs)} train images (df from train refs) ready in {time.time() - t0:.1f}s")
        return scorer

    def _scst_epoch(self, model, opt, gen, epoch, max_epochs, scorer: CiderD) -> Dict[str, float]:
        a = self.args
        n = math.ceil(len(self.ds.splits["train"]) / a.scst_batch)
        if a.max_batches:
            n = min(n, a.max_batches)
        t0 = time.time()
        tokens = 0
        sums = {"loss": 0.0, "reward": 0.0, "baseline": 0.0, "greedy": 0.0}
        for i, (idx, feats) in enumerate(self.ds.image_batches("train", a.scst_batch, gen)):
            if i >= n:
                break
            r = scst_step(model, opt, feats, idx.tolist(), self.cap, scorer, a.scst_samples, a.scst_baseline,
                          a.scst_eos == "on", a.grad_clip, self.amp)
            for k in sums:
                sums[k] += r[k]
            tokens += r["tokens"]
            if a.log_every and (i + 1) % a.log_every == 0:
                self._progress("scst", epoch, max_epochs, i + 1, n, t0, tokens,
                               f"reward {sums['reward'] / (i + 1):.4f} baseline {sums['baseline'] / (i + 1):.4f}")
        el = time.time() - t0
        return {"train_loss": sums["loss"] / n, "train_reward": sums["reward"] / n,
                "train_baseline": sums["baseline"] / n, "train_greedy_reward": sums["greedy"] / n,
                "tokens_per_s": round(tokens / max(el, 1e-9)), "batches": n}


def xe_step(model, opt, feats, ids, lens, label_smoothing: float, att_lambda: float, grad_clip: float, amp: bool):
    """One teacher-forced update; returns detached (cross-entropy, attention regulariser)."""
    T = ids.size(1) - 1
    with autocast(amp):
        logits, alphas = model(feats.float(), ids)
    targets = ids[:, 1:]
    mask = torch.arange(T, device=ids.device).unsqueeze(0) < lens.unsqueeze(1)
    ce = F.cross_entropy(logits[mask].float(), targets[mask], label_smoothing=label_smoothing)
    # doubly stochastic attention (Xu et al. eq. 14): each region's attention summed over the caption ≈ 1
    att = ((1.0 - (alphas.float() * mask.unsqueeze(2)).sum(1)) ** 2).mean()
    loss = ce + att_lambda * att
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return ce.detach(), att.detach()


def scst_step(model, opt, feats, image_keys, cap, scorer: CiderD, k: int, baseline: str, eos: bool,
              grad_clip: float, amp: bool) -> dict:
    """One self-critical update: K sampled captions per image, reward CIDEr-D, baseline greedy or mean of others."""
    max_len = cap.max_length + 1
    feats = feats.float()
    B = feats.size(0)

    def words(seq):
        w = cap.words(seq)
        return w + ["<eos>"] if eos else w

    greedy_r = None
    if baseline == "greedy":
        model.eval()
        with torch.no_grad(), autocast(amp):
            g = model.greedy(feats, cap.start, cap.end, max_len).tolist()
        model.train()
        greedy_r = torch.tensor(scorer.scores(image_keys, [words(s) for s in g]))
    with autocast(amp):
        seqs, logps = model.sample(feats.repeat_interleave(k, 0), cap.start, cap.end, max_len)
    seq_list = seqs.tolist()
    keys = [key for key in image_keys for _ in range(k)]
    rewards = torch.tensor(scorer.scores(keys, [words(s) for s in seq_list])).view(B, k)
    if greedy_r is not None:
        base = greedy_r.unsqueeze(1).expand(B, k)
    else:
        base = (rewards.sum(1, keepdim=True) - rewards) / max(1, k - 1)
    adv = (rewards - base).reshape(-1).to(logps.device)
    # tokens up to and including the first <end>
    mask = torch.ones_like(seqs, dtype=torch.bool)
    mask[:, 1:] = seqs[:, :-1] != cap.end
    n_tok = mask.sum()
    loss = -(adv.unsqueeze(1) * logps.float() * mask).sum() / n_tok
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return {"loss": float(loss.detach()), "reward": float(rewards.mean()), "baseline": float(base.mean()),
            "greedy": float(greedy_r.mean()) if greedy_r is not None else float("nan"), "tokens": int(n_tok)}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        Trainer(args).run()
    except KeyboardInterrupt:
        log("[interrupted] last.pt holds the last finished epoch; continue with --resume")
        return 130
    except (DataError, FileNotFoundError) as err:
        # Bad input data is the user's to fix: one clear line, no traceback.
        log(f"trainer: {err}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
