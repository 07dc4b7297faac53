"""Export a trained decoder to the model directory of docs/formats.md.

  python3 -m trainer.export --checkpoint RUN_DIR/best.pt --captions captions.json --out models/NAME \\
      [--parity-fixture FILE] [--split-checkpoint DIR]
  python3 -m trainer.export --checkpoint RUN_DIR/best.pt --split-checkpoint DIR      (fp16 parts only, no ONNX)
  python3 -m trainer.export --tiny [--architecture transformer] --out DIR [--parity-fixture FILE]   (test fixtures)

Writes one decoder_<graph>.onnx per graph the checkpoint's architecture exports (its ONNX_GRAPHS; for
show-attend-tell decoder_init.onnx and decoder_step.onnx, exactly ShowAttendTell.init / .step), vocab.json and
model-card.json. Weights are float16 initializers each followed by a Cast to float32: the export copy of the model keeps
every parameter as an fp16 buffer and a forward pre-hook casts it with .float(), and constant folding is off so the Cast
stays in the graph. --checkpoint takes a .pt file or an fp16 parts directory (checkpoint.py).

The card's `decoding` section (beamSize, maxLength, lengthPenalty, noRepeatNgram, rules, danglingWords) is the library's
defaults (src/decoder/generation-defaults.json) with the --beam-size ... --dangling-words options applied.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import io
import json
import os
import sys
import time
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import parity
from .checkpoint import load_checkpoint, model_from_checkpoint, save_fp16_parts
from .decoding import default_config
from .models import ARCHITECTURES, DEFAULT_ARCHITECTURE, architecture_class, build_model, count_parameters

DEFAULT_OPSET = 17  # the newest torch 1.13 exports; onnxruntime-node runs it


class _ExportLSTMCell(nn.Module):
    """nn.LSTMCell's math (same parameters, gate order i, f, g, o) spelled out so it exports as Gemm/Sigmoid/Tanh: the
    four gates are one Gemm over the input and one over h. Fusing those two into one Gemm over [x; h] reads the same
    weight bytes and was measured to cost int8 accuracy (one activation scale for the input and h: val CIDEr -0.0028
    instead of -0.0003), so they stay apart."""

    def __init__(self, cell: nn.LSTMCell):
        super().__init__()
        self.weight_ih = nn.Parameter(cell.weight_ih.detach().clone())
        self.weight_hh = nn.Parameter(cell.weight_hh.detach().clone())
        self.bias_ih = nn.Parameter(cell.bias_ih.detach().clone())
        self.bias_hh = nn.Parameter(cell.bias_hh.detach().clone())

    def forward(self, x, hc):
        h, c = hc
        gates = F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        H = self.weight_hh.shape[1]
        # static slices rather than chunk(): ONNX Split loses the width, and h_out/c_out must be declared [N, H]
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def _cast_hook(names):
    def hook(module, _inputs):
        for n in names:
            object.__setattr__(module, n, getattr(module, n + "_fp16").float())
    return hook


def fp16_export_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode whose parameters are fp16 buffers cast to float32 on use (and whose LSTM cells
    are written out as exportable operations)."""
    m = copy.deepcopy(model).cpu().float().eval()
    for mod in list(m.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.LSTMCell):
                setattr(mod, name, _ExportLSTMCell(child))
    shared: Dict[int, torch.Tensor] = {}  # a parameter two modules share (tied weights) → one fp16 tensor
    for mod in m.modules():
        names = [n for n, p in mod._parameters.items() if p is not None]
        if not names:
            continue
        for n in names:
            p = mod._parameters.pop(n)
            if id(p) not in shared:
                shared[id(p)] = p.detach().half()
            mod.register_buffer(n + "_fp16", shared[id(p)])  # the exporter writes one initializer per tensor
        mod.register_forward_pre_hook(_cast_hook(names))
    return m


class GraphModule(nn.Module):
    """One exported graph of a model: its `onnx_function(graph)` as a module for torch.onnx.export."""

    def __init__(self, m: nn.Module, graph: str):
        super().__init__()
        self.m = m
        self.graph = graph

    def forward(self, *inputs):
        return self.m.onnx_function(self.graph)(*inputs)


def axis_of(axes, name: str):
    """The dynamic axes of graph input/output `name` (ONNX_GRAPHS: a name → axis dict with "*" for the rest, or one
    axis name for all). An axis is a name for the first axis, or {axis index: name} for several."""
    return axes if isinstance(axes, str) else axes.get(name, axes["*"])


