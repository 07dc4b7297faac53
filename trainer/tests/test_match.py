"""The matcher trainer (trainer/match.py): the loss prefers true pairs, recall is computed as VSE++ does, training on
the synthetic store learns the concepts, and the export writes the documented graphs and a calibrated card."""

import json
import os
import tempfile
import unittest

import torch

from trainer import match
from trainer.onnx_proto import read_model
from trainer.tests.synth import write_store

TINY = json.dumps(dict(pca_dim=16, embed_dim=16, word_dim=8, hidden_dim=16, image_hidden=32, dropout=0.0))
TINY_GRU = json.dumps(dict(json.loads(TINY), text="gru"))


class RecallTest(unittest.TestCase):
    def test_perfect_and_shuffled(self):
        imgs = torch.eye(4)
        cap_image = torch.tensor([0, 0, 1, 2, 3])
        txts = imgs[cap_image]
        r = match.recalls(imgs, txts, cap_image)
        self.assertEqual(r["t2i_r1"], 100.0)
        self.assertEqual(r["i2t_r1"], 100.0)
        wrong = imgs[torch.tensor([1, 1, 2, 3, 0])]  # every caption points at the next image
        r = match.recalls(imgs, wrong, cap_image)
        self.assertEqual(r["t2i_r1"], 0.0)
        self.assertEqual(r["t2i_medr"], 2.0)

    def test_loss_prefers_true_pairs(self):
        torch.manual_seed(0)
        img = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
        ids = torch.arange(8)
        scale = torch.tensor(2.0)
        good = match.contrastive_loss(img, img, ids, scale, 0.2, 1.0)
        bad = match.contrastive_loss(img, img.roll(1, 0), ids, scale, 0.2, 1.0)
        self.assertLess(float(good), float(bad))

    def test_calibration_pairs_and_platt(self):
        torch.manual_seed(0)
        sim = torch.rand(20, 4) * 0.3
        cap_image = torch.arange(20) % 4
        sim[torch.arange(20), cap_image] += 0.5
        cos, lab = match.calibration_pairs(sim, cap_image)
        self.assertEqual(int(lab.sum()), 20)
        self.assertEqual(len(lab), 40)
        again = match.calibration_pairs(sim, cap_image)
        self.assertTrue(torch.equal(cos, again[0]))
        hard, _ = match.calibration_pairs(sim, cap_image, hard_negatives=True)
        self.assertGreater(float(hard[lab == 0].mean()), float(cos[lab == 0].mean()))  # the hardest score higher
        a, b = match.fit_platt(cos, lab)
        self.assertGreater(a, 0)
        table, ece = match.reliability(torch.sigmoid(a * cos + b), lab)
        self.assertEqual(sum(r["count"] for r in table), len(lab))
        self.assertLess(ece, 0.2)

    def test_mulberry32_as_typescript(self):
        g = match.mulberry32(42)  # the values test/eval-match.test.ts checks
        self.assertEqual([next(g) for _ in range(5)], [2581720956, 1925393290, 3661312704, 2876485805, 750819978])


class TrainExportTest(unittest.TestCase):
    def test_train_and_export(self):
        with tempfile.TemporaryDirectory() as d:
            paths = write_store(d, n_images=30, channels=32, hflip=False)
            run = os.path.join(d, "run")
            args = ["--features", paths["store"], "--captions", paths["captions"], "--out", run, "--epochs", "15",
                    "--batch-size", "8", "--lr", "1e-2", "--config", TINY, "--threads", "1", "--hard-after", "100"]
            self.assertEqual(match.main(args), 0)
            log = [json.loads(l) for l in open(os.path.join(run, "log.jsonl"))]
            self.assertGreater(log[-1]["t2i_r1"], 40.0, log[-1])  # 6 concepts: chance is ~1/6 of the val images
            out = os.path.join(d, "model")
            self.assertEqual(match.main(["--export", os.path.join(run, "best.pt"), "--captions", paths["captions"],
                                         "--features", paths["store"], "--out", out]), 0)
            card = json.load(open(os.path.join(out, "model-card.json")))
            self.assertEqual(card["format"], "pixel-info-matcher")
            self.assertEqual(card["embeddingDim"], 16)
            self.assertGreater(card["calibration"]["a"], 0)
            self.assertEqual(json.load(open(os.path.join(out, "vocab.json"))), paths["vocab"])
            img = read_model(os.path.join(out, "image.onnx"))
            txt = read_model(os.path.join(out, "text.onnx"))
            self.assertEqual([i["name"] for i in img["inputs"]], ["features"])
            self.assertEqual([i["name"] for i in txt["inputs"]], ["tokens", "lengths"])
            self.assertEqual([o["name"] for o in txt["outputs"]], ["embedding"])
            FLOAT16 = 10
            self.assertTrue(all(i["data_type"] == FLOAT16 for i in img["initializers"] if len(i["dims"]) == 2), "fp16 weights")

    def test_gru_text_encoder_exports(self):
        with tempfile.TemporaryDirectory() as d:
            paths = write_store(d, n_images=30, channels=32, hflip=False)
            run = os.path.join(d, "run")
            self.assertEqual(match.main(["--features", paths["store"], "--captions", paths["captions"], "--out", run,
                                         "--epochs", "1", "--batch-size", "8", "--config", TINY_GRU, "--threads", "1"]), 0)
            out = os.path.join(d, "model")
            self.assertEqual(match.main(["--export", os.path.join(run, "best.pt"), "--captions", paths["captions"],
                                         "--out", out]), 0)
            ops = {n["op"] for n in read_model(os.path.join(out, "text.onnx"))["nodes"]}
            self.assertIn("GRU", ops)


if __name__ == "__main__":
    unittest.main()
