/* test_grad_sync.c — gradient buckets (src/train/grad_sync.c) on the demo network, CPU backend.
 *
 * A recording transport stands in for MPI/NCCL: every bucket it is asked to reduce is copied at
 * the moment it is started. The properties that make overlapping safe and reproducible:
 *  - a bucket is started only once its gradients are final: its copy at start time equals the
 *    gradient after the whole backward pass, bit for bit;
 *  - the buckets cover every parameter exactly once;
 *  - after the planning pass, buckets are started while backward still runs (the overlap), in
 *    the same order every pass;
 *  - model_backward with the GradSync's hook computes exactly the gradients it computes without.
 * The real transports' non-blocking reductions are tested in test_comm (alone and on 2 ranks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "grad_sync.h"
#include "model.h"
#include "testutil.h"

#define MAX_STARTS 4096

typedef struct {
    Comm c; /* first: the transport's functions receive &rec->c */
    int ending; /* set while grad_sync_end runs: starts after this are not overlapped */
    int n_starts, n_overlapped, n_waits;
    float *runs[MAX_STARTS];
    size_t counts[MAX_STARTS];
    float *copies[MAX_STARTS];
    int bucket_of_run[MAX_STARTS];
    int n_buckets_started;
} Recorder;

static void rec_start(Comm *c, float *const *runs, const size_t *counts, int n_runs, void *producer) {
    Recorder *r = (Recorder *)c;
    (void)producer;
    for (int i = 0; i < n_runs && r->n_starts < MAX_STARTS; i++) {
        int k = r->n_starts++;
        r->runs[k] = runs[i];
        r->counts[k] = counts[i];
        r->copies[k] = malloc(counts[i] * sizeof(float));
        memcpy(r->copies[k], runs[i], counts[i] * sizeof(float));
        r->bucket_of_run[k] = r->n_buckets_started;
    }
    if (!r->ending) r->n_overlapped++;
    r->n_buckets_started++;
}
static void rec_progress(Comm *c) { (void)c; }
static void rec_wait(Comm *c, void *consumer) {
    (void)consumer;
    ((Recorder *)c)->n_waits++;
}
static void rec_broadcast(Comm *c, void *buf, size_t bytes, int root) { (void)c, (void)buf, (void)bytes, (void)root; }

static void rec_reset(Recorder *r) {
    for (int k = 0; k < r->n_starts; k++) free(r->copies[k]);
    r->n_starts = r->n_overlapped = r->n_waits = r->n_buckets_started = 0;
    r->ending = 0;
}

static int by_ptr(const void *a, const void *b) {
    const float *x = *(float *const *)a, *y = *(float *const *)b;
    return (x > y) - (x < y);
}

/* The runs tile [grads, grads + total) exactly; the start-time copies equal the final values. */
static void check_runs(Recorder *r, const float *grads, size_t total, const char *what) {
    size_t covered = 0, stale = 0;
    float **starts = malloc((size_t)r->n_starts * sizeof *starts);
    for (int k = 0; k < r->n_starts; k++) {
        starts[k] = r->runs[k];
        covered += r->counts[k];
        if (memcmp(r->copies[k], r->runs[k], r->counts[k] * sizeof(float)) != 0) stale++;
    }
    qsort(starts, (size_t)r->n_starts, sizeof *starts, by_ptr);
    size_t gaps = 0;
    const float *expect = grads;
    for (int k = 0; k < r->n_starts; k++) {
        size_t cnt = 0; /* the count of the run that starts at starts[k] */
        for (int j = 0; j < r->n_starts; j++)
            if (r->runs[j] == starts[k]) cnt = r->counts[j];
        if (starts[k] != expect) gaps++;
        expect = starts[k] + cnt;
    }
    if (expect != grads + total) gaps++;
    free(starts);
    TEST_CHECK(covered == total && gaps == 0, "%s: the runs tile the gradient buffer (%zu of %zu floats, %zu gaps)",
               what, covered, total, gaps);
    TEST_CHECK(stale == 0, "%s: every bucket was final when it was started (%zu of %d runs changed afterwards)", what,
               stale, r->n_starts);
}

typedef struct {
    Model m;
    Backend *be;
    ModelActs *acts;
    float *params, *image;
    int32_t *labels;
    int B, H, W;
} Net;

static void forward_loss(Net *n) {
    PassOptions opt = {.training = 1, .seed = 7, .step = 3, .sample_offset = 0};
    float *outs[3];
    model_forward(&n->m, n->be, n->acts, n->params, n->image, &opt, outs);
    model_loss(&n->m, n->be, n->acts, n->labels, NULL, NULL);
}

/* One backward pass through the GradSync; returns the number of buckets it started overlapped. */
static void bucketed_pass(Net *n, GradSync *g, Recorder *r, float *grads) {
    rec_reset(r);
    memset(grads, 0, n->m.params.total * sizeof(float));
    forward_loss(n);
    grad_sync_begin(g);
    model_backward(&n->m, n->be, n->acts, n->params, grads, &(GradsReady){grad_sync_ready, g});
    r->ending = 1;
    grad_sync_end(g);
}

