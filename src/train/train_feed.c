/* train_feed.c — the training loop's view of the loader (train_feed.h over data/loader.h):
 * holds the batch being trained on, releases it on the next call, and opens the training split
 * of the store as the loader's slice source. */
#include "train_feed.h"

#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "loader_config.h"
#include "slice_source.h"

struct TrainFeed {
    SliceSource src;
    Loader *loader;
    const LoaderBatch *current;
    int local_batch;
    uint64_t offset;
    double last_wait;
};

int train_feed_create(TrainFeed **out, const Config *cfg, const Store *store, const TrainFeedStart *start, char *err,
                      size_t err_len) {
    (void)store; /* the slice source opens its own handle on the same store */
    TrainFeed *f = xcalloc(1, sizeof(TrainFeed));
    LoaderOptions opt;
    if (slice_source_open_store(&f->src, cfg->store, cfg->train_split, err, err_len) != 0) {
        free(f);
        return -1;
    }
    if (loader_options_from_config(&opt, cfg, start->rank, start->world, err, err_len) != 0) {
        slice_source_close(&f->src);
        free(f);
        return -1;
    }
    if (start->alloc) {
        opt.alloc = start->alloc;
        opt.free = start->free;
        opt.alloc_ctx = NULL;
    }
    /* the loader counts global steps; an epoch is ceil(slices / global batch) of them */
    long long G_all = start->global_batch, spe = (f->src.num_slices + G_all - 1) / G_all;
    opt.start_step = (long long)start->epoch * spe + (long long)start->epoch_step;
    if (loader_create(&f->loader, &f->src, &opt, err, err_len) != 0) {
        slice_source_close(&f->src);
        free(f);
        return -1;
    }
    CHECK(loader_steps_per_epoch(f->loader) == spe, "steps per epoch disagree with the loader");
    int G = start->global_batch, r = start->rank, R = start->world;
    f->offset = (uint64_t)((long long)G * r / R);
    f->local_batch = (int)((long long)G * (r + 1) / R - (long long)G * r / R);
    *out = f;
    return 0;
}

long train_feed_steps_per_epoch(const TrainFeed *f) { return (long)loader_steps_per_epoch(f->loader); }
int train_feed_local_batch(const TrainFeed *f) { return f->local_batch; }
uint64_t train_feed_sample_offset(const TrainFeed *f) { return f->offset; }

int train_feed_next(TrainFeed *f, const float **image, const int32_t **labels, char *err, size_t err_len) {
    if (f->current) loader_release(f->loader, f->current);
    f->current = NULL;
    int rc = loader_next(f->loader, &f->current, err, err_len);
    if (rc == 1) snprintf(err, err_len, "the loader ran out of steps");
    if (rc != 0) return -1;
    CHECK(f->current->batch == f->local_batch, "loader share %d != expected %d", f->current->batch, f->local_batch);
    *image = f->current->image;
    *labels = f->current->label;
    return 0;
}

void train_feed_stats(TrainFeed *f, double *wait_s, double *samples_per_s) {
    LoaderStats st;
    loader_stats(f->loader, &st);
    *wait_s = st.wait_s - f->last_wait;
    f->last_wait = st.wait_s;
    *samples_per_s = st.samples_per_s;
}

void train_feed_destroy(TrainFeed *f) {
    if (!f) return;
    if (f->current) loader_release(f->loader, f->current);
    loader_destroy(f->loader);
    slice_source_close(&f->src);
    free(f);
}
