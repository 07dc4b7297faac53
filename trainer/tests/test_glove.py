"""GloVe text vectors → embedding rows; --glove/--freeze-embeddings in training."""

import os
import tempfile
import unittest

import torch

from trainer.checkpoint import load_checkpoint
from trainer.glove import load_glove_into, read_glove
from trainer.tests.synth import tiny_train_args, write_store
from trainer.train import main


def write_glove(path, words, dim, extra=()):
    with open(path, "w", encoding="utf-8") as f:
        for i, w in enumerate(words):
            f.write(w + " " + " ".join(f"{(i + 1) * 0.01 + j * 0.001:.4f}" for j in range(dim)) + "\n")
        for line in extra:
            f.write(line + "\n")


class GloveTest(unittest.TestCase):
    def test_loads_vocab_words_only(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "g.txt")
            write_glove(p, ["dog", "cat", "zebra"], 4, extra=["new york 1 2 3 4 5"])  # 5 fields: skipped
            vocab = ["<pad>", "<start>", "<end>", "<unk>", "dog", "cat", "bird"]
            emb = torch.nn.Embedding(len(vocab), 4)
            before = emb.weight.detach().clone()
            n = load_glove_into(emb, vocab, p)
            self.assertEqual(n, 2)
            torch.testing.assert_close(emb.weight[4], torch.tensor([0.01, 0.011, 0.012, 0.013]))
            torch.testing.assert_close(emb.weight[5], torch.tensor([0.02, 0.021, 0.022, 0.023]))
            torch.testing.assert_close(emb.weight[6], before[6])  # not in the file: keeps its init
            found, dim = read_glove(p, ["zebra"])
            self.assertEqual((list(found), dim), (["zebra"], 4))

    def test_dimension_mismatch_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "g.txt")
            write_glove(p, ["dog"], 3)
            with self.assertRaises(ValueError):
                load_glove_into(torch.nn.Embedding(5, 4), ["<pad>", "<start>", "<end>", "<unk>", "dog"], p)

    def test_training_with_frozen_glove_embeddings(self):
        with tempfile.TemporaryDirectory() as d:
            paths = write_store(d, n_images=10, hflip=False)
            g = os.path.join(d, "g.txt")
            write_glove(g, ["dog", "man", "left"], 32)
            out = os.path.join(d, "run")
            rc = main(tiny_train_args(paths, out, ["--epochs", "1", "--max-batches", "2", "--glove", g,
                                                   "--freeze-embeddings", "--no-fp16-parts"]))
            self.assertEqual(rc, 0)
            ck = load_checkpoint(os.path.join(out, "best.pt"))
            emb = ck["model"]["embedding.weight"]
            dog = paths["vocab"].index("dog")
            torch.testing.assert_close(emb[dog], torch.tensor([0.01 + j * 0.001 for j in range(32)]))


if __name__ == "__main__":
    unittest.main()
