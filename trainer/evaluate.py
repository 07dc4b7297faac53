"""Decode a split with a checkpoint and score it (CIDEr-D, BLEU-1..4 as the COCO toolkit), for a grid of beam sizes and
length penalties; used to choose the decoding settings on val. The final test numbers come from the TypeScript eval.
Decoding is the beam search of trainer/decoding.py with the library's defaults (src/decoder/generation-defaults.json:
rules, dangling words, max length, n-gram blocking), and by default the grid is just the defaults' beam size and
length penalty.

  python3 -m trainer.evaluate --checkpoint RUN_DIR/best.pt --features STORE --captions captions.json \\
      [--split val] [--beams 1,2,3,5] [--length-penalties 0,0.5,1] [--out sweep.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import DataError, Dataset
from .decoding import default_config
from .metrics import evaluate


def main(argv=None) -> int:
    defaults = default_config()
    p = argparse.ArgumentParser(prog="python3 -m trainer.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--features", required=True)
    p.add_argument("--captions", required=True)
    p.add_argument("--split", default="val", choices=["val", "test", "train"])
    p.add_argument("--beams", default=str(defaults.beam_size), help="comma-separated beam sizes")
    p.add_argument("--length-penalties", default=str(defaults.length_penalty), help="comma-separated exponents")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=500, help="images per search call")
    p.add_argument("--examples", type=int, default=5)
    p.add_argument("--out", help="write the results as JSON here")
    a = p.parse_args(argv)
    if a.split == "test":
        print("[evaluate] note: test is for the final report only; choose settings on val", file=sys.stderr)
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) or a.device == "cuda" else "cpu")
    ck = load_checkpoint(a.checkpoint)
    try:
        ds = Dataset(a.features, a.captions, dev, splits=(a.split,), log=lambda s: print(s, file=sys.stderr))
        ds.check_geometry(ck["config"], a.checkpoint)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if ck["vocab"] != ds.captions.vocab:
        print(f"error: {a.captions} has a different vocabulary than {a.checkpoint}", file=sys.stderr)
        return 2
    model = model_from_checkpoint(ck).to(dev).eval()
    results = []
    for beam in [int(x) for x in a.beams.split(",")]:
        for lp in [float(x) for x in a.length_penalties.split(",")]:
            if beam == 1 and lp != 0:
                continue  # one hypothesis: nothing for a length penalty to rank
            config = defaults.replace(beam_size=beam, length_penalty=lp, n_best=1)
            t0 = time.time()
            r = evaluate(model, ds, a.split, config, amp=False, examples=a.examples, batch_size=a.batch_size)
            r.update(beam=beam, length_penalty=lp, decoding=config.to_json(), time_s=round(time.time() - t0, 1))
            results.append(r)
            print(f"beam {beam} lp {lp:g}: CIDEr-D {r['cider']:.4f} BLEU-4 {r['bleu4']:.4f} BLEU-1 {r['bleu1']:.4f} "
                  f"len {r['mean_length']:.1f} vocab {r['vocab_used']} ({r['time_s']}s)")
    if not results:
        print("error: nothing to evaluate (beam 1 takes only length penalty 0)", file=sys.stderr)
        return 2
    best = max(results, key=lambda r: r["cider"])
    print(f"best on {a.split} by CIDEr-D: beam {best['beam']} length_penalty {best['length_penalty']:g}")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"checkpoint": a.checkpoint, "split": a.split, "results": results,
                       "best": {"beam": best["beam"], "length_penalty": best["length_penalty"]}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
