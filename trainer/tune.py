"""Hyper-parameter search for the XE stage with Optuna: TPE sampling, median pruning on the per-epoch val CIDEr-D, the
study in SQLite so that a second call resumes it, and a wall-clock budget for each call.

  python3 -m trainer.tune --features STORE --captions captions.json --out RUN_DIR --budget 3600 \\
      [--train-images 400 --val-images 100 --epochs-per-trial 3] [--trials N] [TRAINER OPTIONS ...]
  python3 -m trainer.tune --out RUN_DIR --table          (print the table of RUN_DIR's study; trains nothing)

Every trial is a `trainer.train` XE run (the same Trainer, the same val beam search, the same checkpoint selection) with
the sampled values of: lr, batch_size, optimizer (Adam, or SGD with momentum), dropout and att_lambda. Any option this
command does not know is handed to every trial's trainer (e.g. `--embed-dim 256 --val-beam 1 --feature-norm layernorm`).
A trial reports its val CIDEr-D after every epoch (trial.report); the median pruner stops it when its best so far is
below the median of the finished trials at the same epoch. A trial's value is its best val CIDEr-D.

RUN_DIR gets: study.db (the study; `--storage` to put it elsewhere), captions-subset.json (the train/val subset every
trial uses), trials/NNNN/ (each trial's log.jsonl and run.json), best.pt (the best finished trial's checkpoint),
trials.md and trials.json (the table; rewritten after every trial).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from typing import Dict, List, Optional

import numpy as np
import torch

from .data import TRAIN_SPLITS, DataError, Dataset, load_captions, open_feature_store, sha256_file
from .train import Trainer, parse_args as train_parse_args

# The seed's grid, plus the trainer's default LR (4e-4).
DEFAULT_LRS = (4e-4, 1e-3, 1e-2, 1e-1)
DEFAULT_BATCH_SIZES = (32, 64, 128)
DEFAULT_OPTIMIZERS = ("adam", "sgd")
# The trainer's defaults: the first trial of a new study, so every study holds the reference point.
BASELINE = {"optimizer": "adam", "lr": 4e-4, "batch_size": 64, "dropout": 0.5, "att_lambda": 1.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _floats(s: str) -> List[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> List[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _range(s: str) -> List[float]:
    r = _floats(s)
    if len(r) != 2 or r[0] > r[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {s!r}")
    return r


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m trainer.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", help="feature store directory")
    p.add_argument("--captions", help="captions.json")
    p.add_argument("--out", required=True, help="study directory (RUN_DIR)")
    p.add_argument("--table", action="store_true", help="only write and print the table of the study in RUN_DIR")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUN_DIR/study.db)")
    p.add_argument("--study-name", default="xe")
    p.add_argument("--budget", type=float, default=3600,
                   help="wall-clock seconds for this call (loading included); no trial or epoch is started that "
                        "would end past it. A later call with more budget continues the study")
    p.add_argument("--trials", type=int, default=0, help="also stop after N trials in this call (0: budget only)")
    g = p.add_argument_group("what every trial trains on")
    g.add_argument("--train-images", type=int, default=0, help="random subset of N train(+restval) images (0: all)")
    g.add_argument("--val-images", type=int, default=0, help="random subset of N val images (0: all)")
    g.add_argument("--epochs-per-trial", type=int, default=3, help="XE epochs per trial")
    g.add_argument("--seed", type=int, default=42, help="subset choice, sampler, and every trial's training seed")
    g = p.add_argument_group("search space")
    g.add_argument("--lr-space", default="grid", choices=["grid", "log"],
                   help="grid: categorical over --lrs (default); log: log-uniform over --lr-range")
    g.add_argument("--lrs", type=_floats, default=list(DEFAULT_LRS), help="'grid' learning rates")
    g.add_argument("--lr-range", type=_range, default=[1e-4, 1e-1], help="'log': LOW,HIGH")
    g.add_argument("--batch-sizes", type=_ints, default=list(DEFAULT_BATCH_SIZES))
    g.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS), help="comma-separated: adam, sgd")
    g.add_argument("--dropout-range", type=_range, default=[0.0, 0.6], help="uniform LOW,HIGH")
    g.add_argument("--att-lambda-range", type=_range, default=[0.0, 2.0], help="uniform LOW,HIGH")
    g.add_argument("--no-baseline-trial", action="store_true",
                   help="do not start a new study with the trainer's defaults (Adam 4e-4, batch 64, dropout 0.5, "
                        "att_lambda 1)")
    g.add_argument("--enqueue", action="append", default=[], metavar="JSON",
                   help="a trial to run first, as JSON params (repeatable; only when the study is new)")
    g = p.add_argument_group("sampler and pruner")
    g.add_argument("--startup-trials", type=int, default=5, help="TPE: random trials before the model kicks in")
    g.add_argument("--prune-startup", type=int, default=3, help="median pruner: finished trials before it prunes")
    g.add_argument("--prune-from-epoch", type=int, default=1, help="median pruner: no pruning before this epoch")
    a, rest = p.parse_known_args(argv)
    a.optimizers = [o for o in a.optimizers.split(",") if o]
    if not a.table:
        if not a.features or not a.captions:
            p.error("--features and --captions are required (unless --table)")
        for o in a.optimizers:
            if o not in DEFAULT_OPTIMIZERS:
                p.error(f"--optimizers: unknown {o!r}")
        if a.epochs_per_trial < 1:
            p.error("--epochs-per-trial must be >= 1")
        if not a.lrs or not a.batch_sizes or not a.optimizers:
            p.error("empty search space")
        for opt in ("--features", "--captions", "--out", "--epochs", "--lr", "--batch-size", "--optimizer",
                    "--dropout", "--tf-dropout", "--att-lambda", "--resume", "--scst", "--seed"):
            if any(r == opt or r.startswith(opt + "=") for r in rest):
                p.error(f"{opt} is set by the tuner, not per trial")
    a.trainer_args = rest
    a.storage = a.storage or "sqlite:///" + os.path.abspath(os.path.join(a.out, "study.db"))
    return a


# --- search space ---------------------------------------------------------------------------------------------------

def space_of(a) -> dict:
    """The search space as JSON (stored in the study: a resumed study must keep it)."""
    lr = {"kind": "categorical", "choices": sorted(a.lrs)} if a.lr_space == "grid" else \
        {"kind": "log-uniform", "low": a.lr_range[0], "high": a.lr_range[1]}
    return {"lr": lr, "batch_size": {"kind": "categorical", "choices": sorted(a.batch_sizes)},
            "optimizer": {"kind": "categorical", "choices": list(a.optimizers)},
            "dropout": {"kind": "uniform", "low": a.dropout_range[0], "high": a.dropout_range[1]},
            "att_lambda": {"kind": "uniform", "low": a.att_lambda_range[0], "high": a.att_lambda_range[1]}}


def suggest(trial, space: dict) -> dict:
    out = {}
    for name in ("optimizer", "lr", "batch_size", "dropout", "att_lambda"):
        s = space[name]
        if s["kind"] == "categorical":
            out[name] = trial.suggest_categorical(name, s["choices"])
        elif s["kind"] == "log-uniform":
            out[name] = trial.suggest_float(name, s["low"], s["high"], log=True)
        else:
            out[name] = trial.suggest_float(name, s["low"], s["high"])
    return out


def in_space(params: dict, space: dict) -> bool:
    for name, s in space.items():
        v = params.get(name)
        if v is None:
            return False
        if s["kind"] == "categorical":
            if v not in s["choices"]:
                return False
        elif not s["low"] <= v <= s["high"]:
            return False
    return True


# --- the subset -----------------------------------------------------------------------------------------------------

def write_subset(a) -> dict:
    """RUN_DIR/captions-subset.json: captions.json with only the chosen train and val images (same vocabulary), so
    every trial's Dataset loads just those. The same options give the same subset."""
    cap = load_captions(a.captions)
    store = open_feature_store(a.features)
    rng = np.random.default_rng(a.seed)
    ok = [im for im in cap.images if im["name"] in store.row_of and im["name"] not in store.failed]
    chosen = {}
    for split, n in (("train", a.train_images), ("val", a.val_images)):
        ims = sorted((im for im in ok if (im["split"] in TRAIN_SPLITS if split == "train" else im["split"] == split)),
                     key=lambda im: im["name"])
        if not ims:
            raise DataError(f"{a.captions}: no {split} images with features")
        if n and n < len(ims):
            ims = [ims[i] for i in sorted(rng.choice(len(ims), n, replace=False))]
        chosen[split] = ims
    with open(a.captions, encoding="utf-8") as f:
        full = json.load(f)
    full["images"] = chosen["train"] + chosen["val"]
    full["subset"] = {"of": os.path.basename(a.captions), "sha256": sha256_file(a.captions), "seed": a.seed,
                      "train_images": len(chosen["train"]), "val_images": len(chosen["val"])}
    path = os.path.join(a.out, "captions-subset.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(full, f)
    os.replace(tmp, path)
    return {"path": path, **full["subset"],
            "train_captions": sum(len(im["captions"]) for im in chosen["train"]),
            "val_captions": sum(len(im["captions"]) for im in chosen["val"])}


# --- the table ------------------------------------------------------------------------------------------------------

def trial_rows(study) -> List[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, "stopped": u.get("stopped"),
                     "pruned": u.get("stopped") == "pruned",
                     "params": dict(t.params), "best_val_cider": u.get("best_val_cider"),
                     "epochs": u.get("epochs", 0), "val_cider_per_epoch": u.get("val_cider", []),
                     "seconds": u.get("seconds"), "error": u.get("error")})
    return rows


