/* comm_nccl.c — the NCCL transport (see comm_nccl.h): MPI bootstraps it and keeps the host-side
 * collectives; the float all-reduce of device buffers goes through NCCL.
 *
 * Two kinds of float all-reduce:
 *  - allreduce_sum (the loss statistics, small): waits for the whole device and for its own
 *    completion, so it is correct whatever stream produced the buffer;
 *  - allreduce_start / allreduce_wait (gradient buckets, src/train/grad_sync.c): never block the host.
 *    The comm stream waits on an event recorded on the producer (compute) stream, runs the
 *    bucket's all-reduces as one NCCL group, and the consumer stream later waits on an event
 *    recorded after the last bucket. The backward kernels keep the compute stream busy meanwhile,
 *    which is the overlap.
 *
 * The watchdog (a thread per rank): NCCL never returns an error for a dead or hung peer; its
 * kernels wait, and so would this rank, forever. Every poll it asks ncclCommGetAsyncError (a
 * peer's socket closed, a network error) and checks whether the collectives enqueued so far are
 * done (an event recorded on the comm stream after each); an async error, or collectives still
 * not done train.comm_timeout_s after they were enqueued, aborts the communicator
 * (ncclCommAbort) and ends the process with UNET_EXIT_COMM_LOST (76), which the launcher turns
 * into the end of every rank and jobs/common.sh into a requeue from the last good checkpoint. */
#if defined(UNET_HAVE_CUDA) && defined(UNET_HAVE_MPI)
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "comm_nccl.h"
#include "cuda_check.h" /* CUDA_CHECK, NCCL_CHECK (src/base) */

/* Set by the watchdog before it aborts the communicator: a call failing after that is the abort's
 * doing, and this thread waits for the watchdog's exit status instead of reporting its own. So
 * this file's checks are cuda_check.h's with that one step first. */
static atomic_int wd_fired;
static void wd_hold(void) {
    if (atomic_load(&wd_fired))
        for (;;) pause();
}
#undef CUDA_CHECK
#undef NCCL_CHECK
#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) wd_hold(), die_at(__FILE__, __LINE__, "%s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#define NCCL_CHECK(call)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess) wd_hold(), die_at(__FILE__, __LINE__, "%s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)

Comm *comm_mpi_create(int *argc, char ***argv); /* comm_mpi.c */

typedef struct {
    Comm *mpi; /* host collectives, bootstrap, abort */
    ncclComm_t nccl;
    cudaStream_t stream;
    cudaEvent_t *events; /* (cap_events) reused every step: one per started bucket, +1 for wait */
    int n_events, cap_events;
    /* watchdog (mu guards the fields below it) */
    double timeout_s;
    pthread_t wd_thread;
    int wd_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int wd_stop;
    double pending_since;  /* when the oldest collective not yet seen done was enqueued; 0: none */
    int wd_event_recorded; /* wd_event follows everything enqueued so far */
    double host_since;     /* when the host collective (MPI) in progress began; 0: none */
    cudaEvent_t wd_event;
} NcclState;

static NcclState *nccl_state(Comm *c) { return (NcclState *)c->impl; }

/* ---- watchdog ---- */

/* Ends this process from the watchdog thread: the training thread is blocked (or about to be) in
 * a wait that will not return, so no clean-up is attempted beyond aborting the communicator. */
static void wd_fail(NcclState *st, const char *why) {
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "unet2022: error: rank %d: NCCL watchdog: %s; aborting the communicator and exiting with "
                     "status %d (a lost rank or node: the job requeues and resumes from the last good checkpoint)\n",
                     st->mpi->rank, why, UNET_EXIT_COMM_LOST);
    atomic_store(&wd_fired, 1);
    if (n > 0) (void)!write(STDERR_FILENO, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
    ncclCommAbort(st->nccl); /* never blocks on the failed peers; unblocks this rank's kernels */
    _exit(UNET_EXIT_COMM_LOST);
}