int main(void) {
    Config cfg;
    char err[512];
    if (config_load(&cfg, UNET_SOURCE_DIR "/configs/demo.yaml", err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    Net n = {.B = 2, .H = 64, .W = 64};
    model_build(&n.m, &cfg.net);
    n.be = backend_cpu_create(0);
    size_t total = n.m.params.total, pix = (size_t)n.B * n.H * n.W;
    n.params = malloc(total * sizeof(float));
    model_init_params(&n.m, n.params, 11);
    /* layer scale starts at 1e-6: make it O(1) so every gradient is far from zero */
    TestRng rng = {42};
    for (int i = 0; i < n.m.params.count; i++)
        if (strstr(n.m.params.items[i].name, "gamma"))
            test_fill(n.params + n.m.params.items[i].offset, n.m.params.items[i].numel, &rng, 0.5f, 1.0f);
    n.image = malloc(pix * (size_t)cfg.net.in_channels * sizeof(float));
    test_fill(n.image, pix * (size_t)cfg.net.in_channels, &rng, -1, 1);
    n.labels = malloc(pix * sizeof(int32_t));
    for (size_t i = 0; i < pix; i++) n.labels[i] = (int32_t)((i / 7 + i % 13) % (size_t)cfg.net.classes);
    n.acts = model_acts_create(&n.m, n.be, n.B, n.H, n.W, 0);

    /* the reference: the plain backend, no buckets */
    float *ref = calloc(total, sizeof(float)), *grads = malloc(total * sizeof(float));
    forward_loss(&n);
    model_backward(&n.m, n.be, n.acts, n.params, ref, NULL);

    Recorder *r = calloc(1, sizeof *r);
    r->c = (Comm){.transport = "recorder", .rank = 0, .size = 1, .allreduce_start = rec_start,
                  .progress = rec_progress, .allreduce_wait = rec_wait, .broadcast = rec_broadcast};

    /* small buckets: many of them, so the ordering is exercised */
    size_t bucket_bytes = 64 << 10;
    GradSync *g = grad_sync_create(&r->c, n.be, &n.m.params, grads, bucket_bytes);
    bucketed_pass(&n, g, r, grads);
    int nb = grad_sync_bucket_count(g);
    TEST_CHECK(r->n_overlapped == 0 && grad_sync_overlapped(g) == 0,
               "planning pass: nothing starts before backward ends (%d started early)", r->n_overlapped);
    TEST_CHECK(nb > 4 && r->n_buckets_started == nb, "planning pass: %d buckets of <= 64 KiB planned and started (%d)",
               nb, r->n_buckets_started);
    TEST_CHECK(r->n_waits == 1, "planning pass: one wait (%d)", r->n_waits);
    check_runs(r, grads, total, "planning pass");
    TEST_CHECK(memcmp(grads, ref, total * sizeof(float)) == 0, "planning pass: gradients identical to the plain backend");

    float **first_order = malloc((size_t)r->n_starts * sizeof *first_order);
    int first_n = 0;
    for (int pass = 2; pass <= 3; pass++) {
        bucketed_pass(&n, g, r, grads);
        char what[64];
        snprintf(what, sizeof what, "pass %d", pass);
        check_runs(r, grads, total, what);
        TEST_CHECK(memcmp(grads, ref, total * sizeof(float)) == 0, "%s: gradients identical to the plain backend", what);
        TEST_CHECK(r->n_buckets_started == nb, "%s: every bucket started once (%d of %d)", what, r->n_buckets_started, nb);
        /* The bucket holding the stem (the last layer backward reaches) can only go at the end;
         * all the others are final earlier. */
        TEST_CHECK(r->n_overlapped >= nb - 2 && grad_sync_overlapped(g) == r->n_overlapped,
                   "%s: %d of %d buckets started while backward was still running", what, r->n_overlapped, nb);
        if (pass == 2) {
            for (int k = 0; k < r->n_starts; k++) first_order[k] = r->runs[k];
            first_n = r->n_starts;
        } else {
            int same = first_n == r->n_starts;
            for (int k = 0; same && k < first_n; k++) same = first_order[k] == r->runs[k];
            TEST_CHECK(same, "pass 3 starts the same runs in the same order as pass 2");
        }
    }
    size_t largest = 0;
    for (int i = 0; i < n.m.params.count; i++)
        if (n.m.params.items[i].numel > largest) largest = n.m.params.items[i].numel;
    size_t worst = 0, acc = 0;
    for (int k = 0; k < r->n_starts; k++) { /* floats per bucket */
        acc += r->counts[k];
        if (k == r->n_starts - 1 || r->bucket_of_run[k + 1] != r->bucket_of_run[k]) {
            if (acc > worst) worst = acc;
            acc = 0;
        }
    }
    TEST_CHECK(worst * sizeof(float) < bucket_bytes + largest * sizeof(float),
               "no bucket exceeds the cap by more than one parameter (%zu floats; cap %zu + %zu)", worst,
               bucket_bytes / sizeof(float), largest);
    grad_sync_destroy(g);

    /* bucket size 0: one bucket, started after backward (the reference behaviour) */
    g = grad_sync_create(&r->c, n.be, &n.m.params, grads, 0);
    bucketed_pass(&n, g, r, grads);
    bucketed_pass(&n, g, r, grads);
    TEST_CHECK(grad_sync_bucket_count(g) == 1 && r->n_starts == 1 && r->counts[0] == total,
               "bucket size 0: one run of the whole buffer (%d buckets, %d runs)", grad_sync_bucket_count(g),
               r->n_starts);
    check_runs(r, grads, total, "bucket size 0"); /* started by the very last gradient op, or at the end */
    TEST_CHECK(memcmp(grads, ref, total * sizeof(float)) == 0, "bucket size 0: gradients identical");
    grad_sync_destroy(g);

    rec_reset(r);
    free(r);
    free(first_order);
    free(ref);
    free(grads);
    model_acts_free(n.acts);
    free(n.params);
    free(n.image);
    free(n.labels);
    n.be->destroy(n.be);
    model_free(&n.m);
    return test_summary("grad_sync");
}