def dynamic_axes_of(axes, name: str) -> Dict[int, str]:
    """{axis index: name} of graph input/output `name`."""
    a = axis_of(axes, name)
    return {0: a} if isinstance(a, str) else dict(a)


def _onnx_export(module: nn.Module, args: tuple, path: str, inputs, outputs, axes, opset: int) -> None:
    kw = dict(input_names=inputs, output_names=outputs, opset_version=opset, do_constant_folding=False,
              dynamic_axes={n: dynamic_axes_of(axes, n) for n in inputs + outputs})
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # torch >= 2.5: the TorchScript exporter keeps Cast after the fp16 initializers
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, buf, **kw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def reference_outputs(m: nn.Module) -> Dict[str, np.ndarray]:
    """The parity fixture's tensors: the model's example inputs and outputs of every exported graph."""
    return {k: v.numpy() for k, v in m.export_examples().items()}


def graph_shapes(m: nn.Module, ref: Dict[str, torch.Tensor]) -> dict:
    """Declared shapes of every graph's inputs and outputs for the card: the dynamic axes by name."""
    out = {}
    for graph, (inputs, outputs, axes) in m.ONNX_GRAPHS.items():
        def shape(n, graph=graph, axes=axes):
            dyn = dynamic_axes_of(axes, n)
            return [dyn.get(i, d) for i, d in enumerate(ref[f"{graph}.{n}"].shape)]
        out[graph] = {"inputs": {n: shape(n) for n in inputs}, "outputs": {n: shape(n) for n in outputs}}
    return out


