#!/usr/bin/env bash
# tests/gpu/check.sh — THE GPU check (docs/gpu-check.md): run it from the repository root on a
# machine with one NVIDIA GPU. Within ~8 minutes on an H100 it
#   1. builds unet2022 and its test harness unet2022-check with the CUDA backend (using .devdeps/
#      when present: scripts/pack-gpu-deps.sh),
#   2. checks every CUDA op, forward and backward, against the CPU reference (unet2022-check
#      gpu-check-ops), with the backend in fp32 (exact-comparison tolerances) and in bf16 (the
#      product mode),
#   3. runs 20 training steps of the demo network on both backends and compares the losses, again
#      in fp32 and in bf16,
#   3b. trains the demo network with `unet2022 train` on the GPU (validation, checkpoint, resume),
#       and compares `unet2022 predict --backend cuda` with the CPU's (when nibabel is at hand),
#   4. all-reduces through the NCCL transport on one rank: a plain all-reduce, then gradient
#      buckets overlapped with the backward pass of the demo network (tests/check/gpu_check_nccl.c),
#   5. benchmarks a synapse_320 training step at batch 8: ours (bench --backend cuda) in bf16, the
#      mixed-precision product mode, against the PyTorch reference network in eager AMP and
#      torch.compile (scripts/bench_torch_gpu.py), and ours in fp32 for reference,
# and prints one table last. Every step has its own time limit inside a global deadline, so one
# failure or hang cannot eat the budget. Logs go to $OUT (when set) or ./gpu-logs.
# Exit status: 0 when every check that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOG=${OUT:-$PWD/gpu-logs}
mkdir -p "$LOG"
BUDGET_S=${GPU_CHECK_BUDGET_S:-470}  # the whole script, build included
START=$(date +%s)
DEADLINE=$((START + BUDGET_S))
BUILD=${GPU_CHECK_BUILD_DIR:-build-gpucheck}
PY=${GPU_CHECK_PYTHON:-python3}      # the Python that has torch with CUDA
declare -a ROWS=()
FAILED=0

# run_step NAME LIMIT_S CMD...: runs CMD with its output in $LOG/NAME.log, limited to LIMIT_S and
# to what is left before the deadline; records ok / FAIL / TIMEOUT / SKIPPED.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - $(date +%s) - 5))
  if ((left < 15)); then
    ROWS+=("$name|NOT RUN|no time left in the ${BUDGET_S}s budget")
    FAILED=1
    return 1
  fi
  ((limit > left)) && limit=$left
  local t0=$(date +%s)
  echo "== $name (limit ${limit}s): $*" | tee -a "$LOG/steps.log"
  timeout --kill-after=10 "$limit" "$@" >"$LOG/$name.log" 2>&1
  local rc=$? dt=$(($(date +%s) - t0))
  tail -n 3 "$LOG/$name.log" | sed 's/^/   /'
  local status
  case $rc in
    0) status=ok ;;
    77) status=SKIPPED ;;
    124 | 137) status="TIMEOUT (${limit}s)"; FAILED=1 ;;
    *) status="FAIL (rc $rc)"; FAILED=1 ;;
  esac
  ROWS+=("$name|$status|${dt}s")
  return $rc
}

GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
GPU=${GPU:-no nvidia-smi / no GPU}
{
  echo "gpu check: $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null || echo no-git)$(git diff --quiet 2>/dev/null || echo +dirty)"
  echo "$GPU"
  /usr/local/cuda/bin/nvcc --version 2>&1 | tail -n 1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
} | tee "$LOG/machine.log"

# ---- 1. build ----------------------------------------------------------------------------------
if [[ -f .devdeps/setup.sh ]]; then
  # shellcheck disable=SC1091
  source .devdeps/setup.sh >>"$LOG/machine.log" 2>&1
  export PATH="$PATH:/opt/devdeps/usr/bin"          # cmake / pkgconf when packed
  # Debian reaches these headers through alternatives symlinks, which dpkg -x does not create.
  export CPATH="${CPATH:-}:/opt/devdeps/usr/include/x86_64-linux-gnu:/opt/devdeps/usr/include/x86_64-linux-gnu/openblas-pthread"
