#!/usr/bin/env python3
"""Our augmentation transforms against batchgenerators (PyPI) with fixed parameters on the same
input: `unet2022-check augment-apply` runs one C transform; batchgenerators' own functions run the
same one (for the spatial transform, the exact steps of augment_spatial: zero-centred mesh,
rotate_coords_2d, scale_coords, + centre, interpolate_img). Skipped (77) without
batchgenerators.

What differs and why (all within the tolerances below):
- images: our B-spline coefficients are stored in float32 (scipy keeps float64) and the causal
  initial sum is cut at |z|^24 < 2e-14: ~1e-6 relative.
- blur: we accumulate in float32, scipy in float64 per pass: ~1e-7.
- low resolution: scipy pads 12 edge pixels and starts its recursion with the 'nearest' rule,
  we start it with the mirror rule on the same padding: the difference decays by |z|^12 ~ 1e-7.
- labels: identical where the per-label scores are not tied to the last bit; exact ties (the
  half-integer sample points of a scale-1 warp) are resolved identically.
"""
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

import numpy as np

try:
    from safetensors.numpy import load_file, save_file
    import batchgenerators  # noqa: F401
    from batchgenerators.augmentations import color_augmentations as bg_color
    from batchgenerators.augmentations.color_augmentations import (augment_brightness_multiplicative,
                                                                   augment_contrast, augment_gamma)
    from batchgenerators.augmentations.noise_augmentations import augment_gaussian_blur
    from batchgenerators.augmentations.resample_augmentations import augment_linear_downsampling_scipy
    from batchgenerators.augmentations.spatial_transformations import augment_spatial
    from batchgenerators.augmentations.utils import (create_zero_centered_coordinate_mesh, interpolate_img,
                                                     rotate_coords_2d, scale_coords)
except ImportError as e:  # pragma: no cover
    print(f"skipped: {e} (scripts/install-deps.sh installs batchgenerators)")
    sys.exit(77)

CHECK = os.environ.get("UNET2022_CHECK", "build/unet2022-check")


