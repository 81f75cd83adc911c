#!/usr/bin/env bash
# tests/gpu/predict_cuda.sh BIN — `unet2022 predict --backend cuda` against `--backend cpu`: fresh
# demo weights, a tiny phantom store (64×64 slices, a few per case), softmax probabilities from
# both backends. fp32 mode must agree to 1e-4 (the op tolerances); bf16 mode to 5e-2, with the
# same label in at least 98% of voxels (an untrained network's logits are close: bf16 rounding
# flips some near-ties; the emulator saw 99.5%). Prints one line starting with "predict_cuda:".
# Needs Debian's python3-nibabel and numpy (CI has them); the emulator runs it as emu_predict_cuda.
set -euo pipefail
BIN=${1:?usage: tests/gpu/predict_cuda.sh path/to/unet2022}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN" synth --out "$work/raw" --seed 4 --cases 3 --size 64..64 --depth 4..4 --force >/dev/null
"$BIN" prepare synapse --src "$work/raw" --split "$work/raw/split.txt" --out "$work/store" --force --quiet >/dev/null
"$BIN" init configs/demo.yaml --out "$work/w.safetensors" --seed 9 >/dev/null
for run in cpu:fp32 cuda:fp32 cuda:bf16; do
  be=${run%%:*} prec=${run##*:}
  "$BIN" predict --weights "$work/w.safetensors" --config configs/demo.yaml --input "$work/store" --split test \
    --output "$work/$be-$prec" --probs --backend "$be" --precision "$prec" >/dev/null
done
"${UNET_PYTHON:-/usr/bin/python3}" - "$work" <<'PY'
import glob, os, sys
import nibabel as nib
import numpy as np
work = sys.argv[1]
cases = sorted(os.path.basename(p) for p in glob.glob(os.path.join(work, "cpu-fp32", "probs", "*.nii.gz")))
ok, parts = bool(cases), []
for prec, tol, agree_min in (("fp32", 1e-4, 1.0 - 1e-4), ("bf16", 5e-2, 0.98)):
    worst, agree, total = 0.0, 0, 0
    for c in cases:
        ref = np.asarray(nib.load(os.path.join(work, "cpu-fp32", "probs", c)).dataobj, dtype=np.float64)
        got = np.asarray(nib.load(os.path.join(work, f"cuda-{prec}", "probs", c)).dataobj, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(got - ref))))
        a = np.asarray(nib.load(os.path.join(work, "cpu-fp32", c)).dataobj)
        b = np.asarray(nib.load(os.path.join(work, f"cuda-{prec}", c)).dataobj)
        agree += int(np.sum(a == b)); total += a.size
    frac = agree / max(total, 1)
    good = worst <= tol and frac >= agree_min
    ok = ok and good
    parts.append(f"{prec}: max |dp| {worst:.2e} (tol {tol:.0e}), labels agree {100 * frac:.3f}%")
print(f"predict_cuda: {len(cases)} case(s), cuda vs cpu: " + "; ".join(parts) + (": ok" if ok else ": FAIL"))
sys.exit(0 if ok else 3)
PY
