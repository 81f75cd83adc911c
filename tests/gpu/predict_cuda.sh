#!/usr/bin/env bash
# tests/gpu/predict_cuda.sh BIN — `unet2022 predict --backend cuda` against `--backend cpu`: fresh
# demo weights, a tiny phantom store (64×64 slices, a few per case), softmax probabilities from
# both backends. fp32 mode must agree to 1e-4 (the op tolerances), bf16 mode (bf16 activations) to
# 5e-2. Labels must agree wherever the CPU's winning class leads the runner-up by more than twice
# the largest probability difference seen: only such near-ties can flip under that difference,
# and an untrained network's probabilities are full of them (the emulator saw 1.2% of voxels
# differ in bf16, every one a near-tie). Prints one line starting with "predict_cuda:".
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
for prec, tol in (("fp32", 1e-4), ("bf16", 5e-2)):
    refs, gots = [], []
    for c in cases:
        refs.append(np.asarray(nib.load(os.path.join(work, "cpu-fp32", "probs", c)).dataobj, dtype=np.float64))
        gots.append(np.asarray(nib.load(os.path.join(work, f"cuda-{prec}", "probs", c)).dataobj, dtype=np.float64))
    worst = max(float(np.max(np.abs(g - r))) for g, r in zip(gots, refs))
    differ = clear_differ = total = 0
    for c, ref in zip(cases, refs):
        a = np.asarray(nib.load(os.path.join(work, "cpu-fp32", c)).dataobj)
        b = np.asarray(nib.load(os.path.join(work, f"cuda-{prec}", c)).dataobj)
        top2 = np.sort(ref, axis=-1)[..., -2:]  # (x, y, z, 2): runner-up, winner
        clear = (top2[..., 1] - top2[..., 0]) > 2 * worst
        differ += int(np.sum(a != b)); clear_differ += int(np.sum((a != b) & clear)); total += a.size
    good = worst <= tol and clear_differ == 0
    ok = ok and good
    parts.append(f"{prec}: max |dp| {worst:.2e} (tol {tol:.0e}), labels differ in {100 * differ / max(total, 1):.3f}% "
                 f"of voxels, {clear_differ} outside near-ties (must be 0)")
print(f"predict_cuda: {len(cases)} case(s), cuda vs cpu: " + "; ".join(parts) + (": ok" if ok else ": FAIL"))
sys.exit(0 if ok else 3)
PY
