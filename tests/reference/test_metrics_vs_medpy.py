#!/usr/bin/python3
"""`unet2022 evaluate` against the PyPI oracles: medpy.metric.binary (dc, jc, hd95 with and
without voxel spacing) and MONAI (compute_hausdorff_distance percentile 95, compute_dice,
compute_iou), on randomised 3D label volumes: several shapes, anisotropic spacing, blobs that
touch the volume border, one-voxel masks, thin sheets and empty masks. Values must agree to
1e-6 relative. Also: bad inputs are rejected with the case named."""
import csv
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest
import warnings

import nibabel as nib
import numpy as np

try:
    from medpy.metric import binary as medpy_binary
except ImportError:  # pragma: no cover
    print("medpy is not installed (pip install --no-deps medpy): skipped")
    sys.exit(77)
try:
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
except ImportError:  # pragma: no cover
    print("monai is not installed (pip install --no-deps monai): skipped")
    sys.exit(77)

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
RTOL = 1e-6
LABELS = [1, 2, 3, 4]


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=600)


def blob(rng, shape, centre=None, radius=None):
    """A random ellipsoid with a noisy boundary (several components now and then)."""
    idx = np.indices(shape).astype(np.float64)
    c = centre if centre is not None else [rng.uniform(0, s) for s in shape]
    r = radius if radius is not None else [rng.uniform(1.5, max(2.0, s / 2.5)) for s in shape]
    d = sum(((idx[i] - c[i]) / r[i]) ** 2 for i in range(3))
    return d + rng.normal(0, 0.25, shape) < 1.0


