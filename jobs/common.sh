# jobs/common.sh — the body every jobs/*.sh batch script sources (bash; not run by itself).
#
# The caller sets UNET_RECIPE (synapse_320, ...) and sources this file. It resolves the site
# settings (UNET_* environment variables, jobs/README.md), checks them before any rank starts,
# launches `unet2022 train` on every task of the allocation with srun (PMIx) or mpirun, forwards
# the pre-timeout signal (--signal=B:USR1@...) to the ranks, and turns the driver's exit status
# 75 (stopped at a step boundary, checkpoint written) into `scontrol requeue`; the requeued job
# resumes from the run directory's newest checkpoint (the driver's --resume auto).
# Arguments to the batch script are extra config overrides (section.key=value).
#
# Array mode (slurm/sweep.py): with UNET_SWEEP_POINTS set, line SLURM_ARRAY_TASK_ID+1 of that
# tab-separated file gives this task's name, config, store, run directory and overrides.

unet_die() {
  echo "unet-job: error: $*" >&2
  exit 2
}
unet_log() { echo "unet-job: $*"; }

# The repository: the batch script is run from Slurm's spool copy, so $0 does not say where
# it came from; scontrol does (Command=), else the submit directory.
unet_find_root() {
  if [[ -n ${UNET_ROOT:-} ]]; then echo "$UNET_ROOT"; return; fi
  local cmd=""
  if [[ -n ${SLURM_JOB_ID:-} ]] && command -v scontrol >/dev/null; then
    cmd=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | tr ' ' '\n' | sed -n 's/^Command=//p' | head -n1)
  fi
  if [[ -n $cmd && -f $cmd && -f $(dirname "$cmd")/common.sh ]]; then
    (cd "$(dirname "$cmd")/.." && pwd)
  elif [[ -n ${SLURM_SUBMIT_DIR:-} && -f $SLURM_SUBMIT_DIR/jobs/common.sh ]]; then
    echo "$SLURM_SUBMIT_DIR"
  else
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  fi
}

# Atomic one-line JSON status in the run directory, read by slurm/gather.py.
unet_status() {
  local state=$1 rc=$2 tmp="$UNET_RUN_DIR/job_status.json.tmp.$$"
  printf '{"state":"%s","exit":%s,"job":"%s","array_task":"%s","restarts":%s,"time":"%s"}\n' \
    "$state" "$rc" "${SLURM_JOB_ID:-}" "${SLURM_ARRAY_TASK_ID:-}" "${SLURM_RESTART_COUNT:-0}" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$tmp" && mv -f "$tmp" "$UNET_RUN_DIR/job_status.json"
}

