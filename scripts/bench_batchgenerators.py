#!/usr/bin/env python3
"""The baseline for `unet2022 bench-loader`: the released recipe's training augmentation as
nnU-Net v1 runs it with batchgenerators (PyPI), on the same kind of input: in-memory 512x512
phantom slices, the enlarged crop [461, 376] -> 320x320 patch, 1 channel, batches of 8.

Per sample: DataLoader2D's random crop of the enlarged patch (zero pad, label -1), then
SpatialTransform (rotation p 0.2 in [0, 15] deg, scaling p 0.2 in (0.7, 1.4), cubic data /
linear per-label seg, centre crop), GaussianNoise, GaussianBlur, BrightnessMultiplicative,
Contrast, SimulateLowResolution, inverted Gamma, Gamma, Mirror, RemoveLabel(-1 -> 0).

Runs PROCS independent processes (numpy/scipy single-threaded each), prints samples/s and
samples/s per process (= per core), median over --runs.

    python3 scripts/bench_batchgenerators.py --procs 1 --runs 5 --seconds 3
"""
import argparse
import multiprocessing as mp
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def phantom(n, size, classes, seed):
    """Smooth body, elliptical organs 1..classes-1, mild noise (like the C phantom)."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid((np.arange(size) + 0.5) / size - 0.5, (np.arange(size) + 0.5) / size - 0.5, indexing="ij")
    imgs, segs = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.int16)
        for k in range(1, classes):
            cy, cx = (rng.random(2) - 0.5) * 0.6
            ry, rx = 0.04 + 0.12 * rng.random(2)
            lab[((fy - cy) / ry) ** 2 + ((fx - cx) / rx) ** 2 < 1] = k
        body = np.where(fy ** 2 / 0.16 + fx ** 2 / 0.2 < 1, 1.0, -1.5)
        img = body + 0.3 * lab + 0.2 * np.sin(13 * fy + 7 * fx) + 0.1 * rng.standard_normal((size, size))
        imgs.append(img[None].astype(np.float32))
        segs.append(lab[None].astype(np.float32))
    return imgs, segs


def pipeline(patch):
    from batchgenerators.transforms.abstract_transforms import Compose
    from batchgenerators.transforms.color_transforms import (BrightnessMultiplicativeTransform,
                                                             ContrastAugmentationTransform, GammaTransform)
    from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
    from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
    from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform
    from batchgenerators.transforms.utility_transforms import RemoveLabelTransform
    rot = (0.0, 15.0 / 360 * 2 * np.pi)
    return Compose([
        SpatialTransform(patch, patch_center_dist_from_border=None, do_elastic_deform=False,
                         do_rotation=True, angle_x=rot, angle_y=(0, 0), angle_z=(0, 0), p_rot_per_axis=1,
                         do_scale=True, scale=(0.7, 1.4), border_mode_data="constant", border_cval_data=0,
                         order_data=3, border_mode_seg="constant", border_cval_seg=-1, order_seg=1,
                         random_crop=False, p_el_per_sample=0.2, p_scale_per_sample=0.2, p_rot_per_sample=0.2,
                         independent_scale_for_each_axis=False),
        GaussianNoiseTransform(p_per_sample=0.1),
        GaussianBlurTransform((0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.2, p_per_channel=0.5),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
        ContrastAugmentationTransform(p_per_sample=0.15),
        SimulateLowResolutionTransform(zoom_range=(0.5, 1), per_channel=True, p_per_channel=0.5,
                                       order_downsample=0, order_upsample=3, p_per_sample=0.25, ignore_axes=None),
        GammaTransform((0.7, 1.5), True, True, retain_stats=True, p_per_sample=0.1),
        GammaTransform((0.7, 1.5), False, True, retain_stats=True, p_per_sample=0.3),
        MirrorTransform((0, 1)),
        RemoveLabelTransform(-1, 0),
    ])


def crop_batch(imgs, segs, batch, enlarged, patch, rng):
    """nnU-Net v1 DataLoader2D without foreground oversampling: random slice, random crop of
    the enlarged patch, zero pad (seg -1)."""
    data = np.zeros((batch, 1) + tuple(enlarged), np.float32)
    seg = np.zeros((batch, 1) + tuple(enlarged), np.float32)
    for b in range(batch):
        i = rng.integers(len(imgs))
        img, lab = imgs[i], segs[i]
        shape = img.shape[1:]
        need = [enlarged[d] - patch[d] for d in range(2)]
        for d in range(2):
            if need[d] + shape[d] < enlarged[d]:
                need[d] = enlarged[d] - shape[d]
        lb = [-need[d] // 2 for d in range(2)]
        ub = [shape[d] + need[d] // 2 + need[d] % 2 - enlarged[d] for d in range(2)]
        y0, x0 = rng.integers(lb[0], ub[0] + 1), rng.integers(lb[1], ub[1] + 1)
        vy0, vx0 = max(0, y0), max(0, x0)
        vy1, vx1 = min(shape[0], y0 + enlarged[0]), min(shape[1], x0 + enlarged[1])
        pads = ((0, 0), (-min(0, y0), max(y0 + enlarged[0] - shape[0], 0)), (-min(0, x0), max(x0 + enlarged[1] - shape[1], 0)))
        data[b] = np.pad(img[:, vy0:vy1, vx0:vx1], pads, "constant", constant_values=0)
        seg[b] = np.pad(lab[:, vy0:vy1, vx0:vx1], pads, "constant", constant_values=-1)
    return data, seg


def worker(args, seed, q):
    np.random.seed(seed)
    import random
    random.seed(seed)
    rng = np.random.default_rng(seed)
    imgs, segs = phantom(args.slices, args.size, args.classes, 1)
    patch, enlarged = (args.patch, args.patch), tuple(args.enlarged)
    tr = pipeline(patch)
    for _ in range(2):  # warm-up
        d, s = crop_batch(imgs, segs, args.batch, enlarged, patch, rng)
        tr(data=d, seg=s)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        d, s = crop_batch(imgs, segs, args.batch, enlarged, patch, rng)
        out = tr(data=d, seg=s)
        assert out["data"].shape == (args.batch, 1) + patch
        n += args.batch
    q.put((n, time.perf_counter() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=320)
    ap.add_argument("--enlarged", type=int, nargs=2, default=[461, 376])
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--classes", type=int, default=9)
    args = ap.parse_args()
    from importlib.metadata import version
    print(f"bench_batchgenerators: batchgenerators {version('batchgenerators')}, patch "
          f"{args.patch}x{args.patch} from enlarged {args.enlarged}, batch {args.batch}, {args.procs} process(es)")
    rates = []
    for r in range(args.runs):
        q = mp.Queue()
        ps = [mp.Process(target=worker, args=(args, 1000 * r + k, q)) for k in range(args.procs)]
        for p in ps:
            p.start()
        res = [q.get() for _ in ps]
        for p in ps:
            p.join()
        rate = sum(n / dt for n, dt in res)
        rates.append(rate)
        print(f"  run {r + 1}: {rate:.1f} samples/s ({rate / args.procs:.1f} per process)")
    med = float(np.median(rates))
    print(f"median: {med:.1f} samples/s, {med / args.procs:.1f} samples/s per process")
    print(f"RESULT samples_per_s={med:.3f} per_core={med / args.procs:.3f} procs={args.procs} patch={args.patch}")


if __name__ == "__main__":
    main()
