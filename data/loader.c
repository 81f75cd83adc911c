/* loader.c — worker threads, the slot queue, and the consumer side (see loader.h).
 *
 * The queue: `prefetch` slots, each big enough for one batch. Local batch q (counted from
 * start_step) lives in slot q mod prefetch. Work is handed out one sample at a time from one
 * counter, so every thread helps finish the oldest batch first; a worker whose sample belongs
 * to a batch whose slot is still held by the consumer waits for loader_release(). The
 * consumer waits only for the batch it asks for, never for a read. Which thread makes which
 * sample never matters: a sample is a pure function of (seed, epoch, position). */
#include "loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "rng.h"

typedef struct {
    void *mem;           /* one block from the allocation hook */
    LoaderBatch b;
    long long q;         /* the local batch this slot is for now */
    int done;            /* samples finished */
} Slot;

typedef struct {
    Loader *L;
    pthread_t thread;
    int started;
    AugmentScratch scratch;
    float *img;          /* (C, max_h, max_w) */
    int32_t *lab;        /* (max_h, max_w) */
    int *perm;           /* (N) the permutation of perm_epoch */
    long long perm_epoch;
    double work_s, read_s;
    long long samples;
} Worker;

struct Loader {
    SliceSource src;
    LoaderOptions o;
    int b_local, first;  /* this rank's share of a global batch */
    long long spe;       /* steps per epoch */
    int H, W, C;
    size_t img_n, lab_n, ds_n[LOADER_MAX_LEVELS];
    Slot *slots;
    Worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
    long long next_task; /* samples handed out */
    long long next_batch; /* the consumer's next local batch */
    int stop, failed;
    char errmsg[512];
    long long inject_step;
    int inject_pos;
    double t0, wait_s;
    long long batches;
};


static void *default_alloc(void *ctx, size_t n) { return malloc(n); }
static void default_free(void *ctx, void *p) { free(p); }

void loader_options_default(LoaderOptions *o, int patch_h, int patch_w, int global_batch) {
    memset(o, 0, sizeof *o);
    augment_params_default(&o->aug, patch_h, patch_w);
    o->global_batch = global_batch;
    o->rank = 0, o->world = 1;
    o->workers = LOADER_DEFAULT_WORKERS, o->prefetch = LOADER_DEFAULT_PREFETCH;
}

/* A tag keeps the shuffle's stream apart from the augmentation's. */
#define SHUFFLE_TAG 0x53485546464C4521ull /* "SHUFFLE!" */

