/* grad_sync.c — gradient buckets reduced while the backward pass runs (see grad_sync.h). */
#include "grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    float **runs;   /* (n_runs) starts of contiguous stretches of the gradient buffer */
    size_t *counts; /* (n_runs) floats in each */
    int n_runs;
    int n_params; /* parameters that get a gradient (the ones this bucket waits for) */
    int pending;  /* this pass: of those, not final yet */
} Bucket;

struct GradSync {
    Comm *comm;
    Backend *inner; /* the backend model_backward runs on: reductions are ordered on its queue */
    const ParamTable *params;
    float *grads; /* (params->total) */
    size_t bucket_floats;

    int planned;      /* a plan exists (after the first pass) */
    int *seen;        /* (count) gradient contributions to each parameter in this pass */
    int *expected;    /* (count) contributions per pass, from the planning pass */
    int *last_report; /* (count) planning pass: when each parameter was last contributed to, -1 never */
    int n_reports;
    int *bucket_of; /* (count) */
    Bucket *buckets;
    int n_buckets;
    int next;       /* first bucket not yet started in this pass */
    int overlapped; /* buckets started during this pass's backward ops */
};

/* The parameter whose gradient starts at float offset `off` (the table is in offset order). */
static int param_at(const ParamTable *t, size_t off) {
    int lo = 0, hi = t->count - 1;
    while (lo < hi) { /* last item with offset <= off */
        int mid = (lo + hi + 1) / 2;
        if (t->items[mid].offset <= off) lo = mid;
        else hi = mid - 1;
    }
    CHECK(t->items[lo].offset == off,
          "gradient buckets: model_backward reported gradients from float %zu, inside %s (offset %zu) rather than "
          "at the start of a parameter; gradient tracking assumes whole-tensor gradients",
          off, t->items[lo].name, t->items[lo].offset);
    return lo;
}

static void start_bucket(GradSync *g, int k) {
    Bucket *b = &g->buckets[k];
    g->comm->allreduce_start(g->comm, b->runs, b->counts, b->n_runs, g->inner->queue);
}

/* Starts the buckets that are complete, strictly in plan order. */
static void start_ready(GradSync *g) {
    while (g->next < g->n_buckets && g->buckets[g->next].pending == 0) {
        start_bucket(g, g->next++);
        g->overlapped++;
    }
}

/* An op has been queued that finished its contribution to the gradient of parameter i. */
static void contributed(GradSync *g, int i) {
    g->seen[i]++;
    if (!g->planned) {
        g->last_report[i] = g->n_reports++;
        return;
    }
    CHECK(g->seen[i] <= g->expected[i],
          "gradient buckets: %s received %d gradient contributions in one backward pass, the planning pass saw %d",
          g->params->items[i].name, g->seen[i], g->expected[i]);
    if (g->seen[i] == g->expected[i]) {
        g->buckets[g->bucket_of[i]].pending--;
        start_ready(g);
    }
}

/* model_backward's GradsReady hook: the parameters in [offset, offset + count), in offset order
 * (a weight before its bias), then a chance for started reductions to advance. */
void grad_sync_ready(void *ctx, size_t offset, size_t count) {
    GradSync *g = ctx;
    const ParamTable *t = g->params;
    CHECK(count > 0 && offset + count <= t->total,
          "gradient buckets: model_backward reported floats [%zu, %zu) of a %zu-float gradient buffer", offset,
          offset + count, t->total);
    int i = param_at(t, offset);
    for (; i < t->count && t->items[i].offset < offset + count; i++) contributed(g, i);
    CHECK(t->items[i - 1].offset + t->items[i - 1].numel == offset + count,
          "gradient buckets: model_backward reported gradients up to float %zu, inside %s; gradient tracking "
          "assumes whole-tensor gradients",
          offset + count, t->items[i - 1].name);
    g->comm->progress(g->comm);
}

/* ---- the plan ---- */

typedef struct {
    int last_report, param;
} ReadyKey;

static int by_last_report(const void *a, const void *b) {
    const ReadyKey *x = a, *y = b; /* never-reported (-1) first: final from the start; then by index */
    if (x->last_report != y->last_report) return (x->last_report > y->last_report) - (x->last_report < y->last_report);
    return (x->param > y->param) - (x->param < y->param);
}

