"""The released configuration's splits as the importers' defaults (data/official_splits.c):
ACDC by patient (every frame of a listed patient), EM by slice, ISIC 2016 by image id (train only;
unlisted images skipped, absent listed ones reported). The expected lists are written out here
again from docs/datasets.md, independently of the C tables."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import nibabel as nib
import numpy as np
from PIL import Image

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
ACDC_TRAIN = [int(x) for x in """1 4 5 6 7 10 11 13 15 16 18 19 20 21 22 23 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39
40 41 43 44 45 46 47 50 51 52 54 56 57 58 59 60 61 62 63 65 66 68 69 70 71 72 73 74 75 76 77 78 80 82 83 84 85 86
87""".split()]
ACDC_VAL = [89, 90, 91, 93, 94, 96, 97, 98, 99, 100]
ACDC_TEST = [2, 3, 8, 9, 12, 14, 17, 24, 42, 48, 49, 53, 55, 64, 67, 79, 81, 88, 92, 95]


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def manifest(store):
    with open(os.path.join(store, "manifest.json")) as f:
        return json.load(f)


class Official(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_splits_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def test_acdc_patients_all_frames(self):
        img = np.zeros((6, 5, 2), np.float32)
        img[0, 0, 0] = 1
        gt = np.zeros((6, 5, 2), np.uint8)
        for pid in range(1, 101):
            d = self.p("src", "patient%03d" % pid)
            os.makedirs(d)
            for fr in (1, 7 + pid % 5):
                nib.save(nib.Nifti1Image(img, np.eye(4)), os.path.join(d, "patient%03d_frame%02d.nii.gz" % (pid, fr)))
                nib.save(nib.Nifti1Image(gt, np.eye(4)), os.path.join(d, "patient%03d_frame%02d_gt.nii.gz" % (pid, fr)))
        r = run("prepare", "acdc", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        sp = manifest(self.p("st"))["splits"]
        for k, pids in (("train", ACDC_TRAIN), ("val", ACDC_VAL), ("test", ACDC_TEST)):
            want = sorted("patient%03d_frame%02d" % (p, f) for p in pids for f in (1, 7 + p % 5))
            self.assertEqual(sorted(sp[k]), want, k)

    def test_isic_900_ids_train_only(self):
        dd = self.p("src", "ISBI2016_ISIC_Part1_Training_Data")
        gd = self.p("src", "ISBI2016_ISIC_Part1_Training_GroundTruth")
        os.makedirs(dd)
        os.makedirs(gd)
        # Two listed ids (0000001, 0011402) and one that is not (0000003).
        for k in (1, 11402, 3):
            Image.fromarray(np.full((4, 5, 3), 7 * k % 255, np.uint8)).save(os.path.join(dd, "ISIC_%07d.jpg" % k))
            Image.fromarray(np.zeros((4, 5), np.uint8)).save(os.path.join(gd, "ISIC_%07d_Segmentation.png" % k))
        r = run("prepare", "isic", "--src", self.p("src"), "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        sp = manifest(self.p("st"))["splits"]
        self.assertEqual(sorted(sp["train"]), ["ISIC_0000001", "ISIC_0011402"])
        self.assertEqual(sp.get("val", []), [])
        self.assertIn("898 of the 900 listed training images are absent", r.stderr)


if __name__ == "__main__":
    unittest.main()
