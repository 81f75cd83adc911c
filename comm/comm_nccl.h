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

/* Exit status of a rank whose NCCL watchdog gave up on the communicator: a peer died (NCCL's
 * asynchronous error) or a collective was not complete timeout_s after it was enqueued. Distinct
 * from 0 done, 1 usage, 2 error, 75 stopped for requeue; jobs/common.sh requeues on it. */
#define UNET_EXIT_COMM_LOST 76
/* train.comm_timeout_s's default (src/config/config.c). */
#define UNET_COMM_TIMEOUT_S 300.0

/* comm_nccl_create with a watchdog thread that polls ncclCommGetAsyncError and the completion of
 * the enqueued collectives, and on an error, or collectives pending longer than timeout_s
 * seconds, calls ncclCommAbort and _exit(UNET_EXIT_COMM_LOST). timeout_s <= 0: no watchdog.
 * comm_nccl_create uses UNET_COMM_TIMEOUT_S. */
Comm *comm_nccl_create_timeout(int *argc, char ***argv, double timeout_s);

#endif
