#!/usr/bin/env python3
"""GPU side of the PyTorch baseline: times forward + loss + backward of the reference UNet-2022
(tests/reference/unet2022_ref.py) on a CUDA device, in one of three modes:

  eager-fp32   plain fp32 (TF32 off), the counterpart of our fp32 backend
  eager-amp    torch.autocast(float16) + GradScaler, as the released code trains
  compile-amp  the same under torch.compile (default mode)

Usage: python3 scripts/bench_torch_gpu.py CONFIG.yaml --mode MODE [--batch B] [--runs N] [--warmup W]
Prints each run, then on the last line a JSON object:
  {"impl":"torch-MODE","config":...,"batch":...,"median_ms":...,"images_per_s":...,"peak_mib":...,
   "runs_ms":[...]}
Stochastic depth off (as scripts/bench_torch_ref.py), train mode, PyTorch's default init.
Exit status 77 when torch has no CUDA device (the check script then reports "skipped").
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import unet2022_ref as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--mode", choices=["eager-fp32", "eager-amp", "compile-amp"], required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch sees no CUDA device: skipped")
        sys.exit(77)

    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    cfg = R.cfg_from_yaml(a.config)
    model = R.UNet2022Ref(cfg, stochastic_depth=False).to(dev).train()
    H, W = cfg["crop"]
    image = torch.randn(a.batch, cfg["in_channels"], H, W, device=dev)
    labels = R.make_labels(a.batch, H, W, cfg["classes"], 1).to(dev)
    amp = a.mode.endswith("amp")
    net = torch.compile(model) if a.mode.startswith("compile") else model
    scaler = torch.cuda.amp.GradScaler(enabled=amp)

    def step():
        model.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            outs = net(image)
        # the loss in fp32, as nnU-Net computes it outside autocast
        loss = R.loss_fn([o.float() for o in outs], labels)
        scaler.scale(loss).backward()
        return loss

    t0 = time.perf_counter()
    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    print(f"warm-up ({a.warmup} steps, includes compilation): {time.perf_counter() - t0:.1f} s", flush=True)
    torch.cuda.reset_peak_memory_stats()
    runs = []
    for i in range(a.runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
        runs.append(ms)
        print(f"run {i}: {ms:.2f} ms (loss {float(loss):.5f})", flush=True)
    med = statistics.median(runs)
    peak = torch.cuda.max_memory_allocated() / 2**20
    print(f"{a.mode}: median {med:.2f} ms, {a.batch / med * 1e3:.1f} images/s, peak {peak:.0f} MiB "
          f"({torch.cuda.get_device_name()}, torch {torch.__version__})")
    print(json.dumps({"impl": "torch-" + a.mode, "config": cfg.get("name") or os.path.basename(a.config),
                      "batch": a.batch, "median_ms": round(med, 3), "images_per_s": round(a.batch / med * 1e3, 2),
                      "peak_mib": round(peak), "runs_ms": [round(r, 3) for r in runs]}, separators=(",", ":")))


if __name__ == "__main__":
    main()
