/* comm_nccl.c — the NCCL transport (see comm_nccl.h): MPI bootstraps it and keeps the host-side
 * collectives; the float all-reduce of device buffers goes through NCCL.
 *
 * First version: each all-reduce waits for the device (cudaDeviceSynchronize) and for its own
 * completion, so it is correct whatever stream produced the buffer; overlapping fixed-order
 * gradient buckets with the backward pass is the next step (docs/architecture.md). */
#if defined(UNET_HAVE_CUDA) && defined(UNET_HAVE_MPI)
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "comm_nccl.h"

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) die_at(__FILE__, __LINE__, "%s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#define NCCL_CHECK(call)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess) die_at(__FILE__, __LINE__, "%s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)

Comm *comm_mpi_create(int *argc, char ***argv); /* comm_mpi.c */

typedef struct {
    Comm *mpi; /* host collectives, bootstrap, abort */
    ncclComm_t nccl;
    cudaStream_t stream;
} NcclState;

static NcclState *nccl_state(Comm *c) { return (NcclState *)c->impl; }

static void nccl_allreduce(Comm *c, float *buf, size_t n) {
    NcclState *st = nccl_state(c);
    if (n == 0) return;
    CUDA_CHECK(cudaDeviceSynchronize()); /* the producer's stream is not ours */
    NCCL_CHECK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, st->nccl, st->stream));
    CUDA_CHECK(cudaStreamSynchronize(st->stream));
}

static void nccl_allreduce_f64(Comm *c, double *buf, size_t n) {
    Comm *m = nccl_state(c)->mpi;
    m->allreduce_sum_f64(m, buf, n);
}

static void nccl_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    Comm *m = nccl_state(c)->mpi;
    m->broadcast(m, buf, bytes, root);
}

static void nccl_barrier(Comm *c) {
    Comm *m = nccl_state(c)->mpi;
    m->barrier(m);
}

static void nccl_abort(Comm *c, int status) {
    NcclState *st = nccl_state(c);
    ncclCommAbort(st->nccl); /* never blocks on the failed peers */
    st->mpi->abort_all(st->mpi, status);
}

static void nccl_destroy(Comm *c) {
    NcclState *st = nccl_state(c);
    NCCL_CHECK(ncclCommDestroy(st->nccl));
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    st->mpi->destroy(st->mpi);
    free(st);
    free(c);
}

Comm *comm_nccl_create(int *argc, char ***argv) {
    Comm *m = comm_mpi_create(argc, argv);
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        fprintf(stderr, "unet2022: error: rank %d: NCCL transport requested but no CUDA device is visible\n", m->rank);
        m->abort_all(m, 2);
    }
    CUDA_CHECK(cudaSetDevice(m->local_rank % ndev));
    ncclUniqueId id;
    if (m->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    m->broadcast(m, &id, sizeof id, 0);
    NcclState *st = xcalloc(1, sizeof *st);
    st->mpi = m;
    NCCL_CHECK(ncclCommInitRank(&st->nccl, m->size, id, m->rank));
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    Comm *c = xcalloc(1, sizeof(Comm));
    c->transport = "nccl";
    c->rank = m->rank;
    c->size = m->size;
    c->local_rank = m->local_rank;
    c->impl = st;
    c->allreduce_sum = nccl_allreduce;
    c->allreduce_sum_f64 = nccl_allreduce_f64;
    c->broadcast = nccl_broadcast;
    c->barrier = nccl_barrier;
    c->abort_all = nccl_abort;
    c->destroy = nccl_destroy;
    return c;
}
#else
/* Built without CUDA or without MPI: no NCCL transport (ISO C wants a declaration here). */
typedef int comm_nccl_unavailable;
#endif
