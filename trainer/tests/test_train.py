"""Training end to end on the synthetic store: the model learns the feature → caption mapping, checkpoints select
on val (decoded with the beam search and the shared decoding defaults), resume replays an uninterrupted run exactly,
SCST runs, the beam search over the real model is consistent with greedy decoding and teacher forcing."""

import json
import os
import shutil
import tempfile
import unittest

import torch

from trainer.checkpoint import load_checkpoint, model_from_checkpoint, torch_load
from trainer.data import Dataset
from trainer.decoding import beam_search, decoding_config, default_config
from trainer.tests.synth import tiny_train_args, trained_run, write_store
from trainer.train import main


def seq_logprob(model, feats, seq, start, end):
    ids = torch.tensor([[start] + seq + [end]])
    with torch.no_grad():
        logits, _ = model(feats, ids)
    lp = torch.log_softmax(logits, -1)[0]
    return float(lp.gather(1, ids[0, 1:].unsqueeze(1)).sum())


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = trained_run()
        cls.ds = Dataset(cls.t["store"], cls.t["captions"], splits=("train", "val"), log=lambda s: None)
        cls.model = model_from_checkpoint(load_checkpoint(os.path.join(cls.t["run"], "best.pt"))).eval()

    def test_greedy_reproduces_training_captions(self):
        tr = self.ds.splits["train"]
        c = self.ds.captions
        seqs = self.model.greedy(self.ds.features[tr.feature_rows].float(), c.start, c.end, c.max_length + 1)
        got = [c.words(s) for s in seqs.tolist()]
        self.assertEqual(got, [r[0] for r in tr.refs])

    def test_log_and_best_checkpoint_select_on_val(self):
        with open(os.path.join(self.t["run"], "log.jsonl")) as f:
            recs = [json.loads(line) for line in f]
        self.assertEqual([r["epoch"] for r in recs], list(range(1, 15)))
        for r in recs:
            for k in ("train_loss", "tokens_per_s", "time_s"):
                self.assertIn(k, r)
            self.assertIn("cider", r["val"])
            self.assertIn("bleu4", r["val"])
        self.assertLess(recs[-1]["train_loss"], recs[0]["train_loss"])
        best = load_checkpoint(os.path.join(self.t["run"], "best.pt"))
        self.assertEqual(best["architecture"], "show-attend-tell")
        self.assertEqual(best["meta"]["val_decoding"], decoding_config(n_best=1).to_json())  # the shared defaults
        self.assertEqual(best["meta"]["train_args"]["val_beam"], default_config().beam_size)
        self.assertAlmostEqual(best["meta"]["val"]["cider"], max(r["val"]["cider"] for r in recs))
        self.assertGreater(best["meta"]["val"]["cider"], 5.0)  # val images show the same concepts
        # the fp16 parts written at the end load back to the same model up to fp16 rounding
        parts = load_checkpoint(os.path.join(self.t["run"], "best-fp16"))
        for k, v in best["model"].items():
            torch.testing.assert_close(parts["model"][k], v.half().float(), rtol=0, atol=0)

    def test_resume_equals_uninterrupted(self):
        with tempfile.TemporaryDirectory() as d:
            p = write_store(d, n_images=15)
            extra = ["--max-batches", "2", "--dropout", "0.3", "--hflip-aug", "0.5", "--no-fp16-parts",
                     "--lr-schedule", "step", "--lr-step", "1", "--lr-gamma", "0.7"]
            a, b = os.path.join(d, "a"), os.path.join(d, "b")
            self.assertEqual(main(tiny_train_args(p, a, ["--epochs", "3", *extra])), 0)
            self.assertEqual(main(tiny_train_args(p, b, ["--epochs", "2", *extra])), 0)
            self.assertEqual(main(tiny_train_args(p, b, ["--epochs", "3", "--resume", *extra])), 0)
            sa, sb = torch_load(os.path.join(a, "last.pt")), torch_load(os.path.join(b, "last.pt"))
            self.assertEqual(sa["epoch"], 3)
            self.assertEqual(sb["epoch"], 3)
            for k in sa["model"]:
                self.assertTrue(torch.equal(sa["model"][k], sb["model"][k]), k)
            self.assertEqual(sa["optimizer"]["param_groups"][0]["lr"], sb["optimizer"]["param_groups"][0]["lr"])
            logs = []
            for run in (a, b):
                with open(os.path.join(run, "log.jsonl")) as f:
                    logs.append([json.loads(x)["train_loss"] for x in f])
            self.assertEqual(logs[0], logs[1])

    def test_time_limit_stops_before_the_next_stage(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "run")
            rc = main(tiny_train_args(self.t, out, ["--epochs", "3", "--scst-epochs", "2", "--max-batches", "1",
                                                    "--time-limit", "0.001", "--no-fp16-parts"]))
            self.assertEqual(rc, 0)
            self.assertFalse(os.path.exists(os.path.join(out, "log.jsonl")))  # no epoch fits in the limit
            self.assertFalse(os.path.exists(os.path.join(out, "scst_best.pt")))

    def test_scst_stage_runs_from_checkpoint(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "scst")
            for baseline in ("greedy", "mean"):
                shutil.rmtree(out, ignore_errors=True)
                rc = main(tiny_train_args(self.t, out, [
                    "--scst", "--init", os.path.join(self.t["run"], "best.pt"), "--scst-epochs", "1",
                    "--scst-batch", "4", "--scst-samples", "3", "--max-batches", "2", "--scst-baseline", baseline,
                    "--feature-norm", "layernorm", "--no-fp16-parts"]))
                self.assertEqual(rc, 0)
                with open(os.path.join(out, "log.jsonl")) as f:
                    recs = [json.loads(x) for x in f]
                self.assertEqual([(r["stage"], r["epoch"]) for r in recs], [("scst", 0), ("scst", 1)])
                self.assertGreater(recs[1]["train_reward"], 1.0)  # the XE model already says the right things
                self.assertTrue(os.path.isfile(os.path.join(out, "best.pt")))
                self.assertTrue(os.path.isfile(os.path.join(out, "last.pt")))

    def test_beam_search(self):
        c = self.ds.captions
        va = self.ds.splits["val"]
        feats = self.ds.features[va.feature_rows].float()
        plain = decoding_config(rules=[], no_repeat_ngram=0, max_length=c.max_length, n_best=1)

        def search(**kw):
            return beam_search(self.model, feats, plain.replace(**kw), c.vocab, c.specials)

        greedy = [c.words(s) for s in self.model.greedy(feats, c.start, c.end, c.max_length + 1).tolist()]
        b1 = search(beam_size=1)
        self.assertEqual([c.words(h[0].tokens) for h in b1], greedy)
        b3 = search(beam_size=3, n_best=3)
        g_ids = [[c.vocab.index(w) for w in s] for s in greedy]
        for i, hyps in enumerate(b3):
            f = feats[i:i + 1]
            self.assertGreaterEqual(len(hyps), 1)
            # the search's log-probabilities are the model's (the state rows followed the right beams)
            for h in hyps:
                self.assertAlmostEqual(h.log_prob, seq_logprob(self.model, f, h.tokens, c.start, c.end), places=4)
            self.assertGreaterEqual(hyps[0].log_prob + 1e-5, seq_logprob(self.model, f, g_ids[i], c.start, c.end))
            self.assertEqual([h.score for h in hyps], sorted((h.score for h in hyps), reverse=True))
        # batching does not change the result
        one = beam_search(self.model, feats[1:2], plain.replace(beam_size=3, n_best=3), c.vocab, c.specials)
        self.assertEqual([h.tokens for h in one[0]], [h.tokens for h in b3[1]])
        # a length penalty still returns complete captions; attention comes back per word when asked
        self.assertEqual(len(search(beam_size=3, length_penalty=1.0)), len(b3))
        att = beam_search(self.model, feats[:2], plain.replace(beam_size=3), c.vocab, c.specials,
                          return_attention=True)
        for hyps in att:
            self.assertEqual(len(hyps[0].alphas), len(hyps[0].tokens))
            for a in hyps[0].alphas:
                self.assertAlmostEqual(float(a.sum()), 1.0, places=5)

    def test_default_rules_hold_on_the_real_model(self):
        c = self.ds.captions
        feats = self.ds.features[self.ds.splits["val"].feature_rows].float()
        config = decoding_config(max_length=4)  # short: closing at maxLength happens too
        dangling = {w for ws in config.dangling_words.values() for w in ws}
        for hyps in beam_search(self.model, feats, config, c.vocab, c.specials):
            words = c.words(hyps[0].tokens)
            self.assertTrue(1 <= len(words) <= 4, words)
            self.assertNotIn("<unk>", words)
            self.assertTrue(all(a != b for a, b in zip(words, words[1:])), words)
            if words[-1] in dangling:  # allowed only when every beam of the image dangled at maxLength
                self.assertEqual(len(words), 4, words)