void loader_permutation(int *perm, int n, uint64_t seed, long long epoch) {
    uint64_t s = rng_mix(seed ^ SHUFFLE_TAG);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher–Yates, draw i keyed by (epoch, i) */
        int j = (int)(rng_uniform(rng_key(s, (uint64_t)epoch, (uint64_t)i)) * (i + 1));
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

long long loader_steps_per_epoch(const Loader *L) { return L->spe; }

static void fail_locked(Loader *L, const char *msg) {
    if (!L->failed) {
        L->failed = 1;
        snprintf(L->errmsg, sizeof L->errmsg, "%s", msg);
    }
    pthread_cond_broadcast(&L->cv_ready);
    pthread_cond_broadcast(&L->cv_work);
}

/* One sample: local batch q, entry j of this rank's share. */
static int make_sample(Worker *w, Slot *slot, long long q, int j, double *read_s, char *err, size_t err_len) {
    Loader *L = w->L;
    long long step = L->o.start_step + q;
    long long epoch = step / L->spe;
    int pos = L->first + j; /* in the global batch */
    long long p = (step % L->spe) * L->o.global_batch + pos;
    int N = L->src.num_slices;
    if (w->perm_epoch != epoch) {
        loader_permutation(w->perm, N, L->o.seed, epoch);
        w->perm_epoch = epoch;
    }
    int slice = w->perm[p % N];
    int h, wd;
    L->src.shape(L->src.ctx, slice, &h, &wd);
    double t = monotonic_seconds();
    int rc;
    if (step == L->inject_step && pos == L->inject_pos) {
        snprintf(err, err_len, "slice %d (step %lld, sample %d): injected failure", slice, step, pos);
        rc = -1;
    } else if (h > L->src.max_h || wd > L->src.max_w || h < 1 || wd < 1) {
        snprintf(err, err_len, "slice %d: size %dx%d outside the source's declared maximum %dx%d", slice, h, wd,
                 L->src.max_h, L->src.max_w);
        rc = -1;
    } else {
        rc = L->src.read(L->src.ctx, slice, w->img, w->lab, err, err_len);
    }
    *read_s = monotonic_seconds() - t;
    if (rc != 0) return -1;
    for (size_t i = 0; i < (size_t)h * wd; i++)
        if (w->lab[i] < 0 || w->lab[i] >= L->src.num_classes) {
            snprintf(err, err_len, "slice %d: label %d at pixel (%zu, %zu) is outside [0, %d)", slice, (int)w->lab[i],
                     i / wd, i % wd, L->src.num_classes);
            return -1;
        }
    AugmentDraw d;
    augment_draw(&L->o.aug, L->C, h, wd, L->o.seed, (uint64_t)epoch, (uint64_t)p, &d);
    LoaderBatch *b = &slot->b;
    size_t hw = (size_t)L->H * L->W;
    int32_t *lab = b->label + (size_t)j * hw;
    augment_sample(&L->o.aug, &d, w->img, w->lab, L->C, h, wd, &w->scratch, b->image + (size_t)j * hw * L->C, lab);
    for (int k = 0; k < b->levels; k++) { /* nearest: pixel (y·f + f/2, x·f + f/2) */
        int f = 2 << k, h2 = L->H / f, w2 = L->W / f;
        int32_t *o = b->label_ds[k] + (size_t)j * h2 * w2;
        for (int y = 0; y < h2; y++)
            for (int x = 0; x < w2; x++) o[(size_t)y * w2 + x] = lab[(size_t)(y * f + f / 2) * L->W + x * f + f / 2];
    }
    return 0;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Loader *L = w->L;
    char err[512];
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->stop || L->failed) break;
        long long t = L->next_task;
        long long q = t / L->b_local;
        int j = (int)(t % L->b_local);
        if (L->o.max_steps > 0 && q >= L->o.max_steps) break;
        Slot *slot = &L->slots[q % L->o.prefetch];
        if (slot->q != q) { /* the consumer still holds this slot's previous batch */
            pthread_cond_wait(&L->cv_work, &L->mu);
            continue;
        }
        L->next_task++;
        pthread_mutex_unlock(&L->mu);
        double t0 = monotonic_seconds(), read_s = 0;
        int rc = make_sample(w, slot, q, j, &read_s, err, sizeof err);
        double work_s = monotonic_seconds() - t0;
        pthread_mutex_lock(&L->mu);
        w->work_s += work_s, w->read_s += read_s; /* under the lock: loader_stats reads them */
        if (rc != 0) {
            fail_locked(L, err);
            break;
        }
        w->samples++;
        if (++slot->done == L->b_local) pthread_cond_broadcast(&L->cv_ready);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static int create_fail(Loader *L, char *err, size_t err_len, const char *msg) {
    snprintf(err, err_len, "loader: %s", msg);
    loader_destroy(L);
    return -1;
}

int loader_create(Loader **out, const SliceSource *src, const LoaderOptions *opt, char *err, size_t err_len) {
    *out = NULL;
    if (augment_params_check(&opt->aug, err, err_len) != 0) return -1;
    const LoaderOptions *o = opt;
    if (o->global_batch < 1 || o->world < 1 || o->rank < 0 || o->rank >= o->world || o->global_batch < o->world) {
        snprintf(err, err_len, "loader: global batch %d cannot be shared by %d ranks (rank %d)", o->global_batch, o->world,
                 o->rank);
        return -1;
    }
    if (o->workers < 1 || o->workers > 1024 || o->prefetch < 1 || o->prefetch > 1024) {
        snprintf(err, err_len, "loader: workers %d and prefetch %d must be in [1, 1024]", o->workers, o->prefetch);
        return -1;
    }
    if (o->label_levels < 0 || o->label_levels > LOADER_MAX_LEVELS) {
        snprintf(err, err_len, "loader: label_levels %d outside [0, %d]", o->label_levels, LOADER_MAX_LEVELS);
        return -1;
    }
    if (src->num_slices < 1 || src->channels < 1 || src->channels > AUG_MAX_CHANNELS || src->num_classes < 1) {
        snprintf(err, err_len, "loader: the source has %d slices of %d channels (need >= 1 slice, 1..%d channels)",
                 src->num_slices, src->channels, AUG_MAX_CHANNELS);
        return -1;
    }
    Loader *L = calloc(1, sizeof *L);
    if (!L) {
        snprintf(err, err_len, "loader: out of memory");
        return -1;
    }
    L->src = *src;
    L->o = *o;
    if (!L->o.alloc || !L->o.free) L->o.alloc = default_alloc, L->o.free = default_free;
    L->first = (int)((long long)o->global_batch * o->rank / o->world);
    L->b_local = (int)((long long)o->global_batch * (o->rank + 1) / o->world) - L->first;
    L->spe = (src->num_slices + o->global_batch - 1) / o->global_batch;
    L->H = o->aug.patch[0], L->W = o->aug.patch[1], L->C = src->channels;
    L->inject_step = -1;
    L->t0 = monotonic_seconds();
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_ready, NULL);

    /* slots: image, label and pyramid in one block each */
    size_t hw = (size_t)L->H * L->W;
    L->img_n = (size_t)L->b_local * hw * L->C;
    L->lab_n = (size_t)L->b_local * hw;
    size_t bytes = L->img_n * sizeof(float) + L->lab_n * sizeof(int32_t);
    for (int k = 0; k < o->label_levels; k++) {
        int f = 2 << k;
        L->ds_n[k] = (size_t)L->b_local * (L->H / f) * (L->W / f);
        bytes += L->ds_n[k] * sizeof(int32_t);
    }
    L->slots = calloc((size_t)o->prefetch, sizeof *L->slots);
    if (!L->slots) return create_fail(L, err, err_len, "out of memory for the slot table");
    for (int s = 0; s < o->prefetch; s++) {
        Slot *sl = &L->slots[s];
        sl->mem = L->o.alloc(L->o.alloc_ctx, bytes);
        if (!sl->mem) {
            char m[160];
            snprintf(m, sizeof m, "cannot allocate batch slot %d (%zu bytes)", s, bytes);
            return create_fail(L, err, err_len, m);
        }
        sl->q = s;
        LoaderBatch *b = &sl->b;
        b->H = L->H, b->W = L->W, b->C = L->C, b->batch = L->b_local, b->first = L->first, b->slot = s;
        b->image = sl->mem;
        b->label = (int32_t *)(b->image + L->img_n);
        int32_t *p = b->label + L->lab_n;
        b->levels = o->label_levels;
        for (int k = 0; k < o->label_levels; k++) b->label_ds[k] = p, p += L->ds_n[k];
    }
    L->workers = calloc((size_t)o->workers, sizeof *L->workers);
    if (!L->workers) return create_fail(L, err, err_len, "out of memory for the worker table");
    for (int i = 0; i < o->workers; i++) {
        Worker *w = &L->workers[i];
        w->L = L;
        w->perm_epoch = -1;
        w->img = malloc((size_t)src->channels * src->max_h * src->max_w * sizeof(float));
        w->lab = malloc((size_t)src->max_h * src->max_w * sizeof(int32_t));
        w->perm = malloc((size_t)src->num_slices * sizeof(int));
        if (!w->img || !w->lab || !w->perm || augment_scratch_alloc(&w->scratch, &o->aug, L->C) != 0)
            return create_fail(L, err, err_len, "out of memory for a worker's buffers");
    }
    for (int i = 0; i < o->workers; i++) {
        if (pthread_create(&L->workers[i].thread, NULL, worker_main, &L->workers[i]) != 0)
            return create_fail(L, err, err_len, "cannot start a worker thread");
        L->workers[i].started = 1;
    }
    *out = L;
    return 0;
}

