"""Hyper-parameter search (trainer/tune.py) on the tiny synthetic store: the study lives in SQLite and a second call
continues it, the median pruner stops trials, the budget stops the study, the table (markdown + JSON) is written, and
the trainer's --optimizer / epoch-callback hooks it relies on."""

import json
import os
import tempfile
import time
import unittest

from trainer.tests.synth import tiny_train_args, write_store
from trainer.train import Trainer, parse_args as train_parse_args
from trainer import tune

TINY = ["--embed-dim", "32", "--hidden-dim", "64", "--attention-dim", "32", "--log-every", "0", "--device", "cpu",
        "--val-batch", "64", "--feature-norm", "layernorm", "--threads", "1"]


def load_study(out):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="xe", storage="sqlite:///" + os.path.join(out, "study.db"))


class TuneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.paths = write_store(cls.tmp.name, n_images=24)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def args(self, out, *extra):
        return ["--features", self.paths["store"], "--captions", self.paths["captions"], "--out", out, *TINY, *extra]

    def test_resume_pruning_and_table(self):
        out = os.path.join(self.tmp.name, "study")
        # a space where good and hopeless configurations are both likely: lr 1e-2 learns the synthetic captions within
        # a few epochs, 1e-6 never does; the enqueued pair makes both happen before the pruner needs its median
        space = ["--epochs-per-trial", "3", "--batch-sizes", "4", "--lrs", "1e-6,1e-2", "--optimizers", "adam",
                 "--prune-startup", "2", "--prune-from-epoch", "1", "--startup-trials", "2",
                 "--enqueue", '{"optimizer": "adam", "lr": 0.01, "batch_size": 4, "dropout": 0.0, "att_lambda": 0.5}',
                 "--enqueue", '{"optimizer": "adam", "lr": 1e-06, "batch_size": 4, "dropout": 0.0, "att_lambda": 0.5}',
                 "--enqueue", '{"optimizer": "adam", "lr": 1e-06, "batch_size": 4, "dropout": 0.1, "att_lambda": 0.5}']
        self.assertEqual(tune.main(self.args(out, "--trials", "3", "--budget", "300", *space)), 0)
        study = load_study(out)
        self.assertEqual(len(study.trials), 3)
        first = [(t.number, t.params, t.value) for t in study.trials]
        self.assertTrue(os.path.isfile(os.path.join(out, "study.db")))
        # the second call continues the same study: more trials, the first ones untouched
        self.assertEqual(tune.main(self.args(out, "--trials", "2", "--budget", "300", *space)), 0)
        study = load_study(out)
        self.assertEqual([t.number for t in study.trials], [0, 1, 2, 3, 4])
        self.assertEqual([(t.number, t.params, t.value) for t in study.trials[:3]], first)
        states = [t.state.name for t in study.trials]
        # trial 0 (lr 1e-2) and 1 (1e-6) finish; trial 2 (1e-6 again) is below their median after epoch 1: pruned
        self.assertEqual(states[:2], ["COMPLETE", "COMPLETE"])
        self.assertEqual(states[2], "PRUNED")
        self.assertEqual(study.trials[2].user_attrs["stopped"], "pruned")
        self.assertLess(study.trials[2].user_attrs["epochs"], 3)
        self.assertEqual(study.trials[0].user_attrs["epochs"], 3)
        self.assertGreater(study.trials[0].value, study.trials[1].value)
        # the table
        with open(os.path.join(out, "trials.json")) as f:
            doc = json.load(f)
        self.assertEqual(len(doc["trials"]), 5)
        for r in doc["trials"]:
            for k in ("params", "best_val_cider", "epochs", "pruned", "seconds", "state"):
                self.assertIn(k, r)
        self.assertTrue(doc["trials"][2]["pruned"])
        self.assertEqual(doc["best"]["number"], max((t for t in study.trials if t.state.name == "COMPLETE"),
                                                    key=lambda t: t.value).number)
        self.assertEqual(doc["best"]["params"]["lr"], 0.01)
        with open(os.path.join(out, "trials.md")) as f:
            md = f.read()
        self.assertIn("| # | optimizer | lr | batch | dropout | att_lambda | best val CIDEr-D | epochs | pruned |", md)
        self.assertEqual(md.count("\n| "), 1 + 1 + 5)  # header, rule, 5 trials
        self.assertIn("Best finished trial: #0", md)
        # each trial kept its log; the best finished trial's checkpoint is kept once
        self.assertTrue(os.path.isfile(os.path.join(out, "trials", "0000", "log.jsonl")))
        self.assertFalse(os.path.exists(os.path.join(out, "trials", "0000", "last.pt")))
        self.assertTrue(os.path.isfile(os.path.join(out, "best.pt")))
        # --table only reads the study
        self.assertEqual(tune.main(["--out", out, "--table"]), 0)
        # a resumed study refuses another search space or subset
        with self.assertRaises(SystemExit):
            tune.main(self.args(out, "--trials", "1", "--budget", "60", *space[:-6], "--lrs", "1e-3,1e-2"))

    def test_budget_stops_the_study(self):
        out = os.path.join(self.tmp.name, "budget")
        budget = 15
        t0 = time.time()
        self.assertEqual(tune.main(self.args(out, "--budget", str(budget), "--epochs-per-trial", "30",
                                             "--batch-sizes", "4,64", "--val-images", "3", "--train-images", "10")), 0)
        elapsed = time.time() - t0
        # 30 epochs do not fit: the trainer's --time-limit (the budget left) ends the trial, and with it the study
        self.assertLess(elapsed, budget + 5)
        study = load_study(out)
        self.assertGreaterEqual(len(study.trials), 1)
        last = study.trials[-1]
        self.assertEqual(last.user_attrs["stopped"], "budget")
        self.assertEqual(last.state.name, "PRUNED" if last.user_attrs["epochs"] else "FAIL")
        self.assertLess(last.user_attrs["epochs"], 30)
        self.assertTrue(all(t.state.name != "RUNNING" for t in study.trials))
        # a new study starts with the trainer's defaults
        self.assertEqual(study.trials[0].params, tune.BASELINE)
        with open(os.path.join(out, "trials.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["subset"]["train_images"], 10)
        self.assertEqual(doc["subset"]["val_images"], 3)
        self.assertEqual(len(doc["trials"]), len(study.trials))
        self.assertIn("| budget |", open(os.path.join(out, "trials.md")).read())
        # a budget shorter than an epoch starts nothing
        n = len(study.trials)
        self.assertEqual(tune.main(self.args(out, "--budget", "2", "--epochs-per-trial", "30", "--batch-sizes", "4,64",
                                             "--val-images", "3", "--train-images", "10")), 0)
        self.assertEqual(len(load_study(out).trials), n)


class TrainerHooksTest(unittest.TestCase):
    def test_sgd_option_and_epoch_callback(self):
        with tempfile.TemporaryDirectory() as d:
            p = write_store(d, n_images=12)
            seen = []
            args = train_parse_args(tiny_train_args(p, os.path.join(d, "run"), [
                "--epochs", "3", "--max-batches", "1", "--no-fp16-parts", "--optimizer", "sgd", "--momentum", "0.8"]))
            t = Trainer(args, epoch_callback=lambda rec: seen.append(rec["epoch"]) or rec["epoch"] >= 2)
            t.run()
            self.assertEqual(seen, [1, 2])  # the callback's True after epoch 2 ended the stage
            self.assertTrue(t.stopped_by_callback)
            import torch
            state = torch.load(os.path.join(d, "run", "last.pt"))
            self.assertEqual(state["optimizer"]["param_groups"][0]["momentum"], 0.8)
            self.assertEqual(state["epoch"], 2)


if __name__ == "__main__":
    unittest.main()