static void *wd_main(void *arg) {
    NcclState *st = arg;
    /* poll often enough for a timely verdict, rarely enough to cost nothing */
    double poll = st->timeout_s / 20 < 0.05 ? 0.05 : st->timeout_s / 20 > 1.0 ? 1.0 : st->timeout_s / 20;
    pthread_mutex_lock(&st->mu);
    while (!st->wd_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double t = until.tv_sec + until.tv_nsec * 1e-9 + poll;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&st->wake, &st->mu, &until);
        if (st->wd_stop) break;
        ncclResult_t async = ncclSuccess;
        if (ncclCommGetAsyncError(st->nccl, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress) {
            char why[256];
            snprintf(why, sizeof why, "asynchronous NCCL error: %s (a peer died or the network failed)",
                     ncclGetErrorString(async));
            wd_fail(st, why);
        }
        if (st->host_since > 0 && monotonic_seconds() - st->host_since > st->timeout_s) {
            char why[256];
            snprintf(why, sizeof why, "a host collective (MPI) is not complete after %g s (train.comm_timeout_s): a "
                     "peer is gone or hung", st->timeout_s);
            wd_fail(st, why);
        }
        if (st->pending_since > 0) {
            if (st->wd_event_recorded && cudaEventQuery(st->wd_event) == cudaSuccess) {
                st->pending_since = 0;
            } else if (monotonic_seconds() - st->pending_since > st->timeout_s) {
                char why[256];
                snprintf(why, sizeof why, "a collective is not complete after %g s (train.comm_timeout_s): a peer "
                         "is gone or hung", st->timeout_s);
                wd_fail(st, why);
            }
        }
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* Whether the comm stream is part of a stream capture (a captured training step: the NCCL work
 * is recorded, not started; src/train/step_graph.h). Its event must not be recorded then: an
 * event recorded in a capture cannot be queried (cudaErrorCapturedEvent), so the watchdog would
 * see the collectives as never done. The replay is watched instead (nccl_watch_begin, nccl_watch_queued). */
static int wd_capturing(NcclState *st) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(st->stream, &cs));
    return cs != cudaStreamCaptureStatusNone;
}

/* Around every enqueue on the comm stream: before (the clock starts, unless older work is still
 * pending) and after (the event that says when all of it is done). */
static void wd_begin(NcclState *st) {
    if (!st->wd_started || wd_capturing(st)) return;
    pthread_mutex_lock(&st->mu);
    if (st->pending_since == 0) st->pending_since = monotonic_seconds();
    st->wd_event_recorded = 0;
    pthread_mutex_unlock(&st->mu);
}

static void wd_enqueued(NcclState *st) {
    if (!st->wd_started || wd_capturing(st)) return;
    pthread_mutex_lock(&st->mu);
    CUDA_CHECK(cudaEventRecord(st->wd_event, st->stream));
    st->wd_event_recorded = 1;
    pthread_mutex_unlock(&st->mu);
}

/* Around the host-side collectives (MPI: the loss sums, the stop vote, broadcasts, barriers): a
 * peer that is gone blocks them as surely as NCCL's. */
static void wd_host(NcclState *st, int begin) {
    if (!st->wd_started) return;
    pthread_mutex_lock(&st->mu);
    st->host_since = begin ? monotonic_seconds() : 0;
    pthread_mutex_unlock(&st->mu);
}

static void wd_start(NcclState *st, double timeout_s) {
    st->timeout_s = timeout_s;
    if (timeout_s <= 0) return; /* 0: no watchdog */
    CUDA_CHECK(cudaEventCreateWithFlags(&st->wd_event, cudaEventDisableTiming));
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->wake, NULL);
    if (pthread_create(&st->wd_thread, NULL, wd_main, st) != 0) die("cannot start the NCCL watchdog thread");
    st->wd_started = 1;
}

static void wd_stop(NcclState *st) {
    if (!st->wd_started) return;
    pthread_mutex_lock(&st->mu);
    st->wd_stop = 1;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->wd_thread, NULL);
    st->wd_started = 0;
    CUDA_CHECK(cudaEventDestroy(st->wd_event));
    pthread_cond_destroy(&st->wake);
    pthread_mutex_destroy(&st->mu);
}

