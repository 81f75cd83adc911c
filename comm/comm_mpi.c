/* comm_mpi.c — the MPI transport (CPU gradients; NCCL's bootstrap). */
#ifdef UNET_HAVE_MPI
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "comm.h"

#define MPI_CHECK(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != MPI_SUCCESS) {                                                                  \
            char msg_[MPI_MAX_ERROR_STRING];                                                       \
            int len_ = 0;                                                                          \
            MPI_Error_string(rc_, msg_, &len_);                                                    \
            die_at(__FILE__, __LINE__, "%s failed: %s", #call, msg_);                              \
        }                                                                                          \
    } while (0)

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK ((size_t)1 << 28)

static void mpi_allreduce(Comm *c, float *buf, size_t n) {
    (void)c;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
}

/* Outstanding non-blocking reductions (gradient buckets), completed by mpi_allreduce_wait. */
typedef struct {
    MPI_Request *reqs;
    int n, cap;
} MpiState;

static void mpi_allreduce_start(Comm *c, float *const *runs, const size_t *counts, int n_runs, void *producer) {
    (void)producer; /* host memory: the caller's writes are complete */
    MpiState *st = (MpiState *)c->impl;
    for (int r = 0; r < n_runs; r++)
        for (size_t off = 0; off < counts[r]; off += CHUNK) {
            if (st->n == st->cap) {
                st->cap = st->cap ? 2 * st->cap : 64;
                st->reqs = xrealloc(st->reqs, (size_t)st->cap * sizeof *st->reqs);
            }
            int cnt = (int)(counts[r] - off < CHUNK ? counts[r] - off : CHUNK);
            MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, runs[r] + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                     &st->reqs[st->n++]));
        }
}

static void mpi_progress(Comm *c) {
    MpiState *st = (MpiState *)c->impl;
    int done = 0;
    if (st->n) MPI_CHECK(MPI_Testall(st->n, st->reqs, &done, MPI_STATUSES_IGNORE));
    if (done) st->n = 0;
}

static void mpi_allreduce_wait(Comm *c, void *consumer) {
    (void)consumer;
    MpiState *st = (MpiState *)c->impl;
    if (st->n) MPI_CHECK(MPI_Waitall(st->n, st->reqs, MPI_STATUSES_IGNORE));
    st->n = 0;
}

static void mpi_allreduce_f64(Comm *c, double *buf, size_t n) {
    (void)c;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
}

static void mpi_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    (void)c;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        int cnt = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        MPI_CHECK(MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD));
    }
}

static void mpi_barrier(Comm *c) {
    (void)c;
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

static void mpi_abort(Comm *c, int status) {
    (void)c;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

static void mpi_destroy(Comm *c) {
    MpiState *st = (MpiState *)c->impl;
    if (st->n) mpi_allreduce_wait(c, NULL); /* never finalize under a live request */
    free(st->reqs);
    free(st);
    MPI_CHECK(MPI_Finalize());
    free(c);
}

Comm *comm_mpi_create(int *argc, char ***argv) {
    MPI_CHECK(MPI_Init(argc, argv));
    Comm *c = xcalloc(1, sizeof(Comm));
    c->transport = "mpi";
    c->impl = xcalloc(1, sizeof(MpiState));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &c->size));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &c->local_rank));
    MPI_CHECK(MPI_Comm_size(node, &c->local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    c->allreduce_sum = mpi_allreduce;
    c->allreduce_sum_f64 = mpi_allreduce_f64;
    c->allreduce_start = mpi_allreduce_start;
    c->progress = mpi_progress;
    c->allreduce_wait = mpi_allreduce_wait;
    c->broadcast = mpi_broadcast;
    c->barrier = mpi_barrier;
    c->destroy = mpi_destroy;
    c->abort_all = mpi_abort;
    return c;
}
#endif
