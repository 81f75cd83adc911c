/* test_loader.c — the loader: bitwise-identical batches for 1, 2 and 4 worker threads and for
 * 1, 2 and 3 ranks taking their shares; epochs as shuffled passes; resuming; a worker's error
 * reaching the consumer; shutdown at any moment; the allocation hook; the statistics.
 * An alarm turns any hang into a failure. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "slice_source.h"
#include "testutil.h"

enum { NS = 13, SH = 60, SW = 52, PH = 32, PW = 32, CH = 2, CLASSES = 5, GB = 4, STEPS = 9 };

typedef struct {
    size_t img_n, lab_n, ds_n[2];
    float *img;       /* (STEPS, GB, PH, PW, CH) */
    int32_t *lab;     /* (STEPS, GB, PH, PW) */
    int32_t *ds[2];   /* (STEPS, GB, PH/2^k, PW/2^k) */
} Run;

static void run_free(Run *r) { free(r->img), free(r->lab), free(r->ds[0]), free(r->ds[1]); }

static void opts(LoaderOptions *o, int all_on) {
    loader_options_default(o, PH, PW, GB);
    o->seed = 42;
    o->label_levels = 2;
    o->max_steps = STEPS;
    if (all_on) { /* every transform on every sample, so every code path is compared */
        AugmentParams *p = &o->aug;
        p->p_rotation = p->p_scale = p->p_noise = p->p_blur = p->p_brightness = p->p_contrast = p->p_lowres = 1;
        p->p_gamma_inverted = p->p_gamma = 1;
    }
}

