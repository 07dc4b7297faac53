"""Checkpoints: full training state (`last.pt`), model checkpoints (`best.pt`), and a small fp16 form split into parts.

The fp16 form exists so a trained model can be carried off the GPU machine in files of at most 16 MB:

  DIR/model.json           header: format, config, vocab, specials, meta (metrics, data checksums, ...), the tensor
                           table [{name, dtype, shape, offset, nbytes}], total size and sha256 of the joined blob,
                           and the parts [{file, bytes, sha256}]
  DIR/model.part000.bin    the blob (all tensors, little-endian, float16 for floating tensors), cut into <= 15 MB parts
  DIR/model.part001.bin    ...

`load_checkpoint(path)` reads a .pt file, such a directory, or its model.json, and returns the same dict shape:
{"architecture", "config", "vocab", "specials", "max_length", "model" (float32 state_dict), "meta"}.
`architecture` is the registry key of trainer/models (the model card's `architecture.type`); checkpoints written
before it was recorded load as show-attend-tell over the ResNet50 grid.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Dict

import numpy as np
import torch

from .models import LEGACY_ARCHITECTURE, build_model

FP16_FORMAT = "pixel-info-decoder-fp16"
PART_BYTES = 15 * 1000 * 1000
# Old checkpoints did not record the feature geometry; they were all trained on the 7x7 grid of ResNet50 features.
_LEGACY_CONFIG = {"regions": 49}
_DTYPES = {"float16": (torch.float16, "<f2"), "int64": (torch.int64, "<i8"), "float32": (torch.float32, "<f4")}


def torch_load(path: str):
    """torch.load of our own files on torch 1.13 and 2.x (where weights_only became the default)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch without the weights_only argument
        return torch.load(path, map_location="cpu")


def save_atomic(obj, path: str) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_fp16_parts(ckpt: dict, out_dir: str, part_bytes: int = PART_BYTES) -> dict:
    """Write the model of `ckpt` (a best.pt-style dict) as fp16 parts + model.json; returns the header."""
    os.makedirs(out_dir, exist_ok=True)
    table, chunks, offset = [], [], 0
    for name, t in ckpt["model"].items():
        t = t.detach().cpu()
        if t.is_floating_point():
            dtype = "float16"
            arr = t.to(torch.float16).contiguous().numpy().astype("<f2", copy=False)
        else:
            dtype = "int64"
            arr = t.to(torch.int64).contiguous().numpy().astype("<i8", copy=False)
        b = arr.tobytes()
        table.append({"name": name, "dtype": dtype, "shape": list(t.shape), "offset": offset, "nbytes": len(b)})
        chunks.append(b)
        offset += len(b)
    blob = b"".join(chunks)
    for old in os.listdir(out_dir):  # a previous export with more parts must not leave strays
        if old.startswith("model.part") and old.endswith(".bin"):
            os.remove(os.path.join(out_dir, old))
    parts = []
    for i, a in enumerate(range(0, max(len(blob), 1), part_bytes)):
        piece = blob[a:a + part_bytes]
        name = f"model.part{i:03d}.bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(piece)
        parts.append({"file": name, "bytes": len(piece), "sha256": hashlib.sha256(piece).hexdigest()})
    header = {
        "format": FP16_FORMAT, "version": 1,
        "architecture": ckpt["architecture"], "config": ckpt["config"], "vocab": ckpt["vocab"],
        "specials": ckpt.get("specials"),
        "max_length": ckpt.get("max_length"), "meta": ckpt.get("meta", {}),
        "tensors": table, "total_bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(), "parts": parts,
    }
    with open(os.path.join(out_dir, "model.json"), "w", encoding="utf-8") as f:
        json.dump(header, f, indent=1)
    return header


def load_fp16_parts(path: str) -> dict:
    header_path = os.path.join(path, "model.json") if os.path.isdir(path) else path
    base = os.path.dirname(header_path)
    with open(header_path, encoding="utf-8") as f:
        header = json.load(f)
    if header.get("format") != FP16_FORMAT:
        raise ValueError(f"{header_path}: format {header.get('format')!r}, expected {FP16_FORMAT!r}")
    pieces = []
    for p in header["parts"]:
        fp = os.path.join(base, p["file"])
        if not os.path.isfile(fp):
            raise ValueError(f"{header_path}: part {p['file']} is missing")
        with open(fp, "rb") as f:
            b = f.read()
        if len(b) != p["bytes"] or hashlib.sha256(b).hexdigest() != p["sha256"]:
            raise ValueError(f"{fp}: size or sha256 does not match model.json (incomplete copy?)")
        pieces.append(b)
    blob = b"".join(pieces)
    if len(blob) != header["total_bytes"] or hashlib.sha256(blob).hexdigest() != header["sha256"]:
        raise ValueError(f"{header_path}: joined parts do not match the recorded size/sha256")
    state: Dict[str, torch.Tensor] = {}
    for t in header["tensors"]:
        tdtype, npdtype = _DTYPES[t["dtype"]]
        arr = np.frombuffer(blob, dtype=npdtype, count=t["nbytes"] // np.dtype(npdtype).itemsize, offset=t["offset"])
        ten = torch.from_numpy(arr.copy()).reshape(t["shape"])
        state[t["name"]] = ten.float() if ten.is_floating_point() else ten
    return upgrade({"architecture": header.get("architecture"), "config": header["config"], "vocab": header["vocab"],
                    "specials": header.get("specials"), "max_length": header.get("max_length"), "model": state,
                    "meta": header.get("meta", {})})


def load_checkpoint(path: str) -> dict:
    if os.path.isdir(path) or path.endswith(".json"):
        return load_fp16_parts(path)
    ck = torch_load(path)
    if "model" not in ck or "config" not in ck:
        raise ValueError(f"{path}: not a pixel-info decoder checkpoint")
    return upgrade(ck)


def upgrade(ckpt: dict) -> dict:
    """Fills in what older checkpoints (and training states) did not record: the architecture and the geometry."""
    if not ckpt.get("architecture"):
        ckpt["architecture"] = LEGACY_ARCHITECTURE
        ckpt["config"] = {**_LEGACY_CONFIG, **ckpt["config"]}
    return ckpt


def model_from_checkpoint(ckpt: dict):
    """The model a checkpoint (load_checkpoint's dict) holds, built through the architecture registry."""
    model = build_model(ckpt["architecture"], ckpt["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    return model
