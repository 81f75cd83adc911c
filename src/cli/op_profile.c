/* op_profile.c — where a training step's time goes, op by op (see op_profile.h). */
#include "op_profile.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"

/* What is timed: every op of backend_ops.h, and the memory functions that move data (written by
 * hand in backend.h, so listed here in the same form); alloc, release, synchronize and destroy
 * pass through untimed. */
#define PROFILED_TRANSFERS(X)                                                                                 \
    X(upload, (Backend *be, void *dst, const void *src_host, size_t bytes), (be, dst, src_host, bytes))       \
    X(upload_async, (Backend *be, void *dst, const void *src_host, size_t bytes), (be, dst, src_host, bytes)) \
    X(download, (Backend *be, void *dst_host, const void *src, size_t bytes), (be, dst_host, src, bytes))     \
    X(zero, (Backend *be, void *dst, size_t bytes), (be, dst, bytes))                                         \
    X(copy, (Backend *be, void *dst, const void *src, size_t bytes), (be, dst, src, bytes))
#define PROFILED_OPS(X) PROFILED_TRANSFERS(X) UNET_BACKEND_OPS(X)

enum {
#define X(name, params, args) OP_##name,
    PROFILED_OPS(X)
#undef X
    N_OPS
};

static const char *const OP_NAMES[N_OPS] = {
#define X(name, params, args) #name,
    PROFILED_OPS(X)
#undef X
};

/* The copied op table comes first, so an op's Backend * is also the ProfiledBackend *. */
typedef struct {
    Backend be;
    OpProfile *p;
} ProfiledBackend;

struct OpProfile {
    Backend *inner;
    ProfiledBackend profiled;
    long calls[N_OPS];
    double seconds[N_OPS];
};

static OpProfile *owner(Backend *be) { return ((ProfiledBackend *)be)->p; }

/* Waiting for the queue on both sides charges each op its own device time (asynchronous
 * backends would otherwise charge it to whichever later op waits). */
static double op_begin(OpProfile *p) {
    p->inner->synchronize(p->inner);
    return monotonic_seconds();
}

static void op_end(OpProfile *p, int op, double t0) {
    p->inner->synchronize(p->inner);
    p->seconds[op] += monotonic_seconds() - t0;
    p->calls[op]++;
}

/* timed_<op>: the same call on the wrapped backend, between the two waits. */
#define TIMED(op, params, args)                                                                    \
    static void timed_##op params {                                                                \
        OpProfile *p = owner(be);                                                                  \
        double t0 = op_begin(p);                                                                   \
        be = p->inner; /* `args` passes every parameter on, be among them */                      \
        be->op args;                                                                               \
        op_end(p, OP_##op, t0);                                                                    \
    }
PROFILED_OPS(TIMED)
#undef TIMED

OpProfile *op_profile_create(Backend *inner) {
    OpProfile *p = xcalloc(1, sizeof *p);
    p->inner = inner;
    p->profiled.be = *inner;
    p->profiled.p = p;
    Backend *b = &p->profiled.be;
#define X(name, params, args) b->name = timed_##name;
    PROFILED_OPS(X)
#undef X
    b->destroy = NULL; /* the real backend belongs to its creator */
    return p;
}

Backend *op_profile_backend(OpProfile *p) { return &p->profiled.be; }

void op_profile_reset(OpProfile *p) {
    memset(p->calls, 0, sizeof p->calls);
    memset(p->seconds, 0, sizeof p->seconds);
}

double op_profile_total(const OpProfile *p) {
    double s = 0;
    for (int i = 0; i < N_OPS; i++) s += p->seconds[i];
    return s;
}

void op_profile_print(const OpProfile *p, FILE *out) {
    int order[N_OPS], n = 0;
    for (int i = 0; i < N_OPS; i++)
        if (p->calls[i]) order[n++] = i;
    for (int a = 1; a < n; a++) /* insertion sort, longest first: a few dozen entries */
        for (int b = a; b > 0 && p->seconds[order[b]] > p->seconds[order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    double total = op_profile_total(p);
    fprintf(out, "%-28s %7s %11s %7s %11s\n", "op", "calls", "total ms", "share", "mean us");
    for (int k = 0; k < n; k++) {
        int i = order[k];
        fprintf(out, "%-28s %7ld %11.3f %6.1f%% %11.1f\n", OP_NAMES[i], p->calls[i], p->seconds[i] * 1e3,
                total > 0 ? 100 * p->seconds[i] / total : 0.0, p->seconds[i] / p->calls[i] * 1e6);
    }
    fprintf(out, "%-28s %7s %11.3f %6.1f%%\n", "sum", "", total * 1e3, 100.0);
}

void op_profile_destroy(OpProfile *p) { free(p); }
