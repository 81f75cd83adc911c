#!/bin/bash
# sweep_point: one point of a sweep, run as a task of the job array slurm/sweep.py submits
# (never submitted by hand). Line SLURM_ARRAY_TASK_ID of $UNET_SWEEP_POINTS names the point's
# config, store, run directory and overrides. Resources: these defaults, the sweep file's
# `sbatch:` list, and the UNET_* site settings of slurm/submit.sh (jobs/README.md).
#SBATCH --job-name=unet-sweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out
UNET_RECIPE=sweep_point
source "${UNET_ROOT:-${SLURM_SUBMIT_DIR:-.}}/jobs/common.sh" 2>/dev/null ||
  { echo "unet-job: error: cannot find jobs/common.sh (set UNET_ROOT to the repository)" >&2; exit 2; }
unet_main "$@"
