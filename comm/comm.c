/* comm.c — the single-process transport and the choice between transports. */
#include "comm.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef UNET_HAVE_MPI
Comm *comm_mpi_create(int *argc, char ***argv);
#endif

static void single_allreduce(Comm *c, float *buf, size_t n) { (void)c, (void)buf, (void)n; }
static void single_allreduce_f64(Comm *c, double *buf, size_t n) { (void)c, (void)buf, (void)n; }
/* One rank: the sum is the buffer itself. */
static void single_allreduce_start(Comm *c, float *const *runs, const size_t *counts, int n_runs, void *producer) {
    (void)c, (void)runs, (void)counts, (void)n_runs, (void)producer;
}
static void single_progress(Comm *c) { (void)c; }
static void single_allreduce_wait(Comm *c, void *consumer) { (void)c, (void)consumer; }
static void single_broadcast(Comm *c, void *buf, size_t bytes, int root) { (void)c, (void)buf, (void)bytes, (void)root; }
static void single_barrier(Comm *c) { (void)c; }
static void single_destroy(Comm *c) { free(c); }
static void single_abort(Comm *c, int status) {
    (void)c;
    exit(status);
}

static Comm *comm_single_create(void) {
    Comm *c = xcalloc(1, sizeof(Comm));
    c->transport = "single";
    c->rank = 0;
    c->size = 1;
    c->local_rank = 0;
    c->local_size = 1;
    c->allreduce_sum = single_allreduce;
    c->allreduce_sum_f64 = single_allreduce_f64;
    c->allreduce_start = single_allreduce_start;
    c->progress = single_progress;
    c->allreduce_wait = single_allreduce_wait;
    c->broadcast = single_broadcast;
    c->barrier = single_barrier;
    c->destroy = single_destroy;
    c->abort_all = single_abort;
    return c;
}

/* Launched by mpirun/srun? (Open MPI, PMIx and Slurm each leave a mark in the environment.) */
int comm_launched_by_mpi(void) {
    const char *force = getenv("UNET_COMM");
    if (force) return strcmp(force, "mpi") == 0;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           (getenv("SLURM_STEP_ID") && getenv("SLURM_NTASKS"));
}

Comm *comm_create(int *argc, char ***argv) {
#ifdef UNET_HAVE_MPI
    if (comm_launched_by_mpi()) return comm_mpi_create(argc, argv);
#else
    (void)argc, (void)argv;
    /* Several ranks that cannot talk would each train alone and overwrite each other's run. */
    const char *size = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE")
                       : getenv("PMI_SIZE")         ? getenv("PMI_SIZE")
                                                    : getenv("SLURM_NTASKS");
    if (comm_launched_by_mpi() && size && atoi(size) > 1)
        die("started as one of %s ranks, but this build has no MPI (configure with -DUNET_WITH_MPI=ON)", size);
#endif
    return comm_single_create();
}