static int by_offset(const void *a, const void *b) {
    const ParamInfo *x = *(const ParamInfo *const *)a, *y = *(const ParamInfo *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void bucket_add_runs(GradSync *g, Bucket *b, const ParamInfo **members, int n) {
    qsort(members, (size_t)n, sizeof *members, by_offset);
    b->runs = xmalloc((size_t)n * sizeof *b->runs);
    b->counts = xmalloc((size_t)n * sizeof *b->counts);
    for (int j = 0; j < n; j++) {
        const ParamInfo *p = members[j];
        if (b->n_runs && b->runs[b->n_runs - 1] + b->counts[b->n_runs - 1] == g->grads + p->offset) {
            b->counts[b->n_runs - 1] += p->numel; /* touches the previous run: extend it */
        } else {
            b->runs[b->n_runs] = g->grads + p->offset;
            b->counts[b->n_runs++] = p->numel;
        }
    }
}

/* From the planning pass's record (rank 0's, so every rank has the same plan). */
static void make_plan(GradSync *g) {
    const ParamTable *t = g->params;
    int n = t->count;
    ReadyKey *keys = xmalloc((size_t)n * sizeof *keys);
    for (int i = 0; i < n; i++) keys[i] = (ReadyKey){g->last_report[i], i};
    qsort(keys, (size_t)n, sizeof *keys, by_last_report);
    int *order = xmalloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = keys[i].param;
    free(keys);
    memcpy(g->expected, g->seen, (size_t)n * sizeof *g->expected);
    g->comm->broadcast(g->comm, order, (size_t)n * sizeof *order, 0);
    g->comm->broadcast(g->comm, g->expected, (size_t)n * sizeof *g->expected, 0);

    g->buckets = xcalloc((size_t)n, sizeof *g->buckets); /* at most one per parameter */
    const ParamInfo **members = xmalloc((size_t)n * sizeof *members);
    int n_members = 0;
    size_t floats = 0;
    for (int j = 0; j < n; j++) {
        const ParamInfo *p = &t->items[order[j]];
        members[n_members++] = p;
        g->bucket_of[order[j]] = g->n_buckets;
        if (g->expected[order[j]] > 0) g->buckets[g->n_buckets].n_params++;
        floats += p->numel;
        if ((g->bucket_floats && floats >= g->bucket_floats) || j == n - 1) {
            bucket_add_runs(g, &g->buckets[g->n_buckets++], members, n_members);
            n_members = 0;
            floats = 0;
        }
    }
    free(members);
    free(order);
    g->planned = 1;
}

/* ---- the interface ---- */

GradSync *grad_sync_create(Comm *comm, Backend *be, const ParamTable *params, float *grads, size_t bucket_bytes) {
    CHECK(params->count > 0, "gradient buckets: empty parameter table");
    GradSync *g = xcalloc(1, sizeof *g);
    g->comm = comm;
    g->inner = be;
    g->params = params;
    g->grads = grads;
    g->bucket_floats = bucket_bytes / sizeof(float);
    if (bucket_bytes && !g->bucket_floats) g->bucket_floats = 1;
    size_t n = (size_t)params->count;
    g->seen = xcalloc(n, sizeof *g->seen);
    g->expected = xcalloc(n, sizeof *g->expected);
    g->last_report = xmalloc(n * sizeof *g->last_report);
    g->bucket_of = xcalloc(n, sizeof *g->bucket_of);
    return g;
}

void grad_sync_begin(GradSync *g) {
    memset(g->seen, 0, (size_t)g->params->count * sizeof *g->seen);
    g->next = 0;
    g->overlapped = 0;
    if (!g->planned) {
        for (int i = 0; i < g->params->count; i++) g->last_report[i] = -1;
        g->n_reports = 0;
        return;
    }
    for (int k = 0; k < g->n_buckets; k++) g->buckets[k].pending = g->buckets[k].n_params;
    start_ready(g); /* buckets of parameters that get no gradient at all */
}

void grad_sync_end(GradSync *g) {
    if (!g->planned) {
        make_plan(g); /* this pass only watched: everything is final now */
    } else {
        for (int k = g->next; k < g->n_buckets; k++)
            if (g->buckets[k].pending)
                for (int i = 0; i < g->params->count; i++)
                    CHECK(g->bucket_of[i] != k || g->seen[i] == g->expected[i],
                          "gradient buckets: %s received %d gradient contributions in this backward pass, the "
                          "planning pass saw %d",
                          g->params->items[i].name, g->seen[i], g->expected[i]);
    }
    for (; g->next < g->n_buckets; g->next++) start_bucket(g, g->next);
    g->comm->allreduce_wait(g->comm, g->inner->queue);
}

int grad_sync_bucket_count(const GradSync *g) { return g->n_buckets; }
int grad_sync_overlapped(const GradSync *g) { return g->overlapped; }

void grad_sync_destroy(GradSync *g) {
    if (!g) return;
    for (int k = 0; k < g->n_buckets; k++) {
        free(g->buckets[k].runs);
        free(g->buckets[k].counts);
    }
    free(g->buckets);
    free(g->seen);
    free(g->expected);
    free(g->last_report);
    free(g->bucket_of);
    free(g);
}