def best_of(study) -> Optional[dict]:
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return None
    b = max(done, key=lambda t: (t.value, -t.number))
    return {"number": b.number, "best_val_cider": b.value, "params": dict(b.params),
            "epochs": b.user_attrs.get("epochs")}


def _fmt(v, spec=".4f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def write_table(study, out_dir: str) -> str:
    rows = trial_rows(study)
    best = best_of(study)
    attrs = study.user_attrs
    doc = {"study": study.study_name, "metric": "best val CIDEr-D over the trial's epochs (beam search, trainer.train)",
           "settings": attrs.get("settings"), "space": attrs.get("space"), "subset": attrs.get("subset"),
           "trials": rows, "best": best}
    with open(os.path.join(out_dir, "trials.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    lines = ["| # | optimizer | lr | batch | dropout | att_lambda | best val CIDEr-D | epochs | pruned | ended | s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        p = r["params"]
        mark = "**" if best and r["number"] == best["number"] else ""
        lines.append(f"| {r['number']} | {p.get('optimizer', '–')} | {_fmt(p.get('lr'), '.2g')} | "
                     f"{p.get('batch_size', '–')} | {_fmt(p.get('dropout'), '.2f')} | "
                     f"{_fmt(p.get('att_lambda'), '.2f')} | {mark}{_fmt(r['best_val_cider'])}{mark} | {r['epochs']} | "
                     f"{'yes' if r['pruned'] else 'no'} | {r['stopped'] or r['state'].lower()} | "
                     f"{_fmt(r['seconds'], '.0f')} |")
    s = attrs.get("settings") or {}
    sub = attrs.get("subset") or {}
    head = [f"# Study `{study.study_name}`", "",
            f"{len(rows)} trials; {sub.get('train_images', '?')} train / {sub.get('val_images', '?')} val images, "
            f"{s.get('epochs_per_trial', '?')} XE epochs per trial, trainer options "
            f"`{' '.join(s.get('trainer_args') or []) or '(defaults)'}`. Value: best val CIDEr-D of the trial.", ""]
    tail = ["", "Best finished trial: " + (f"#{best['number']}, val CIDEr-D {best['best_val_cider']:.4f}, params "
                                           f"`{json.dumps(best['params'])}`" if best else "none yet")]
    text = "\n".join(head + lines + tail) + "\n"
    with open(os.path.join(out_dir, "trials.md"), "w", encoding="utf-8") as f:
        f.write(text)
    return text


# --- the study ------------------------------------------------------------------------------------------------------

class _TrialTrainer(Trainer):
    """trainer.train's Trainer with the data checksums computed once per process (every trial reads the same data)."""
    _checksums: Dict[tuple, dict] = {}

    def _data_checksums(self) -> dict:
        key = (self.args.features, self.args.captions)
        if key not in self._checksums:
            self._checksums[key] = super()._data_checksums()
        return self._checksums[key]


def _epoch_estimate(study, batch_size: int) -> float:
    """Seconds one epoch (train + val) is expected to take at this batch size, from earlier trials (0: unknown)."""
    same, other = [], []
    for t in study.get_trials(deepcopy=False):
        for s in t.user_attrs.get("epoch_seconds", []):
            (same if t.params.get("batch_size") == batch_size else other).append(s)
    if same:
        return float(np.median(same))
    return float(max(other)) if other else 0.0


def open_study(a, optuna, create: bool = True):
    pruner = optuna.pruners.MedianPruner(n_startup_trials=a.prune_startup, n_warmup_steps=a.prune_from_epoch)
    if not create:
        return optuna.load_study(study_name=a.study_name, storage=a.storage, pruner=pruner)
    return optuna.create_study(study_name=a.study_name, storage=a.storage, direction="maximize", pruner=pruner,
                               load_if_exists=True)


def run_study(a) -> int:
    import optuna
    t_start = time.time()
    deadline = t_start + a.budget
    os.makedirs(a.out, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(a, optuna)
    space = space_of(a)
    settings = {"epochs_per_trial": a.epochs_per_trial, "seed": a.seed, "trainer_args": a.trainer_args,
                "features": os.path.abspath(a.features), "captions": os.path.abspath(a.captions)}
    new = len(study.trials) == 0
    if new:
        study.set_user_attr("space", space)
        study.set_user_attr("settings", settings)
    else:
        # a resumed study must compare like with like
        if study.user_attrs.get("space") != json.loads(json.dumps(space)):
            raise SystemExit(f"{a.storage}: the study was started with another search space: "
                             f"{json.dumps(study.user_attrs.get('space'))}")
        old = study.user_attrs.get("settings", {})
        for k in ("epochs_per_trial", "seed", "trainer_args"):
            if old.get(k) != settings[k]:
                raise SystemExit(f"{a.storage}: the study was started with {k} = {old.get(k)!r}, not {settings[k]!r}")
        for t in study.get_trials(deepcopy=False):
            if t.state.name == "RUNNING":  # left by a call that was killed: one tuner process per study
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
                log(f"[tune] trial {t.number} was left running by an interrupted call: marked failed")
    subset = write_subset(a)
    old_subset = study.user_attrs.get("subset")
    if old_subset is None:
        study.set_user_attr("subset", {k: v for k, v in subset.items() if k != "path"})
    elif any(old_subset.get(k) != subset[k] for k in ("train_images", "val_images", "sha256")):
        raise SystemExit(f"{a.storage}: the study was started on another subset: {old_subset}")
    if new:
        queued = [json.loads(q) for q in a.enqueue]
        if not a.no_baseline_trial and in_space(BASELINE, space):
            queued.insert(0, BASELINE)
        for q in queued:
            study.enqueue_trial(q)
    # a new sampler seed per call: a resumed study must not replay the same random start-up points
    study.sampler = optuna.samplers.TPESampler(seed=a.seed + len(study.trials), n_startup_trials=a.startup_trials)

    base = train_parse_args(["--features", a.features, "--captions", subset["path"], "--out", a.out,
                             *a.trainer_args])
    if base.threads:
        torch.set_num_threads(base.threads)
    # the sampled dropout is the architecture's own: show-attend-tell's --dropout, the transformer's --tf-dropout
    transformer = base.architecture == "transformer" and hasattr(base, "tf_dropout")
    dropout_flag = "--tf-dropout" if transformer else "--dropout"
    device = torch.device("cuda" if base.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if base.device == "auto" else base.device))
    ds = Dataset(a.features, subset["path"], device, splits=("train", "val"), hflip=base.hflip_aug > 0, log=log)
    log(f"[tune] study {a.study_name!r} in {a.storage}: {len(study.trials)} trials so far; "
        f"{subset['train_images']} train images ({subset['train_captions']} captions), {subset['val_images']} val; "
        f"budget {a.budget:.0f}s")
    best = best_of(study)
    best_value = best["best_val_cider"] if best else -math.inf
    ran = 0
    while not a.trials or ran < a.trials:
        left = deadline - time.time()
        known = [_epoch_estimate(study, b) for b in space["batch_size"]["choices"]]
        if left < 1.2 * min(known) + 5:
            log(f"[tune] budget: {left:.0f}s left, less than an epoch: stopping")
            break
        trial = study.ask()
        params = suggest(trial, space)
        tdir = os.path.join(a.out, "trials", f"{trial.number:04d}")
        shutil.rmtree(tdir, ignore_errors=True)
        targs = train_parse_args(
            ["--features", a.features, "--captions", subset["path"], "--out", tdir, *a.trainer_args,
             "--epochs", str(a.epochs_per_trial), "--patience", str(a.epochs_per_trial + 1),
             "--seed", str(a.seed), "--optimizer", params["optimizer"], "--lr", repr(params["lr"]),
             "--batch-size", str(params["batch_size"]), dropout_flag, repr(params["dropout"]),
             "--att-lambda", repr(params["att_lambda"]), "--device", device.type])
        targs.scst_epochs = 0
        targs.no_fp16_parts = True
        t0 = time.time()
        targs.time_limit = max(1e-3, deadline - t0)  # seconds from the trainer's start, which is now
        vals, secs = [], []
        pruned = [False]

        def on_epoch(rec, trial=trial, vals=vals, secs=secs, pruned=pruned):
            v = float(rec["val"]["cider"])
            v = 0.0 if math.isnan(v) else v
            vals.append(v)
            secs.append(float(rec["time_s"]))
            trial.report(v, rec["epoch"])
            trial.set_user_attr("val_cider", vals)
            # after the last epoch there is nothing left to save: the trial finishes (and counts for the median)
            if rec["epoch"] < a.epochs_per_trial and trial.should_prune():
                pruned[0] = True
                return True
            return False

        log(f"[tune] trial {trial.number}: {json.dumps(params)}")
        error = None
        trainer = None
        try:
            trainer = _TrialTrainer(targs, dataset=ds, epoch_callback=on_epoch)
            trainer.epoch_time = _epoch_estimate(study, params["batch_size"])  # so --time-limit counts epoch 1 too
            trainer.run()
        except KeyboardInterrupt:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as err:  # a diverging configuration must not end the study
            error = f"{type(err).__name__}: {err}"
            log(f"[tune] trial {trial.number} failed: {error}")
        seconds = time.time() - t0
        best_trial = max(vals) if vals else None
        if error:
            stopped = "error"
        elif pruned[0]:
            stopped = "pruned"
        elif trainer is not None and trainer.out_of_time:
            stopped = "budget"
        else:
            stopped = "done"
        for k, v in (("epochs", len(vals)), ("best_val_cider", best_trial), ("seconds", round(seconds, 1)),
                     ("epoch_seconds", secs), ("stopped", stopped), ("dir", os.path.relpath(tdir, a.out))):
            trial.set_user_attr(k, v)
        if error:
            trial.set_user_attr("error", error[:500])
        State = optuna.trial.TrialState
        if stopped == "done":
            study.tell(trial, best_trial)
        elif vals and stopped in ("pruned", "budget"):
            study.tell(trial, state=State.PRUNED)  # its last reported value stays with it for the sampler
        else:
            study.tell(trial, state=State.FAIL)
        if stopped == "done" and best_trial > best_value and os.path.isfile(os.path.join(tdir, "best.pt")):
            best_value = best_trial
            shutil.copyfile(os.path.join(tdir, "best.pt"), os.path.join(a.out, "best.pt"))
        for f in ("last.pt", "xe_best.pt", "best.pt"):  # each trial's log.jsonl and run.json stay
            if os.path.isfile(os.path.join(tdir, f)):
                os.remove(os.path.join(tdir, f))
        log(f"[tune] trial {trial.number}: {stopped}, {len(vals)} epochs, best val CIDEr-D "
            f"{_fmt(best_trial)}, {seconds:.0f}s")
        write_table(study, a.out)
        ran += 1
        if stopped == "budget":
            break
    text = write_table(study, a.out)
    print(text)
    log(f"[tune] {ran} trials in {time.time() - t_start:.0f}s; table: {os.path.join(a.out, 'trials.md')}")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.table:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = open_study(a, optuna, create=False)
        except KeyError:
            log(f"no study {a.study_name!r} in {a.storage}")
            return 2
        print(write_table(study, a.out))
        return 0
    try:
        return run_study(a)
    except (DataError, FileNotFoundError) as err:
        log(f"trainer.tune: {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
