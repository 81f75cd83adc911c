#!/usr/bin/env bash
# tests/gpu/train_cuda.sh BIN — the product path end to end on one GPU (a step of check.sh):
# `unet2022 train` of the demo network with train.backend=cuda (precision auto = bf16) on a small
# phantom store: a validation of the fresh network on the GPU, 10 steps, a checkpoint, then a
# resume to step 20; then the same 20 steps uninterrupted. Passes when the runs exit 0, the second
# one resumed, every logged loss is finite, the last is below the first, and the resumed run's
# step-20 checkpoint holds exactly the uninterrupted run's tensors (deterministic kernels: no
# atomics in any gradient, deterministic cuDNN algorithms). The runs replay the step as a CUDA graph
# (train.cuda_graph: auto); a fourth run launches every op eagerly (train.cuda_graph=off) and must
# end with the same tensors too. Prints one summary line starting with "train_cuda:".
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
# the same 20 steps without the interruption: a resumed run must end bit-identical
straight_out=$("$BIN" train "${common[@]}" "train.run_dir=$work/straight" train.max_steps=20 train.val_at_start=true)
# and launched op by op instead of replayed as a graph: bit-identical as well
"$BIN" train "${common[@]}" "train.run_dir=$work/eager" train.max_steps=20 train.val_at_start=true \
  train.cuda_graph=off >/dev/null
graph=$(grep -a '^cuda graph: [0-9]* step(s) replayed' <<<"$straight_out" || true)
python3 - "$work/run/metrics.jsonl" "${UNET_CHECK_BACKEND:-cuda}" "$work/run/checkpoints/ckpt-00000020.safetensors" \
  "$work/straight/checkpoints/ckpt-00000020.safetensors" "$work/eager/checkpoints/ckpt-00000020.safetensors" \
  "$graph" <<'PY'
import json, math, struct, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
backend = sys.argv[2]

def tensors(path):  # safetensors without the package: 8-byte header size, JSON header, data
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}

resumed, straight, eager = tensors(sys.argv[3]), tensors(sys.argv[4]), tensors(sys.argv[5])
differ = sorted(k for k in straight if resumed.get(k) != straight[k])
exact = sorted(resumed) == sorted(straight) and not differ
differ_eager = sorted(k for k in straight if eager.get(k) != straight[k])
graph_line = sys.argv[6]  # "cuda graph: N step(s) replayed, ..." (none on the CPU backend)
replays = int(graph_line.split()[2]) if graph_line else 0
graph_ok = sorted(eager) == sorted(straight) and not differ_eager and (backend != "cuda" or replays > 0)
steps = {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}
vals = [r for r in rows if r["kind"] in ("val", "val_baseline")]
ok = sorted(steps) == list(range(1, 21)) and all(math.isfinite(v) for v in steps.values()) and steps[20] < steps[1]
ok = ok and exact and graph_ok
print(f"train_cuda: 20 steps (10 + resume + 10) on {backend}: loss {steps.get(1, float('nan')):.4f} -> "
      f"{steps.get(20, float('nan')):.4f}, {len(vals)} validation(s), weights and Adam state "
      + ("bit-identical to an uninterrupted run" if exact else f"DIFFER from an uninterrupted run ({len(differ)} "
         f"tensors, e.g. {differ[:3]})")
      + (f"; {graph_line or 'no cuda graph'}, " + ("bit-identical to eager launches" if not differ_eager else
         f"DIFFERS from eager launches ({len(differ_eager)} tensors, e.g. {differ_eager[:3]})"))
      + f": {'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 3)
PY
