#!/bin/bash
# em_512: ISBI 2012 EM membranes, 512x512 crops, one node x 4 GPUs.
#   sbatch jobs/em_512.sh [section.key=value ...]      (UNET_STORE=... in the environment)
# or, with site checks first: slurm/submit.sh jobs/em_512.sh [section.key=value ...]
# Every site setting is an environment variable (jobs/README.md); sbatch's own SBATCH_PARTITION,
# SBATCH_ACCOUNT, SBATCH_GPUS_PER_NODE, SBATCH_TIMELIMIT override the directives below.
#SBATCH --job-name=unet-em_512
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
UNET_RECIPE=em_512
source "${UNET_ROOT:-${SLURM_SUBMIT_DIR:-.}}/jobs/common.sh" 2>/dev/null ||
  source "$(scontrol show job -o "$SLURM_JOB_ID" | tr ' ' '\n' | sed -n 's/^Command=//p' | xargs dirname)/common.sh" ||
  { echo "unet-job: error: cannot find jobs/common.sh (set UNET_ROOT to the repository)" >&2; exit 2; }
unet_main "$@"
