"""Training end to end on the synthetic store: the model learns the feature → caption mapping, checkpoints select
on val, resume replays an uninterrupted run exactly, SCST runs, beam search is consistent with greedy."""

import json
import os
import shutil
import tempfile
import unittest

import torch

from trainer.beam import beam_search
from trainer.checkpoint import build_model, load_checkpoint, torch_load
from trainer.data import Dataset
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
        cls.model = build_model(load_checkpoint(os.path.join(cls.t["run"], "best.pt"))).eval()

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
        greedy = [c.words(s) for s in self.model.greedy(feats, c.start, c.end, 21).tolist()]
        b1 = beam_search(self.model, feats, c.start, c.end, 21, beam=1)
        self.assertEqual([c.words(s) for s in b1], greedy)
        b3 = beam_search(self.model, feats, c.start, c.end, 21, beam=3)
        g_ids = [[c.vocab.index(w) for w in s] for s in greedy]
        for i in range(len(b3)):
            f = feats[i:i + 1]
            self.assertGreaterEqual(seq_logprob(self.model, f, b3[i], c.start, c.end) + 1e-5,
                                    seq_logprob(self.model, f, g_ids[i], c.start, c.end))
        # a length penalty still returns complete captions
        self.assertEqual(len(beam_search(self.model, feats, c.start, c.end, 21, beam=3, length_penalty=1.0)),
                         len(b3))


if __name__ == "__main__":
    unittest.main()
