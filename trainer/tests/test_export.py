"""ONNX export: graph interface of docs/formats.md, fp16 initializers + Cast, parity fixture, fp16 checkpoint parts, the
card's architecture and decoding sections, and loading checkpoints written before the architecture was recorded."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

from trainer import parity
from trainer.checkpoint import load_checkpoint, load_fp16_parts, model_from_checkpoint, save_atomic, save_fp16_parts
from trainer.decoding import default_config
from trainer.export import export_model, fp16_export_copy, main as export_main, tiny_checkpoint
from trainer.models import ARCHITECTURES
from trainer.onnx_proto import read_model
from trainer.tests.synth import trained_run

FLOAT, INT64, FLOAT16 = 1, 7, 10
GRAPHS = ARCHITECTURES["show-attend-tell"].ONNX_GRAPHS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def random_ckpt(feature_norm="none"):
    return tiny_checkpoint(feature_norm)


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ckpt = random_ckpt()
        cls.out = os.path.join(cls.tmp.name, "model")
        cls.fixture = os.path.join(cls.tmp.name, "parity.bin")
        cls.card = export_model(cls.ckpt, cls.out, parity_fixture=cls.fixture, log=lambda s: None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_graph_interfaces_match_formats_md(self):
        cfg = self.ckpt["config"]
        A, H, V = cfg["attention_dim"], cfg["hidden_dim"], cfg["vocab_size"]
        init = read_model(os.path.join(self.out, "decoder_init.onnx"))
        step = read_model(os.path.join(self.out, "decoder_step.onnx"))
        io = lambda vs: [(v["name"], v["elem_type"], v["dims"]) for v in vs]  # noqa: E731
        self.assertEqual(io(init["inputs"]), [("features", FLOAT, ["B", 49, 2048])])
        self.assertEqual(io(init["outputs"]), [("memory", FLOAT, ["B", 49, 2048]), ("proj_features", FLOAT, ["B", 49, A]),
                                               ("h", FLOAT, ["B", H]), ("c", FLOAT, ["B", H])])
        self.assertEqual(io(step["inputs"]), [("tokens", INT64, ["N"]), ("image", INT64, ["N"]), ("h", FLOAT, ["N", H]),
                                              ("c", FLOAT, ["N", H]), ("memory", FLOAT, ["B", 49, 2048]),
                                              ("proj_features", FLOAT, ["B", 49, A])])
        self.assertEqual(io(step["outputs"]), [("log_probs", FLOAT, ["N", V]), ("h_out", FLOAT, ["N", H]),
                                               ("c_out", FLOAT, ["N", H]), ("alpha", FLOAT, ["N", 49])])
        self.assertTrue(13 <= init["opset"][0] <= 17)

    def test_weights_are_fp16_initializers_cast_to_fp32(self):
        n_params = {"init": 0, "step": 0}
        for g in ("init", "step"):
            m = read_model(os.path.join(self.out, f"decoder_{g}.onnx"))
            consumers = {}
            for node in m["nodes"]:
                for i in node["inputs"]:
                    consumers.setdefault(i, []).append(node)
            weights = [t for t in m["initializers"] if t["data_type"] == FLOAT16]
            self.assertGreater(len(weights), 3)
            for t in m["initializers"]:  # anything else is a small constant, not a weight
                if t["data_type"] != FLOAT16:
                    self.assertLessEqual(int(np.prod(t["dims"] or [1])), 4, t["name"])
            for t in weights:
                self.assertEqual(t["data_type"], FLOAT16, t["name"])
                uses = consumers.get(t["name"], [])
                self.assertTrue(uses and all(u["op"] == "Cast" and u["attrs"].get("to") == FLOAT for u in uses),
                                t["name"])
                n_params[g] += int(np.prod(t["dims"] or [1]))
        sd = self.ckpt["model"]
        init_names = ["feature_norm", "encoder_att", "init_h", "init_c"]  # everything per image
        self.assertEqual(n_params["init"], sum(v.numel() for k, v in sd.items() if k.split(".")[0] in init_names))
        self.assertEqual(n_params["step"], sum(v.numel() for k, v in sd.items() if k.split(".")[0] not in init_names))

    def test_vocab_and_card(self):
        with open(os.path.join(self.out, "vocab.json")) as f:
            self.assertEqual(json.load(f), self.ckpt["vocab"])
        with open(os.path.join(self.out, "model-card.json")) as f:
            card = json.load(f)
        self.assertEqual(card["architecture"]["config"], self.ckpt["config"])
        self.assertEqual(card["architecture"]["type"], "show-attend-tell")
        self.assertEqual(card["onnx"]["step"]["outputs"]["alpha"], ["N", 49])
        self.assertEqual(card["onnx"]["init"]["inputs"]["features"], ["B", 49, 2048])
        d = default_config().to_json()
        self.assertEqual(card["decoding"], {k: d[k] for k in ("beamSize", "maxLength", "lengthPenalty",
                                                              "noRepeatNgram", "rules", "danglingWords")})
        self.assertEqual(card["metrics"]["val"]["cider"], 0.5)
        self.assertIsNone(card["metrics"]["test"])
        self.assertLess(card["onnx"]["fp16_weights_max_abs_diff_log_probs"], 0.05)

    def test_parity_fixture_holds_pytorch_outputs(self):
        header, t = parity.read_fixture(self.fixture)
        names = {x["name"] for x in header["tensors"]}
        for graph, (inputs, outputs, _) in GRAPHS.items():
            for n in inputs + outputs:
                self.assertIn(f"{graph}.{n}", names)
        self.assertEqual(t["step.tokens"].dtype, np.int64)
        self.assertNotEqual(t["step.tokens"].shape[0], t["init.features"].shape[0])  # N != B
        step_inputs, step_outputs, _ = GRAPHS["step"]
        m = fp16_export_copy(model_from_checkpoint(self.ckpt).eval())
        with torch.no_grad():
            out = m.step(*(torch.from_numpy(t[f"step.{n}"].copy()) for n in step_inputs))
        for n, o in zip(step_outputs, out):
            np.testing.assert_allclose(o.numpy(), t[f"step.{n}"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(t["step.alpha"].sum(1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.log(np.exp(t["step.log_probs"].astype(np.float64)).sum(1)), 0.0, atol=1e-5)
        # the export copy (fp16-rounded weights, hand-written LSTM cell) stays close to the trained fp32 model
        full = model_from_checkpoint(self.ckpt).eval()
        with torch.no_grad():
            ref = full.step(*(torch.from_numpy(t[f"step.{n}"].copy()) for n in step_inputs))
        np.testing.assert_allclose(ref[0].numpy(), t["step.log_probs"], atol=0.05)

    def test_onnxruntime_parity(self):
        """Runs with onnxruntime in this Python, or in the Python named by PIXEL_INFO_ORT_PYTHON (numpy + ort)."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            py = os.environ.get("PIXEL_INFO_ORT_PYTHON")
            if not py:
                self.skipTest("onnxruntime not importable (set PIXEL_INFO_ORT_PYTHON to a python that has it)")
            r = subprocess.run([py, "-m", "trainer.parity", self.out, self.fixture], cwd=REPO,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("parity OK", r.stdout)
            return
        diffs = parity.check(self.out, self.fixture)
        self.assertLess(max(diffs.values()), 1e-4, diffs)

    def test_fp16_parts_roundtrip(self):
        with tempfile.TemporaryDirectory() as d:
            hdr = save_fp16_parts(self.ckpt, d, part_bytes=100_000)
            self.assertGreater(len(hdr["parts"]), 1)
            for p in hdr["parts"]:
                self.assertLessEqual(os.path.getsize(os.path.join(d, p["file"])), 100_000)
            back = load_fp16_parts(d)
            self.assertEqual(back["vocab"], self.ckpt["vocab"])
            for k, v in self.ckpt["model"].items():
                self.assertTrue(torch.equal(back["model"][k], v.half().float()), k)
            self.assertEqual(back["architecture"], "show-attend-tell")
            model_from_checkpoint(back)  # loads into a model
            with open(os.path.join(d, hdr["parts"][1]["file"]), "r+b") as f:
                f.write(b"\x00\x01")
            with self.assertRaises(ValueError):
                load_fp16_parts(d)

    def test_layernorm_model_exports(self):
        with tempfile.TemporaryDirectory() as d:
            ck = random_ckpt("layernorm")
            export_model(ck, d, parity_fixture=os.path.join(d, "p.bin"), log=lambda s: None)
            step = read_model(os.path.join(d, "decoder_step.onnx"))
            self.assertEqual([v["name"] for v in step["outputs"]], GRAPHS["step"][1])

    def test_checkpoint_without_architecture_loads_as_show_attend_tell(self):
        with tempfile.TemporaryDirectory() as d:
            old = dict(self.ckpt)
            del old["architecture"]
            old["config"] = {k: v for k, v in old["config"].items() if k != "regions"}
            save_atomic(old, os.path.join(d, "old.pt"))
            ck = load_checkpoint(os.path.join(d, "old.pt"))
            self.assertEqual(ck["architecture"], "show-attend-tell")
            self.assertEqual(ck["config"], self.ckpt["config"])
            hdr = save_fp16_parts({**old, "architecture": None}, os.path.join(d, "parts"))
            self.assertIsNone(hdr["architecture"])
            self.assertEqual(load_checkpoint(os.path.join(d, "parts"))["architecture"], "show-attend-tell")

    def test_decoding_overrides_on_the_command_line(self):
        with tempfile.TemporaryDirectory() as d:
            words = os.path.join(d, "dangling.json")
            with open(words, "w") as f:
                json.dump({"article": ["w1"]}, f)
            rc = export_main(["--tiny", "--out", d, "--beam-size", "5", "--length-penalty", "0.5",
                              "--rules", "no-specials,no-dangling-ending", "--dangling-words", words])
            self.assertEqual(rc, 0)
            with open(os.path.join(d, "model-card.json")) as f:
                dec = json.load(f)["decoding"]
            self.assertEqual((dec["beamSize"], dec["lengthPenalty"], dec["maxLength"]),
                             (5, 0.5, default_config().max_length))
            self.assertEqual(dec["rules"], ["no-specials", "no-dangling-ending"])
            self.assertEqual(dec["danglingWords"], {"article": ["w1"]})
            self.assertEqual(export_main(["--tiny", "--out", d, "--rules", "no-such-rule"]), 2)


class ExportTrainedCliTest(unittest.TestCase):
    def test_cli_on_trained_run(self):
        t = trained_run()
        with tempfile.TemporaryDirectory() as d:
            out, parts = os.path.join(d, "m"), os.path.join(d, "parts")
            rc = export_main(["--checkpoint", os.path.join(t["run"], "best.pt"), "--captions", t["captions"],
                              "--out", out, "--split-checkpoint", parts, "--parity-fixture", os.path.join(d, "p.bin")])
            self.assertEqual(rc, 0)
            for f in ("decoder_init.onnx", "decoder_step.onnx", "vocab.json", "model-card.json"):
                self.assertTrue(os.path.isfile(os.path.join(out, f)), f)
            with open(os.path.join(out, "model-card.json")) as f:
                card = json.load(f)
            self.assertEqual(card["training"]["epochs"]["xe"], 14)  # the whole run, not just up to the best epoch
            self.assertGreater(card["metrics"]["val"]["cider"], 5.0)
            self.assertIn("sha256", card["data"]["captions"])
            # exporting from the parts gives the same graphs' weights (parts are the fp16 the ONNX stores anyway)
            out2 = os.path.join(d, "m2")
            self.assertEqual(export_main(["--checkpoint", parts, "--out", out2]), 0)
            for g in ("decoder_init.onnx", "decoder_step.onnx"):
                a, b = read_model(os.path.join(out, g)), read_model(os.path.join(out2, g))
                self.assertEqual(a["initializers"], b["initializers"])


if __name__ == "__main__":
    unittest.main()
