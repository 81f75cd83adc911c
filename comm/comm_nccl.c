/* comm_nccl.c — the NCCL transport (see comm_nccl.h): MPI bootstraps it and keeps the host-side
 * collectives; the float all-reduce of device buffers goes through NCCL.
 *
 * Two kinds of float all-reduce:
 *  - allreduce_sum (the loss statistics, small): waits for the whole device and for its own
 *    completion, so it is correct whatever stream produced the buffer;
 *  - allreduce_start / allreduce_wait (gradient buckets, src/grad_sync.c): never block the host.
 *    The comm stream waits on an event recorded on the producer (compute) stream, runs the
 *    bucket's all-reduces as one NCCL group, and the consumer stream later waits on an event
 *    recorded after the last bucket. The backward kernels keep the compute stream busy meanwhile,
 *    which is the overlap. */
#if defined(UNET_HAVE_CUDA) && defined(UNET_HAVE_MPI)
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "comm_nccl.h"
#include "cuda_check.h" /* CUDA_CHECK, NCCL_CHECK (src/base) */

Comm *comm_mpi_create(int *argc, char ***argv); /* comm_mpi.c */

typedef struct {
    Comm *mpi; /* host collectives, bootstrap, abort */
    ncclComm_t nccl;
    cudaStream_t stream;
    cudaEvent_t *events; /* (cap_events) reused every step: one per started bucket, +1 for wait */
    int n_events, cap_events;
} NcclState;

static NcclState *nccl_state(Comm *c) { return (NcclState *)c->impl; }

static void nccl_allreduce(Comm *c, float *buf, size_t n) {
    NcclState *st = nccl_state(c);
    if (n == 0) return;
    CUDA_SYNC(cudaDeviceSynchronize()); /* the producer's stream is not ours */
    NCCL_WORK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, st->nccl, st->stream));
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
}

/* The next free event of this step (created once, timing off: they only order streams). */
static cudaEvent_t next_event(NcclState *st) {
    if (st->n_events == st->cap_events) {
        int cap = st->cap_events ? 2 * st->cap_events : 32;
        st->events = xrealloc(st->events, (size_t)cap * sizeof *st->events);
        for (int i = st->cap_events; i < cap; i++)
            CUDA_CHECK(cudaEventCreateWithFlags(&st->events[i], cudaEventDisableTiming));
        st->cap_events = cap;
    }
    return st->events[st->n_events++];
}

static void nccl_allreduce_start(Comm *c, float *const *runs, const size_t *counts, int n_runs, void *producer) {
    NcclState *st = nccl_state(c);
    cudaEvent_t ready = next_event(st);
    /* Re-recording an event that an earlier cudaStreamWaitEvent used is fine: the wait captured
     * the event's state when it was enqueued. */
    CUDA_CHECK(cudaEventRecord(ready, (cudaStream_t)producer));
    CUDA_CHECK(cudaStreamWaitEvent(st->stream, ready, 0));
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < n_runs; r++)
        if (counts[r]) NCCL_WORK(ncclAllReduce(runs[r], runs[r], counts[r], ncclFloat, ncclSum, st->nccl, st->stream));
    NCCL_CHECK(ncclGroupEnd());
}

static void nccl_progress(Comm *c) { (void)c; /* NCCL's kernels progress on their own */ }

static void nccl_allreduce_wait(Comm *c, void *consumer) {
    NcclState *st = nccl_state(c);
    if (consumer) {
        cudaEvent_t done = next_event(st);
        CUDA_CHECK(cudaEventRecord(done, st->stream));
        CUDA_CHECK(cudaStreamWaitEvent((cudaStream_t)consumer, done, 0));
    } else {
        CUDA_SYNC(cudaStreamSynchronize(st->stream));
    }
    st->n_events = 0; /* every use this step is already enqueued */
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
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    for (int i = 0; i < st->cap_events; i++) CUDA_CHECK(cudaEventDestroy(st->events[i]));
    free(st->events);
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
    c->local_size = m->local_size;
    c->impl = st;
    c->allreduce_sum = nccl_allreduce;
    c->allreduce_sum_f64 = nccl_allreduce_f64;
    c->allreduce_start = nccl_allreduce_start;
    c->progress = nccl_progress;
    c->allreduce_wait = nccl_allreduce_wait;
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
