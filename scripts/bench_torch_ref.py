#!/usr/bin/python3
"""PyTorch side of the benchmark: times forward + loss + backward of the reference UNet-2022
(tests/reference/unet2022_ref.py) for a config YAML and batch size.

Usage: /usr/bin/python3 scripts/bench_torch_ref.py CONFIG.yaml [--batch B] [--runs N] [--threads T]
                                                   [--warmup W] [--dtype float32|float64]
Prints each run, then on the last line a JSON object:
  {"impl":"torch","config":...,"batch":...,"threads":...,"median_ms":...,"runs_ms":[...]}
Stochastic depth is off (as in our `trace`), train mode, parameters at PyTorch's default init.
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
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = R.cfg_from_yaml(a.config)
    dtype = getattr(torch, a.dtype)
    model = R.UNet2022Ref(cfg, stochastic_depth=False).to(dtype).train()
    H, W = cfg["crop"]
    image = torch.randn(a.batch, cfg["in_channels"], H, W, dtype=dtype)
    labels = R.make_labels(a.batch, H, W, cfg["classes"], 1)

    def step():
        model.zero_grad(set_to_none=False)
        loss = R.loss_fn(model(image), labels)
        loss.backward()
        return float(loss)

    for _ in range(a.warmup):
        step()
    runs = []
    for i in range(a.runs):
        t0 = time.perf_counter()
        loss = step()
        ms = (time.perf_counter() - t0) * 1e3
        runs.append(ms)
        print(f"run {i}: {ms:.1f} ms (loss {loss:.5f})", flush=True)
    med = statistics.median(runs)
    print(f"median: {med:.1f} ms")
    print(json.dumps({"impl": "torch", "config": cfg.get("name") or os.path.basename(a.config),
                      "batch": a.batch, "threads": a.threads, "median_ms": round(med, 3),
                      "runs_ms": [round(r, 3) for r in runs]}, separators=(",", ":")))


if __name__ == "__main__":
    main()
