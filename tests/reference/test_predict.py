#!/usr/bin/python3
"""`unet2022 predict` against independent oracles: the PyTorch reference network
(tests/reference/unet2022_ref.py) for the forward passes, nnU-Net v1's sliding-window
arithmetic re-implemented here with numpy/scipy (step positions, scipy.ndimage.gaussian_filter
importance map, softmax aggregation), and nibabel for the written NIfTI headers.

- the importance map alone equals nnU-Net's _get_gaussian (σ = crop/8) to 1e-6;
- a window covering the image exactly gives softmax(forward) of the reference network;
- larger and smaller slices (several windows; padding) equal the numpy aggregation;
- mirror TTA equals the mean of the 4 flipped reference passes, and on a mirror-symmetric input
  the output is mirror-symmetric (equivariance of the 4-pass average);
- outputs keep the input's affine, qform/sform codes and zooms; overlays are valid PNGs."""
import os
import subprocess
import sys
import tempfile
import unittest

import nibabel as nib
import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from scipy.ndimage import gaussian_filter

SRC = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import unet2022_ref as R  # noqa: E402

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
TOL = 1e-4  # the C model against the reference: outputs agree to 1e-4 relative (test_model_vs_torch)

YAML = """name: predict_test
network:
  preset: custom
  embed_dim: 16
  heads: [1, 2, 4, 8]
  patch_size: 4
  windows: [4, 4, 2, 2]
  in_channels: 1
  classes: 3
  deep_supervision: true
  crop: [64, 64]
  drop_path_rate: 0.0
"""


