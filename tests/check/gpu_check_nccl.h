/* gpu_check_nccl.h — the NCCL part of `unet2022-check gpu-check-ops` (gpu_check_nccl.c). */
#ifndef UNET_GPU_CHECK_NCCL_H
#define UNET_GPU_CHECK_NCCL_H

/* Exit status: 0 all checks passed, 3 a check failed. cfg_path: the network of the bucket check.
 * Only with UNET_HAVE_CUDA and UNET_HAVE_MPI. */
int gpu_check_nccl(int *argc, char ***argv, const char *cfg_path);

#endif
