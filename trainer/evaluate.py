"""Decode a split with a checkpoint and score it (CIDEr-D, BLEU-1..4 as the COCO toolkit), for a grid of beam sizes and
length penalties; used to choose the decoding settings on val. The final test numbers come from the TypeScript eval.

  python3 -m trainer.evaluate --checkpoint RUN_DIR/best.pt --features STORE --captions captions.json \\
      [--split val] [--beams 1,2,3,5] [--length-penalties 0,0.5,1] [--out sweep.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .checkpoint import build_model, load_checkpoint
from .data import Dataset
from .metrics import evaluate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m trainer.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--captions", required=True)
    p.add_argument("--split", default="val", choices=["val", "test", "train"])
    p.add_argument("--beams", default="1,3")
    p.add_argument("--length-penalties", default="0")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--examples", type=int, default=5)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.split == "test":
        print("[evaluate] note: test is for the final report only; choose settings on val", file=sys.stderr)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) or a.device == "cuda" else "cpu")
    ck = load_checkpoint(a.checkpoint)
    ds = Dataset(a.features, a.captions, dev, splits=(a.split,), log=lambda s: print(s, file=sys.stderr))
    if ck["vocab"] != ds.captions.vocab:
        print(f"error: {a.captions} has a different vocabulary than {a.checkpoint}", file=sys.stderr)
        return 2
    model = build_model(ck).to(dev).eval()
    results = []
    for beam in [int(x) for x in a.beams.split(",")]:
        for lp in [float(x) for x in a.length_penalties.split(",")]:
            if beam == 1 and lp != 0:
                continue  # greedy has no length penalty
            t0 = time.time()
            r = evaluate(model, ds, a.split, beam=beam, length_penalty=lp, amp=False, examples=a.examples)
            r.update(beam=beam, length_penalty=lp, time_s=round(time.time() - t0, 1))
            results.append(r)
            print(f"beam {beam} lp {lp:g}: CIDEr-D {r['cider']:.4f} BLEU-4 {r['bleu4']:.4f} BLEU-1 {r['bleu1']:.4f} "
                  f"len {r['mean_length']:.1f} vocab {r['vocab_used']} ({r['time_s']}s)")
    best = max(results, key=lambda r: r["cider"])
    print(f"best on {a.split} by CIDEr-D: beam {best['beam']} length_penalty {best['length_penalty']:g}")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"checkpoint": a.checkpoint, "split": a.split, "results": results,
                       "best": {"beam": best["beam"], "length_penalty": best["length_penalty"]}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
