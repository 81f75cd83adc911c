"""Small frictions of `prepare`: a counted progress line per case in logs (no carriage returns),
a final summary line (cases, slices, classes, seconds), and `prepare isic --resize N` (image: area
when shrinking, bilinear between pixel centres when enlarging, checked against PyTorch's
interpolate; mask: nearest at pixel centres, checked against PIL's NEAREST)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def case(store, name):
    with open(os.path.join(store, "manifest.json")) as f:
        m = json.load(f)
    c = next(c for c in m["cases"] if c["name"] == name)
    with h5py.File(os.path.join(store, m["shards"][c["shard"]]["file"]), "r") as f:
        return f["cases"][name]["image"][...], f["cases"][name]["label"][...]


class Frictions(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_frictions_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def isic(self, shape):
        rng = np.random.default_rng(1)
        dd = self.p("src", "ISBI2016_ISIC_Part1_Training_Data")
        gd = self.p("src", "ISBI2016_ISIC_Part1_Training_GroundTruth")
        os.makedirs(dd, exist_ok=True)
        os.makedirs(gd, exist_ok=True)
        rgb = rng.integers(0, 256, size=shape + (3,)).astype(np.uint8)
        Image.fromarray(rgb).save(os.path.join(dd, "ISIC_0000001.jpg"), quality=100)
        mask = (rng.random(shape) > 0.5).astype(np.uint8) * 255
        Image.fromarray(mask).save(os.path.join(gd, "ISIC_0000001_Segmentation.png"))
        dec = np.asarray(Image.open(os.path.join(dd, "ISIC_0000001.jpg")).convert("RGB")).astype(np.float64)
        return dec, mask

    def check(self, shape, n, mode):
        dec, mask = self.isic(shape)
        out = self.p("st%d" % n)
        r = run("prepare", "isic", "--src", self.p("src"), "--out", out, "--resize", n)
        self.assertEqual(r.returncode, 0, r.stderr)
        # logs: one counted line per case, no bar; stdout: the summary
        self.assertIn("[1] prepare isic: ISIC_0000001 (train) %d x %d" % (n, n), r.stderr)
        self.assertNotIn("\r", r.stderr)
        self.assertRegex(r.stdout, r"prepare: isic -> .*: 1 cases, 1 slices, 2 classes, [0-9.]+ s\n")
        img, lab = case(out, "ISIC_0000001")
        t = torch.from_numpy(dec.transpose(2, 0, 1)[None])
        want = F.interpolate(t, size=(n, n), mode=mode, **({} if mode == "area" else {"align_corners": False}))[0]
        want = want.numpy()
        want = (want - want.mean(axis=(1, 2), keepdims=True)) / want.std(axis=(1, 2), keepdims=True)
        self.assertEqual(img.shape, (1, 3, n, n))
        np.testing.assert_allclose(img[0], want, rtol=1e-4, atol=1e-4)
        nearest = np.asarray(Image.fromarray(mask).resize((n, n), Image.NEAREST))
        np.testing.assert_array_equal(lab[0], nearest // 255)

    def test_resize_shrink_area(self):
        self.check((12, 16), 4, "area")  # integer factors 3 and 4: area == PyTorch's adaptive average

    def test_resize_enlarge_bilinear(self):
        self.check((5, 7), 12, "bilinear")


if __name__ == "__main__":
    unittest.main()
