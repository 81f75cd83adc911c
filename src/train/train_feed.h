/* train_feed.h — what the training loop needs from the data loader: this rank's share of each
 * global batch, in order, as NHWC images and int32 labels. train_feed.c adapts the augmenting
 * loader (data/loader.h) to it; the loop itself never touches I/O. */
#ifndef UNET_TRAIN_FEED_H
#define UNET_TRAIN_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

typedef struct TrainFeed TrainFeed;

typedef struct {
    int rank, world;        /* this rank takes samples [offset, offset + count) of each global batch */
    int global_batch;
    uint64_t epoch;         /* where to start: resume position */
    uint64_t epoch_step;
    /* batch slot memory (e.g. pinned host memory for the CUDA backend); NULL = malloc/free */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
} TrainFeedStart;

int train_feed_create(TrainFeed **out, const Config *cfg, const Store *store, const TrainFeedStart *start, char *err,
                      size_t err_len);
long train_feed_steps_per_epoch(const TrainFeed *f); /* full global batches per epoch */
int train_feed_local_batch(const TrainFeed *f);
uint64_t train_feed_sample_offset(const TrainFeed *f); /* index of this rank's first sample in a global batch */
/* The next batch (host memory valid until the next call): image (b, H, W, C), labels (b, H, W).
 * Crossing an epoch boundary is handled inside. Returns 0, or -1 with the loader's error. */
int train_feed_next(TrainFeed *f, const float **image, const int32_t **labels, char *err, size_t err_len);
/* Seconds the caller spent waiting in train_feed_next since the last call, and samples/s made. */
void train_feed_stats(TrainFeed *f, double *wait_s, double *samples_per_s);
void train_feed_destroy(TrainFeed *f);

#endif
