"""Parity fixture: inputs and PyTorch outputs of the exported graphs, for checking an ONNX runtime against PyTorch.

File layout (all little-endian): one line of UTF-8 JSON, a '\\n', then the raw tensor bytes.

  {"format": "pixel-info-parity", "version": 1, "tolerance": 1e-4,
   "tensors": [{"name": "init.features", "dtype": "float32"|"int64", "shape": [...], "offset": 0, "nbytes": ...}, ...]}

`offset` counts from the first byte after the newline. Names are `<graph>.<input or output name>` for every graph
the architecture exports (show-attend-tell: init.features → init.memory, init.proj_features, init.h, init.c;
step.tokens, step.image, step.h, step.c, step.memory, step.proj_features → step.log_probs, step.h_out, step.c_out,
step.alpha; transformer: docs/formats.md, "Architecture `transformer`"). Expected outputs are computed in float32
by PyTorch with the same float16-rounded weights the ONNX files store, so a correct runtime matches them to ~1e-6.

This module needs only numpy (and onnxruntime for `check`), so it also runs where torch is not installed:
  python3 -m trainer.parity MODEL_DIR FIXTURE
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict

import numpy as np

FORMAT = "pixel-info-parity"
_NP = {"float32": "<f4", "int64": "<i8"}


def write_fixture(path: str, tensors: Dict[str, np.ndarray], tolerance: float = 1e-4) -> None:
    table, blobs, offset = [], [], 0
    for name, arr in tensors.items():
        dtype = "int64" if np.issubdtype(arr.dtype, np.integer) else "float32"
        b = np.ascontiguousarray(arr, dtype=_NP[dtype]).tobytes()
        table.append({"name": name, "dtype": dtype, "shape": list(arr.shape), "offset": offset, "nbytes": len(b)})
        blobs.append(b)
        offset += len(b)
    header = json.dumps({"format": FORMAT, "version": 1, "tolerance": tolerance, "tensors": table})
    with open(path, "wb") as f:
        f.write(header.encode("utf-8") + b"\n")
        for b in blobs:
            f.write(b)


def read_fixture(path: str):
    with open(path, "rb") as f:
        data = f.read()
    nl = data.index(b"\n")
    header = json.loads(data[:nl].decode("utf-8"))
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a parity fixture")
    body = data[nl + 1:]
    out = {}
    for t in header["tensors"]:
        arr = np.frombuffer(body, dtype=_NP[t["dtype"]], count=t["nbytes"] // 8 if t["dtype"] == "int64"
                            else t["nbytes"] // 4, offset=t["offset"])
        out[t["name"]] = arr.reshape(t["shape"])
    return header, out


def check(model_dir: str, fixture: str) -> Dict[str, float]:
    """Run every graph the fixture names (decoder_<graph>.onnx) with onnxruntime on the fixture inputs; returns the max
    abs diff per output."""
    import onnxruntime as ort
    header, t = read_fixture(fixture)
    diffs = {}
    for graph in sorted({name.split(".", 1)[0] for name in t}):
        sess = ort.InferenceSession(os.path.join(model_dir, f"decoder_{graph}.onnx"), providers=["CPUExecutionProvider"])
        ins = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        missing = [f"{graph}.{n}" for n in ins + outs if f"{graph}.{n}" not in t]
        if missing:
            raise AssertionError(f"{fixture}: no tensor for {', '.join(missing)}")
        got = sess.run(outs, {n: t[f"{graph}.{n}"] for n in ins})
        for n, g in zip(outs, got):
            want = t[f"{graph}.{n}"]
            if g.shape != want.shape:
                raise AssertionError(f"{graph}.{n}: shape {g.shape}, expected {want.shape}")
            diffs[f"{graph}.{n}"] = float(np.max(np.abs(g.astype(np.float64) - want)))
    return diffs


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python3 -m trainer.parity MODEL_DIR FIXTURE", file=sys.stderr)
        return 2
    header, _ = read_fixture(argv[1])
    diffs = check(argv[0], argv[1])
    worst = max(diffs.values())
    for k, v in diffs.items():
        print(f"{k}: max abs diff {v:.3g}")
    ok = worst < header["tolerance"]
    print(f"parity {'OK' if ok else 'FAILED'} (worst {worst:.3g}, tolerance {header['tolerance']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
