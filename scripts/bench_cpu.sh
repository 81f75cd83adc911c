#!/usr/bin/env bash
# CPU benchmark (a command, not a test): forward+backward (loss included) of synapse_320 at
# batch 1 and of a small config, ours against the PyTorch reference at the same thread count,
# medians of RUNS runs, and our GFLOP/s as a fraction of OpenBLAS sgemm on this machine.
#   usage: scripts/bench_cpu.sh [THREADS] [RUNS]     (defaults: nproc, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-$(nproc)}
RUNS=${2:-5}
BIN=${UNET2022_BIN:-build/unet2022}
[[ -x $BIN ]] || bash scripts/build.sh >/dev/null
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/small.yaml" <<'YAML'
name: small_p4
network:
  preset: custom
  embed_dim: 32
  heads: [1, 2, 4, 8]
  patch_size: 4
  windows: [7, 7, 7, 7]
  in_channels: 1
  classes: 4
  deep_supervision: true
  crop: [128, 128]
YAML
results=()
for cfg in configs/synapse_320.yaml "$tmp/small.yaml"; do
  c=$("$BIN" bench "$cfg" --batch 1 --runs "$RUNS" --threads "$THREADS" | tail -n 1)
  t=$(/usr/bin/python3 scripts/bench_torch_ref.py "$cfg" --batch 1 --runs "$RUNS" --threads "$THREADS" | tail -n 1)
  results+=("$c" "$t")
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(s) for s in sys.argv[1:]]
print(f"{'config':<14}{'impl':<7}{'median ms':>11}{'GFLOP/s':>9}{'% sgemm':>9}{'torch/ours':>12}")
for c, t in zip(rows[0::2], rows[1::2]):
    print(f"{c['config']:<14}{'ours':<7}{c['median_ms']:>11.1f}{c['gflops']:>9.1f}{100*c['fraction_of_sgemm']:>8.0f}%{t['median_ms']/c['median_ms']:>11.2f}x")
    gf = c['gflop_per_step'] / (t['median_ms'] / 1e3)
    print(f"{c['config']:<14}{'torch':<7}{t['median_ms']:>11.1f}{gf:>9.1f}{100*gf/c['sgemm_gflops']:>8.0f}%")
print(f"threads {rows[0]['threads']}, sgemm (2048^3) {rows[0]['sgemm_gflops']:.1f} GFLOP/s; runs (ms): "
      + "; ".join(f"{r['impl']} {r['config']}: {r['runs_ms']}" for r in rows))
PY
