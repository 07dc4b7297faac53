"""Re-export a decoder model directory in the current graph format, from the weights in its own ONNX files.

  python3 -m trainer.reexport MODEL_DIR [--out DIR] [--parity-fixture FILE]      (default --out: MODEL_DIR itself)

A shipped model's training checkpoint need not exist anywhere: its weights are the ONNX files' float16 initializers,
named `m.<parameter>_fp16` by trainer.export, so they are read back (fp16 → fp32 is exact) into the architecture's
PyTorch module and exported again by trainer.export. Graph formats it reads: the current one, and the first one
(step graph fed with per-row copies of the features). The card keeps
every section (training history, data checksums, decoding, metrics) except `onnx`, which describes the new graphs,
and gains `reexported` {date, previous step inputs, torch}. Metrics recorded in the card stay valid only if the new
graphs compute the same captions: re-run `pixel-info eval` on val and compare (docs/formats.md says how it was done
for the shipped model).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

from .checkpoint import model_from_checkpoint, upgrade
from .export import export_model
from .onnx_proto import read_model

FLOAT, FLOAT16 = 1, 10


def _tensor(init: dict) -> torch.Tensor:
    dtype = {FLOAT: "<f4", FLOAT16: "<f2"}.get(init["data_type"])
    if dtype is None or init["raw"] is None:
        raise ValueError(f"initializer {init['name']}: data type {init['data_type']} is not a stored float tensor")
    arr = np.frombuffer(init["raw"], dtype=dtype).astype(np.float32).reshape(init["dims"])
    return torch.from_numpy(arr.copy())


def weights_from_onnx(model_dir: str, graphs=("init", "step")) -> dict:
    """The state_dict stored in decoder_<graph>.onnx files: `m.<name>_fp16` → <name>."""
    state = {}
    for g in graphs:
        for init in read_model(os.path.join(model_dir, f"decoder_{g}.onnx"))["initializers"]:
            name = init["name"]
            if not (name.startswith("m.") and name.endswith("_fp16")):
                continue  # small constants of the graph, not weights
            state[name[2:-5]] = _tensor(init)
    return state


def checkpoint_from_model_dir(model_dir: str):
    with open(os.path.join(model_dir, "model-card.json"), encoding="utf-8") as f:
        card = json.load(f)
    with open(os.path.join(model_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    arch = card["architecture"]
    # a card without architecture.type (or a config without the geometry) predates the registry: upgrade() fills it in
    ckpt = {"architecture": arch.get("type"), "config": arch["config"], "vocab": vocab,
            "specials": card["vocab"].get("specials"), "max_length": card.get("maxLength"),
            "model": weights_from_onnx(model_dir), "meta": {}}
    if "regions" not in ckpt["config"]:
        ckpt["architecture"] = None
    ckpt = upgrade(ckpt)
    model_from_checkpoint(ckpt)  # load_state_dict is strict: a missing or extra weight fails here
    return ckpt, card


def reexport(model_dir: str, out_dir: str, parity_fixture: str | None = None, log=print) -> dict:
    ckpt, old = checkpoint_from_model_dir(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        new = export_model(ckpt, tmp, parity_fixture=parity_fixture, decoding=old.get("decoding"), log=log)
        os.makedirs(out_dir, exist_ok=True)
        for g in ("init", "step"):
            shutil.copyfile(os.path.join(tmp, f"decoder_{g}.onnx"), os.path.join(out_dir, f"decoder_{g}.onnx"))
    card = dict(old)
    card["onnx"] = new["onnx"]
    card["reexported"] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "from_step_inputs": list((old.get("onnx", {}).get("step") or {}).get("inputs", {}).keys()),
                          "torch": torch.__version__}
    if os.path.abspath(out_dir) != os.path.abspath(model_dir):
        shutil.copyfile(os.path.join(model_dir, "vocab.json"), os.path.join(out_dir, "vocab.json"))
    with open(os.path.join(out_dir, "model-card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    return card


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m trainer.reexport", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--out", help="directory to write (default: MODEL_DIR, in place)")
    p.add_argument("--parity-fixture", help="also write the new graphs' inputs and PyTorch outputs to this file")
    a = p.parse_args(argv)
    try:
        card = reexport(a.model_dir, a.out or a.model_dir, a.parity_fixture, log=lambda s: print(s, file=sys.stderr))
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        print(f"error: {a.model_dir}: {err}", file=sys.stderr)
        return 1
    print(f"[reexport] {a.out or a.model_dir}: step inputs {list(card['onnx']['step']['inputs'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