int loader_next(Loader *L, const LoaderBatch **out, char *err, size_t err_len) {
    *out = NULL;
    double t = monotonic_seconds();
    pthread_mutex_lock(&L->mu);
    long long q = L->next_batch;
    int rc;
    if (L->o.max_steps > 0 && q >= L->o.max_steps) {
        rc = 1;
    } else {
        Slot *s = &L->slots[q % L->o.prefetch];
        if (s->q < q) { /* would wait forever: the consumer itself holds the batch in this slot */
            snprintf(err, err_len, "data loader: batch %lld was asked for while all %d slots are held; release a batch first",
                     L->o.start_step + q, L->o.prefetch);
            L->wait_s += monotonic_seconds() - t;
            pthread_mutex_unlock(&L->mu);
            return -1;
        }
        /* the slot is ours once the previous batch in it was released (s->q == q) */
        while (!L->failed && !(s->q == q && s->done == L->b_local)) pthread_cond_wait(&L->cv_ready, &L->mu);
        if (s->q == q && s->done == L->b_local) { /* finished before any failure: hand it out */
            long long step = L->o.start_step + q;
            s->b.step = step, s->b.epoch = step / L->spe, s->b.step_in_epoch = (int)(step % L->spe);
            *out = &s->b;
            L->next_batch++;
            L->batches++;
            rc = 0;
        } else {
            snprintf(err, err_len, "data loader: %s", L->errmsg);
            rc = -1;
        }
    }
    L->wait_s += monotonic_seconds() - t;
    pthread_mutex_unlock(&L->mu);
    return rc;
}

