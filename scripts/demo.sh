#!/usr/bin/env bash
# The README's main job, on a fresh Debian machine: installs what is missing, builds, generates
# the built-in phantom dataset (raw BTCV layout), imports it into a slice store, trains the demo
# config on the CPU (a few minutes on 2 cores), and reports the validation Dice per class before
# and after training, and where the checkpoints and logs are. Run it again and it resumes (or,
# when the run is complete, just reports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
OUT=out/demo
mkdir -p "$OUT"
if [[ ! -f $OUT/raw/split.txt ]]; then
  ./build/unet2022 synth --out "$OUT/raw" --seed 1 --force
fi
if [[ ! -f $OUT/store/manifest.json ]]; then
  ./build/unet2022 prepare synapse --src "$OUT/raw" --split "$OUT/raw/split.txt" --out "$OUT/store" --force --quiet
fi
./build/unet2022 train configs/demo.yaml train.store="$OUT/store" train.run_dir="$OUT/run"
/usr/bin/python3 - "$OUT/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
base = [r for r in rows if r["kind"] == "val_baseline"]
vals = [r for r in rows if r["kind"] == "val"]
if not vals:
    sys.exit("demo: no validation was recorded")
last = vals[-1]
organs = [k for k, v in last["dice"].items() if v > 0 or (base and base[-1]["dice"].get(k, 0) > 0)]
print("\nvalidation Dice per class (phantom test cases; organs the phantom contains):")
print(f"  {'class':<14}{'untrained':>10}{'trained':>10}")
for k in organs:
    b = base[-1]["dice"][k] if base else float("nan")
    print(f"  {k:<14}{b:>10.3f}{last['dice'][k]:>10.3f}")
b = base[-1]["pseudo_dice"] if base else float("nan")
print(f"  {'mean':<14}{b:>10.3f}{last['pseudo_dice']:>10.3f}   (step {last['step']})")
PY
echo "demo: checkpoints in $OUT/run/checkpoints (best.safetensors, ckpt-*.safetensors), metrics in $OUT/run/metrics.jsonl"