/* Runs a loader for ranks 0..world-1 in turn and stitches their shares into whole batches. */
static int run_loader(const SliceSource *src, int all_on, int workers, int prefetch, int world, long long start, Run *r) {
    memset(r, 0, sizeof *r);
    size_t hw = (size_t)PH * PW;
    r->img = calloc((size_t)STEPS * GB * hw * CH, sizeof(float));
    r->lab = calloc((size_t)STEPS * GB * hw, sizeof(int32_t));
    for (int k = 0; k < 2; k++) r->ds[k] = calloc((size_t)STEPS * GB * (hw >> (2 * (k + 1))), sizeof(int32_t));
    for (int rank = 0; rank < world; rank++) {
        LoaderOptions o;
        opts(&o, all_on);
        o.workers = workers, o.prefetch = prefetch, o.rank = rank, o.world = world;
        o.start_step = start, o.max_steps = STEPS - start;
        Loader *L;
        char err[512];
        if (loader_create(&L, src, &o, err, sizeof err) != 0) {
            printf("loader_create: %s\n", err);
            return -1;
        }
        const LoaderBatch *b;
        int rc;
        while ((rc = loader_next(L, &b, err, sizeof err)) == 0) {
            size_t at = (size_t)b->step * GB + b->first;
            memcpy(r->img + at * hw * CH, b->image, sizeof(float) * b->batch * hw * CH);
            memcpy(r->lab + at * hw, b->label, sizeof(int32_t) * b->batch * hw);
            for (int k = 0; k < 2; k++) {
                size_t n = hw >> (2 * (k + 1));
                memcpy(r->ds[k] + at * n, b->label_ds[k], sizeof(int32_t) * b->batch * n);
            }
            loader_release(L, b);
        }
        loader_destroy(L);
        if (rc != 1) {
            printf("loader_next: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int same(const Run *a, const Run *b, long long from_step) {
    size_t hw = (size_t)PH * PW, s0 = (size_t)from_step * GB;
    size_t ns = (size_t)STEPS * GB - s0;
    int ok = !memcmp(a->img + s0 * hw * CH, b->img + s0 * hw * CH, ns * hw * CH * sizeof(float)) &&
             !memcmp(a->lab + s0 * hw, b->lab + s0 * hw, ns * hw * sizeof(int32_t));
    for (int k = 0; k < 2; k++) {
        size_t n = hw >> (2 * (k + 1));
        ok &= !memcmp(a->ds[k] + s0 * n, b->ds[k] + s0 * n, ns * n * sizeof(int32_t));
    }
    return ok;
}

static void test_determinism(const SliceSource *src) {
    for (int all_on = 0; all_on < 2; all_on++) {
        Run ref, r;
        const char *what = all_on ? "every transform on" : "the released recipe's probabilities";
        TEST_CHECK(run_loader(src, all_on, 1, 1, 1, 0, &ref) == 0, "%s: 1 worker, 1 slot, 1 rank runs", what);
        const int cfg[][3] = {{2, 3, 1}, {4, 2, 1}, {4, 6, 1}, {1, 2, 2}, {2, 3, 2}, {4, 1, 3}};
        for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
            int ok = run_loader(src, all_on, cfg[i][0], cfg[i][1], cfg[i][2], 0, &r) == 0 && same(&ref, &r, 0);
            TEST_CHECK(ok, "%s: %d workers, %d slots, %d ranks (shares concatenated): batches bitwise identical", what,
                       cfg[i][0], cfg[i][1], cfg[i][2]);
            run_free(&r);
        }
        int ok = run_loader(src, all_on, 2, 2, 1, 5, &r) == 0 && same(&ref, &r, 5);
        TEST_CHECK(ok, "%s: resuming at step 5 reproduces steps 5.. bitwise", what);
        run_free(&r);
        if (!all_on) {
            /* the labels of the pyramid are the full-resolution labels at (y·f + f/2, x·f + f/2) */
            int pyr = 1;
            for (size_t s = 0; s < (size_t)STEPS * GB; s++)
                for (int k = 0; k < 2; k++) {
                    int f = 2 << k, h2 = PH / f, w2 = PW / f;
                    for (int y = 0; y < h2; y++)
                        for (int x = 0; x < w2; x++)
                            pyr &= ref.ds[k][(s * h2 + y) * w2 + x] == ref.lab[(s * PH + y * f + f / 2) * PW + x * f + f / 2];
                }
            TEST_CHECK(pyr, "label pyramid levels pick pixel (y*f + f/2, x*f + f/2)");
            int labels_ok = 1, differ = 0;
            for (size_t i = 0; i < (size_t)STEPS * GB * PH * PW; i++) labels_ok &= ref.lab[i] >= 0 && ref.lab[i] < CLASSES;
            for (int s = 1; s < STEPS * GB; s++)
                differ += memcmp(ref.img, ref.img + (size_t)s * PH * PW * CH, sizeof(float) * PH * PW * CH) != 0;
            TEST_CHECK(labels_ok && differ == STEPS * GB - 1, "batch labels in the class set; every sample differs from the first");
        }
        run_free(&ref);
    }
}

/* ---- a source that counts reads, to check the epoch is a pass over all slices ---- */
typedef struct {
    SliceSource inner;
    atomic_int count[64];
} Counting;
static void cnt_shape(void *ctx, int i, int *h, int *w) {
    Counting *c = ctx;
    c->inner.shape(c->inner.ctx, i, h, w);
}
static int cnt_read(void *ctx, int i, float *im, int32_t *lab, char *err, size_t n) {
    Counting *c = ctx;
    atomic_fetch_add(&c->count[i], 1);
    return c->inner.read(c->inner.ctx, i, im, lab, err, n);
}

static void test_epoch(const SliceSource *src) {
    int perm[NS], perm2[NS], seen[NS] = {0};
    loader_permutation(perm, NS, 42, 3);
    for (int i = 0; i < NS; i++) seen[perm[i]]++;
    int ok = 1;
    for (int i = 0; i < NS; i++) ok &= seen[i] == 1;
    loader_permutation(perm2, NS, 42, 4);
    TEST_CHECK(ok && memcmp(perm, perm2, sizeof perm), "an epoch's order is a permutation, another epoch's differs");

    /* 12 slices, global batch 4: one epoch = 3 steps reads every slice exactly once */
    Counting c = {.inner = *src};
    SliceSource cs = *src;
    cs.ctx = &c, cs.shape = cnt_shape, cs.read = cnt_read, cs.num_slices = 12;
    LoaderOptions o;
    opts(&o, 0);
    o.max_steps = 3, o.workers = 3;
    Loader *L;
    char err[512];
    const LoaderBatch *b;
    loader_create(&L, &cs, &o, err, sizeof err);
    int steps = 0;
    while (loader_next(L, &b, err, sizeof err) == 0) steps++, loader_release(L, b);
    TEST_CHECK(loader_steps_per_epoch(L) == 3 && steps == 3, "12 slices / batch 4: 3 steps per epoch");
    loader_destroy(L);
    ok = 1;
    for (int i = 0; i < 12; i++) ok &= atomic_load(&c.count[i]) == 1;
    TEST_CHECK(ok, "one epoch reads every training slice exactly once");
}

static void test_errors(const SliceSource *src) {
    char err[512] = "";
    const LoaderBatch *b;
    Loader *L;
    LoaderOptions o;
    /* an injected failure in the sample at position 1 of step 2 */
    opts(&o, 0);
    o.workers = 4, o.prefetch = 1; /* one slot: step 2 cannot start before the injection below */
    loader_create(&L, src, &o, err, sizeof err);
    loader_inject_failure(L, 2, 1);
    int rc, got = 0;
    while ((rc = loader_next(L, &b, err, sizeof err)) == 0) got++, loader_release(L, b);
    TEST_CHECK(rc == -1 && got == 2 && strstr(err, "injected failure") && strstr(err, "step 2"),
               "a failing sample reaches the consumer as an error after %d good batches: \"%s\"", got, err);
    rc = loader_next(L, &b, err, sizeof err);
    TEST_CHECK(rc == -1, "the loader stays failed");
    loader_destroy(L);

    /* a read error from the source itself, naming the slice */
    SliceSource bad;
    enum { n = 5, h = 40, w = 40 };
    float *img = calloc((size_t)n * h * w, sizeof(float));
    int32_t *lab = calloc((size_t)n * h * w, sizeof(int32_t));
    slice_source_memory(&bad, n, 1, h, w, 3, img, lab);
    slice_source_memory_fail_at(&bad, 3);
    opts(&o, 0);
    o.max_steps = 20, o.workers = 2;
    loader_create(&L, &bad, &o, err, sizeof err);
    while ((rc = loader_next(L, &b, err, sizeof err)) == 0) loader_release(L, b);
    TEST_CHECK(rc == -1 && strstr(err, "slice 3: injected read failure"), "a source read error reaches the consumer: \"%s\"", err);
    loader_destroy(L);
    slice_source_close(&bad);

    /* a label outside the class set is an error, not a silent pass */
    lab[2 * h * w + 17] = 7;
    slice_source_memory(&bad, n, 1, h, w, 3, img, lab);
    loader_create(&L, &bad, &o, err, sizeof err);
    while ((rc = loader_next(L, &b, err, sizeof err)) == 0) loader_release(L, b);
    TEST_CHECK(rc == -1 && strstr(err, "label 7") && strstr(err, "slice 2"), "an out-of-range label is reported: \"%s\"", err);
    loader_destroy(L);
    slice_source_close(&bad);
    free(img), free(lab);

    /* bad options */
    opts(&o, 0);
    o.world = 8; /* global batch 4 cannot be shared by 8 ranks */
    TEST_CHECK(loader_create(&L, src, &o, err, sizeof err) == -1 && strstr(err, "8 ranks"), "bad options rejected: \"%s\"", err);
    opts(&o, 0);
    o.aug.p_gamma = 1.5;
    TEST_CHECK(loader_create(&L, src, &o, err, sizeof err) == -1 && strstr(err, "p_gamma"), "bad probability rejected: \"%s\"", err);

    /* the consumer holding every slot and asking for more gets an error, not a hang */
    opts(&o, 0);
    o.prefetch = 2;
    loader_create(&L, src, &o, err, sizeof err);
    const LoaderBatch *b1, *b2;
    loader_next(L, &b1, err, sizeof err);
    loader_next(L, &b2, err, sizeof err);
    rc = loader_next(L, &b, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "slots are held"), "asking with every slot held is an error: \"%s\"", err);
    loader_destroy(L);
}

typedef struct {
    atomic_int allocs, frees;
} Hook;
static void *hook_alloc(void *ctx, size_t n) {
    atomic_fetch_add(&((Hook *)ctx)->allocs, 1);
    return malloc(n);
}
static void hook_free(void *ctx, void *p) {
    atomic_fetch_add(&((Hook *)ctx)->frees, 1);
    free(p);
}

static void test_shutdown(const SliceSource *src) {
    Hook hook = {0};
    char err[512];
    const LoaderBatch *b;
    for (int mode = 0; mode < 4; mode++) {
        LoaderOptions o;
        opts(&o, 1);
        o.max_steps = 0; /* endless: only destroy stops it */
        o.workers = 4, o.prefetch = 2;
        o.alloc = hook_alloc, o.free = hook_free, o.alloc_ctx = &hook;
        Loader *L;
        loader_create(&L, src, &o, err, sizeof err);
        if (mode >= 1) loader_next(L, &b, err, sizeof err);              /* holding a batch */
        if (mode >= 2) loader_release(L, b), loader_next(L, &b, err, sizeof err);
        if (mode == 3) usleep(20000);                                     /* workers blocked on full slots */
        loader_destroy(L);                                                /* mid-epoch, batch still held */
    }
    TEST_CHECK(atomic_load(&hook.allocs) == 8 && atomic_load(&hook.frees) == 8,
               "destroy at any moment (fresh, holding a batch, workers blocked) frees every slot through the hook (%d/%d)",
               atomic_load(&hook.allocs), atomic_load(&hook.frees));

    LoaderOptions o;
    opts(&o, 0);
    o.workers = 2;
    Loader *L;
    loader_create(&L, src, &o, err, sizeof err);
    int n = 0;
    while (loader_next(L, &b, err, sizeof err) == 0) n++, loader_release(L, b);
    LoaderStats st;
    loader_stats(L, &st);
    TEST_CHECK(st.batches == STEPS && st.samples == (long long)STEPS * GB && st.wait_s >= 0 && st.work_s > 0 &&
                   st.read_s >= 0 && st.read_s <= st.work_s && st.samples_per_s > 0,
               "stats: %lld batches, %lld samples, %.1f samples/s, consumer waited %.3f s, workers busy %.3f s (reads %.4f s)",
               st.batches, st.samples, st.samples_per_s, st.wait_s, st.work_s, st.read_s);
    loader_destroy(L);
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL: test_loader hung (alarm)\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(1);
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(240);
    SliceSource src;
    if (slice_source_phantom(&src, NS, CH, SH, SW, CLASSES, 9) != 0) return 1;
    test_determinism(&src);
    test_epoch(&src);
    test_errors(&src);
    test_shutdown(&src);
    slice_source_close(&src);
    return test_summary("test_loader");
}
