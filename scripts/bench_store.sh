#!/usr/bin/env bash
# Random slice reads from a store of 512² CT slices: slices/s with one thread and with all
# threads (median of 5 runs of 400 reads each; the one-thread rate is the baseline, same run).
# Usage: scripts/bench_store.sh [BUILD_DIR] [THREADS]. Builds the store from the phantom
# (3 cases of 512 x 512 x 32, CT in HU, clip normalisation) under $TMPDIR once.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build}/unet2022
THREADS=${2:-$(nproc)}
WORK=${TMPDIR:-/tmp}/unet2022-bench-store
if [[ ! -f $WORK/store/manifest.json ]]; then
  rm -rf "$WORK" && mkdir -p "$WORK"
  "$BIN" synth --out "$WORK/ct" --cases 3 --size 512..512 --depth 32..32 --seed 1
  "$BIN" prepare synapse --src "$WORK/ct" --split "$WORK/ct/split.txt" --out "$WORK/store" --quiet
fi
"$BIN" bench-store "$WORK/store" --threads "$THREADS" --reads 400 --repeats 5
