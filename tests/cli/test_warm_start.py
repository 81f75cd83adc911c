"""train.init_weights: a warm start by tensor name before step 0 (src/io/weights_warm.h).

The source weights come from `unet2022 init` with another class count; a run warm-started from
them at learning rate 0 (Adam then changes nothing) must hold the file's tensors everywhere but
in the heads, whose shape differs and which keep the fresh initialisation of the run's own seed
(`unet2022 init` with that seed). Also: the released pre-training key map, a file that matches
nothing, and a resumed run, which ignores init_weights.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from test_prepare_nnunet import TINY, TRAIN, write_dataset  # noqa: E402

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


class WarmStart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_warm_")
        src = os.path.join(cls.tmp, "Dataset600_Warm")
        write_dataset(src, 2, ("MRI",), shapes={n: (36, 34, 2) for n in TRAIN}, test=())
        cls.store = os.path.join(cls.tmp, "st")
        r = run("prepare", "nnunet", "--src", src, "--out", cls.store, "--quiet")
        assert r.returncode == 0, r.stderr
        cls.cfg = os.path.join(cls.tmp, "tiny.yaml")
        with open(cls.cfg, "w") as f:
            f.write(TINY.format(store=cls.store).replace("classes: 14", "classes: 3"))
        cls.src_w = os.path.join(cls.tmp, "five.safetensors")
        r = run("init", cls.cfg, "--out", cls.src_w, "--seed", 99, "network.classes=5")
        assert r.returncode == 0, r.stderr
        cls.fresh = os.path.join(cls.tmp, "fresh.safetensors")
        r = run("init", cls.cfg, "--out", cls.fresh, "--seed", 7)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, name, *extra):
        d = os.path.join(self.tmp, name)
        return d, run("train", self.cfg, "train.run_dir=" + d, "train.seed=7", "train.lr=0", "train.max_steps=1",
                      *extra)

    def final_weights(self, run_dir):
        ck = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.safetensors")))
        self.assertTrue(ck, os.listdir(run_dir))
        return {k: v for k, v in load_file(ck[-1]).items() if not k.startswith("adam.")}

    def check_heads_fresh_rest_from_file(self, run_dir):
        got, src, fresh = self.final_weights(run_dir), load_file(self.src_w), load_file(self.fresh)
        heads = 0
        for k, v in got.items():
            if k.endswith("relative_position_index"):
                continue
            if k.startswith("final."):
                heads += 1
                self.assertNotEqual(src[k].shape, v.shape, k)
                np.testing.assert_array_equal(v, fresh[k], err_msg=k)
            else:
                np.testing.assert_array_equal(v, src[k], err_msg=k)
        self.assertGreater(heads, 0)
        return heads

    def test_other_class_count_heads_keep_fresh_init(self):
        d, r = self.train("warm", "train.init_weights=" + self.src_w)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        heads = self.check_heads_fresh_rest_from_file(d)
        n = len([k for k in load_file(self.fresh) if not k.endswith("relative_position_index")])
        self.assertIn("loaded %d of %d tensors (0 missing, %d with another shape" % (n - heads, n, heads), r.stdout)
        self.assertIn("final.0.up_final.weight is F32 [8, 5, 4, 4] in the file, [8, 3, 4, 4] here", r.stdout)
        # Resuming takes precedence: init_weights (here a file that does not even exist) is ignored.
        r = run("train", self.cfg, "train.run_dir=" + d, "train.seed=7", "train.lr=0", "train.max_steps=2",
                "train.init_weights=/nonexistent.safetensors")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("init_weights: /nonexistent.safetensors ignored: resuming", r.stdout)

    def test_released_pretrain_key_map(self):
        renamed = os.path.join(self.tmp, "released.safetensors")
        w = load_file(self.src_w)
        save_file({("encoder." + k[len("decoder."):] if k.startswith("decoder.") else k): v for k, v in w.items()},
                  renamed)
        d, r = self.train("released", "train.init_weights=" + renamed, "train.init_key_map=released_pretrain")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.check_heads_fresh_rest_from_file(d)
        # Without the map the decoder's tensors are missing and keep their fresh values.
        d, r = self.train("unmapped", "train.init_weights=" + renamed)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("decoder.layers.0.blocks.0.gamma is not in the file", r.stdout)

    def test_file_matching_nothing_refused(self):
        bad = os.path.join(self.tmp, "other.safetensors")
        save_file({"backbone.conv1.weight": np.zeros((4, 3), np.float32)}, bad)
        d, r = self.train("bad", "train.init_weights=" + bad)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("matches none of this network's", r.stderr)
        d, r = self.train("bad2", "train.init_weights=" + self.src_w, "train.init_key_map=timm")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("init_key_map", r.stderr)


if __name__ == "__main__":
    unittest.main()