class GeometryTest(unittest.TestCase):
    def test_the_store_decides_regions_and_channels(self):
        from trainer.evaluate import main as evaluate_main
        from trainer.export import export_model
        with tempfile.TemporaryDirectory() as d:
            p = write_store(d, n_images=10, grid=(2, 3), channels=16)
            out = os.path.join(d, "run")
            self.assertEqual(main(tiny_train_args(p, out, ["--epochs", "1", "--max-batches", "1", "--no-fp16-parts",
                                                           "--val-beam", "2"])), 0)
            ck = load_checkpoint(os.path.join(out, "best.pt"))
            self.assertEqual((ck["config"]["regions"], ck["config"]["feature_dim"]), (6, 16))
            self.assertEqual(ck["meta"]["val_decoding"]["beamSize"], 2)
            card = export_model(ck, os.path.join(d, "model"), log=lambda s: None)
            self.assertEqual(card["onnx"]["init"]["inputs"]["features"], ["B", 6, 16])
            self.assertEqual(card["onnx"]["step"]["outputs"]["alpha"], ["N", 6])
            # a model made for another geometry (the shared run's 7x7x2048) is refused
            args = ["--checkpoint", os.path.join(trained_run()["run"], "best.pt"), "--features", p["store"],
                    "--captions", p["captions"], "--examples", "0"]
            self.assertEqual(evaluate_main(args), 2)


if __name__ == "__main__":
    unittest.main()
