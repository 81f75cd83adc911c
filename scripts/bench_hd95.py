#!/usr/bin/python3
"""HD95 benchmark: `unet2022 evaluate` against medpy.metric.binary.hd95 on the same data.

A synthetic 512×512×150 CT-like volume pair (spacing 0.76 × 0.76 × 3 mm) with 8 organ-sized
ellipsoids with rough boundaries; the prediction is the truth shifted, with boundary noise and a
few stray false-positive blobs (which widen the bounding boxes, as real errors do). Both sides
compute HD95 in mm with voxel spacing for the 8 organs; ours additionally computes DSC, IoU and
the spacing-free HD95 of the baselines' protocol in the same call, so the comparison is
conservative. Prints each side's median over the runs, the ratio, and checks the values agree.

usage: /usr/bin/python3 scripts/bench_hd95.py [--bin build/unet2022] [--runs 5] [--medpy-runs 3]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import nibabel as nib
import numpy as np
from medpy.metric.binary import hd95

SHAPE = (512, 512, 150)
SPACING = (0.76, 0.76, 3.0)
# (label, centre (x, y, z), radii (voxels)) roughly where and how big the Synapse organs are
ORGANS = [
    (1, (340, 300, 80), (45, 40, 18)),   # spleen
    (2, (330, 220, 70), (30, 28, 16)),   # right kidney
    (3, (180, 220, 70), (30, 28, 16)),   # left kidney
    (4, (200, 330, 90), (18, 14, 8)),    # gallbladder
    (6, (160, 300, 95), (95, 80, 30)),   # liver
    (7, (330, 340, 100), (55, 45, 20)),  # stomach
    (8, (255, 260, 75), (10, 10, 60)),   # aorta
    (11, (260, 280, 85), (60, 16, 8)),   # pancreas
]


def make_pair(seed=0):
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    for lab, c, r in ORGANS:
        lo = [max(0, int(c[i] - r[i] - 4)) for i in range(3)]
        hi = [min(SHAPE[i], int(c[i] + r[i] + 5)) for i in range(3)]
        idx = np.indices([hi[i] - lo[i] for i in range(3)]).astype(np.float32)
        d = sum(((idx[i] + lo[i] - c[i]) / r[i]) ** 2 for i in range(3))
        box = tuple(slice(lo[i], hi[i]) for i in range(3))
        g = d + rng.normal(0, 0.08, d.shape).astype(np.float32) < 1.0
        gb = gt[box]  # a view: organs painted later do not cover earlier ones
        gb[g & (gb == 0)] = lab
        shift = rng.integers(-3, 4, size=3)
        p = np.roll(g, shift, axis=(0, 1, 2))
        p = (d * (1 + rng.normal(0, 0.05)) + rng.normal(0, 0.1, d.shape).astype(np.float32) < 1.0) & p
        pb = pred[box]
        pb[p & (pb == 0)] = lab
        for _ in range(2):  # stray false positives somewhere else in the body
            s = [int(rng.integers(60, SHAPE[0] - 60)), int(rng.integers(60, SHAPE[1] - 60)), int(rng.integers(10, SHAPE[2] - 10))]
            blob = pred[s[0] - 4:s[0] + 4, s[1] - 4:s[1] + 4, s[2] - 2:s[2] + 2]
            blob[blob == 0] = lab
    for lab, _, _ in ORGANS:
        assert (gt == lab).any() and (pred == lab).any(), lab
    return pred, gt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("UNET2022_BIN", "build/unet2022"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--medpy-runs", type=int, default=3)
    args = ap.parse_args()

    pred, gt = make_pair()
    labels = [o[0] for o in ORGANS]
    with tempfile.TemporaryDirectory() as d:
        for sub, vol in (("pred", pred), ("gt", gt)):
            os.makedirs(os.path.join(d, sub))
            nib.save(nib.Nifti1Image(vol, np.diag(list(SPACING) + [1.0])), os.path.join(d, sub, "case0001.nii.gz"))
        zooms = nib.load(os.path.join(d, "gt", "case0001.nii.gz")).header.get_zooms()

        ours, ours_total = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            r = subprocess.run([args.bin, "evaluate", "--pred", os.path.join(d, "pred"), "--gt", os.path.join(d, "gt"),
                                "--out", os.path.join(d, "out"), "--classes", ",".join(map(str, labels))],
                               capture_output=True, text=True)
            ours_total.append(time.perf_counter() - t)
            if r.returncode != 0:
                sys.exit(r.stderr)
            ours.append(float(re.search(r"metrics ([0-9.]+) s", r.stderr).group(1)))
        import csv
        with open(os.path.join(d, "out", "per_case.csv")) as f:
            got = {int(row["label"]): float(row["hd95"]) for row in csv.DictReader(f)}

    med = []
    ref = {}
    for _ in range(args.medpy_runs):
        t = time.perf_counter()
        for lab in labels:
            ref[lab] = hd95(pred == lab, gt == lab, voxelspacing=zooms)
        med.append(time.perf_counter() - t)

    worst = max(abs(got[lab] - ref[lab]) / ref[lab] for lab in labels)
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    print(f"volume {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]}, 8 organs, spacing {SPACING} mm, OMP_NUM_THREADS={threads}")
    for lab in labels:
        print(f"  label {lab:2d}: HD95 ours {got[lab]:.6f} mm, medpy {ref[lab]:.6f} mm")
    print(f"max relative difference: {worst:.2e}")
    mo, mt, mm = statistics.median(ours), statistics.median(ours_total), statistics.median(med)
    print(f"medpy hd95 x8: median {mm:.3f} s over {len(med)} runs")
    print(f"ours (DSC, IoU, HD95 mm + HD95 voxels, 8 organs): median {mo:.3f} s over {len(ours)} runs "
          f"(whole command incl. reading .nii.gz and writing reports: {mt:.3f} s)")
    print(f"speed-up: {mm / mo:.1f}x (metrics), {mm / mt:.1f}x (whole command)")
    if worst > 1e-6:
        sys.exit("values differ from medpy's")


if __name__ == "__main__":
    main()