void loader_release(Loader *L, const LoaderBatch *b) {
    pthread_mutex_lock(&L->mu);
    Slot *s = &L->slots[b->slot];
    s->q += L->o.prefetch;
    s->done = 0;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
}

void loader_stats(Loader *L, LoaderStats *st) {
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&L->mu);
    st->elapsed_s = monotonic_seconds() - L->t0;
    st->wait_s = L->wait_s;
    st->batches = L->batches;
    for (int i = 0; i < L->o.workers; i++) {
        st->work_s += L->workers[i].work_s;
        st->read_s += L->workers[i].read_s;
        st->samples += L->workers[i].samples;
    }
    pthread_mutex_unlock(&L->mu);
    st->samples_per_s = st->elapsed_s > 0 ? st->samples / st->elapsed_s : 0;
}

void loader_inject_failure(Loader *L, long long step, int pos) {
    pthread_mutex_lock(&L->mu);
    L->inject_step = step, L->inject_pos = pos;
    pthread_mutex_unlock(&L->mu);
}

void loader_destroy(Loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_cond_broadcast(&L->cv_ready);
    pthread_mutex_unlock(&L->mu);
    if (L->workers) {
        for (int i = 0; i < L->o.workers; i++) {
            Worker *w = &L->workers[i];
            if (w->started) pthread_join(w->thread, NULL);
            augment_scratch_free(&w->scratch);
            free(w->img), free(w->lab), free(w->perm);
        }
        free(L->workers);
    }
    if (L->slots) {
        for (int s = 0; s < L->o.prefetch; s++)
            if (L->slots[s].mem) L->o.free(L->o.alloc_ctx, L->slots[s].mem);
        free(L->slots);
    }
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_ready);
    pthread_mutex_destroy(&L->mu);
    free(L);
}