unet_main() {
  set -uo pipefail
  : "${UNET_RECIPE:?jobs/common.sh: the batch script must set UNET_RECIPE}"
  UNET_ROOT=$(unet_find_root)
  local extra=("$@")

  # ---- array point (slurm/sweep.py) ----
  if [[ -n ${UNET_SWEEP_POINTS:-} ]]; then
    [[ -n ${SLURM_ARRAY_TASK_ID:-} ]] || unet_die "UNET_SWEEP_POINTS is set but this is not an array task"
    [[ -r $UNET_SWEEP_POINTS ]] || unet_die "UNET_SWEEP_POINTS: cannot read '$UNET_SWEEP_POINTS'"
    local line idx name cfg store rdir ovr
    line=$(awk -F'\t' -v i="$SLURM_ARRAY_TASK_ID" '$1 == i' "$UNET_SWEEP_POINTS")
    [[ -n $line ]] || unet_die "$UNET_SWEEP_POINTS: no point with index $SLURM_ARRAY_TASK_ID"
    IFS=$'\t' read -r idx name cfg store rdir ovr <<<"$line"
    UNET_RECIPE=$name UNET_CONFIG=$cfg UNET_STORE=$store UNET_RUN_DIR=$rdir
    local -a point_ovr
    read -r -a point_ovr <<<"${ovr:-}"
    extra=("${point_ovr[@]}" "${extra[@]}")
  fi

  # ---- settings ----
  UNET_BIN=${UNET_BIN:-$UNET_ROOT/build/unet2022}
  UNET_CONFIG=${UNET_CONFIG:-$UNET_ROOT/configs/$UNET_RECIPE.yaml}
  UNET_RUN_DIR=${UNET_RUN_DIR:-${UNET_RUNS_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}/runs}/$UNET_RECIPE}
  UNET_LAUNCHER=${UNET_LAUNCHER:-srun}
  UNET_MAX_REQUEUES=${UNET_MAX_REQUEUES:-50}
  if [[ -z ${UNET_BACKEND:-} ]]; then
    # GPUs in the allocation → the CUDA backend; otherwise the CPU one.
    if [[ ${SLURM_GPUS_ON_NODE:-0} =~ ^[1-9] || -n ${CUDA_VISIBLE_DEVICES:-} ]]; then UNET_BACKEND=cuda; else UNET_BACKEND=cpu; fi
  fi
  export UNET_BACKEND  # jobs/rank.sh picks the GPU by local rank for cuda
  local ntasks=${SLURM_NTASKS:-1}
  # Elastic jobs (UNET_NODES=MIN-MAX, slurm/submit.sh): UNET_TASKS_PER_NODE ranks on every node
  # the job got, so the world size follows the nodes (the global batch stays train.batch_size).
  local -a layout=()
  if [[ ${UNET_TASKS_PER_NODE:-} =~ ^[1-9][0-9]*$ && ${SLURM_JOB_NUM_NODES:-} =~ ^[1-9][0-9]*$ ]] &&
    ((SLURM_JOB_NUM_NODES * UNET_TASKS_PER_NODE != ntasks)); then
    ntasks=$((SLURM_JOB_NUM_NODES * UNET_TASKS_PER_NODE))
    layout=(--nodes="$SLURM_JOB_NUM_NODES" --ntasks="$ntasks" --ntasks-per-node="$UNET_TASKS_PER_NODE")
  fi
  local threads=${UNET_THREADS:-${SLURM_CPUS_PER_TASK:-0}}
  local -a site_ovr
  read -r -a site_ovr <<<"${UNET_OVERRIDES:-}"

  # ---- checks, before any rank starts ----
  [[ -x $UNET_BIN ]] || unet_die "UNET_BIN: '$UNET_BIN' is not an executable (build with scripts/build.sh, or set UNET_BIN)"
  [[ -f $UNET_CONFIG ]] || unet_die "UNET_CONFIG: '$UNET_CONFIG' does not exist"
  [[ -n ${UNET_STORE:-} ]] || unet_die "UNET_STORE is not set: point it at the directory 'unet2022 prepare' wrote"
  [[ -f $UNET_STORE/manifest.json ]] ||
    unet_die "UNET_STORE: '$UNET_STORE' is not a slice store (no manifest.json there; build it with 'unet2022 prepare')"
  case $UNET_LAUNCHER in
    srun | mpirun) ;;
    *) unet_die "UNET_LAUNCHER: '$UNET_LAUNCHER' (expected srun or mpirun)" ;;
  esac
  command -v "${UNET_MPIRUN:-mpirun}" >/dev/null || [[ $UNET_LAUNCHER != mpirun ]] ||
    unet_die "UNET_LAUNCHER=mpirun but '${UNET_MPIRUN:-mpirun}' is not on PATH"
  mkdir -p "$UNET_RUN_DIR" || unet_die "UNET_RUN_DIR: cannot create '$UNET_RUN_DIR'"
  if [[ ${SLURM_RESTART_COUNT:-0} -gt $UNET_MAX_REQUEUES ]]; then
    unet_status gave_up 75
    unet_die "requeued ${SLURM_RESTART_COUNT} times (UNET_MAX_REQUEUES=$UNET_MAX_REQUEUES); not training again"
  fi

  local -a train=("$UNET_BIN" train "$UNET_CONFIG" "train.store=$UNET_STORE" "train.run_dir=$UNET_RUN_DIR"
    "train.backend=$UNET_BACKEND")
  [[ $threads =~ ^[1-9][0-9]*$ ]] && train+=("train.threads=$threads")
  train+=("${site_ovr[@]}" "${extra[@]}")
  local -a launch
  if [[ $UNET_LAUNCHER == srun ]]; then
    local -a sargs
    read -r -a sargs <<<"${UNET_SRUN_ARGS:---mpi=pmix}"
    launch=(srun --kill-on-bad-exit=1 "${layout[@]}" "${sargs[@]}" "$UNET_ROOT/jobs/rank.sh")
  else
    local -a margs
    read -r -a margs <<<"${UNET_MPIRUN_ARGS:-}"
    ((${#layout[@]})) && margs=(--map-by "ppr:$UNET_TASKS_PER_NODE:node" "${margs[@]}")
    launch=("${UNET_MPIRUN:-mpirun}" -np "$ntasks" "${margs[@]}" "$UNET_ROOT/jobs/rank.sh")
  fi

  unet_log "job ${SLURM_JOB_ID:-none} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NODELIST:-$(hostname)}: $ntasks rank(s), $UNET_LAUNCHER, backend $UNET_BACKEND"
  unet_log "run dir $UNET_RUN_DIR"
  unet_log "${launch[*]} ${train[*]}"
  unet_status running 0

  # The launcher runs in the background so this shell can take Slurm's warning signal
  # (--signal=B:USR1@...) and pass USR1 to it; mpirun and srun forward USR1 to every rank,
  # which finish the step, checkpoint and exit 75. TERM (scancel, preemption) is passed on as
  # USR1 too: a graceful stop within KillWait beats an immediate kill.
  "${launch[@]}" "${train[@]}" &
  local child=$! rc
  trap 'unet_log "signal: asking the ranks to checkpoint and stop"; kill -USR1 '"$child"' 2>/dev/null' USR1 TERM
  wait "$child"
  rc=$?
  while kill -0 "$child" 2>/dev/null; do # wait was interrupted by the trap: wait for the real exit
    wait "$child"
    rc=$?
  done
  trap - USR1 TERM

  # A lost rank or node (multi-node jobs): the NCCL watchdog's exit status 76 (a peer died or a
  # collective hung past train.comm_timeout_s), or a rank killed by a signal (the launcher reports
  # 128+signal: srun/mpirun 137 after kill -9). Nothing was checkpointed at this step, but the run
  # directory holds the last good checkpoint: requeue, and the driver resumes from it (on the
  # nodes that are left when the job allows a range, --nodes=2-3). UNET_MAX_FAULT_REQUEUES
  # consecutive faulty ends stop that (a rank that crashes every time is a bug); a clean stop
  # (0 or 75) resets the count.
  local fault_file=$UNET_RUN_DIR/job_faults lost=""
  if [[ $rc -ne 0 && $rc -ne 75 && -n ${SLURM_JOB_ID:-} && -n ${SLURM_JOB_NODELIST:-} ]]; then
    # a node taken out of the job (--no-kill, elastic jobs): Slurm's node list shrank
    local now
    now=$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | tr ' ' '\n' | sed -n 's/^NodeList=//p' | head -n1)
    [[ -n $now && $now != "$SLURM_JOB_NODELIST" ]] && lost=" (nodes now $now, were $SLURM_JOB_NODELIST)"
  fi
  if [[ $rc -eq 76 || $rc -gt 128 || -n $lost ]] && [[ -n ${SLURM_JOB_ID:-} ]]; then
    local faults
    faults=$(( $(cat "$fault_file" 2>/dev/null || echo 0) + 1 ))
    echo "$faults" >"$fault_file"
    if ((faults <= ${UNET_MAX_FAULT_REQUEUES:-3})); then
      unet_status requeued "$rc"
      unet_log "a rank or node was lost (exit $rc$lost, fault $faults of ${UNET_MAX_FAULT_REQUEUES:-3}): scontrol requeue $SLURM_JOB_ID; the run resumes from its last good checkpoint"
      scontrol requeue "$SLURM_JOB_ID" && exit "$rc"
      unet_log "scontrol requeue failed; resubmit by hand: the run resumes from its last good checkpoint"
    else
      unet_log "$faults consecutive faults (UNET_MAX_FAULT_REQUEUES=${UNET_MAX_FAULT_REQUEUES:-3}): not requeueing"
    fi
  elif [[ $rc -eq 0 || $rc -eq 75 ]]; then
    rm -f "$fault_file" # progress was made: the fault count starts again
  fi

  if [[ $rc -eq 75 ]]; then
    if [[ -n ${SLURM_JOB_ID:-} ]]; then
      unet_status requeued 75
      unet_log "stopped with a checkpoint (exit 75): scontrol requeue $SLURM_JOB_ID"
      scontrol requeue "$SLURM_JOB_ID" && exit 0
      unet_log "scontrol requeue failed; resubmit by hand: the run resumes from its checkpoint"
    fi
    unet_status stopped 75
    exit 75
  fi
  if [[ $rc -eq 0 ]]; then unet_status done 0; else unet_status failed "$rc"; fi
  unet_log "training exited with status $rc"
  exit "$rc"
}
