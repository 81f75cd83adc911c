/* comm_nccl.h — the NCCL transport of comm.h: gradients are all-reduced on the GPU.
 * Available when the build has both CUDA and MPI (UNET_HAVE_CUDA && UNET_HAVE_MPI). */
#ifndef UNET_COMM_NCCL_H
#define UNET_COMM_NCCL_H

#include "comm.h"

/* Initialises MPI (comm_mpi_create), selects CUDA device local_rank % device count, and builds
 * an NCCL communicator over all ranks: rank 0's ncclUniqueId is broadcast with MPI.
 * allreduce_sum takes DEVICE memory and returns when the sum is complete (it first waits for
 * all work queued on the device, so buffers written by the backend's stream are ready);
 * allreduce_sum_f64, broadcast and barrier act on host memory through MPI. */
Comm *comm_nccl_create(int *argc, char ***argv);

#endif
