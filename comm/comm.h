/* comm.h — gradient all-reduce between the ranks that each hold a replica of the network.
 *
 * One interface, several transports: MPI (the CPU path, and the bootstrap for NCCL), NCCL
 * (the CUDA backend plugs in here) and a single-process fallback when the program was not
 * launched by mpirun/srun or was built without MPI. The training loop only calls these. */
#ifndef UNET_COMM_H
#define UNET_COMM_H

#include <stddef.h>

typedef struct Comm Comm;

struct Comm {
    const char *transport; /* "mpi", "nccl" or "single" */
    int rank, size;
    int local_rank;        /* rank within the node: picks the GPU */
    int local_size;        /* ranks on this node: share its cores */
    void *impl;
    /* In place: buf (n floats) becomes the sum over ranks. The reduction order is fixed, so
     * results are reproducible for a given world size. */
    void (*allreduce_sum)(Comm *c, float *buf, size_t n);
    void (*allreduce_sum_f64)(Comm *c, double *buf, size_t n);
    /* Gradient buckets (src/train/grad_sync.c): starts the in-place float sum of n_runs buffers as one
     * reduction and returns without waiting, so it overlaps with the rest of the backward pass.
     * `producer` is the queue that wrote the buffers (a cudaStream_t for device memory, NULL for
     * host memory written before the call): the reduction begins once that queue reaches this
     * point. Every rank must start the same runs in the same order. */
    void (*allreduce_start)(Comm *c, float *const *runs, const size_t *counts, int n_runs, void *producer);
    /* Lets started reductions advance (MPI progresses only inside MPI calls); cheap, never blocks. */
    void (*progress)(Comm *c);
    /* Every started reduction is complete for `consumer` (the queue that reads the gradients
     * next; NULL: for the host, i.e. this call returns when they are done). */
    void (*allreduce_wait)(Comm *c, void *consumer);
    /* Optional (NULL: nothing to do). A captured step (src/train/step_graph.h) is replayed: its
     * collectives are queued by the replay, not by calls of this transport, which watches them as
     * its own. watch_begin comes right before the replay (the watchdog's clock starts),
     * watch_queued right after it, with the queue it was replayed on (a cudaStream_t: NCCL records
     * the watchdog's event there, after the step's collectives). */
    void (*watch_begin)(Comm *c);
    void (*watch_queued)(Comm *c, void *queue);
    void (*broadcast)(Comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(Comm *c);
    /* Ends every rank's process with this status (a failed rank must not leave the others
     * blocked in a collective). */
    void (*abort_all)(Comm *c, int status);
    void (*destroy)(Comm *c);
};

/* MPI when built with it and started by a launcher (or forced by UNET_COMM=mpi), else a
 * single process. Never fails silently: an MPI error aborts with file:line. */
Comm *comm_create(int *argc, char ***argv);

/* Whether mpirun/srun started this process (or UNET_COMM=mpi forces MPI; UNET_COMM=single
 * forbids it). */
int comm_launched_by_mpi(void);

#endif
