// tune.cu — the choice of implementation per hot op and shape (contract: tune.h).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_internal.h"
#include "tune.h"

// Every hot op's table of implementations, defined by the op's .cu file. A forced choice is
// checked against these when it is set, so a misspelt train.kernels fails at start, not at the
// first step.
extern "C" const TuneOp TUNE_WINDOW_ATTENTION; // window_attention.cu
extern "C" const TuneOp TUNE_DWCONV7, TUNE_LAYERNORM, TUNE_CONV3X3; // dwconv7.cu, layernorm.cu, conv_cudnn.cu
extern "C" const TuneOp TUNE_DWCONV7_LAYERNORM;                     // dwconv7.cu
static const TuneOp *const TUNE_OPS[] = {
    &TUNE_WINDOW_ATTENTION,
    &TUNE_DWCONV7,
    &TUNE_LAYERNORM,
    &TUNE_CONV3X3,
    &TUNE_DWCONV7_LAYERNORM,
    NULL, // end
};

typedef struct {
    char op[32];
    char shape[96];
    char name[32]; // the implementation's name (what the cache file stores)
    int impl;      // its index in the op's table; -1 while only read from the cache file
} TuneEntry;

typedef struct {
    char force[512];       // "op=impl,op=impl" ("" or "auto": nothing forced)
    char cache_path[1024]; // "" = choices live in memory only
    int read_only;         // the cache file is read, never written (ranks other than 0)
    // Several data-parallel ranks choose alike (backend_cuda_tuning_agree): rank 0's timings decide.
    int rank, ranks;
    void (*agree)(void *ctx, int *impl);
    void *agree_ctx;
    TuneEntry *e;
    int n, cap;
} TuneState;

static TuneState *tune_state(Backend *be) {
    CudaState *st = cuda_state(be);
    if (!st->tune) st->tune = xcalloc(1, sizeof(TuneState));
    return (TuneState *)st->tune;
}

static const TuneOp *tune_op_named(const char *op, size_t len) {
    for (int i = 0; TUNE_OPS[i]; i++)
        if (strlen(TUNE_OPS[i]->op) == len && !strncmp(TUNE_OPS[i]->op, op, len)) return TUNE_OPS[i];
    return NULL;
}

static int tune_impl_named(const TuneOp *op, const char *name, size_t len) {
    for (int i = 0; i < op->n; i++)
        if (strlen(op->names[i]) == len && !strncmp(op->names[i], name, len)) return i;
    return -1;
}

// The forced implementation of `op`, or -1. Names were checked by backend_cuda_set_tuning.
static int tune_forced(const TuneState *ts, const TuneOp *op) {
    size_t len = strlen(op->op);
    for (const char *p = ts->force; *p;) {
        const char *end = strchr(p, ',');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        const char *eq = (const char *)memchr(p, '=', item);
        if (eq && (size_t)(eq - p) == len && !strncmp(p, op->op, len)) {
            int i = tune_impl_named(op, eq + 1, item - (size_t)(eq + 1 - p));
            if (i < 0) die("train.kernels: '%.*s' is not an implementation of %s", (int)item, p, op->op);
            return i;
        }
        p = end ? end + 1 : p + item;
    }
    return -1;
}

static TuneEntry *tune_find(TuneState *ts, const char *op, const char *shape) {
    for (int i = 0; i < ts->n; i++)
        if (!strcmp(ts->e[i].op, op) && !strcmp(ts->e[i].shape, shape)) return &ts->e[i];
    return NULL;
}

static TuneEntry *tune_add(TuneState *ts, const char *op, const char *shape, const char *name, int impl) {
    if (ts->n == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 16;
        ts->e = (TuneEntry *)xrealloc(ts->e, (size_t)ts->cap * sizeof(TuneEntry));
    }
    TuneEntry *e = &ts->e[ts->n++];
    snprintf(e->op, sizeof e->op, "%s", op);
    snprintf(e->shape, sizeof e->shape, "%s", shape);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->impl = impl;
    return e;
}

// The cache file: one "op<TAB>shape<TAB>impl" line per choice, rewritten whole (temporary file +
// rename) so that a run killed while writing it keeps the previous, complete file.
static void tune_save(const TuneState *ts) {
    if (!ts->cache_path[0] || ts->read_only) return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", ts->cache_path);
    FILE *fp = fopen(tmp, "w");
    if (!fp) {
        fprintf(stderr, "unet2022: warning: %s: cannot write the kernel choices: %s\n", tmp, strerror(errno));
        return;
    }
    for (int i = 0; i < ts->n; i++) fprintf(fp, "%s\t%s\t%s\n", ts->e[i].op, ts->e[i].shape, ts->e[i].name);
    if (fclose(fp) != 0 || rename(tmp, ts->cache_path) != 0)
        fprintf(stderr, "unet2022: warning: %s: cannot write the kernel choices: %s\n", ts->cache_path,
                strerror(errno));
}

