#!/usr/bin/python3
"""Writes a random batch (image F32 (B, Cin, H, W), labels I32 (B, H, W)) for a config's crop,
for `unet2022 trace`. Usage: make_random_batch.py CONFIG.yaml OUT.safetensors [BATCH]"""
import sys

import numpy as np
import yaml
from safetensors.numpy import save_file

cfg = yaml.safe_load(open(sys.argv[1]))["network"]
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
h, w = cfg["crop"]
rng = np.random.default_rng(0)
image = rng.standard_normal((batch, cfg["in_channels"], h, w)).astype(np.float32)
yy, xx = np.mgrid[0:h, 0:w]
labels = np.zeros((batch, h, w), np.int32)
for k in range(1, cfg["classes"]):  # one disc per class, so every class is present
    cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 16, h // 6)
    labels[:, (yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
save_file({"image": image, "labels": labels}, sys.argv[2])
print(f"batch: {batch} x {cfg['in_channels']} x {h} x {w} -> {sys.argv[2]}")
