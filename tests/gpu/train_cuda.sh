#!/usr/bin/env bash
# tests/gpu/train_cuda.sh BIN — the product path end to end on one GPU (a step of check.sh):
# `unet2022 train` of the demo network with train.backend=cuda (precision auto = bf16) on a small
# phantom store: a validation of the fresh network on the GPU, 10 steps, a checkpoint, then a
# resume to step 20. Passes when both runs exit 0, the second one resumed, every logged loss is
# finite and the last is below the first. Prints one summary line starting with "train_cuda:".
# (UNET_CHECK_BACKEND=cpu runs the same on the CPU: how the script itself is tested without a GPU;
# UNET_CHECK_OVERRIDES adds config overrides.)
set -euo pipefail
BIN=${1:?usage: tests/gpu/train_cuda.sh path/to/unet2022}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN" synth --out "$work/raw" --seed 1 --cases 6 --force >/dev/null
"$BIN" prepare synapse --src "$work/raw" --split "$work/raw/split.txt" --out "$work/store" --force --quiet
read -r -a extra <<<"${UNET_CHECK_OVERRIDES:-}" # e.g. train.batch_size=2 for the slow emulator
common=(configs/demo.yaml "train.store=$work/store" "train.run_dir=$work/run" "train.backend=${UNET_CHECK_BACKEND:-cuda}" train.log_every=1
  train.val_max_slices=16 train.checkpoint_every=10 "${extra[@]}")
"$BIN" train "${common[@]}" train.max_steps=10 train.val_at_start=true
out=$("$BIN" train "${common[@]}" train.max_steps=20)
echo "$out"
grep -q '^resume:' <<<"$out" || { echo "train_cuda: FAIL: the second run did not resume"; exit 3; }
python3 - "$work/run/metrics.jsonl" "${UNET_CHECK_BACKEND:-cuda}" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
backend = sys.argv[2]
steps = {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}
vals = [r for r in rows if r["kind"] in ("val", "val_baseline")]
ok = sorted(steps) == list(range(1, 21)) and all(math.isfinite(v) for v in steps.values()) and steps[20] < steps[1]
print(f"train_cuda: 20 steps (10 + resume + 10) on {backend}: loss {steps.get(1, float('nan')):.4f} -> "
      f"{steps.get(20, float('nan')):.4f}, {len(vals)} validation(s): {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 3)
PY
