/* loader.h — the training data loader: worker threads augmenting slices into a bounded queue
 * of preallocated batch slots (docs/architecture.md, "The loader").
 *
 * Sampling: an epoch is one shuffled pass over the source's slices; step s of an epoch holds
 * positions [s·G, (s+1)·G) of the epoch's permutation (G = the global batch; the last step
 * wraps to the permutation's start, so every step is full). The permutation is keyed by
 * (seed, epoch) and the augmentation of position p by (seed, epoch, p): the batches are the
 * same bit for bit for any number of threads, and rank r of R produces positions
 * [G·r/R, G·(r+1)/R) of each global batch, so concatenating the ranks' shares gives the
 * single-rank batch. Resuming at a global step reproduces the uninterrupted run.
 *
 * Threads: loader_next() and loader_release() are called by one consumer thread. */
#ifndef UNET_LOADER_H
#define UNET_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "augment.h"
#include "slice_source.h"

#define LOADER_MAX_LEVELS 6

typedef struct {
    AugmentParams aug;  /* patch, enlarged crop, probabilities and ranges */
    int global_batch;   /* samples per step over all ranks */
    int rank, world;    /* this process's share of each global batch */
    int workers;        /* augmentation threads (>= 1) */
    int prefetch;       /* batch slots in the queue (>= 1) */
    uint64_t seed;
    long long start_step; /* first global step to produce (a resumed run's step) */
    long long max_steps;  /* produce this many steps, then loader_next() returns 1; 0 = no end */
    int label_levels;     /* deep-supervision label pyramid: levels below full resolution (0 = none) */
    /* Slot memory (e.g. pinned host memory for the CUDA backend); NULL = malloc/free. */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    void *alloc_ctx;
} LoaderOptions;

/* The loader's defaults, and the run config's (loader.workers, loader.prefetch): one home. */
#define LOADER_DEFAULT_WORKERS 4
#define LOADER_DEFAULT_PREFETCH 4

/* Defaults: the released recipe's augmentation for the patch, 1 rank, LOADER_DEFAULT_* threads and slots. */
void loader_options_default(LoaderOptions *o, int patch_h, int patch_w, int global_batch);

typedef struct {
    long long step;       /* global step */
    long long epoch;
    int step_in_epoch;
    int batch;            /* samples in this rank's share */
    int first;            /* index in the global batch of this share's first sample */
    int H, W, C;
    float *image;         /* (batch, H, W, C) */
    int32_t *label;       /* (batch, H, W), values in [0, classes) */
    int levels;
    int32_t *label_ds[LOADER_MAX_LEVELS]; /* level k: (batch, H >> (k+1), W >> (k+1)), pixel (y·f + f/2, x·f + f/2), f = 2^(k+1) */
    int slot;             /* private */
} LoaderBatch;

typedef struct {
    double elapsed_s;     /* since loader_create */
    double wait_s;        /* the consumer's time blocked in loader_next */
    double work_s;        /* worker time producing samples, summed over workers */
    double read_s;        /* of which reading slices */
    long long samples;    /* produced */
    long long batches;    /* handed to the consumer */
    double samples_per_s; /* samples / elapsed */
} LoaderStats;

typedef struct Loader Loader;

/* The source must outlive the loader. -1 with a message on bad options or out of memory. */
int loader_create(Loader **out, const SliceSource *src, const LoaderOptions *opt, char *err, size_t err_len);
/* Steps in one epoch: ceil(slices / global batch). */
long long loader_steps_per_epoch(const Loader *L);
/* Blocks until the next batch is complete. 0: *out is valid until loader_release(); 1: the
 * max_steps batches have all been handed out; -1: a worker failed (message in err) — the
 * loader stays failed. */
int loader_next(Loader *L, const LoaderBatch **out, char *err, size_t err_len);
void loader_release(Loader *L, const LoaderBatch *b);
void loader_stats(Loader *L, LoaderStats *st);
/* Stops the workers wherever they are, joins them and frees everything; any time. */
void loader_destroy(Loader *L);

/* The permutation of epoch `epoch` (what any rank computes for itself). */
void loader_permutation(int *perm /* (n) */, int n, uint64_t seed, long long epoch);

/* Test hook: make the worker producing global sample position `pos` of global step `step`
 * fail as if its read had failed (-1 disables). */
void loader_inject_failure(Loader *L, long long step, int pos);

#endif
