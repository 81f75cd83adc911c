"""`unet2022 train` on the emulated CUDA backend with the step captured once as a CUDA graph and
replayed (train.cuda_graph, src/train/step_graph.h), against the same run launched op by op.

- fp32 and bf16: 8 steps with train.cuda_graph=on and =off end with bit-identical checkpoints
  (every tensor: weights, Adam's m and v) and identical per-step losses and norms. The tiny
  network has drop path and deep supervision on, so the per-step values a replay must read from
  memory (drop-path scales, Adam's bias terms, the batch) all matter; an epoch ends at step 6,
  with a validation and a checkpoint between replays.
- bf16: stopped at step 4 and resumed with graphs on, the run ends bit-identical to the
  uninterrupted one.
- with MPI: 2 ranks (NCCL over MPI, gradient buckets overlapping backward inside the graph), on
  and off, bit-identical.
Each graph run must say it replayed its steps. The logic only, without a GPU."""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_train_common import BIN, HAVE_MPI, run, tiny_config  # noqa: E402

STEPS = 8


def steps(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["step"]: (r["loss"], r["grad_norm"]) for r in rows if r["kind"] == "step"}


def checkpoint(run_dir, step):
    return load_file(os.path.join(run_dir, "checkpoints", f"ckpt-{step:08d}.safetensors"))


def same(a, b):
    """Names of the tensors that differ (or exist on one side only)."""
    return sorted(set(a) ^ set(b)) + sorted(k for k in set(a) & set(b) if not np.array_equal(a[k], b[k]))


def main():
    tmp = tempfile.mkdtemp(prefix="unet-emu-graph-")
    failures = []
    try:
        cfg = tiny_config(tmp)

        def train(name, graph, *extra, ranks=0, max_steps=STEPS):
            d = os.path.join(tmp, name)
            out = run([BIN, "train", cfg, f"train.run_dir={d}", f"train.max_steps={max_steps}", "train.backend=cuda",
                       f"train.cuda_graph={graph}", *extra], ranks)
            m = re.search(r"cuda graph: (\d+) step\(s\) replayed, (\d+) capture", out)
            if graph == "on" and (not m or int(m.group(1)) < 2):
                failures.append(f"{name}: the steps were not replayed as a graph ({m.group(0) if m else 'no line'})")
            if graph == "off" and m:
                failures.append(f"{name}: train.cuda_graph=off replayed a graph")
            return d, out

        def compare(what, da, db, step=STEPS):
            sa, sb = steps(da), steps(db)
            if sorted(sa) != list(range(1, step + 1)) or sa != sb:
                failures.append(f"{what}: per-step losses/norms differ: {sa} vs {sb}")
            differ = same(checkpoint(da, step), checkpoint(db, step))
            if differ:
                failures.append(f"{what}: {len(differ)} checkpoint tensors differ, e.g. {differ[:4]}")
            n = len(checkpoint(da, step))
            print(f"{what}: {n} tensors (weights, adam.m, adam.v) {'bit-identical' if not differ else 'DIFFER'}, "
                  f"losses {[round(sa[s][0], 6) for s in sorted(sa)]}")

        for prec in ("fp32", "bf16"):
            on, out_on = train(f"{prec}_on", "on", f"train.precision={prec}")
            off, _ = train(f"{prec}_off", "off", f"train.precision={prec}")
            compare(f"{prec}: graph on vs off, {STEPS} steps", on, off)
            if prec == "bf16":
                part, _ = train("bf16_resumed", "on", "train.precision=bf16", "train.checkpoint_every=4", max_steps=4)
                _, out_res = train("bf16_resumed", "on", "train.precision=bf16", "train.checkpoint_every=4")
                if "resume:" not in out_res:
                    failures.append("the second bf16 run did not resume")
                compare("bf16: graph on, stopped at 4 and resumed vs uninterrupted", part, on)
        if HAVE_MPI:
            on2, out2 = train("nccl2_on", "on", "train.precision=fp32", "train.grad_bucket_mb=0.002", ranks=2,
                              max_steps=4)
            off2, _ = train("nccl2_off", "off", "train.precision=fp32", "train.grad_bucket_mb=0.002", ranks=2,
                            max_steps=4)
            if not re.search(r"gradient all-reduce: \d+ bucket", out2):
                failures.append("2 ranks: no gradient buckets")
            compare("2 ranks (NCCL over MPI, buckets in the graph): graph on vs off", on2, off2, step=4)
        else:
            print("2 ranks: skipped (built without MPI)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
