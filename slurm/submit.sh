#!/usr/bin/env bash
# slurm/submit.sh [--dry-run] [sbatch options ...] JOB_SCRIPT [section.key=value ...]
#
# Checks the site settings, then submits JOB_SCRIPT (jobs/<recipe>.sh) with sbatch and prints
# the job id. Bad settings fail here, at submission, with a message naming the setting:
# no such partition or account, a missing store, no unet2022 binary, resources the cluster
# cannot give (`sbatch --test-only`). Site settings, all optional (jobs/README.md):
#   UNET_PARTITION UNET_ACCOUNT UNET_QOS UNET_NODES UNET_TASKS_PER_NODE UNET_GPUS_PER_NODE
#   UNET_CPUS_PER_TASK UNET_TIME UNET_SBATCH_ARGS (extra sbatch options, whitespace separated)
# and those the job itself reads (UNET_STORE, UNET_RUN_DIR, UNET_BACKEND, UNET_LAUNCHER, ...),
# which travel with the job's environment.
# Exit status: 0 submitted, 2 a setting is wrong (nothing submitted).
set -euo pipefail

die() {
  echo "submit: error: $*" >&2
  exit 2
}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export UNET_ROOT=${UNET_ROOT:-$ROOT}

dry=0
opts=()
while (($#)) && [[ $1 == -* ]]; do
  if [[ $1 == --dry-run ]]; then dry=1; else opts+=("$1"); fi
  shift
done
(($#)) || die "usage: slurm/submit.sh [--dry-run] [sbatch options ...] JOB_SCRIPT [section.key=value ...]"
script=$1
shift
[[ -f $script ]] || die "job script '$script' does not exist"
command -v sbatch >/dev/null || die "sbatch is not on PATH (is this a Slurm login node?)"

partition=${UNET_PARTITION:-${SBATCH_PARTITION:-}}
if [[ -n $partition ]]; then
  # sinfo lists nothing for an unknown partition (and says so on stderr in newer Slurm)
  found=$(sinfo -h -p "$partition" -o '%P' 2>/dev/null | tr -d '*' | sort -u)
  if [[ -z $found ]]; then
    known=$(sinfo -h -o '%P' 2>/dev/null | tr -d '*' | sort -u | paste -sd, -)
    die "UNET_PARTITION: partition '$partition' does not exist on this cluster (partitions: ${known:-none visible})"
  fi
  opts+=("--partition=$partition")
fi
[[ -n ${UNET_ACCOUNT:-} ]] && opts+=("--account=$UNET_ACCOUNT")
[[ -n ${UNET_QOS:-} ]] && opts+=("--qos=$UNET_QOS")
if [[ ${UNET_NODES:-} =~ ^([0-9]+)-([0-9]+)$ ]]; then
  # A node range MIN-MAX (elastic: after a lost node the requeued job runs on the nodes left).
  # MAX x tasks-per-node tasks, --spread-job: on as many nodes as are up (MAX when all are);
  # --no-kill: a failed node is taken out of the job instead of ending it, so the batch script
  # sees the loss and requeues; Slurm keeps a requeued job's last node and task counts, so the
  # job comes back on the nodes it still had. No --ntasks-per-node (the script's own line is
  # dropped from the copy submitted): Slurm would pin the task count to nodes x that, which no
  # longer fits once a node is gone. jobs/common.sh starts UNET_TASKS_PER_NODE ranks on each
  # node the job got: the world size follows the nodes, the global batch stays train.batch_size.
  lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]} tpn=${UNET_TASKS_PER_NODE:-1}
  ((lo >= 1 && hi >= lo)) || die "UNET_NODES: '$UNET_NODES' is not a node count or a range MIN-MAX"
  opts+=("--nodes=$UNET_NODES" "--ntasks=$((hi * tpn))" "--spread-job" "--no-kill")
  export UNET_TASKS_PER_NODE=$tpn
  tmpdir=$(mktemp -d)
  trap 'rm -rf "$tmpdir"' EXIT
  grep -v '^#SBATCH --ntasks-per-node' "$script" >"$tmpdir/$(basename "$script")"
  script=$tmpdir/$(basename "$script")
else
  [[ -n ${UNET_NODES:-} ]] && opts+=("--nodes=$UNET_NODES")
  [[ -n ${UNET_TASKS_PER_NODE:-} ]] && opts+=("--ntasks-per-node=$UNET_TASKS_PER_NODE")
fi
[[ -n ${UNET_GPUS_PER_NODE:-} ]] && opts+=("--gpus-per-node=$UNET_GPUS_PER_NODE")
[[ -n ${UNET_CPUS_PER_TASK:-} ]] && opts+=("--cpus-per-task=$UNET_CPUS_PER_TASK")
[[ -n ${UNET_TIME:-} ]] && opts+=("--time=$UNET_TIME")
if [[ -n ${UNET_SBATCH_ARGS:-} ]]; then
  read -r -a more <<<"$UNET_SBATCH_ARGS"
  opts+=("${more[@]}")
fi

# What the job will check again at start, checked now so a typo costs no queue time.
bin=${UNET_BIN:-$UNET_ROOT/build/unet2022}
[[ -x $bin ]] || die "UNET_BIN: '$bin' is not an executable (build with scripts/build.sh, or set UNET_BIN)"
if [[ -z ${UNET_SWEEP_POINTS:-} ]]; then # a sweep's stores are checked by slurm/sweep.py
  [[ -n ${UNET_STORE:-} ]] || die "UNET_STORE is not set: point it at the directory 'unet2022 prepare' wrote"
  [[ -f $UNET_STORE/manifest.json ]] ||
    die "UNET_STORE: '$UNET_STORE' is not a slice store (no manifest.json there; build it with 'unet2022 prepare')"
  export UNET_STORE=$(cd "$UNET_STORE" && pwd)
fi
[[ -z ${UNET_CONFIG:-} || -f $UNET_CONFIG ]] || die "UNET_CONFIG: '$UNET_CONFIG' does not exist"

if ! msg=$(sbatch --test-only "${opts[@]}" "$script" "$@" 2>&1); then
  die "sbatch --test-only refused the job (${opts[*]:-no extra options}): $(echo "$msg" | grep -v '^$' | tail -n 3 | paste -sd' ' -)"
fi
if ((dry)); then
  echo "sbatch ${opts[*]} $script $*"
  exit 0
fi
sbatch --parsable "${opts[@]}" "$script" "$@" | cut -d';' -f1
