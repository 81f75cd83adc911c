"""Two ranks of `unet2022 train` on the emulated CUDA backend (tests/cuda_emu): the NCCL transport
(over MPI in the emulator), gradient buckets started during backward, and the global loss.

- 2 ranks on cuda (fp32) give the per-step losses of 1 rank on the CPU reference (to the last
  few ulps: the gradient sums are ordered differently);
- 2 ranks with small buckets and with one bucket after backward end with bit-identical weights
  (a sum of two floats does not depend on order, so any bucket reduced before its gradients were
  final would show).
The multi-GPU path's logic, without GPUs; never a stand-in for a GPU run."""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_train_common import BIN, run, tiny_config  # noqa: E402

STEPS = 4


def losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}


def main():
    tmp = tempfile.mkdtemp(prefix="unet-emu-nccl-")
    try:
        cfg = tiny_config(tmp)

        def train(name, ranks, *extra):
            d = os.path.join(tmp, name)
            out = run([BIN, "train", cfg, f"train.run_dir={d}", f"train.max_steps={STEPS}", "train.val_every=0",
                       *extra], ranks)
            return d, out

        cpu, _ = train("cpu1", 0)
        small, out_small = train("cuda2_small", 2, "train.backend=cuda", "train.precision=fp32",
                                 "train.grad_bucket_mb=0.002")
        one, _ = train("cuda2_one", 2, "train.backend=cuda", "train.precision=fp32", "train.grad_bucket_mb=0")
        failures = []
        m = re.search(r"gradient all-reduce: (\d+) bucket", out_small)
        if not m or int(m.group(1)) < 20:
            failures.append(f"expected many buckets with grad_bucket_mb=0.002, got: {m.group(0) if m else 'no line'}")
        a, b = losses(cpu), losses(small)
        if sorted(a) != list(range(1, STEPS + 1)) or sorted(b) != sorted(a):
            failures.append(f"steps logged: cpu {sorted(a)}, cuda {sorted(b)}")
        worst = max(abs(b[s] - a[s]) / max(1.0, abs(a[s])) for s in a) if a and sorted(b) == sorted(a) else 1.0
        if worst > 1e-5:
            failures.append(f"2 cuda ranks vs 1 cpu rank: worst relative loss difference {worst:.2e} > 1e-5")
        name = f"checkpoints/ckpt-{STEPS:08d}.safetensors"
        ta, tb = load_file(os.path.join(small, name)), load_file(os.path.join(one, name))
        differ = [k for k in ta if not np.array_equal(ta[k], tb[k])]
        if sorted(ta) != sorted(tb) or differ:
            failures.append(f"small buckets vs one bucket: {len(differ)} tensors differ, e.g. {differ[:3]}")
        print(f"losses, 1 cpu rank: {[round(a[s], 7) for s in sorted(a)]}")
        print(f"losses, 2 emulated-cuda ranks (NCCL over MPI, {m.group(1) if m else '?'} buckets): "
              f"{[round(b.get(s, float('nan')), 7) for s in sorted(a)]}; worst rel diff {worst:.2e}")
        print(f"weights after {STEPS} steps, small buckets vs one bucket: "
              f"{'identical' if not differ else f'{len(differ)} tensors differ'}")
        if failures:
            print("FAIL:\n  " + "\n  ".join(failures))
            return 1
        print("ok")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