static void nccl_allreduce(Comm *c, float *buf, size_t n) {
    NcclState *st = nccl_state(c);
    if (n == 0) return;
    CUDA_SYNC(cudaDeviceSynchronize()); /* the producer's stream is not ours */
    wd_begin(st);
    NCCL_WORK(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, st->nccl, st->stream));
    wd_enqueued(st);
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
    wd_begin(st);
    NCCL_CHECK(ncclGroupStart());
    for (int r = 0; r < n_runs; r++)
        if (counts[r]) NCCL_WORK(ncclAllReduce(runs[r], runs[r], counts[r], ncclFloat, ncclSum, st->nccl, st->stream));
    NCCL_CHECK(ncclGroupEnd());
    wd_enqueued(st);
}

/* A captured step is replayed (its collectives queued by cudaGraphLaunch, on the backend's
 * stream, which the step ends on): the clock starts before the launch (a launch that itself
 * waits, as the emulator's does, is then watched too), and the watchdog's event goes after the
 * step's collectives there, as wd_enqueued puts it after our own. */
static void nccl_watch_begin(Comm *c) { wd_begin(nccl_state(c)); }

static void nccl_watch_queued(Comm *c, void *queue) {
    NcclState *st = nccl_state(c);
    wd_hold(); /* the watchdog gave up during the launch: its exit status, not a later error, ends the run */
    if (!st->wd_started) return;
    pthread_mutex_lock(&st->mu);
    CUDA_CHECK(cudaEventRecord(st->wd_event, (cudaStream_t)queue));
    st->wd_event_recorded = 1;
    pthread_mutex_unlock(&st->mu);
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
    NcclState *st = nccl_state(c);
    wd_host(st, 1);
    st->mpi->allreduce_sum_f64(st->mpi, buf, n);
    wd_host(st, 0);
}

static void nccl_broadcast(Comm *c, void *buf, size_t bytes, int root) {
    NcclState *st = nccl_state(c);
    wd_host(st, 1);
    st->mpi->broadcast(st->mpi, buf, bytes, root);
    wd_host(st, 0);
}

static void nccl_barrier(Comm *c) {
    NcclState *st = nccl_state(c);
    wd_host(st, 1);
    st->mpi->barrier(st->mpi);
    wd_host(st, 0);
}

static void nccl_abort(Comm *c, int status) {
    NcclState *st = nccl_state(c);
    if (st->wd_started) { /* no verdict from the watchdog while this rank ends the job */
        pthread_mutex_lock(&st->mu);
        st->wd_stop = 1;
        pthread_mutex_unlock(&st->mu);
    }
    ncclCommAbort(st->nccl); /* never blocks on the failed peers */
    st->mpi->abort_all(st->mpi, status);
}

static void nccl_destroy(Comm *c) {
    NcclState *st = nccl_state(c);
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    wd_stop(st);
    for (int i = 0; i < st->cap_events; i++) CUDA_CHECK(cudaEventDestroy(st->events[i]));
    free(st->events);
    NCCL_CHECK(ncclCommDestroy(st->nccl));
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    st->mpi->destroy(st->mpi);
    free(st);
    free(c);
}

Comm *comm_nccl_create(int *argc, char ***argv) { return comm_nccl_create_timeout(argc, argv, UNET_COMM_TIMEOUT_S); }

Comm *comm_nccl_create_timeout(int *argc, char ***argv, double timeout_s) {
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
    wd_start(st, timeout_s);
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
    c->watch_begin = nccl_watch_begin;
    c->watch_queued = nccl_watch_queued;
    c->barrier = nccl_barrier;
    c->abort_all = nccl_abort;
    c->destroy = nccl_destroy;
    return c;
}
#else
/* Built without CUDA or without MPI: no NCCL transport (ISO C wants a declaration here). */
typedef int comm_nccl_unavailable;
#endif
