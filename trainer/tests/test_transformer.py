"""The `transformer` architecture: shapes, teacher forcing equal to the step with its key/value cache, causal masking,
sampling, the config and its training arguments, training end to end on the synthetic store (XE, val beam search,
SCST, checkpoints, fp16 parts), and the ONNX export (interface, fp16 initializers, parity fixture, onnxruntime)."""

import json
import os
import subprocess
import tempfile
import unittest

import numpy as np
import torch

from trainer import parity
from trainer.checkpoint import load_checkpoint, model_from_checkpoint
from trainer.data import Dataset
from trainer.decoding import beam_search, decoding_config
from trainer.export import export_model, fp16_export_copy, main as export_main, tiny_checkpoint
from trainer.models import ARCHITECTURES, build_model
from trainer.models.transformer import Transformer, TransformerConfig
from trainer.onnx_proto import read_model
from trainer.tests.synth import tiny_train_args, write_store
from trainer.train import main as train_main, parse_args

FLOAT, INT64, FLOAT16 = 1, 7, 10
GRAPHS = ARCHITECTURES["transformer"].ONNX_GRAPHS
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small(**kw) -> Transformer:
    torch.manual_seed(kw.pop("seed", 0))
    cfg = {"vocab_size": 30, "feature_dim": 64, "regions": 49, "d_model": 32, "layers": 2, "heads": 4,
           "ffn_dim": 48, "dropout": 0.1, "max_len": 16, **kw}
    return build_model("transformer", cfg).eval()


