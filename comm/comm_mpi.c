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
    MPI_CHECK(MPI_Finalize());
    free(c);
}

Comm *comm_mpi_create(int *argc, char ***argv) {
    MPI_CHECK(MPI_Init(argc, argv));
    Comm *c = xcalloc(1, sizeof(Comm));
    c->transport = "mpi";
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &c->size));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &c->local_rank));
    MPI_CHECK(MPI_Comm_size(node, &c->local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    c->allreduce_sum = mpi_allreduce;
    c->allreduce_sum_f64 = mpi_allreduce_f64;
    c->broadcast = mpi_broadcast;
    c->barrier = mpi_barrier;
    c->destroy = mpi_destroy;
    c->abort_all = mpi_abort;
    return c;
}
#endif