static int tune_load(TuneState *ts, const char *path, char *err, size_t err_len) {
    FILE *fp = fopen(path, "r");
    if (!fp) return errno == ENOENT ? 0 : error_at(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    char line[256];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, fp)) {
        lineno++;
        char *op = strtok(line, "\t\n"), *shape = strtok(NULL, "\t\n"), *name = strtok(NULL, "\t\n");
        if (!op || !shape || !name || strlen(op) >= 32 || strlen(shape) >= 96 || strlen(name) >= 32) {
            rc = error_at(err, err_len, "%s:%d: expected 'op<TAB>shape<TAB>implementation'", path, lineno);
            break;
        }
        const TuneOp *t = tune_op_named(op, strlen(op));
        if (!t || tune_impl_named(t, name, strlen(name)) < 0) {
            rc = error_at(err, err_len, "%s:%d: '%s' is not an implementation of '%s' in this build", path, lineno,
                          name, op);
            break;
        }
        if (!tune_find(ts, op, shape)) tune_add(ts, op, shape, name, tune_impl_named(t, name, strlen(name)));
    }
    fclose(fp);
    return rc;
}

extern "C" int backend_cuda_set_tuning(Backend *be, const char *cache_path, const char *force, char *err,
                                       size_t err_len) {
    TuneState *ts = tune_state(be);
    const char *f = force && strcmp(force, "auto") != 0 ? force : "";
    if (strlen(f) >= sizeof ts->force) return error_at(err, err_len, "train.kernels: longer than %zu characters", sizeof ts->force - 1);
    for (const char *p = f; *p;) { // every item names a known op and one of its implementations
        const char *end = strchr(p, ',');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        const char *eq = (const char *)memchr(p, '=', item);
        const TuneOp *t = eq ? tune_op_named(p, (size_t)(eq - p)) : NULL;
        if (!t) return error_at(err, err_len, "train.kernels: '%.*s': expected OP=IMPLEMENTATION with OP a tuned op", (int)item, p);
        if (tune_impl_named(t, eq + 1, item - (size_t)(eq + 1 - p)) < 0)
            return error_at(err, err_len, "train.kernels: '%.*s' is not an implementation of %s", (int)item, p, t->op);
        p = end ? end + 1 : p + item;
    }
    snprintf(ts->force, sizeof ts->force, "%s", f);
    snprintf(ts->cache_path, sizeof ts->cache_path, "%s", cache_path ? cache_path : "");
    return ts->cache_path[0] ? tune_load(ts, ts->cache_path, err, err_len) : 0;
}

#ifndef UNET_CUDA_EMULATOR
// Milliseconds of the best of `reps` runs of implementation i after one warm-up run.
static float tune_time(Backend *be, TuneRun run, void *ctx, int impl, int reps) {
    cudaStream_t s = cuda_state(be)->stream;
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    run(ctx, impl);
    float best = 1e30f;
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(a, s));
        run(ctx, impl);
        CUDA_CHECK(cudaEventRecord(b, s));
        CUDA_SYNC(cudaEventSynchronize(b));
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        if (ms < best) best = ms;
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return best;
}
#endif

extern "C" void backend_cuda_tuning_read_only(Backend *be) { tune_state(be)->read_only = 1; }

extern "C" void backend_cuda_tuning_agree(Backend *be, int rank, int ranks, void (*agree)(void *ctx, int *impl),
                                          void *ctx) {
    TuneState *ts = tune_state(be);
    CHECK(ranks <= 1 || agree, "backend_cuda_tuning_agree: %d ranks need an agreement function", ranks);
    ts->rank = rank;
    ts->ranks = ranks;
    ts->agree = agree;
    ts->agree_ctx = ctx;
}

