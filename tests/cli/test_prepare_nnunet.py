"""`unet2022 prepare nnunet`: nnU-Net v1 (TaskNNN_Name) and v2 (DatasetNNN_Name) raw datasets.

Fixtures are written by nibabel and json; the store is read back with h5py and compared voxel for
voxel with what nibabel was given, normalised here by numpy from the documented definitions
(docs/datasets.md): CT channels with the foreground statistics of every 10th foreground voxel of
each training case (0.5 / 99.5 percentiles clip, z-score), other channels per-case z-score. Bad
datasets fail with a message naming the file and the field, and leave no store behind.
"""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import h5py
import nibabel as nib
import numpy as np

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
SRC_DIR = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))


def run(*args):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True)


def manifest(store):
    with open(os.path.join(store, "manifest.json")) as f:
        return json.load(f)


def case(store, name):
    m = manifest(store)
    c = next(c for c in m["cases"] if c["name"] == name)
    with h5py.File(os.path.join(store, m["shards"][c["shard"]]["file"]), "r") as f:
        g = f["cases"][name]
        return g["image"][...], g["label"][...], dict(g.attrs)


def zyx(a):
    return np.transpose(a, (2, 1, 0))


TRAIN = ["case_001", "case_002", "case_003", "case_004", "case_005"]


def write_dataset(root, version, modalities=("CT", "MRI"), labels=3, shapes=None, test=("case_009",), seed=0):
    """A dataset in nnU-Net's layout; returns {case: ([channel arrays (x, y, z)], label)}."""
    rng = np.random.default_rng(seed)
    for d in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    data = {}
    for i, name in enumerate(TRAIN + list(test)):
        shape = (shapes or {}).get(name, (12 + i, 10, 3 + i % 2))
        aff = np.diag([0.9, 0.9, 3.0, 1.0])
        aff[:3, 3] = [i, -2.0, 5.0]
        chans = []
        for k, mod in enumerate(modalities):
            if mod == "CT":
                x = rng.integers(-1000, 1500, size=shape).astype(np.int16)
            else:
                x = rng.normal(200 + 50 * k, 40, size=shape).astype(np.float32)
            d = "imagesTs" if name in test else "imagesTr"
            nib.save(nib.Nifti1Image(x, aff), os.path.join(root, d, "%s_%04d.nii.gz" % (name, k)))
            chans.append(x.astype(np.float64))
        lab = rng.integers(0, labels, size=shape).astype(np.uint8)
        nib.save(nib.Nifti1Image(lab, aff), os.path.join(root, "labelsTs" if name in test else "labelsTr",
                                                         name + ".nii.gz"))
        data[name] = (chans, lab)
    names = ["background", "liver", "tumour", "vessel"][:labels]
    if version == 1:
        js = {"name": "Test", "modality": {str(k): m for k, m in enumerate(modalities)},
              "labels": {str(i): n for i, n in enumerate(names)}, "numTraining": len(TRAIN),
              "training": [{"image": "./imagesTr/%s.nii.gz" % n, "label": "./labelsTr/%s.nii.gz" % n} for n in TRAIN],
              "test": ["./imagesTs/%s.nii.gz" % n for n in test]}
    else:
        js = {"channel_names": {str(k): m for k, m in enumerate(modalities)},
              "labels": {n: i for i, n in enumerate(names)}, "numTraining": len(TRAIN), "file_ending": ".nii.gz"}
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump(js, f)
    return data


def expected(data, modalities):
    """{case: image (D, C, H, W)} normalised as docs/datasets.md says."""
    stats = {}
    for k, mod in enumerate(modalities):
        if mod != "CT":
            continue
        fg = np.concatenate([zyx(ch[k]).ravel()[zyx(lab).ravel() > 0][::10] for n, (ch, lab) in data.items()
                             if n in TRAIN]).astype(np.float32).astype(np.float64)
        stats[k] = [np.float32(v) for v in (np.percentile(fg, 0.5), np.percentile(fg, 99.5), fg.mean(), fg.std())]
    out = {}
    for n, (ch, lab) in data.items():
        cs = []
        for k, mod in enumerate(modalities):
            x = zyx(ch[k]).astype(np.float32)
            if mod == "CT":
                lo, hi, m, sd = stats[k]
                cs.append((np.clip(x, lo, hi) - m) / sd)
            else:
                x = x.astype(np.float64)
                cs.append((x - x.mean()) / max(x.std(), 1e-8))
        out[n] = np.stack(cs, axis=1)
    return out


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_nnunet_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, *a):
        return os.path.join(self.tmp, *a)

    def assert_fails(self, r, out, *words):
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertFalse(os.path.exists(out), "a store was left at " + out)
        self.assertEqual(glob.glob(out + ".tmp.*"), [], "temporary directory left behind")