def card_decoding(**overrides) -> dict:
    """The card's `decoding` section: the library defaults with the given fields replaced (None: keep)."""
    d = default_config().replace(**overrides).to_json()
    return {k: d[k] for k in ("beamSize", "maxLength", "lengthPenalty", "noRepeatNgram", "rules", "danglingWords")}


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def export_model(ckpt: dict, out_dir: str, opset: int = DEFAULT_OPSET, parity_fixture: Optional[str] = None,
                 captions_path: Optional[str] = None, name: Optional[str] = None, decoding: Optional[dict] = None,
                 log=print) -> dict:
    """Write the model directory; returns the model card. `decoding` is the card's decoding section (default:
    card_decoding(), the library defaults)."""
    os.makedirs(out_dir, exist_ok=True)
    model = model_from_checkpoint(ckpt).eval()
    m = fp16_export_copy(model)
    cfg = model.cfg.to_dict()
    ref = reference_outputs(m)
    t = {k: torch.from_numpy(v) for k, v in ref.items()}
    for graph, (inputs, outputs, axes) in m.ONNX_GRAPHS.items():
        _onnx_export(GraphModule(m, graph), tuple(t[f"{graph}.{n}"] for n in inputs),
                     os.path.join(out_dir, f"decoder_{graph}.onnx"), inputs, outputs, axes, opset)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(ckpt["vocab"], f, ensure_ascii=False)
    if parity_fixture:
        parity.write_fixture(parity_fixture, ref)
        log(f"[export] parity fixture: {parity_fixture}")

    # what rounding the weights to fp16 costs, measured on the example inputs of the graph that gives log_probs
    fp16_diff = None
    with torch.no_grad():
        for graph, (inputs, outputs, _) in m.ONNX_GRAPHS.items():
            if "log_probs" in outputs:
                full = model.onnx_function(graph)(*(t[f"{graph}.{n}"] for n in inputs))[outputs.index("log_probs")]
                fp16_diff = float((full - t[f"{graph}.log_probs"]).abs().max())

    meta = ckpt.get("meta", {})
    hist = meta.get("history", [])
    data = dict(meta.get("data", {}))
    if captions_path:
        data.setdefault("captions", {})
        cap_sha = sha256_file(captions_path)
        if data["captions"].get("sha256") not in (None, cap_sha):
            log(f"[export] note: {captions_path} differs from the captions file the model was trained on")
        data["captions_at_export"] = {"file": os.path.basename(captions_path), "sha256": cap_sha}
    card = {
        "format": "pixel-info-model-card", "version": 1,
        "name": name or os.path.basename(os.path.normpath(out_dir)),
        "architecture": {
            "type": ckpt["architecture"],
            "description": architecture_class(ckpt["architecture"]).description,
            "encoder": (data.get("features") or {}).get("encoder"),
            "config": cfg, "parameters": count_parameters(model),
        },
        "onnx": {"opset": opset, "weights": "float16 initializers, each Cast to float32",
                 **graph_shapes(m, t),
                 "fp16_weights_max_abs_diff_log_probs": fp16_diff,
                 "exported_with": f"torch {torch.__version__}"},
        "vocab": {"size": len(ckpt["vocab"]), "specials": ckpt.get("specials")},
        "maxLength": ckpt.get("max_length"),
        "decoding": decoding if decoding is not None else card_decoding(),
        "training": {
            "selected": {"stage": meta.get("stage"), "epoch": meta.get("epoch")},
            "epochs": {"xe": sum(1 for r in hist if r.get("stage") == "xe"),
                       "scst": sum(1 for r in hist if r.get("stage") == "scst" and r.get("epoch", 0) > 0)},
            "args": meta.get("train_args"), "torch": meta.get("torch"), "date": meta.get("date"),
            "history": [{**{k: r.get(k) for k in ("stage", "epoch", "train_loss", "lr", "time_s")},
                         "val_cider": (r.get("val") or {}).get("cider"), "val_bleu4": (r.get("val") or {}).get("bleu4")}
                        for r in hist],
        },
        "data": data,
        "metrics": {"val": {k: v for k, v in (meta.get("val") or {}).items() if k != "examples"},
                    # how val was decoded when this checkpoint was selected (older checkpoints: greedy or beam N)
                    "val_decoding": meta.get("val_decoding")
                    or f"beam {((meta.get('train_args') or {}).get('val_beam') or 1)}",
                    "test": None},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(os.path.join(out_dir, "model-card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    return card


# The tiny model reads what the TypeScript encoder writes (ResNet50: a 7x7 grid of 2048 channels).
TINY_GEOMETRY = {"regions": 49, "feature_dim": 2048}


# Sizes of the tiny models by architecture (the config takes what it knows).
TINY_SIZES = {
    "show-attend-tell": {"embed_dim": 16, "hidden_dim": 24, "attention_dim": 12, "dropout": 0.5,
                         "feature_norm": "none"},
    "transformer": {"d_model": 16, "layers": 2, "heads": 2, "ffn_dim": 32, "dropout": 0.1, "max_len": 24,
                    "feature_norm": "layernorm"},
}


def tiny_checkpoint(feature_norm: Optional[str] = None, seed: int = 0,
                    architecture: str = DEFAULT_ARCHITECTURE) -> dict:
    """A deterministic random tiny decoder (24 words; show-attend-tell: H 24, A 12, no feature norm; transformer:
    d 16, 2 layers of 2 heads, with its default feature LayerNorm): for interface/parity fixtures of the TS side."""
    torch.manual_seed(seed)
    vocab = ["<pad>", "<start>", "<end>", "<unk>"] + [f"w{i}" for i in range(20)]
    sizes = dict(TINY_SIZES[architecture])
    if feature_norm is not None:
        sizes["feature_norm"] = feature_norm
    m = build_model(architecture, {"vocab_size": len(vocab), **sizes, **TINY_GEOMETRY})
    if architecture == "transformer":
        # larger embeddings than a trainable init: peaked next-word distributions, so a beam search on the random
        # model has clear winners (parity tests compare searches across runtimes)
        with torch.no_grad():
            for table in (m.embedding, m.position_embedding, m.region_embedding):
                table.weight.normal_(0.0, 1.0)
    return {"architecture": architecture, "config": m.cfg.to_dict(), "vocab": vocab,
            "specials": {"pad": 0, "start": 1, "end": 2, "unk": 3},
            "max_length": 20, "model": m.state_dict(), "meta": {"val": {"cider": 0.5}}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m trainer.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="best.pt / xe_best.pt / fp16 parts directory")
    p.add_argument("--tiny", action="store_true",
                   help="export a deterministic random tiny model instead of --checkpoint (fixtures for the TS tests)")
    p.add_argument("--architecture", choices=sorted(ARCHITECTURES),
                   help=f"with --tiny: the tiny model's architecture (default {DEFAULT_ARCHITECTURE})")
    p.add_argument("--captions", help="captions.json: its vocabulary must equal the checkpoint's")
    p.add_argument("--out", help="model directory to write (models/NAME)")
    p.add_argument("--name", help="model name in the card (default: the --out folder name)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--parity-fixture", help="also write inputs + PyTorch outputs of both graphs to this file")
    p.add_argument("--split-checkpoint", metavar="DIR", help="write the checkpoint as fp16 parts of <= 15 MB to DIR")
    p.add_argument("--eval-json", help="trainer.evaluate result to record in the card (val beam/length-penalty sweep)")
    g = p.add_argument_group("the card's decoding section (default: src/decoder/generation-defaults.json)")
    g.add_argument("--beam-size", type=int)
    g.add_argument("--max-length", type=int, help="most words in a caption")
    g.add_argument("--length-penalty", type=float)
    g.add_argument("--no-repeat-ngram", type=int, help="0 turns the rule off")
    g.add_argument("--rules", help="comma-separated rule names ('' for none)")
    g.add_argument("--dangling-words", metavar="FILE", help='JSON {"group": [words], ...} for no-dangling-ending')
    a = p.parse_args(argv)
    if bool(a.checkpoint) == bool(a.tiny):
        p.error("give --checkpoint or --tiny")
    if a.architecture and not a.tiny:
        p.error("--architecture is for --tiny (a checkpoint records its own)")
    if not a.out and not a.split_checkpoint:
        p.error("nothing to do: give --out and/or --split-checkpoint")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    ckpt = tiny_checkpoint(architecture=a.architecture or DEFAULT_ARCHITECTURE) if a.tiny else load_checkpoint(a.checkpoint)
    dangling = None
    if a.dangling_words:
        with open(a.dangling_words, encoding="utf-8") as f:
            dangling = json.load(f)
    try:
        decoding = card_decoding(beam_size=a.beam_size, max_length=a.max_length, length_penalty=a.length_penalty,
                                 no_repeat_ngram=a.no_repeat_ngram, dangling_words=dangling,
                                 rules=None if a.rules is None else [r for r in a.rules.split(",") if r])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.captions:
        with open(a.captions, encoding="utf-8") as f:
            vocab = json.load(f)["vocab"]
        if vocab != ckpt["vocab"]:
            print(f"error: {a.captions} has a different vocabulary than {a.checkpoint}", file=sys.stderr)
            return 2
    if a.split_checkpoint:
        hdr = save_fp16_parts(ckpt, a.split_checkpoint)
        print(f"[export] {a.split_checkpoint}: {len(hdr['parts'])} part(s), {hdr['total_bytes'] / 1e6:.1f} MB "
              f"(sha256 {hdr['sha256'][:12]})", file=sys.stderr)
    if a.out:
        card = export_model(ckpt, a.out, a.opset, a.parity_fixture, a.captions, a.name, decoding,
                            log=lambda s: print(s, file=sys.stderr))
        if a.eval_json:
            with open(a.eval_json, encoding="utf-8") as f:
                card["metrics"]["val_sweep"] = json.load(f)
            with open(os.path.join(a.out, "model-card.json"), "w", encoding="utf-8") as f:
                json.dump(card, f, indent=1)
        sizes = {n: os.path.getsize(os.path.join(a.out, n)) for n in ("decoder_init.onnx", "decoder_step.onnx")}
        print(f"[export] {a.out}: " + ", ".join(f"{n} {s / 1e6:.1f} MB" for n, s in sizes.items()), file=sys.stderr)
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            print("[export] onnxruntime not importable here: parity not checked in Python "
                  "(use --parity-fixture with the TypeScript test, or python3 -m trainer.parity)", file=sys.stderr)
        else:
            fx = a.parity_fixture or os.path.join(a.out, ".parity.tmp")
            if not a.parity_fixture:
                load_and_fixture(ckpt, fx)
            diffs = parity.check(a.out, fx)
            if not a.parity_fixture:
                os.remove(fx)
            worst = max(diffs.values())
            print(f"[export] onnxruntime parity: worst max abs diff {worst:.3g}", file=sys.stderr)
            if worst >= 1e-4:
                print("error: exported graphs do not match PyTorch", file=sys.stderr)
                return 1
    return 0


def load_and_fixture(ckpt: dict, path: str) -> None:
    m = fp16_export_copy(model_from_checkpoint(ckpt).eval())
    parity.write_fixture(path, reference_outputs(m))


if __name__ == "__main__":
    sys.exit(main())