def make_input(C, H, W, seed, pad_rows=0):
    """Smooth image plus noise and blob labels 0..5; the first pad_rows rows are 'outside the
    slice' (image 0, label -1), as the enlarged crop leaves them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    img = np.stack([np.sin(yy / (7 + c)) + np.cos(xx / 5.0) + 0.3 * rng.standard_normal((H, W)) for c in range(C)])
    lab = ((yy // 9) * 3 + (xx // 11) * 5 + (rng.random((H, W)) < 0.05)) % 6
    img[:, :pad_rows] = 0
    lab[:pad_rows] = -1
    return img.astype(np.float32), lab.astype(np.int32)


class AugmentVsBatchgenerators(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ours(self, img, lab, op, **kw):
        src, dst = os.path.join(self.tmp.name, "in.safetensors"), os.path.join(self.tmp.name, "out.safetensors")
        tensors = {"image": np.ascontiguousarray(img, np.float32)}
        if lab is not None:
            tensors["label"] = np.ascontiguousarray(lab, np.int32)
        save_file(tensors, src)
        args = [CHECK, "augment-apply", src, dst, op] + [f"{k}={v!r}" for k, v in kw.items()]
        r = subprocess.run(args, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = load_file(dst)
        return out["image"], out.get("label")

    @staticmethod
    def bg_warp(img, lab, angle, scale, patch):
        """augment_spatial's steps for one sample, with the angle and scale fixed."""
        coords = create_zero_centered_coordinate_mesh(patch)
        coords = rotate_coords_2d(coords, angle)
        coords = scale_coords(coords, scale)
        for d in range(2):
            coords[d] += img.shape[d + 1] / 2. - 0.5
        data = np.stack([interpolate_img(img[c], coords, 3, "constant", cval=0) for c in range(img.shape[0])])
        seg = interpolate_img(lab.astype(np.float32), coords, 1, "constant", cval=-1, is_seg=True)
        return data, seg

    def check_images(self, ours, ref, tol, what):
        err = np.abs(ours.astype(np.float64) - ref).max()
        rng = np.ptp(ref)
        print(f"{what}: max |ours - batchgenerators| = {err:.2e} (data range {rng:.2f})")
        self.assertLessEqual(err, tol * max(rng, 1.0), what)

    def test_warp(self):
        cases = [(0.0, 1.0, (461, 376), (320, 320), 2),   # the synapse_320 sizes; half-pixel grid, label ties
                 (0.2, 1.0, (115, 94), (80, 80), 0),
                 (0.13, 0.78, (115, 94), (80, 80), 9),
                 (0.26, 1.37, (115, 94), (80, 80), 9),
                 (-2.5, 0.9, (90, 100), (64, 48), 3)]
        for angle, scale, (H, W), patch, pad in cases:
            img, lab = make_input(2, H, W, seed=H + int(100 * scale), pad_rows=pad)
            o_img, o_lab = self.ours(img, lab, "warp", angle=angle, scale=scale, h=patch[0], w=patch[1])
            r_img, r_lab = self.bg_warp(img, lab, angle, scale, patch)
            what = f"warp angle {angle} scale {scale} {H}x{W} -> {patch}"
            self.check_images(o_img, r_img, 1e-5, what + " image")
            mismatch = np.mean(o_lab != r_lab.astype(np.int32))
            print(f"{what} label: {mismatch * 100:.4f}% of pixels differ")
            self.assertLessEqual(mismatch, 1e-4, what + " labels")
            self.assertTrue(set(np.unique(o_lab)) <= set(np.unique(lab)) | {-1}, "labels stay in the input set (-1: outside)")

    def test_augment_spatial_glue(self):
        """The whole augment_spatial with a fixed scale > 1 (its draw is then deterministic) and
        with neither rotation nor scaling (its centre crop)."""
        img, lab = make_input(1, 101, 90, seed=5, pad_rows=4)
        d, s = augment_spatial(img[None], lab[None, None].astype(np.float32), (64, 64), patch_center_dist_from_border=None,
                               do_elastic_deform=False, do_rotation=False, do_scale=True, scale=(1.2, 1.2),
                               border_mode_data="constant", border_cval_data=0, order_data=3, border_mode_seg="constant",
                               border_cval_seg=-1, order_seg=1, random_crop=False, p_scale_per_sample=1)
        o_img, o_lab = self.ours(img, lab, "warp", angle=0.0, scale=1.2, h=64, w=64)
        self.check_images(o_img, d[0], 1e-5, "augment_spatial scale 1.2")
        self.assertLessEqual(np.mean(o_lab != s[0, 0].astype(np.int32)), 1e-4)
        d, s = augment_spatial(img[None], lab[None, None].astype(np.float32), (64, 64), patch_center_dist_from_border=None,
                               do_elastic_deform=False, do_rotation=False, do_scale=False, random_crop=False)
        o_img, o_lab = self.ours(img, lab, "center_crop", h=64, w=64)
        self.assertTrue(np.array_equal(o_img, d[0]) and np.array_equal(o_lab, s[0, 0].astype(np.int32)),
                        "centre crop identical")

    def test_blur(self):
        img, _ = make_input(2, 70, 64, seed=2)
        for sigma in (0.5, 0.77, 1.0):
            o, _ = self.ours(img, None, "blur", sigma=sigma)
            r = augment_gaussian_blur(img.copy(), (sigma, sigma), per_channel=True, p_per_channel=1)
            self.check_images(o, r, 1e-6, f"blur sigma {sigma}")

    def test_contrast_brightness(self):
        img, _ = make_input(2, 50, 40, seed=3)
        for f in (0.8, 1.22):
            o, _ = self.ours(img, None, "contrast", factor=f)
            r = augment_contrast(img.copy(), contrast_range=lambda f=f: f, preserve_range=True, per_channel=True)
            self.check_images(o, r, 1e-6, f"contrast {f}")
        o, _ = self.ours(img, None, "brightness", mult=1.17)
        r = augment_brightness_multiplicative(img.copy(), (1.17, 1.17), per_channel=True)
        self.check_images(o, r, 1e-7, "brightness 1.17")

    def test_gamma(self):
        img, _ = make_input(2, 50, 40, seed=4)
        for g in (0.74, 1.41):
            for inv in (False, True):
                o, _ = self.ours(img, None, "gamma", gamma=g, invert=int(inv), retain=1)
                # fix the drawn gamma: every np.random.uniform in the function returns g
                with mock.patch.object(bg_color.np.random, "uniform", lambda *a, **k: g):
                    r = augment_gamma(img.copy(), (0.7, 1.5), invert_image=inv, per_channel=True, retain_stats=True)
                self.check_images(o, r, 1e-5, f"gamma {g} inverted {inv}")

    def test_lowres(self):
        img, _ = make_input(2, 80, 72, seed=6)
        for z in (0.5, 0.63, 0.91):
            o, _ = self.ours(img, None, "lowres", zoom=z)
            r = augment_linear_downsampling_scipy(img.copy(), zoom_range=(z, z), per_channel=True, p_per_channel=1,
                                                  order_downsample=0, order_upsample=3)
            self.check_images(o, r, 1e-5, f"low resolution zoom {z}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