def feats(n: int, dim: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.relu(torch.randn(n, 49, dim, generator=torch.Generator().manual_seed(seed)))


def ids(n: int, t: int, vocab: int = 30, seed: int = 2) -> torch.Tensor:
    x = torch.randint(3, vocab, (n, t + 1), generator=torch.Generator().manual_seed(seed))
    x[:, 0] = 1
    return x


def stepwise(model, f, x):
    """log-probs [B,T,V] and alpha [B,T,R] by feeding x[:, t] one at a time through step_state."""
    state = model.init_state(f)
    lps, alphas = [], []
    for t in range(x.size(1) - 1):
        lp, a, state = model.step_state(x[:, t], state)
        lps.append(lp)
        alphas.append(a)
    return torch.stack(lps, 1), torch.stack(alphas, 1), state


class ModelTest(unittest.TestCase):
    def test_shapes_and_attention_rows(self):
        m = small()
        f, x = feats(3), ids(3, 7)
        with torch.no_grad():
            logits, alpha = m(f, x)
            self.assertEqual(tuple(logits.shape), (3, 7, 30))
            self.assertEqual(tuple(alpha.shape), (3, 7, 49))
            torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 7))
            memory, ck, cv = m.init(f)
            self.assertEqual(tuple(memory.shape), (3, 49, 32))
            self.assertEqual(tuple(ck.shape), (3, 2, 4, 49, 8))  # [B, layers, heads, R, head_dim]
            self.assertEqual(tuple(cv.shape), (3, 2, 4, 49, 8))
            past = torch.zeros(4, 2, 4, 0, 8)
            lp, pk, pv, a = m.step(torch.tensor([1, 1, 1, 1]), torch.tensor([2, 0, 0, 1]), past, past, ck, cv)
            self.assertEqual(tuple(lp.shape), (4, 30))
            self.assertEqual(tuple(pk.shape), (4, 2, 4, 1, 8))
            self.assertEqual(tuple(pv.shape), (4, 2, 4, 1, 8))
            self.assertEqual(tuple(a.shape), (4, 49))
            torch.testing.assert_close(lp.exp().sum(-1), torch.ones(4))

    def test_teacher_forcing_equals_the_step_with_its_cache(self):
        for kw in ({}, {"feature_norm": "none"}, {"tie_embeddings": False}, {"layers": 3, "heads": 2}):
            m = small(**kw)
            f, x = feats(3), ids(3, 9)
            with torch.no_grad():
                logits, alpha = m(f, x)
                lp, a, state = stepwise(m, f, x)
            torch.testing.assert_close(lp, torch.log_softmax(logits, -1), atol=2e-5, rtol=0, msg=str(kw))
            torch.testing.assert_close(a, alpha, atol=2e-6, rtol=0, msg=str(kw))
            self.assertEqual(tuple(state["past_keys.0"].shape), (3, m.cfg.heads, 9, m.head_dim))

    def test_exported_step_gathers_image_rows_like_the_state_step(self):
        m = small()
        f = feats(2)
        image = torch.tensor([1, 0, 1])
        with torch.no_grad():
            _, ck, cv = m.init(f)
            state = {k: v[image] for k, v in m.init_state(f).items()}
            pk = pv = torch.zeros(3, 2, 4, 0, 8)
            for tok in ([1, 1, 1], [5, 6, 7], [8, 3, 9]):
                tokens = torch.tensor(tok)
                lp1, pk, pv, a1 = m.step(tokens, image, pk, pv, ck, cv)
                lp2, a2, state = m.step_state(tokens, state)
                torch.testing.assert_close(lp1, lp2)
                torch.testing.assert_close(a1, a2)
            for i in range(2):
                torch.testing.assert_close(pk[:, i], state[f"past_keys.{i}"])
                torch.testing.assert_close(pv[:, i], state[f"past_values.{i}"])

    def test_causal_mask_future_tokens_do_not_change_earlier_logits(self):
        m = small()
        f, x = feats(2), ids(2, 8)
        y = x.clone()
        y[:, 5:] = (x[:, 5:] + 7) % 30  # change the inputs from position 5 on
        with torch.no_grad():
            lx, ax = m(f, x)
            ly, ay = m(f, y)
        torch.testing.assert_close(lx[:, :5], ly[:, :5], atol=0, rtol=0)
        torch.testing.assert_close(ax[:, :5], ay[:, :5], atol=0, rtol=0)
        self.assertGreater(float((lx[:, 5:] - ly[:, 5:]).abs().max()), 1e-3)

    def test_positions_past_max_len_reuse_the_last(self):
        m = small(max_len=4)
        f, x = feats(1), ids(1, 7)
        with torch.no_grad():
            logits, _ = m(f, x)
            lp, _, _ = stepwise(m, f, x)
        torch.testing.assert_close(lp, torch.log_softmax(logits, -1), atol=2e-5, rtol=0)

    def test_sample_greedy_and_multinomial(self):
        m = small()
        f = feats(4)
        with torch.no_grad():
            g, glp = m.sample(f, 1, 2, 10, greedy=True)
        self.assertEqual(tuple(g.shape), (4, 10))
        # greedy is the argmax of the step at every position
        x = torch.cat([torch.ones(4, 1, dtype=torch.long), g], 1)
        with torch.no_grad():
            logits, _ = m(f, x)
        lp = torch.log_softmax(logits, -1)
        for b in range(4):
            for t in range(10):
                self.assertEqual(int(lp[b, t].argmax()), int(g[b, t]))
                if int(g[b, t]) == 2:
                    break
        torch.testing.assert_close(m.greedy(f, 1, 2, 10), g)
        m.train()
        seqs, logps = m.sample(f.repeat_interleave(3, 0), 1, 2, 12, generator=torch.Generator().manual_seed(0))
        self.assertEqual(tuple(seqs.shape), (12, 12))
        self.assertTrue(logps.requires_grad)
        for s, l in zip(seqs.tolist(), logps.tolist()):
            if 2 in s:
                e = s.index(2)
                self.assertTrue(all(t == 2 for t in s[e:]))
                self.assertTrue(all(v == 0.0 for v in l[e + 1:]))
        (-logps.sum()).backward()
        self.assertIsNotNone(m.embedding.weight.grad)

    def test_tiny_model_overfits_a_few_captions(self):
        torch.manual_seed(0)
        m = build_model("transformer", {"vocab_size": 12, "feature_dim": 64, "regions": 49, "d_model": 32,
                                        "layers": 2, "heads": 4, "ffn_dim": 64, "dropout": 0.0})
        f = feats(4)
        caps = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 8, 2, 0], [1, 9, 10, 11, 2], [1, 4, 8, 11, 2]])
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        for _ in range(150):
            logits, _ = m(f, caps)
            mask = caps[:, 1:] != 0
            loss = torch.nn.functional.cross_entropy(logits[mask], caps[:, 1:][mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        got = m.greedy(f, 1, 2, 6).tolist()
        want = [[4, 5, 6, 2], [7, 8, 2], [9, 10, 11, 2], [4, 8, 11, 2]]
        self.assertEqual([g[:len(w)] for g, w in zip(got, want)], want)

    def test_tied_output_shares_the_embedding(self):
        m = small()
        self.assertIs(m.fc.weight, m.embedding.weight)
        untied = small(tie_embeddings=False)
        self.assertIsNot(untied.fc.weight, untied.embedding.weight)
        n = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
        self.assertEqual(n(untied) - n(m), 30 * 32)
        # a checkpoint holds the shared matrix once, and loads back tied
        sd = m.state_dict()
        self.assertNotIn("fc.weight", sd)
        self.assertIn("fc.weight", untied.state_dict())
        back = small(seed=5)
        back.load_state_dict(sd)
        self.assertIs(back.fc.weight, back.embedding.weight)
        torch.testing.assert_close(back.fc.weight, m.embedding.weight)

    def test_config_from_training_arguments(self):
        args = vars(parse_args(["--features", "-", "--captions", "-", "--out", "-", "--architecture", "transformer",
                                "--tf-d-model", "64", "--tf-heads", "8", "--no-tf-tie-embeddings"]))
        cfg = TransformerConfig.from_dict({**args, "vocab_size": 10, "regions": 49, "feature_dim": 2048})
        self.assertEqual((cfg.d_model, cfg.heads, cfg.tie_embeddings), (64, 8, False))
        # the transformer's own dropout and feature norm, not show-attend-tell's --dropout 0.5 / --feature-norm none
        self.assertEqual((cfg.dropout, cfg.feature_norm), (TransformerConfig.dropout, TransformerConfig.feature_norm))
        self.assertEqual(cfg.layers, TransformerConfig.layers)
        self.assertEqual(TransformerConfig.from_dict(cfg.to_dict()), cfg)  # a checkpoint's config round-trips
        with self.assertRaises(ValueError):
            small(d_model=30, heads=4)


class TrainExportTest(unittest.TestCase):
    """trainer.train --architecture transformer on the synthetic store: XE, val beam search, SCST, checkpoints,
    best-fp16 parts; then trainer.export from the parts."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.paths = write_store(cls.tmp.name)
        cls.run_dir = os.path.join(cls.tmp.name, "run")
        rc = train_main(tiny_train_args(cls.paths, cls.run_dir, [
            "--architecture", "transformer", "--tf-d-model", "32", "--tf-layers", "2", "--tf-heads", "4",
            "--tf-ffn-dim", "64", "--tf-dropout", "0", "--att-lambda", "0", "--epochs", "16", "--batch-size", "4",
            "--scst-epochs", "1", "--scst-batch", "8", "--threads", "1"]))
        assert rc == 0

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_run_selects_on_val_and_decodes_training_captions(self):
        with open(os.path.join(self.run_dir, "log.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        self.assertEqual([(r["stage"], r["epoch"]) for r in recs],
                         [("xe", e) for e in range(1, 17)] + [("scst", 0), ("scst", 1)])
        self.assertLess(recs[15]["train_loss"], recs[0]["train_loss"])
        best = load_checkpoint(os.path.join(self.run_dir, "best.pt"))
        self.assertEqual(best["architecture"], "transformer")
        self.assertEqual(best["config"]["d_model"], 32)
        self.assertEqual(best["config"]["dropout"], 0.0)
        self.assertGreater(best["meta"]["val"]["cider"], 5.0)
        with open(os.path.join(self.run_dir, "run.json")) as f:
            self.assertEqual(json.load(f)["architecture"], "transformer")
        model = model_from_checkpoint(best).eval()
        ds = Dataset(self.paths["store"], self.paths["captions"], splits=("train",), log=lambda s: None)
        tr, c = ds.splits["train"], ds.captions
        f = ds.features[tr.feature_rows].float()
        # decoded as val is (the beam search with the library's defaults: the checkpoint was selected that way)
        hyps = beam_search(model, f, decoding_config(), c.vocab, c.specials)
        self.assertEqual([c.words(h[0].tokens) for h in hyps], [r[0] for r in tr.refs])
        # beam 1 without rules is greedy decoding
        greedy = [[t for t in s if t != c.end] for s in model.greedy(f, c.start, c.end, c.max_length + 1).tolist()]
        hyps = beam_search(model, f, decoding_config(beam_size=1, rules=[], no_repeat_ngram=0), c.vocab, c.specials)
        self.assertEqual([h[0].tokens for h in hyps], greedy)

    def test_fp16_parts_export_and_card(self):
        parts = load_checkpoint(os.path.join(self.run_dir, "best-fp16"))
        self.assertEqual(parts["architecture"], "transformer")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "m")
            rc = export_main(["--checkpoint", os.path.join(self.run_dir, "best-fp16"), "--captions",
                              self.paths["captions"], "--out", out, "--parity-fixture", os.path.join(d, "p.bin")])
            self.assertEqual(rc, 0)
            with open(os.path.join(out, "model-card.json")) as f:
                card = json.load(f)
            self.assertEqual(card["architecture"]["type"], "transformer")
            self.assertEqual(card["architecture"]["config"], parts["config"])
            self.assertEqual(card["onnx"]["step"]["inputs"]["past_keys"], ["N", 2, 4, "T", 8])
            self.assertEqual(card["training"]["epochs"], {"xe": 16, "scst": 1})


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.ckpt = tiny_checkpoint(architecture="transformer")
        cls.out = os.path.join(cls.tmp.name, "model")
        cls.fixture = os.path.join(cls.tmp.name, "parity.bin")
        cls.card = export_model(cls.ckpt, cls.out, parity_fixture=cls.fixture, log=lambda s: None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_graph_interfaces(self):
        cfg = self.ckpt["config"]
        L, H, V, d = cfg["layers"], cfg["heads"], cfg["vocab_size"], cfg["d_model"]
        hd = d // H
        init = read_model(os.path.join(self.out, "decoder_init.onnx"))
        step = read_model(os.path.join(self.out, "decoder_step.onnx"))
        io = lambda vs: [(v["name"], v["elem_type"], v["dims"]) for v in vs]  # noqa: E731
        self.assertEqual(io(init["inputs"]), [("features", FLOAT, ["B", 49, 2048])])
        self.assertEqual(io(init["outputs"]), [("memory", FLOAT, ["B", 49, d]),
                                               ("cross_keys", FLOAT, ["B", L, H, 49, hd]),
                                               ("cross_values", FLOAT, ["B", L, H, 49, hd])])
        self.assertEqual(io(step["inputs"]), [("tokens", INT64, ["N"]), ("image", INT64, ["N"]),
                                              ("past_keys", FLOAT, ["N", L, H, "T", hd]),
                                              ("past_values", FLOAT, ["N", L, H, "T", hd]),
                                              ("cross_keys", FLOAT, ["B", L, H, 49, hd]),
                                              ("cross_values", FLOAT, ["B", L, H, 49, hd])])
        self.assertEqual(io(step["outputs"]), [("log_probs", FLOAT, ["N", V]),
                                               ("past_keys_out", FLOAT, ["N", L, H, "T1", hd]),
                                               ("past_values_out", FLOAT, ["N", L, H, "T1", hd]),
                                               ("alpha", FLOAT, ["N", 49])])
        self.assertEqual(self.card["architecture"]["type"], "transformer")
        self.assertEqual(self.card["onnx"]["step"]["outputs"]["past_keys_out"], ["N", L, H, "T1", hd])

    def test_weights_are_fp16_initializers_cast_to_fp32(self):
        sd = self.ckpt["model"]
        for g in ("init", "step"):
            m = read_model(os.path.join(self.out, f"decoder_{g}.onnx"))
            consumers = {}
            for node in m["nodes"]:
                for i in node["inputs"]:
                    consumers.setdefault(i, []).append(node)

            def casts(name):  # every use is a Cast to float (torch may route identical initializers via Identity)
                uses = consumers.get(name, [])
                return bool(uses) and all(casts(u["outputs"][0]) if u["op"] == "Identity" else
                                          (u["op"] == "Cast" and u["attrs"].get("to") == FLOAT) for u in uses)
            weights = [t for t in m["initializers"] if t["data_type"] == FLOAT16]
            self.assertGreater(len(weights), 5)
            for t in m["initializers"]:
                if t["data_type"] != FLOAT16:
                    self.assertLessEqual(int(np.prod(t["dims"] or [1])), 4, t["name"])
                else:
                    self.assertTrue(casts(t["name"]), t["name"])
            names = {t["name"] for t in weights}
            # everything per image (the projection, the region embedding, each layer's cross keys/values) is init's
            per_image = ("feature_proj", "region_embedding", "memory_norm", "cross_attn.k.", "cross_attn.v.")
            if g == "init":
                self.assertTrue(all(any(p in n for p in per_image) for n in names), names)
            else:
                self.assertFalse(any(any(p in n for p in per_image) for n in names), names)
                # the tied output projection reads the embedding's one initializer, not a copy
                self.assertEqual(sorted(n for n in names if n.endswith(("m.embedding.weight_fp16", "m.fc.weight_fp16"))),
                                 ["m.embedding.weight_fp16"])

    def test_parity_fixture_holds_pytorch_outputs(self):
        header, t = parity.read_fixture(self.fixture)
        names = {x["name"] for x in header["tensors"]}
        for graph, (inputs, outputs, _) in GRAPHS.items():
            for n in inputs + outputs:
                self.assertIn(f"{graph}.{n}", names)
        B, N, T = t["init.features"].shape[0], t["step.tokens"].shape[0], t["step.past_keys"].shape[3]
        self.assertTrue(N != B and T > 0, (N, B, T))
        self.assertEqual(t["step.past_keys_out"].shape[3], T + 1)
        step_inputs, step_outputs, _ = GRAPHS["step"]
        m = fp16_export_copy(model_from_checkpoint(self.ckpt).eval())
        with torch.no_grad():
            out = m.step(*(torch.from_numpy(t[f"step.{n}"].copy()) for n in step_inputs))
        for n, o in zip(step_outputs, out):
            np.testing.assert_allclose(o.numpy(), t[f"step.{n}"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(t["step.alpha"].sum(1), 1.0, atol=1e-5)
        # the cache grows by the new position and keeps the old ones as they were
        np.testing.assert_array_equal(t["step.past_keys_out"][:, :, :, :T], t["step.past_keys"])

    def test_onnxruntime_parity(self):
        """Runs with onnxruntime in this Python, or in the Python named by PIXEL_INFO_ORT_PYTHON (numpy + ort)."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            py = os.environ.get("PIXEL_INFO_ORT_PYTHON")
            if not py:
                self.skipTest("onnxruntime not importable (set PIXEL_INFO_ORT_PYTHON to a python that has it; "
                              "test/decoder-transformer.test.ts checks it with onnxruntime-node)")
            r = subprocess.run([py, "-m", "trainer.parity", self.out, self.fixture], cwd=REPO,
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("parity OK", r.stdout)
            return
        diffs = parity.check(self.out, self.fixture)
        self.assertLess(max(diffs.values()), 1e-4, diffs)

    def test_tiny_cli_and_architecture_option(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(export_main(["--tiny", "--architecture", "transformer", "--out", d]), 0)
            with open(os.path.join(d, "model-card.json")) as f:
                self.assertEqual(json.load(f)["architecture"]["type"], "transformer")
            with self.assertRaises(SystemExit):  # a checkpoint records its own architecture
                export_main(["--checkpoint", "x.pt", "--architecture", "transformer", "--out", d])


if __name__ == "__main__":
    unittest.main()