def run(*args, timeout=900):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def nnunet_gaussian(patch, sigma_scale=1.0 / 8):
    """nnU-Net v1 Generic_UNet._get_gaussian."""
    tmp = np.zeros(patch)
    tmp[tuple(i // 2 for i in patch)] = 1
    g = gaussian_filter(tmp, [i * sigma_scale for i in patch], 0, mode="constant", cval=0)
    g = (g / np.max(g) * 1).astype(np.float32)
    g[g == 0] = np.min(g[g != 0])
    return g


def nnunet_steps(patch, image, step):
    """nnU-Net v1 _compute_steps_for_sliding_window (one axis)."""
    n = int(np.ceil((image - patch) / (patch * step))) + 1
    actual = (image - patch) / (n - 1) if n > 1 else 99999999999
    return [int(np.round(actual * i)) for i in range(n)]


def rel_err(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


class Predict(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.cfg_path = os.path.join(d, "c.yaml")
        with open(cls.cfg_path, "w") as f:
            f.write(YAML)
        cfg = R.cfg_from_yaml(cls.cfg_path)
        cls.model = R.draw_params(R.UNet2022Ref(cfg, stochastic_depth=False), 11).to(torch.float64).eval()
        sd = cls.model.state_dict()
        weights = {k: (v.numpy().astype(np.int64) if v.dtype == torch.int64 else v.numpy().astype(np.float32))
                   for k, v in sd.items()}
        cls.w_path = os.path.join(d, "w.safetensors")
        save_file(weights, cls.w_path)
        # the same weights with the config stored in the metadata, as a training checkpoint has it
        cls.w_meta = os.path.join(d, "w_meta.safetensors")
        save_file(weights, cls.w_meta, metadata={"format": "pt", "config": YAML})

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ref_softmax(self, sl):
        """sl: (H, W) slice -> (K, H, W) softmax of the reference network."""
        with torch.no_grad():
            out = self.model(torch.from_numpy(np.asarray(sl, np.float64))[None, None])[0]
        return torch.softmax(out, 1)[0].numpy()

    def ref_mirror(self, sl):
        acc = 0
        for fy in (0, 1):
            for fx in (0, 1):
                s = sl[::-1] if fy else sl
                s = s[:, ::-1] if fx else s
                p = self.ref_softmax(np.ascontiguousarray(s))
                p = p[:, ::-1] if fy else p
                p = p[:, :, ::-1] if fx else p
                acc = acc + p
        return acc / 4

    def ref_sliding(self, sl, step, mirror=False):
        """nnU-Net v1 predict_2D sliding window on one slice, with the reference network."""
        H, W = sl.shape
        Hp, Wp = max(H, 64), max(W, 64)
        oy, ox = (Hp - H) // 2, (Wp - W) // 2
        img = np.zeros((Hp, Wp))
        img[oy:oy + H, ox:ox + W] = sl
        g = nnunet_gaussian((64, 64)).astype(np.float64)
        acc = np.zeros((3, Hp, Wp))
        wsum = np.zeros((Hp, Wp))
        for y in nnunet_steps(64, Hp, step):
            for x in nnunet_steps(64, Wp, step):
                win = img[y:y + 64, x:x + 64]
                p = self.ref_mirror(win) if mirror else self.ref_softmax(win)
                acc[:, y:y + 64, x:x + 64] += p * g
                wsum[y:y + 64, x:x + 64] += g
        return (acc / wsum)[:, oy:oy + H, ox:ox + W]

    def predict(self, vol, *extra, affine=None, name="case"):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        aff = np.diag([0.8, 0.8, 2.5, 1]) if affine is None else affine
        img = nib.Nifti1Image(vol.astype(np.float32), aff)
        img.header.set_qform(aff, code=1)  # scanner: both transforms meaningful, as viewers read them
        img.header.set_sform(aff, code=2)
        inp = os.path.join(d, name + ".nii.gz")
        nib.save(img, inp)
        out = os.path.join(d, "out")
        r = run("predict", "--weights", self.w_path, "--config", self.cfg_path, "--input", inp, "--output", out,
                "--probs", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        lab = nib.load(os.path.join(out, name + ".nii.gz"))
        prob = nib.load(os.path.join(out, "probs", name + ".nii.gz"))
        return inp, out, lab, prob

    @staticmethod
    def slice_probs(prob, z):
        """(x, y, z, K) NIfTI probabilities -> (K, y, x) of slice z."""
        return np.asarray(prob.dataobj)[:, :, z, :].transpose(2, 1, 0)

    def test_importance_map_equals_nnunet_gaussian(self):
        for crop in ([64, 64], [96, 128]):
            cfg = os.path.join(self.tmp.name, f"g{crop[0]}.yaml")
            with open(cfg, "w") as f:
                f.write(YAML.replace("crop: [64, 64]", f"crop: [{crop[0]}, {crop[1]}]"))
            path = os.path.join(self.tmp.name, f"g{crop[0]}.safetensors")
            r = run("predict", "--config", cfg, "--dump-gaussian", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            ours = load_file(path)["gaussian"]
            ref = nnunet_gaussian(tuple(crop))
            self.assertEqual(ours.shape, ref.shape)
            np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)
            self.assertEqual(ours.max(), 1.0)
            cy, cx = crop[0] // 2, crop[1] // 2
            # σ = crop/8: one σ from the centre along y the map is exp(-1/2)
            self.assertAlmostEqual(float(ours[cy + crop[0] // 8, cx]), np.exp(-0.5), places=6)

    def test_exact_cover_equals_direct_forward(self):
        rng = np.random.default_rng(1)
        vol = rng.normal(size=(64, 64, 2))  # (x, y, z): the window covers each slice exactly
        _, _, lab, prob = self.predict(vol)
        for z in range(2):
            ref = self.ref_softmax(vol[:, :, z].T)
            ours = self.slice_probs(prob, z)
            self.assertLess(rel_err(ours, ref), TOL, f"slice {z}")
            agree = np.mean(np.asarray(lab.dataobj)[:, :, z].T == ref.argmax(0))
            self.assertGreater(agree, 0.999)

    def test_sliding_window_larger_and_smaller_slices(self):
        rng = np.random.default_rng(2)
        for shape, step in (((100, 80, 1), 0.5), ((70, 130, 1), 0.3), ((48, 40, 1), 0.5)):
            vol = rng.normal(size=shape)
            _, _, _, prob = self.predict(vol, "--step", step)
            ref = self.ref_sliding(vol[:, :, 0].T, step)
            self.assertLess(rel_err(self.slice_probs(prob, 0), ref), TOL, f"shape {shape} step {step}")

    def test_step_from_the_config(self):
        """Without --step the window step is the config's predict.step (default 0.5, nnU-Net's),
        not a rule on the crop size; --step overrides it."""
        rng = np.random.default_rng(6)
        vol = rng.normal(size=(70, 130, 1))
        d = tempfile.mkdtemp(dir=self.tmp.name)
        cfg03 = os.path.join(d, "step03.yaml")
        with open(cfg03, "w") as f:
            f.write(YAML + "predict:\n  step: 0.3\n")
        inp = os.path.join(d, "case.nii.gz")
        nib.save(nib.Nifti1Image(vol.astype(np.float32), np.eye(4)), inp)
        for cfg, extra, step in ((cfg03, (), 0.3), (self.cfg_path, (), 0.5), (cfg03, ("--step", 0.5), 0.5)):
            out = os.path.join(d, f"out{len(os.listdir(d))}")
            r = run("predict", "--weights", self.w_path, "--config", cfg, "--input", inp, "--output", out, "--probs",
                    *extra)
            self.assertEqual(r.returncode, 0, r.stderr)
            prob = nib.load(os.path.join(out, "probs", "case.nii.gz"))
            ref = self.ref_sliding(vol[:, :, 0].T, step)
            self.assertLess(rel_err(self.slice_probs(prob, 0), ref), TOL, f"{cfg} {extra}")

    def test_mirror_tta(self):
        rng = np.random.default_rng(3)
        vol = rng.normal(size=(64, 64, 1))
        _, _, _, prob = self.predict(vol, "--mirror")
        ref = self.ref_mirror(vol[:, :, 0].T)
        self.assertLess(rel_err(self.slice_probs(prob, 0), ref), TOL)
        # equivariance: a mirror-symmetric input gives a mirror-symmetric TTA output, whatever the
        # network (the 4-pass average is invariant under the flips)
        half = rng.normal(size=(32, 32))
        top = np.concatenate([half, half[:, ::-1]], axis=1)
        sym = np.concatenate([top, top[::-1]], axis=0)
        _, _, _, prob = self.predict(sym.T[:, :, None], "--mirror")
        p = self.slice_probs(prob, 0)
        np.testing.assert_allclose(p, p[:, ::-1, :], atol=2e-6)
        np.testing.assert_allclose(p, p[:, :, ::-1], atol=2e-6)

    def test_geometry_preserved_and_overlay(self):
        rng = np.random.default_rng(4)
        vol = rng.normal(size=(64, 64, 3))
        theta = 0.3
        aff = np.array([[0.7 * np.cos(theta), -0.7 * np.sin(theta), 0, -120.5],
                        [0.7 * np.sin(theta), 0.7 * np.cos(theta), 0, 33.25],
                        [0, 0, 2.5, -400.0], [0, 0, 0, 1]])
        inp, out, lab, prob = self.predict(vol, "--overlay", "mid,0", affine=aff)
        src = nib.load(inp)
        for img in (lab, prob):
            np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
            np.testing.assert_allclose(img.header.get_sform(), src.header.get_sform(), atol=1e-5)
            np.testing.assert_allclose(img.header.get_qform(), src.header.get_qform(), atol=1e-5)
            self.assertEqual(int(img.header["sform_code"]), int(src.header["sform_code"]))
            self.assertEqual(int(img.header["qform_code"]), int(src.header["qform_code"]))
            self.assertEqual(img.header.get_zooms()[:3], src.header.get_zooms()[:3])
        self.assertEqual(lab.shape, (64, 64, 3))
        self.assertEqual(lab.get_data_dtype(), np.uint8)
        self.assertEqual(prob.shape, (64, 64, 3, 3))
        self.assertEqual(prob.get_data_dtype(), np.float32)
        np.testing.assert_allclose(np.asarray(prob.dataobj).sum(-1), 1.0, atol=1e-5)
        try:
            from PIL import Image
        except ImportError:
            return
        for z in (1, 0):
            png = Image.open(os.path.join(out, f"case_z{z:03d}.png"))
            self.assertEqual(png.size, (2 * 64, 64))  # image | prediction (no ground truth given)
            self.assertEqual(png.mode, "RGB")

    def test_config_from_weights_metadata_and_errors(self):
        rng = np.random.default_rng(5)
        d = tempfile.mkdtemp(dir=self.tmp.name)
        inp = os.path.join(d, "c.nii.gz")
        nib.save(nib.Nifti1Image(rng.normal(size=(64, 64, 1)).astype(np.float32), np.eye(4)), inp)
        r = run("predict", "--weights", self.w_meta, "--input", inp, "--output", os.path.join(d, "o"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(d, "o", "c.nii.gz")))
        r = run("predict", "--weights", self.w_path, "--input", inp, "--output", os.path.join(d, "o2"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("--config", r.stderr)
        two = os.path.join(d, "two.nii.gz")
        nib.save(nib.Nifti1Image(rng.normal(size=(64, 64, 1, 2)).astype(np.float32), np.eye(4)), two)
        r = run("predict", "--weights", self.w_meta, "--input", two, "--output", os.path.join(d, "o3"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("case two", r.stderr)
        self.assertIn("channel", r.stderr)
        # NaN input is an error naming the voxel, as in `prepare` (not silently 0)
        nan = os.path.join(d, "nan.nii.gz")
        vol = rng.normal(size=(64, 64, 2)).astype(np.float32)
        vol[9, 7, 1] = np.nan
        nib.save(nib.Nifti1Image(vol, np.eye(4)), nan)
        r = run("predict", "--weights", self.w_meta, "--input", nan, "--output", os.path.join(d, "o4"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("case nan", r.stderr)
        self.assertIn("NaN intensity at voxel (x=9, y=7, z=1)", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "o4", "nan.nii.gz")))

    def test_non_finite_weights_are_refused(self):
        # one NaN weight used to give exit 0 and an all-background volume (argmax of NaN is 0)
        rng = np.random.default_rng(6)
        d = tempfile.mkdtemp(dir=self.tmp.name)
        inp = os.path.join(d, "c.nii.gz")
        nib.save(nib.Nifti1Image(rng.normal(size=(64, 64, 1)).astype(np.float32), np.eye(4)), inp)
        weights = {k: (v.numpy().astype(np.int64) if v.dtype == torch.int64 else v.numpy().astype(np.float32))
                   for k, v in self.model.state_dict().items()}
        name = next(k for k, v in weights.items() if v.dtype == np.float32 and v.size > 4)
        for bad in (np.nan, np.inf):
            w = dict(weights)
            w[name] = w[name].copy()
            w[name].flat[3] = bad
            path = os.path.join(d, "bad.safetensors")
            save_file(w, path, metadata={"format": "pt", "config": YAML})
            out = os.path.join(d, "o")
            r = run("predict", "--weights", path, "--input", inp, "--output", out)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{path}: tensor '{name}' holds a non-finite value", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "c.nii.gz")), "no output")

    def test_fifo_as_weights_is_refused(self):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        fifo = os.path.join(d, "w.fifo")
        os.mkfifo(fifo)
        inp = os.path.join(d, "c.nii.gz")
        nib.save(nib.Nifti1Image(np.zeros((64, 64, 1), np.float32), np.eye(4)), inp)
        r = run("predict", "--weights", fifo, "--config", self.cfg_path, "--input", inp, "--output",
                os.path.join(d, "o"), timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{fifo}: is a FIFO (named pipe), not a regular file", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
