"""trainer.reexport: a model directory's weights read back from its ONNX files give the same model and, exported
again, the same graphs; the card keeps everything but the `onnx` section."""

import json
import os
import tempfile
import unittest

import torch

from trainer.export import export_model, tiny_checkpoint
from trainer.reexport import checkpoint_from_model_dir, main as reexport_main


class ReexportTest(unittest.TestCase):
    def test_weights_round_trip_and_graphs_are_rebuilt_identically(self):
        ckpt = tiny_checkpoint("layernorm", seed=3)
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
            export_model(ckpt, src, log=lambda s: None)
            with open(os.path.join(src, "model-card.json")) as f:
                card = json.load(f)
            card["metrics"]["test"] = {"cider": 0.123}  # something only the old card knows
            with open(os.path.join(src, "model-card.json"), "w") as f:
                json.dump(card, f)

            back, _ = checkpoint_from_model_dir(src)
            self.assertEqual(sorted(back["model"]), sorted(ckpt["model"]))
            for k, v in ckpt["model"].items():  # the files hold fp16 weights: equal after the same rounding
                self.assertTrue(torch.equal(back["model"][k], v.half().float()), k)

            self.assertEqual(reexport_main([src, "--out", dst]), 0)
            for g in ("init", "step"):
                with open(os.path.join(src, f"decoder_{g}.onnx"), "rb") as a, \
                        open(os.path.join(dst, f"decoder_{g}.onnx"), "rb") as b:
                    self.assertEqual(a.read(), b.read(), g)
            with open(os.path.join(dst, "model-card.json")) as f:
                new = json.load(f)
            self.assertEqual(new["metrics"]["test"], {"cider": 0.123})
            self.assertEqual(new["onnx"]["step"]["inputs"]["image"], ["N"])
            self.assertEqual(new["reexported"]["from_step_inputs"], list(card["onnx"]["step"]["inputs"]))
            with open(os.path.join(dst, "vocab.json")) as f:
                self.assertEqual(json.load(f), ckpt["vocab"])

    def test_missing_directory_is_a_clear_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(reexport_main([os.path.join(tmp, "nope")]), 1)


if __name__ == "__main__":
    unittest.main()