fi
export PATH="$PATH:/usr/local/cuda/bin"
mpi=OFF
command -v mpicc >/dev/null 2>&1 && mpi=ON
# UNET_BUILD_TESTS=ON for unet2022-check (tests/check); only the two executables are built
if ! run_step build 240 bash -c "cmake -S . -B '$BUILD' -DCMAKE_BUILD_TYPE=Release -DUNET_WITH_CUDA=ON \
    -DUNET_WITH_MPI=$mpi -DUNET_BUILD_TESTS=ON -DUNET_CPU_ARCH=native -DCMAKE_CUDA_ARCHITECTURES=90 &&
    cmake --build '$BUILD' -j$(nproc) --target unet2022 unet2022-check"; then
  echo "build failed: see $LOG/build.log" >&2
fi
BIN=$BUILD/unet2022
CHECK=$BUILD/unet2022-check
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

if [[ -x $BIN ]]; then
  timeout 30 "$BIN" devices | tee -a "$LOG/machine.log"
  # ---- 2. every op against the CPU reference: fp32 tolerances, then bf16's --------------------
  # (ops_bf16 does the same work as ops, 10-20 s; its lower limit only stops a hang sooner)
  # CUDA_LAUNCH_BLOCKING: a faulting kernel is reported at its own launch, not at a later op's
  # sync (the op shapes are tiny, so it costs little; never for the benchmarks)
  run_step ops 90 env CUDA_LAUNCH_BLOCKING=1 "$CHECK" gpu-check-ops --precision fp32
  run_step ops_bf16 60 env CUDA_LAUNCH_BLOCKING=1 "$CHECK" gpu-check-ops --precision bf16
  # ---- 3. 20 training steps, GPU vs CPU: fp32 (tight), bf16 (loose) ---------------------------
  run_step steps20 90 "$CHECK" gpu-check-ops --precision fp32 --steps 20 --config configs/demo.yaml --batch 2
  run_step steps20_bf16 90 "$CHECK" gpu-check-ops --precision bf16 --steps 20 --config configs/demo.yaml --batch 2
  # ---- 3b. the product path: `unet2022 train` on the GPU, with validation and a resume --------
  run_step train_cuda 60 bash tests/gpu/train_cuda.sh "$BIN"
  # predict on the GPU against the CPU (needs nibabel in some python3: UNET_PYTHON)
  pred_py=${UNET_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
  if "$pred_py" -c 'import nibabel, numpy' >/dev/null 2>&1; then
    run_step predict_cuda 60 env UNET_PYTHON="$pred_py" bash tests/gpu/predict_cuda.sh "$BIN"
  else
    ROWS+=("predict_cuda|SKIPPED|no python3 with nibabel here (set UNET_PYTHON)")
  fi
  # ---- 4. NCCL on one rank (MPI singleton) ---------------------------------------------------
  if [[ $mpi == ON ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers run as root
    run_step nccl 45 "$CHECK" gpu-check-ops --nccl
  else
    ROWS+=("nccl|SKIPPED|no MPI on this machine (pack .devdeps with Open MPI)")
  fi
  # ---- 5a. our throughput: bf16, the product mode, compared with PyTorch AMP below ------------
  # --profile: one more step with every op timed on its own (where the time goes: the next
  # session's to-do list), printed under the table
  run_step bench_ours_bf16 90 "$BIN" bench configs/synapse_320.yaml --backend cuda --precision bf16 --batch 8 --runs 10 \
    --profile
fi
# ---- 5b. the PyTorch reference on the same GPU -------------------------------------------------
run_step bench_torch_eager_amp 75 "$PY" scripts/bench_torch_gpu.py configs/synapse_320.yaml --mode eager-amp --batch 8
run_step bench_torch_compile_amp 150 "$PY" scripts/bench_torch_gpu.py configs/synapse_320.yaml --mode compile-amp --batch 8
# ---- 5c. ours in fp32, for reference: last, the least important number (it may get only what
# the budget has left), and 5 runs, since an fp32 step without tensor cores is the slowest --------
if [[ -x $BIN ]]; then
  run_step bench_ours_fp32 60 "$BIN" bench configs/synapse_320.yaml --backend cuda --precision fp32 --batch 8 --runs 5
fi

# ---- the table -----------------------------------------------------------------------------------
{
  echo
  echo "================ GPU check: $GPU ================"
  printf '%-26s %-18s %s\n' step result detail
  for r in "${ROWS[@]}"; do
    IFS='|' read -r name status detail <<<"$r"
    case $name in
      ops | ops_*) [[ -f $LOG/$name.log ]] && detail="$detail; $(grep -a '^ops:' "$LOG/$name.log" | tail -n 1)" ;;
      steps20 | steps20_*) [[ -f $LOG/$name.log ]] && detail="$detail; $(grep -a '^steps:' "$LOG/$name.log" | tail -n 1)" ;;
      predict_cuda) [[ -f $LOG/predict_cuda.log ]] && detail="$detail; $(grep -a '^predict_cuda:' "$LOG/predict_cuda.log" | tail -n 1)" ;;
      train_cuda) [[ -f $LOG/train_cuda.log ]] && detail="$detail; $(grep -a '^train_cuda:' "$LOG/train_cuda.log" | tail -n 1)" ;;
      nccl) [[ -f $LOG/nccl.log ]] && detail="$detail; $(grep -a '^nccl:' "$LOG/nccl.log" | tail -n 1)" ;;
    esac
    printf '%-26s %-18s %s\n' "$name" "$status" "$detail"
  done
  echo
  "$PY" - "$LOG" <<'PY'