class Import(Base):
    def check_store(self, version, modalities):
        src = self.p("Task501_Test" if version == 1 else "Dataset501_Test")
        data = write_dataset(src, version, modalities)
        r = run("prepare", "nnunet", "--src", src, "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = manifest(self.p("st"))
        self.assertEqual(m["classes"], ["background", "liver", "tumour"])
        self.assertEqual(sorted(m["splits"]["train"] + m["splits"]["val"]), TRAIN)
        self.assertEqual(len(m["splits"]["val"]), 1)  # round(5 / 5)
        self.assertEqual(m["splits"]["test"], ["case_009"])
        want = expected(data, modalities)
        for n, (ch, lab) in data.items():
            img, label, attrs = case(self.p("st"), n)
            self.assertEqual(img.shape, want[n].shape)
            np.testing.assert_allclose(img, want[n], rtol=1e-5, atol=1e-5, err_msg=n)
            np.testing.assert_array_equal(label, zyx(lab))
            np.testing.assert_allclose(attrs["spacing"], [0.9, 0.9, 3.0])
            self.assertEqual(len(attrs["source_files"]), len(modalities) + 1)
        return m

    def test_v1_ct_and_mri_channels(self):
        self.check_store(1, ("CT", "MRI"))

    def test_v2_mri_and_ct_channels(self):
        m = self.check_store(2, ("T2", "CT"))
        # The default split is seeded: the same dataset gives the same split.
        r = run("prepare", "nnunet", "--src", self.p("Dataset501_Test"), "--out", self.p("st2"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(manifest(self.p("st2"))["splits"], m["splits"])

    def test_splits_final_fold_and_split_file(self):
        src = self.p("Dataset502_Test")
        write_dataset(src, 2, ("MRI",), test=())
        with open(os.path.join(src, "splits_final.json"), "w") as f:
            json.dump([{"train": TRAIN[:4], "val": TRAIN[4:]}, {"train": TRAIN[1:], "val": TRAIN[:1]}], f)
        r = run("prepare", "nnunet", "--src", src, "--out", self.p("st"), "--fold", 1, "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(manifest(self.p("st"))["splits"]["val"], ["case_001"])
        with open(self.p("split.txt"), "w") as f:
            f.write("train 2\ntrain 3\nval 4\ntest 5\n")
        r = run("prepare", "nnunet", "--src", src, "--out", self.p("st2"), "--split", self.p("split.txt"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        sp = manifest(self.p("st2"))["splits"]
        self.assertEqual((sp["train"], sp["val"], sp["test"]), (["case_002", "case_003"], ["case_004"], ["case_005"]))
        r = run("prepare", "nnunet", "--src", src, "--out", self.p("st3"), "--fold", 5)
        self.assert_fails(r, self.p("st3"), "splits_final.json", "--fold 5")


class Errors(Base):
    def setUp(self):
        super().setUp()
        self.src = self.p("Dataset503_Bad")
        write_dataset(self.src, 2, ("CT", "MRI"), test=())

    def edit_json(self, fn):
        path = os.path.join(self.src, "dataset.json")
        with open(path) as f:
            js = json.load(f)
        fn(js)
        with open(path, "w") as f:
            json.dump(js, f)

    def prepare(self):
        return run("prepare", "nnunet", "--src", self.src, "--out", self.p("st"))

    def test_missing_channel_file(self):
        os.remove(os.path.join(self.src, "imagesTr", "case_003_0001.nii.gz"))
        self.assert_fails(self.prepare(), self.p("st"), "case_003_0001.nii.gz", "channel 1")

    def test_label_not_in_labels(self):
        lab = np.zeros((14, 10, 3), np.uint8)
        lab[2, 3, 1] = 7
        nib.save(nib.Nifti1Image(lab, np.diag([0.9, 0.9, 3.0, 1.0]) + np.array([[0, 0, 0, 2], [0, 0, 0, -2],
                 [0, 0, 0, 5], [0, 0, 0, 0]])), os.path.join(self.src, "labelsTr", "case_003.nii.gz"))
        self.assert_fails(self.prepare(), self.p("st"), "case_003.nii.gz", "label id 7", "\"labels\"")

    def test_channel_geometry_differs(self):
        p = os.path.join(self.src, "imagesTr", "case_002_0001.nii.gz")
        im = nib.load(p)
        nib.save(nib.Nifti1Image(np.asarray(im.dataobj), np.diag([1.2, 0.9, 3.0, 1.0])), p)
        self.assert_fails(self.prepare(), self.p("st"), "case_002_0001.nii.gz", "geometry")

    def test_json_does_not_parse(self):
        with open(os.path.join(self.src, "dataset.json"), "w") as f:
            f.write('{"channel_names": {"0": "CT"}, "labels": ')
        self.assert_fails(self.prepare(), self.p("st"), "dataset.json", "does not parse")

    def test_missing_fields(self):
        for field in ("labels", "file_ending", "numTraining"):
            self.edit_json(lambda js: js.pop(field))
            self.assert_fails(self.prepare(), self.p("st"), "dataset.json", '"%s"' % field)
            write_dataset(self.src, 2, ("CT", "MRI"), test=())
        self.edit_json(lambda js: js.pop("channel_names"))
        self.assert_fails(self.prepare(), self.p("st"), "dataset.json", "channel_names")

    def test_region_based_labels_refused(self):
        self.edit_json(lambda js: js["labels"].update({"whole": [1, 2]}))
        self.assert_fails(self.prepare(), self.p("st"), "dataset.json", '"whole"', "region-based")

    def test_num_training_mismatch(self):
        self.edit_json(lambda js: js.update({"numTraining": 9}))
        self.assert_fails(self.prepare(), self.p("st"), "numTraining", "labelsTr")

    def test_v1_missing_training(self):
        shutil.rmtree(self.src)
        write_dataset(self.src, 1, ("CT",), test=())
        self.edit_json(lambda js: js.pop("training"))
        self.assert_fails(self.prepare(), self.p("st"), "dataset.json", '"training"')


TINY = """name: tiny
network:
  preset: custom
  embed_dim: 8
  heads: [1, 1, 2, 2]
  patch_size: 4
  windows: [4, 2, 2, 1]
  in_channels: 1
  classes: 14
  deep_supervision: true
  crop: [32, 32]
  drop_path_rate: 0.1
train:
  batch_size: 2
  epochs: 1
  store: {store}
  train_split: train
  val_split: val
  val_max_slices: 2
  threads: 1
loader:
  workers: 1
"""


class StoreDecides(Base):
    """The store's channels and classes against the config's: info notes, train refuses, naming both."""

    def test_info_notes_train_refuses_overrides_train(self):
        src = self.p("Dataset504_Train")
        write_dataset(src, 2, ("CT", "MRI"), shapes={n: (36, 34, 3) for n in TRAIN}, test=())
        r = run("prepare", "nnunet", "--src", src, "--out", self.p("st"), "--quiet")
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = self.p("tiny.yaml")
        with open(cfg, "w") as f:
            f.write(TINY.format(store=self.p("st")))
        r = run("info", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("note: the store %s has 3 classes and 2 input channels" % self.p("st"), r.stdout)
        self.assertIn("network.classes=3 network.in_channels=2", r.stdout)
        r = run("train", cfg, "train.run_dir=" + self.p("run0"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("network.classes 14, network.in_channels 1", r.stderr)
        self.assertIn("`network.classes=3 network.in_channels=2`", r.stderr)
        r = run("train", cfg, "train.run_dir=" + self.p("run1"), "network.classes=3", "network.in_channels=2",
                "train.max_steps=2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("info", cfg, "network.classes=3", "network.in_channels=2")
        self.assertNotIn("note:", r.stdout)


if __name__ == "__main__":
    unittest.main()
