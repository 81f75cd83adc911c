#!/usr/bin/env bash
# The loader's throughput against batchgenerators running the same pipeline on the same cores:
# `unet2022 bench-loader` (N worker threads) and scripts/bench_batchgenerators.py (N processes),
# both pinned to the same N cores with taskset, synapse_320 sizes (enlarged [461, 376] -> 320²,
# 1 channel, in-memory 512² phantom slices). Prints the medians and the per-core ratio.
#   bash scripts/bench_loader.sh [CORES...]      (default: 1, and 2 when the machine has 2+)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${UNET2022_BIN:-build/unet2022}
RUNS=${RUNS:-5}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-3}
ncpu=$(nproc)
cores=("$@")
if ((${#cores[@]} == 0)); then cores=(1); ((ncpu >= 2)) && cores+=(2); fi
for n in "${cores[@]}"; do
  set_=$(seq -s, 0 $((n - 1)))
  ours=$(taskset -c "$set_" "$BIN" bench-loader --workers "$n" --runs "$RUNS" --seconds "$SECONDS_PER_RUN" | tee /dev/stderr | grep '^RESULT')
  base=$(taskset -c "$set_" /usr/bin/python3 scripts/bench_batchgenerators.py --procs "$n" --runs "$RUNS" --seconds "$SECONDS_PER_RUN" | tee /dev/stderr | grep '^RESULT')
  o=$(sed -E 's/.*per_core=([0-9.]+).*/\1/' <<<"$ours")
  b=$(sed -E 's/.*per_core=([0-9.]+).*/\1/' <<<"$base")
  awk -v n="$n" -v o="$o" -v b="$b" 'BEGIN { printf "cores %d: ours %.1f samples/s per core, batchgenerators %.1f per core: %.1fx\n", n, o, b, o / b }'
done
