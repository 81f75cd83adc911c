#!/usr/bin/env bash
# jobs/rank.sh CMD ... — per-rank shim the launcher (srun or mpirun) runs on every task: picks
# this rank's GPU by its rank on the node, then execs CMD (so signals reach CMD directly).
#
# Local rank: SLURM_LOCALID (srun), OMPI_COMM_WORLD_LOCAL_RANK (mpirun), PMIX_LOCAL_RANK.
# UNET_GPU_BIND=local_rank (the default) keeps the local-rank-th entry of CUDA_VISIBLE_DEVICES
# (or device number local_rank when that is unset and the node has GPUs); UNET_GPU_BIND=none
# leaves the devices alone (e.g. when srun --gpus-per-task / --gpu-bind already did it).
lr=${SLURM_LOCALID:-${OMPI_COMM_WORLD_LOCAL_RANK:-${PMIX_LOCAL_RANK:-0}}}
if [[ ${UNET_GPU_BIND:-local_rank} == local_rank && ${UNET_BACKEND:-cpu} == cuda ]]; then
  if [[ -n ${CUDA_VISIBLE_DEVICES:-} ]]; then
    IFS=, read -r -a devs <<<"$CUDA_VISIBLE_DEVICES"
    ((${#devs[@]})) && export CUDA_VISIBLE_DEVICES=${devs[lr % ${#devs[@]}]}
  else
    export CUDA_VISIBLE_DEVICES=$lr
  fi
fi
exec "$@"
