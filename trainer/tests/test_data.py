"""Feature store + captions.json reading, split handling and the horizontal-flip augmentation."""

import json
import os
import tempfile
import unittest

import numpy as np
import torch

from trainer.data import Dataset, DataError, open_feature_store, swap_map, swap_tokens
from trainer.tests.synth import flip_grid, write_store


class DataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.paths = write_store(cls.tmp.name, failed=(1,))
        cls.ds = Dataset(cls.paths["store"], cls.paths["captions"], hflip=True, log=lambda s: None)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_splits_map_images_to_rows_by_name(self):
        p = self.paths
        tr = self.ds.splits["train"]
        expected = [n for n in reversed(p["names"]) if p["split_of"][n] == "train" and n != p["names"][1]]
        self.assertEqual(tr.image_names, expected)
        for i, name in enumerate(tr.image_names):
            want = p["features"][p["names"].index(name)].astype(np.float16)
            got = self.ds.features[tr.feature_rows[i]].numpy()
            np.testing.assert_array_equal(got, want)
        self.assertNotIn("test", self.ds.splits)  # test is not loaded unless asked for

    def test_failed_image_is_left_out(self):
        self.assertNotIn(self.paths["names"][1], self.ds.splits["train"].image_names)

    def test_caption_ids_have_start_end_and_lengths(self):
        tr = self.ds.splits["train"]
        c = self.ds.captions
        for j in range(len(tr.cap_image)):
            n = int(tr.cap_len[j])
            ids = tr.cap_ids[j].tolist()
            self.assertEqual(ids[0], c.start)
            self.assertEqual(ids[n], c.end)
            name = tr.image_names[int(tr.cap_image[j])]
            self.assertEqual(c.words(ids[1:]), tr.refs[int(tr.cap_image[j])][0], name)

    def test_batches_cover_every_caption_once(self):
        g = torch.Generator().manual_seed(0)
        n = 0
        for feats, ids, lens in self.ds.caption_batches("train", 5, g):
            self.assertEqual(feats.dtype, torch.float16)
            self.assertEqual(ids.size(1), int(lens.max()) + 1)
            n += len(lens)
        self.assertEqual(n, len(self.ds.splits["train"].cap_image))

    def test_hflip_swaps_features_and_left_right(self):
        c = self.ds.captions
        left, right = c.vocab.index("left"), c.vocab.index("right")
        table = swap_map(c.vocab)
        self.assertEqual(int(table[left]), right)
        self.assertEqual(int(table[right]), left)
        self.assertEqual(int(table[c.vocab.index("dog")]), c.vocab.index("dog"))
        self.assertEqual(swap_tokens(["on", "the", "left"]), ["on", "the", "right"])
        counts = {}
        normal = {tuple(f.flatten()[:64].tolist()) for f in self.ds.features}
        for p in (0.0, 1.0):
            g = torch.Generator().manual_seed(0)
            n_left = n_right = 0
            for feats, ids, lens in self.ds.caption_batches("train", 64, g, hflip_p=p):
                n_left += int((ids == left).sum())
                n_right += int((ids == right).sum())
                for f in feats:  # p=1: every feature map comes from the flipped store
                    self.assertEqual(tuple(f.flatten()[:64].tolist()) in normal, p == 0.0)
            counts[p] = (n_left, n_right)
        self.assertGreater(counts[0.0][0], 0)
        self.assertGreater(counts[0.0][1], 0)
        self.assertNotEqual(counts[0.0][0], counts[0.0][1])
        self.assertEqual(counts[1.0], (counts[0.0][1], counts[0.0][0]))  # every left became right and vice versa
        fl = flip_grid(self.paths["features"][:1])
        np.testing.assert_array_equal(flip_grid(fl), self.paths["features"][:1])

    def test_incomplete_store_is_rejected(self):
        with tempfile.TemporaryDirectory() as d:
            p = write_store(d, n_images=6, hflip=False)
            idx_path = os.path.join(p["store"], "index.json")
            with open(idx_path) as f:
                idx = json.load(f)
            idx["done"], idx["complete"] = 3, False
            with open(idx_path, "w") as f:
                json.dump(idx, f)
            with self.assertRaises(DataError):
                open_feature_store(p["store"])

    def test_hflip_needs_flipped_features(self):
        with tempfile.TemporaryDirectory() as d:
            p = write_store(d, n_images=6, hflip=False)
            with self.assertRaises(DataError):
                Dataset(p["store"], p["captions"], hflip=True, log=lambda s: None)


if __name__ == "__main__":
    unittest.main()
