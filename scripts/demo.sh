#!/usr/bin/env bash
# The README's main job. Until the training driver lands (issue "Training driver"), it
# installs, builds, describes the synapse_320 network and runs one full training
# computation (forward, deep-supervision loss, backward, 2 Adam steps) on a random batch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
out=${OUT_DIR:-out/demo}
mkdir -p "$out"
./build/unet2022 info configs/synapse_320.yaml --batch 1
./build/unet2022 init configs/synapse_320.yaml --out "$out/init.safetensors" --seed 1
/usr/bin/python3 scripts/make_random_batch.py configs/synapse_320.yaml "$out/batch.safetensors"
./build/unet2022 trace configs/synapse_320.yaml --weights "$out/init.safetensors" \
  --batch "$out/batch.safetensors" --out "$out/trace.safetensors" --steps 2
echo "demo: weights, batch and trace are in $out/"