def make_case(rng, shape, kind):
    """Prediction and ground truth label volumes with labels 1..4 drawn per `kind`."""
    gt = np.zeros(shape, np.int16)
    pred = np.zeros(shape, np.int16)
    for lab in LABELS:
        g = blob(rng, shape)
        # prediction: the truth shifted and eroded/dilated a little, plus a stray blob
        p = np.roll(g, rng.integers(-2, 3, size=3), axis=(0, 1, 2))
        p ^= rng.random(shape) < 0.02
        if rng.random() < 0.5:
            p |= blob(rng, shape, radius=[1.5, 1.5, 1.5])
        gt[g] = lab
        pred[p] = lab
    if kind == "one_voxel":  # label 1: one voxel in each; label 2: one voxel vs a blob
        for vol in (gt, pred):
            vol[vol == 1] = 0
            vol[vol == 2] = 0
        gt[tuple(rng.integers(0, s) for s in shape)] = 1
        pred[tuple(rng.integers(0, s) for s in shape)] = 1
        pred[tuple(rng.integers(0, s) for s in shape)] = 2
        gt[blob(rng, shape) & (gt == 0)] = 2
    elif kind == "empty":  # label 1 missing in the prediction, 2 absent but predicted, 3 in neither
        pred[pred == 1] = 0
        gt[gt == 2] = 0
        gt[gt == 3] = 0
        pred[pred == 3] = 0
    elif kind == "border":  # label 4 fills whole faces of the volume
        gt[:, :, 0] = 4
        pred[0, :, :] = 4
        pred[:, :, -1] = 4
    elif kind == "sheet":  # one-voxel-thick sheets: every voxel is surface
        for vol in (gt, pred):
            vol[vol == 3] = 0
        gt[shape[0] // 2, :, :] = 3
        pred[:, shape[1] // 3, :] = 3
    return pred, gt


def write(path, vol, spacing, affine=None):
    aff = np.diag(list(spacing[:3]) + [1.0]) if affine is None else affine
    img = nib.Nifti1Image(vol, aff)
    img.header.set_zooms(spacing)
    nib.save(img, path)


def read_all(d):
    out = {}
    for n in os.listdir(d):
        with open(os.path.join(d, n), "rb") as f:
            out[n] = f.read()
    return out


def rel_close(a, b):
    if math.isnan(b):
        return math.isnan(a)
    if math.isinf(b):
        return a == b
    return abs(a - b) <= RTOL * max(abs(b), 1e-12)


def medpy_or_nan(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except RuntimeError:  # medpy raises on empty masks
        return float("nan")


CASES = [  # (shape, spacing, kind)
    ((37, 29, 23), (0.7, 0.9, 2.5), "blobs"),
    ((64, 48, 20), (1.0, 1.0, 1.0), "blobs"),
    ((40, 40, 12), (0.6640625, 0.6640625, 3.0), "one_voxel"),
    ((33, 21, 17), (1.3, 0.5, 0.8), "empty"),
    ((25, 30, 16), (0.8, 1.7, 2.2), "border"),
    ((30, 26, 18), (0.9, 0.4, 1.1), "sheet"),
    ((16, 16, 1), (0.5, 0.75, 5.0), "blobs"),  # one slice: a 2D image as a volume
    ((50, 9, 45), (2.0, 0.3, 1.0), "blobs"),
]


class EvaluateVsOracles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.pred_dir, cls.gt_dir = os.path.join(d, "pred"), os.path.join(d, "gt")
        os.makedirs(cls.pred_dir)
        os.makedirs(cls.gt_dir)
        rng = np.random.default_rng(20220)
        cls.cases = {}
        for i, (shape, spacing, kind) in enumerate(CASES):
            name = f"case{i:02d}_{kind}"
            pred, gt = make_case(rng, shape, kind)
            write(os.path.join(cls.pred_dir, name + ".nii.gz"), pred, spacing)
            write(os.path.join(cls.gt_dir, name + ".nii.gz"), gt, spacing)
            # the spacing as stored (float32 pixdim), which is what both sides must use
            zooms = tuple(float(z) for z in nib.load(os.path.join(cls.gt_dir, name + ".nii.gz")).header.get_zooms())
            cls.cases[name] = (pred, gt, zooms)
        cls.rows = {}
        for conv in ("medpy", "monai"):
            out = os.path.join(d, "out_" + conv)
            r = run("evaluate", "--pred", cls.pred_dir, "--gt", cls.gt_dir, "--out", out,
                    "--classes", "1,2,3,4", "--convention", conv)
            assert r.returncode == 0, r.stderr
            with open(os.path.join(out, "per_case.csv")) as f:
                cls.rows[conv] = {(row["case"], int(row["label"])): row for row in csv.DictReader(f)}
            cls.out = out

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def each(self):
        for name, (pred, gt, spacing) in self.cases.items():
            for lab in LABELS:
                yield name, lab, pred == lab, gt == lab, spacing

    def test_dsc_iou_equal_medpy(self):
        n = 0
        for name, lab, p, g, sp in self.each():
            row = self.rows["medpy"][(name, lab)]
            self.assertTrue(rel_close(float(row["dsc"]), medpy_binary.dc(p, g)), (name, lab, row["dsc"]))
            self.assertTrue(rel_close(float(row["iou"]), medpy_binary.jc(p, g)), (name, lab, row["iou"]))
            n += 1
        print(f"DSC and IoU equal medpy's on {n} (case, class) pairs")

    def test_hd95_equals_medpy_with_and_without_spacing(self):
        n = worst = 0
        for name, lab, p, g, sp in self.each():
            row = self.rows["medpy"][(name, lab)]
            ref = medpy_or_nan(medpy_binary.hd95, p, g, voxelspacing=sp)
            got = float(row["hd95"])
            self.assertTrue(rel_close(got, ref), f"{name} label {lab}: hd95 {got!r} vs medpy {ref!r}")
            ref_vox = medpy_or_nan(medpy_binary.hd95, p, g)
            got_vox = float(row["hd95_vox"])
            self.assertTrue(rel_close(got_vox, ref_vox), f"{name} label {lab}: hd95 (voxels) {got_vox!r} vs {ref_vox!r}")
            if not math.isnan(ref):
                n += 1
                worst = max(worst, abs(got - ref) / max(ref, 1e-12))
        self.assertGreater(n, 20)
        print(f"HD95 equals medpy's on {n} non-empty pairs (max relative difference {worst:.2e})")

    def test_baseline_protocol(self):
        # TransUNet's calculate_metric_percase on medpy: (dc, hd95 without spacing) when both are
        # present, (1, 0) when predicted but absent, (0, 0) otherwise
        for name, lab, p, g, sp in self.each():
            row = self.rows["medpy"][(name, lab)]
            if p.sum() > 0 and g.sum() > 0:
                ref = (medpy_binary.dc(p, g), medpy_binary.hd95(p, g))
            elif p.sum() > 0:
                ref = (1.0, 0.0)
            else:
                ref = (0.0, 0.0)
            self.assertTrue(rel_close(float(row["dsc_base"]), ref[0]), (name, lab))
            self.assertTrue(rel_close(float(row["hd95_base"]), ref[1]), (name, lab))

    def test_monai_definition_and_conventions(self):
        n = 0
        warnings.simplefilter("ignore")
        for name, lab, p, g, sp in self.each():
            row = self.rows["monai"][(name, lab)]
            yp = torch.from_numpy(p[None, None].astype(np.float32))
            yg = torch.from_numpy(g[None, None].astype(np.float32))
            hd = float(compute_hausdorff_distance(yp, yg, include_background=True, percentile=95,
                                                  spacing=list(sp))[0, 0])
            got = float(row["hd95"])
            self.assertTrue(rel_close(got, hd), f"{name} label {lab}: MONAI hd95 {got!r} vs {hd!r}")
            dice = float(compute_dice(yp, yg, include_background=True, ignore_empty=True)[0, 0])
            self.assertTrue(rel_close(float(row["dsc"]), dice), (name, lab, row["dsc"], dice))
            iou = float(compute_iou(yp, yg, include_background=True, ignore_empty=True)[0, 0])
            self.assertTrue(rel_close(float(row["iou"]), iou), (name, lab, row["iou"], iou))
            n += 1
        print(f"MONAI-definition HD95, Dice and IoU equal MONAI's on {n} pairs (empty-mask cases included)")

    def test_summary_files(self):
        import json
        with open(os.path.join(self.out, "summary.json")) as f:
            s = json.load(f)
        self.assertEqual(len(s["per_case"]), len(CASES))
        self.assertEqual([c["label"] for c in s["classes"]], LABELS)
        # class mean = nanmean over cases of the per-case values (MONAI convention here)
        for k, lab in enumerate(LABELS):
            vals = [float(self.rows["monai"][(name, lab)]["dsc"]) for name in self.cases]
            ref = np.nanmean(vals)
            self.assertTrue(rel_close(s["classes"][k]["dsc"], ref))
        with open(os.path.join(self.out, "summary.md")) as f:
            md = f.read()
        self.assertIn("| Method | DSC ↑ | HD95 ↓ |", md)


class BadInputs(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name
        self.pred, self.gt = os.path.join(self.d, "pred"), os.path.join(self.d, "gt")
        os.makedirs(self.pred)
        os.makedirs(self.gt)
        self.vol = np.zeros((10, 11, 12), np.uint8)
        self.vol[2:6, 3:7, 4:9] = 1

    def tearDown(self):
        self.tmp.cleanup()

    def evaluate(self):
        return run("evaluate", "--pred", self.pred, "--gt", self.gt, "--out", os.path.join(self.d, "o"))

    def test_shape_mismatch(self):
        write(os.path.join(self.gt, "c1.nii.gz"), self.vol, (1, 1, 1))
        write(os.path.join(self.pred, "c1.nii.gz"), self.vol[:, :, :10], (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("case c1", r.stderr)
        self.assertIn("shape", r.stderr)

    def test_geometry_mismatch(self):
        write(os.path.join(self.gt, "c1.nii.gz"), self.vol, (1, 1, 1))
        write(os.path.join(self.pred, "c1.nii.gz"), self.vol, (1, 1, 2))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("case c1", r.stderr)
        self.assertIn("spacing", r.stderr)
        aff = np.diag([1.0, 1, 1, 1])
        aff[0, 3] = 5.0  # same spacing, shifted origin
        write(os.path.join(self.pred, "c1.nii.gz"), self.vol, (1, 1, 1), affine=aff)
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("affine", r.stderr)

    def test_missing_case(self):
        write(os.path.join(self.gt, "c1.nii.gz"), self.vol, (1, 1, 1))
        write(os.path.join(self.gt, "c2.nii.gz"), self.vol, (1, 1, 1))
        write(os.path.join(self.pred, "c1.nii.gz"), self.vol, (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("case c2: no prediction", r.stderr)

    def test_non_integer_labels(self):
        write(os.path.join(self.gt, "c1.nii.gz"), self.vol, (1, 1, 1))
        bad = self.vol.astype(np.float32)
        bad[5, 5, 5] = 0.5
        write(os.path.join(self.pred, "c1.nii.gz"), bad, (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("case c1", r.stderr)
        self.assertIn("x=5, y=5, z=5", r.stderr)
        self.assertIn("integers", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.d, "o", "summary.json")))

    def test_nan_label_rejected(self):
        # NaN must not read as background (nifticlib's own loader would turn it into 0)
        write(os.path.join(self.pred, "c1.nii.gz"), self.vol, (1, 1, 1))
        bad = self.vol.astype(np.float32)
        bad[3, 4, 6] = np.nan
        write(os.path.join(self.gt, "c1.nii.gz"), bad, (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2)
        self.assertIn("case c1", r.stderr)
        self.assertIn("x=3, y=4, z=6", r.stderr)
        self.assertIn("nan", r.stderr)

    # ---- hostile input (issue 16): never a silent wrong result, never invalid JSON ----

    def two_cases(self):
        vols = []
        for i in range(2):
            v = np.zeros((10, 11, 12), np.int16)
            v[2:6, 3:7, 4:9] = 1
            v[6:9, 1:4, 1:5] = 2
            vols.append(v)
        return vols

    def test_stray_label_is_refused(self):
        # one voxel of label 200 used to add 200 classes: the headline mean fell to 1.5% from 57.5%
        for i, v in enumerate(self.two_cases()):
            write(os.path.join(self.gt, f"c{i}.nii.gz"), v, (1, 1, 1))
            p = v.copy()
            if i == 1:
                p[0, 0, 0] = 200
            write(os.path.join(self.pred, f"c{i}.nii.gz"), p, (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(os.path.join(self.pred, "c1.nii.gz") + ": label 200 is outside the class list [1, 2]", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.d, "o", "summary.json")), "no partial output")
        # named classes: the range is the list's (and the ground truth's)
        r = run("evaluate", "--pred", self.pred, "--gt", self.gt, "--out", os.path.join(self.d, "o"),
                "--classes", "1=a,2=b")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("label 200 is outside the class list [1, 2] (from --classes", r.stderr)
        # without the stray voxel the classes are 1 and 2, both perfect
        write(os.path.join(self.pred, "c1.nii.gz"), self.two_cases()[1], (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.d, "o", "summary.json")) as f:
            s = json.load(f)
        self.assertEqual([c["label"] for c in s["classes"]], [1, 2])

    @staticmethod
    def scored(stderr):
        """The cases evaluate scored, in order, from its per-case log lines."""
        return re.findall(r"^evaluate: (\S+) \(.*\): metrics ", stderr, re.M)

    def test_stray_label_is_refused_before_scoring(self):
        # the range is known before a case is scored (HD95 takes seconds to minutes a case): a
        # stray label in the first of four cases used to cost the whole evaluation, with 200
        # classes when they came from the data, before the error
        vols = self.two_cases() * 2
        out = os.path.join(self.d, "o")
        os.makedirs(out)
        with open(os.path.join(out, "summary.json"), "wb") as f:
            f.write(b"an earlier report\n")
        for stray in (0, 2):
            for i, v in enumerate(vols):
                write(os.path.join(self.gt, f"c{i}.nii.gz"), v, (1, 1, 1))
                p = v.copy()
                if i == stray:
                    p[0, 0, 0] = 200
                write(os.path.join(self.pred, f"c{i}.nii.gz"), p, (1, 1, 1))
            for classes in ([], ["--classes", "1=a,2=b"]):
                r = run("evaluate", "--pred", self.pred, "--gt", self.gt, "--out", out, *classes)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(os.path.join(self.pred, f"c{stray}.nii.gz") + ": label 200 is outside the class list "
                              "[1, 2] (" + ("from --classes" if classes else "labels 1.. of the ground truth"), r.stderr)
                # the cases before it were scored, it and those after it not
                self.assertEqual(self.scored(r.stderr), [f"c{i}" for i in range(stray)], r.stderr)
                self.assertEqual(read_all(out), {"summary.json": b"an earlier report\n"}, "outputs left untouched")

    def test_label_only_a_later_ground_truth_holds_is_accepted(self):
        # c0's prediction holds label 3, which only c1's ground truth holds (--classes leaves it
        # out): within the range (the largest label of the list and of every ground truth), so c0
        # is scored once c1's ground truth is read, with the values it always had
        rng = np.random.default_rng(2022)
        spacing = (0.8, 1.0, 2.0)
        preds, gts = [], []
        for i in range(3):
            pred, gt = make_case(rng, (14, 12, 9), "blobs")
            gt[gt >= (4 if i == 1 else 3)] = 0
            pred[pred >= (3 if i == 2 else 4)] = 0
            preds.append(pred)
            gts.append(gt)
            write(os.path.join(self.gt, f"c{i}.nii.gz"), gt, spacing)
            write(os.path.join(self.pred, f"c{i}.nii.gz"), pred, spacing)
        self.assertTrue((preds[0] == 3).any() and (gts[1] == 3).any() and (gts[0] < 3).all() and (gts[2] < 3).all())
        sp = tuple(float(z) for z in nib.load(os.path.join(self.gt, "c0.nii.gz")).header.get_zooms())
        out = os.path.join(self.d, "o")
        for classes, labels in ((["--classes", "1,2"], [1, 2]), ([], [1, 2, 3])):
            r = run("evaluate", "--pred", self.pred, "--gt", self.gt, "--out", out, *classes)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.scored(r.stderr), ["c0", "c1", "c2"], r.stderr)
            with open(os.path.join(out, "per_case.csv")) as f:
                rows = {(row["case"], int(row["label"])): row for row in csv.DictReader(f)}
            with open(os.path.join(out, "summary.json")) as f:
                s = json.load(f)
            self.assertEqual([c["label"] for c in s["classes"]], labels)
            for k, lab in enumerate(labels):
                dsc = []
                for i in range(3):
                    p, g = preds[i] == lab, gts[i] == lab
                    row = rows[(f"c{i}", lab)]
                    self.assertEqual((int(row["n_pred"]), int(row["n_gt"]), int(row["n_inter"])),
                                     (int(p.sum()), int(g.sum()), int((p & g).sum())), (i, lab))
                    # medpy's dc: 1 when both masks are empty (c2, label 3), 0 when one is (c0, label 3)
                    ref = 2 * (p & g).sum() / (p.sum() + g.sum()) if p.any() or g.any() else 1.0
                    self.assertTrue(rel_close(float(row["dsc"]), ref), (i, lab, row["dsc"], ref))
                    ref_hd = medpy_or_nan(medpy_binary.hd95, p, g, voxelspacing=sp)
                    self.assertTrue(rel_close(float(row["hd95"]), ref_hd), (i, lab, row["hd95"], ref_hd))
                    dsc.append(ref)
                self.assertTrue(rel_close(s["classes"][k]["dsc"], float(np.mean(dsc))), (lab, s["classes"][k]))
        # once every ground truth is read the range is final: a later stray label is refused at
        # once, the cases after it never scored
        p = preds[1].copy()
        p[0, 0, 0] = 200
        write(os.path.join(self.pred, "c1.nii.gz"), p, spacing)
        r = run("evaluate", "--pred", self.pred, "--gt", self.gt, "--out", os.path.join(self.d, "o2"),
                "--classes", "1,2")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(os.path.join(self.pred, "c1.nii.gz") + ": label 200 is outside the class list [1, 2] (from "
                      "--classes; the ground truth's largest label is 3)", r.stderr)
        self.assertEqual(self.scored(r.stderr), ["c0"], r.stderr)
        self.assertEqual(os.listdir(os.path.join(self.d, "o2")), [])

    def test_negative_label_is_refused(self):
        for where in ("pred", "gt"):
            v = self.two_cases()[0]
            bad = v.copy()
            bad[1, 2, 3] = -1
            write(os.path.join(self.gt, "c1.nii.gz"), bad if where == "gt" else v, (1, 1, 1))
            write(os.path.join(self.pred, "c1.nii.gz"), bad if where == "pred" else v, (1, 1, 1))
            r = self.evaluate()
            self.assertEqual(r.returncode, 2, r.stderr)
            path = os.path.join(self.pred if where == "pred" else self.gt, "c1.nii.gz")
            self.assertIn(f"{path}: voxel (x=1, y=2, z=3) holds label -1", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.d, "o", "summary.json")))

    def test_case_names_keep_summary_json_valid(self):
        v = self.two_cases()[0]
        # a UTF-8 name is written as it is, and json.loads reads it back
        for d in (self.gt, self.pred):
            write(os.path.join(d, "café.nii.gz"), v, (1, 1, 1))
        r = self.evaluate()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.d, "o", "summary.json"), "rb") as f:
            s = json.loads(f.read().decode("utf-8"))
        self.assertEqual(s["per_case"][0]["case"], "café")
        # a Latin-1 name (not UTF-8) used to make summary.json invalid JSON: refused, outputs untouched
        before = read_all(os.path.join(self.d, "o"))
        for d in (self.gt, self.pred):
            os.rename(os.path.join(d, "café.nii.gz"), os.path.join(os.fsencode(d), b"caf\xe9.nii.gz"))
        r = subprocess.run([os.fsencode(BIN), b"evaluate", b"--pred", os.fsencode(self.pred), b"--gt",
                            os.fsencode(self.gt), b"--out", os.fsencode(os.path.join(self.d, "o"))],
                           capture_output=True, timeout=600)
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 2, err)
        self.assertIn("is not valid UTF-8", err)
        after = read_all(os.path.join(self.d, "o"))
        self.assertEqual(before, after, "existing outputs untouched")
        with open(os.path.join(self.d, "o", "summary.json"), "rb") as f:
            json.loads(f.read().decode("utf-8"))


class Probabilities(unittest.TestCase):
    def test_iou_thresholds(self):
        # EM protocol: IoU of prob > t against the truth, t = 0.50..0.95, computed here with numpy
        rng = np.random.default_rng(7)
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "p"))
            os.makedirs(os.path.join(d, "g"))
            g = (blob(rng, (64, 64, 1), radius=[20, 25, 1]) ).astype(np.uint8)
            prob = np.clip(g * 0.8 + rng.normal(0.1, 0.2, g.shape), 0, 1).astype(np.float32)
            probs = np.stack([1 - prob, prob], axis=-1)
            write(os.path.join(d, "g", "em.nii.gz"), g, (1, 1, 1))
            write(os.path.join(d, "p", "em.nii.gz"), probs, (1, 1, 1, 1))
            r = run("evaluate", "--pred", os.path.join(d, "p"), "--gt", os.path.join(d, "g"),
                    "--out", os.path.join(d, "o"), "--prob", "--classes", "binary")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "o", "per_case.csv")) as f:
                row = list(csv.DictReader(f))[0]
            ious = []
            for t in np.arange(10) * 0.05 + 0.5:
                p = prob > t
                ious.append((p & (g == 1)).sum() / (p | (g == 1)).sum())
                self.assertTrue(rel_close(float(row[f"iou@{t:.2f}"]), ious[-1]), t)
            self.assertTrue(rel_close(float(row["miou"]), float(np.mean(ious))))


if __name__ == "__main__":
    unittest.main(verbosity=2)