import json, os, sys
log = sys.argv[1]
rows = []
for name in ("bench_ours_bf16", "bench_ours_fp32", "bench_torch_eager_amp", "bench_torch_compile_amp"):
    path = os.path.join(log, name + ".log")
    last = None
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            if line.startswith("{"):
                try:
                    last = json.loads(line)
                except ValueError:
                    pass
    rows.append((name, last))
ref = next((r for n, r in rows if n == "bench_torch_eager_amp" and r), None)
print("synapse_320, batch 8, forward+loss+backward (median of the runs after warm-up); ours: c-cuda-PRECISION")
print(f"{'implementation':<26} {'images/s':>9} {'ms/step':>9} {'runs':>5} {'peak MiB':>9} {'vs torch eager AMP':>19}")
for name, r in rows:
    if not r:
        print(f"{name:<26} {'-':>9} {'-':>9} {'-':>5} {'-':>9} {'(no result)':>19}")
        continue
    ratio = f"{r['images_per_s'] / ref['images_per_s']:.2f}x" if ref else "-"
    impl = r["impl"] + ("-" + r["precision"] if "precision" in r else "")
    runs = len(r.get("runs_ms", []))
    print(f"{impl:<26} {r['images_per_s']:>9.1f} {r['median_ms']:>9.1f} {runs:>5} {r.get('peak_mib', 0):>9.0f} {ratio:>19}")
PY
  if [[ -f $LOG/bench_ours_bf16.log ]] && grep -q '^profile:' "$LOG/bench_ours_bf16.log"; then
    echo
    sed -n '/^profile:/,/^sum /p' "$LOG/bench_ours_bf16.log" | head -n 16  # the longest ops, and the sum
    grep -a '^sum ' "$LOG/bench_ours_bf16.log" | tail -n 1
  fi
  echo "logs: $LOG  (total $(($(date +%s) - START))s)"
} | tee "$LOG/table.txt"
exit $FAILED