#ifdef UNET_CUDA_EMULATOR
// The emulator's timings mean nothing, so it never times: implementation 0 runs. For the test of
// the ranks' agreement (tests/cuda_emu/test_tune_agree.py) UNET_EMU_TUNE_FAKE=SEED stands in
// made-up times that differ from rank to rank: a hash of (seed, rank, op, shape, impl), 1-2 ms.
static int tune_fake_ms(const TuneState *ts, const TuneOp *op, const char *shape, int impl, float *ms) {
    const char *seed = getenv("UNET_EMU_TUNE_FAKE");
    if (!seed || !*seed) return 0;
    unsigned long long h = 1469598103934665603ull; // FNV-1a
    char key[256];
    snprintf(key, sizeof key, "%s|%d|%s|%s|%d", seed, ts->rank, op->op, shape, impl);
    for (const char *c = key; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    *ms = 1.0f + (float)(h % 1000) / 1000.0f;
    return 1;
}
#endif

extern "C" int cuda_tune_pick(Backend *be, const TuneOp *op, const char *shape, TuneRun run, void *ctx) {
    return cuda_tune_pick_avail(be, op, shape, ~0u, "", run, ctx);
}

extern "C" int cuda_tune_pick_avail(Backend *be, const TuneOp *op, const char *shape, unsigned avail,
                                    const char *why, TuneRun run, void *ctx) {
    TuneState *ts = tune_state(be);
    int forced = tune_forced(ts, op);
    // Two kinds of "cannot run": the op's table says an implementation does not exist in this
    // precision mode (forcing it is a mistake in train.kernels: stop), the caller's mask that it
    // cannot take this shape (the reference runs that shape instead, said once below).
    if (forced >= 0 && op->available && !op->available(be, forced))
        die("train.kernels: %s=%s is not available in precision mode %s", op->op, op->names[forced],
            cuda_precision_name(cuda_state(be)->precision));
    if (forced >= 0 && (avail >> forced & 1u)) return forced;
    for (int i = 0; i < op->n && i < 32; i++)
        if (op->available && !op->available(be, i)) avail &= ~(1u << i);
    TuneEntry *e = tune_find(ts, op->op, shape);
    if (forced >= 0 && !e) { // forced, but not for this shape: the reference runs it, said once
        printf("kernels: %s [%s] -> %s (train.kernels' %s cannot run it: %s)\n", op->op, shape, op->names[0],
               op->names[forced], why);
        e = tune_add(ts, op->op, shape, op->names[0], 0);
        tune_save(ts);
    }
    if (e && e->impl >= 0 && !(avail >> e->impl & 1u))
        die("%s: the kernel cache chose %s=%s for [%s], which cannot run here (%s)", ts->cache_path, op->op,
            e->name, shape, why);
    if (e) return e->impl;
    int best = 0;
    char report[512] = "";
    if (ts->ranks > 1 && !be->lockstep) {
        // Outside a training step ranks may run different work: a collective here could wait for
        // a rank that never comes. The reference runs the shape, the same on every rank.
        if (op->n > 1)
            snprintf(report, sizeof report, "not timed: first met outside a training step, in a run of %d ranks "
                     "that must choose alike", ts->ranks);
    } else {
        float best_ms = 1e30f;
        size_t len = 0;
        for (int i = 0; i < op->n && op->n > 1; i++) {
            if (!(avail >> i & 1u)) continue;
            float ms;
#ifndef UNET_CUDA_EMULATOR
            if (!run) break;
            ms = tune_time(be, run, ctx, i, 3);
#else
            (void)run, (void)ctx;
            if (!tune_fake_ms(ts, op, shape, i, &ms)) break;
#endif
            len += (size_t)snprintf(report + len, len < sizeof report ? sizeof report - len : 0, "%s%s %.3f ms",
                                    len ? ", " : "", op->names[i], ms);
            if (ms < best_ms) best_ms = ms, best = i;
        }
        if (ts->ranks > 1 && op->n > 1) { // every rank reaches this for the same (op, shape) in a step
            if (report[0]) {
                char mine[512];
                snprintf(mine, sizeof mine, "%s", report);
                snprintf(report, sizeof report, "timed on rank %d: %s; rank 0's timings decide", ts->rank, mine);
            }
            ts->agree(ts->agree_ctx, &best);
            CHECK(best >= 0 && best < op->n && (avail >> best & 1u),
                  "kernels: %s [%s]: rank 0 chose implementation %d, which this rank cannot run", op->op, shape, best);
        }
    }
    tune_add(ts, op->op, shape, op->names[best], best);
    if (report[0]) printf("kernels: %s [%s] -> %s (%s)\n", op->op, shape, op->names[best], report);
    tune_save(ts);
    return best;
}

extern "C" const char *backend_cuda_kernel_impl(const char *op, int i) {
    const TuneOp *t = tune_op_named(op, strlen(op));
    return t && i >= 0 && i < t->n ? t->names[i] : NULL;
}

extern "C" int backend_cuda_kernel_available(Backend *be, const char *op, int i) {
    const TuneOp *t = tune_op_named(op, strlen(op));
    return t && i >= 0 && i < t->n && (!t->available || t->available(be, i));
}

extern "C" const char *cuda_tune_chosen(Backend *be, const char *op, const char *shape) {
    TuneEntry *e = tune_find(tune_state(be), op, shape);
    return e ? e->name : NULL;
}

extern "C" void cuda_tune_print(Backend *be, void *file) {
    TuneState *ts = tune_state(be);
    for (int i = 0; i < ts->n; i++)
        fprintf((FILE *)file, "%s [%s] -> %s\n", ts->e[i].op, ts->e[i].shape, ts->e[i].name);
}

extern "C" void cuda_tune_free(Backend *be) {
    CudaState *st = cuda_state(be);
    TuneState *ts = (TuneState *)st->tune;
    if (ts) free(ts->e);
    free(ts);
    st->tune = NULL;
}
