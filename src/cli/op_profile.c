/* op_profile.c — where a training step's time goes, op by op (see op_profile.h). */
#include "op_profile.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"
#include "op_cost.h"
#include "work_count.h"

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

/* opcost_<op> (op_cost.c), weak: an op without a cost function profiles without a roofline. */
#define X(name, params, args) void opcost_##name params __attribute__((weak));
PROFILED_OPS(X)
#undef X

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
    /* work items the op queued (kernel launches, library calls, queued copies and memsets;
     * src/base/work_count.h): where the step's launches come from, on the emulator as on a GPU */
    unsigned long long launches[N_OPS];
    /* the roofline estimate, summed over calls (op_cost.h): FLOPs, minimum bytes, and the time
     * the faster of the op's compute and memory limits allows (max of the two per call) */
    int costed[N_OPS];
    double flops[N_OPS], bytes[N_OPS], roof_s[N_OPS], comp_s[N_OPS], mem_s[N_OPS];
    double tensor_flops, fp32_flops, hbm_bps; /* per second */
    int dry;         /* op_profile_create_plan: ops are costed, never run */
    Backend cost_be; /* the backend the cost functions see (act_bytes of the planned precision) */
};

static OpProfile *owner(Backend *be) { return ((ProfiledBackend *)be)->p; }

/* Waiting for the queue on both sides charges each op its own device time (asynchronous
 * backends would otherwise charge it to whichever later op waits). */
static double op_begin(OpProfile *p, unsigned long long *launches0) {
    p->inner->synchronize(p->inner);
    *launches0 = unet_work_count.launches;
    return monotonic_seconds();
}

static void op_end(OpProfile *p, int op, double t0, unsigned long long launches0) {
    p->launches[op] += unet_work_count.launches - launches0; /* before the wait: a sync queues nothing */
    p->inner->synchronize(p->inner);
    p->seconds[op] += monotonic_seconds() - t0;
    p->calls[op]++;
}

/* One call's estimate into the op's sums: bf16 tensor rate for tensor ops when Acts are bf16,
 * the fp32 rate otherwise (fp32 mode computes without tensor cores). */
static void op_cost_add(OpProfile *p, int op) {
    const OpCost *c = &opcost_result;
    double peak = c->tensor && p->cost_be.act_bytes == 2 ? p->tensor_flops : p->fp32_flops;
    double tc = c->flops / peak, tm = c->bytes / p->hbm_bps;
    p->costed[op] = 1;
    p->flops[op] += c->flops;
    p->bytes[op] += c->bytes;
    p->roof_s[op] += tc > tm ? tc : tm;
    p->comp_s[op] += tc;
    p->mem_s[op] += tm;
}

/* timed_<op>: the same call on the wrapped backend, between the two waits, and its estimate. */
#define TIMED(op, params, args)                                                                    \
    static void timed_##op params {                                                                \
        OpProfile *p = owner(be);                                                                  \
        if (p->dry) {                                                                              \
            p->calls[OP_##op]++;                                                                   \
        } else {                                                                                   \
            unsigned long long l0;                                                                 \
            double t0 = op_begin(p, &l0);                                                          \
            be = p->inner; /* `args` passes every parameter on, be among them */                  \
            be->op args;                                                                           \
            op_end(p, OP_##op, t0, l0);                                                            \
        }                                                                                          \
        be = &p->cost_be;                                                                          \
        if (opcost_##op) {                                                                         \
            opcost_##op args;                                                                      \
            op_cost_add(p, OP_##op);                                                               \
        }                                                                                          \
    }
PROFILED_OPS(TIMED)
#undef TIMED

static double env_rate(const char *name, double dflt) {
    const char *e = getenv(name);
    double v = e && *e ? strtod(e, NULL) : 0;
    return v > 0 ? v : dflt;
}

OpProfile *op_profile_create(Backend *inner) {
    OpProfile *p = xcalloc(1, sizeof *p);
    p->inner = inner;
    p->tensor_flops = env_rate("UNET_ROOF_TENSOR_TFLOPS", ROOF_TENSOR_TFLOPS) * 1e12;
    p->fp32_flops = env_rate("UNET_ROOF_FP32_TFLOPS", ROOF_FP32_TFLOPS) * 1e12;
    p->hbm_bps = env_rate("UNET_ROOF_HBM_TBPS", ROOF_HBM_TBPS) * 1e12;
    p->cost_be = *inner;
    p->profiled.be = *inner;
    p->profiled.p = p;
    Backend *b = &p->profiled.be;
#define X(name, params, args) b->name = timed_##name;
    PROFILED_OPS(X)
#undef X
    b->destroy = NULL; /* the real backend belongs to its creator */
    return p;
}

OpProfile *op_profile_create_plan(Backend *inner, int act_bytes) {
    OpProfile *p = op_profile_create(inner);
    p->dry = 1;
    p->cost_be.act_bytes = act_bytes;
    return p;
}

Backend *op_profile_backend(OpProfile *p) { return &p->profiled.be; }

void op_profile_reset(OpProfile *p) {
    memset(p->calls, 0, sizeof p->calls);
    memset(p->seconds, 0, sizeof p->seconds);
    memset(p->launches, 0, sizeof p->launches);
    memset(p->costed, 0, sizeof p->costed);
    memset(p->flops, 0, sizeof p->flops);
    memset(p->bytes, 0, sizeof p->bytes);
    memset(p->roof_s, 0, sizeof p->roof_s);
    memset(p->comp_s, 0, sizeof p->comp_s);
    memset(p->mem_s, 0, sizeof p->mem_s);
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
    const double *key = p->dry ? p->roof_s : p->seconds; /* a plan has no times: its roofline orders it */
    for (int a = 1; a < n; a++) /* insertion sort, longest first: a few dozen entries */
        for (int b = a; b > 0 && key[order[b]] > key[order[b - 1]]; b--) {
            int tmp = order[b];
            order[b] = order[b - 1];
            order[b - 1] = tmp;
        }
    double total = op_profile_total(p), roof_total = 0, gflop_total = 0, mb_total = 0;
    fprintf(out, "roofline: %.0f TFLOP/s tensor (bf16 Acts), %.0f TFLOP/s fp32, %.2f TB/s "
                 "(UNET_ROOF_TENSOR_TFLOPS, UNET_ROOF_FP32_TFLOPS, UNET_ROOF_HBM_TBPS; op_cost.h)\n",
            p->tensor_flops / 1e12, p->fp32_flops / 1e12, p->hbm_bps / 1e12);
    if (p->dry) { /* a plan: no times, only the estimate */
        fprintf(out, "%-28s %7s %10s %10s %6s %11s %11s %11s\n", "op", "calls", "GFLOP", "min MB", "bound", "flop us",
                "mem us", "roof us");
        for (int k = 0; k < n; k++) {
            int i = order[k];
            if (!p->costed[i]) {
                fprintf(out, "%-28s %7ld %10s %10s %6s %11s %11s %11s\n", OP_NAMES[i], p->calls[i], "-", "-", "-", "-",
                        "-", "-");
                continue;
            }
            fprintf(out, "%-28s %7ld %10.3f %10.1f %6s %11.1f %11.1f %11.1f\n", OP_NAMES[i], p->calls[i],
                    p->flops[i] / 1e9, p->bytes[i] / 1e6, p->mem_s[i] >= p->comp_s[i] ? "mem" : "flop",
                    p->comp_s[i] * 1e6, p->mem_s[i] * 1e6, p->roof_s[i] * 1e6);
            roof_total += p->roof_s[i];
            gflop_total += p->flops[i] / 1e9;
            mb_total += p->bytes[i] / 1e6;
        }
        long calls = 0;
        for (int k = 0; k < n; k++) calls += p->calls[order[k]];
        fprintf(out, "%-28s %7ld %10.3f %10.1f %6s %11s %11s %11.1f\n", "sum", calls, gflop_total, mb_total, "", "", "",
                roof_total * 1e6);
        return;
    }
    fprintf(out, "%-28s %7s %8s %11s %7s %11s %10s %10s %6s %11s %8s\n", "op", "calls", "launches", "total ms", "share",
            "mean us", "GFLOP", "min MB", "bound", "roof us", "of roof");
    unsigned long long launch_total = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        launch_total += p->launches[i];
        fprintf(out, "%-28s %7ld %8llu %11.3f %6.1f%% %11.1f", OP_NAMES[i], p->calls[i], p->launches[i], p->seconds[i] * 1e3,
                total > 0 ? 100 * p->seconds[i] / total : 0.0, p->seconds[i] / p->calls[i] * 1e6);
        if (p->costed[i]) {
            /* bound: which limit the summed estimate hits first; of roof: roofline time / measured */
            fprintf(out, " %10.3f %10.1f %6s %11.1f %7.1f%%\n", p->flops[i] / 1e9, p->bytes[i] / 1e6,
                    p->mem_s[i] >= p->comp_s[i] ? "mem" : "flop", p->roof_s[i] * 1e6,
                    p->seconds[i] > 0 ? 100 * p->roof_s[i] / p->seconds[i] : 0.0);
            roof_total += p->roof_s[i];
            gflop_total += p->flops[i] / 1e9;
            mb_total += p->bytes[i] / 1e6;
        } else {
            fprintf(out, " %10s %10s %6s %11s %8s\n", "-", "-", "-", "-", "-");
        }
    }
    fprintf(out, "%-28s %7s %8llu %11.3f %6.1f%% %11s %10.3f %10.1f %6s %11.1f %7.1f%%\n", "sum", "", launch_total,
            total * 1e3, 100.0, "",
            gflop_total, mb_total, "", roof_total * 1e6, total > 0 ? 100 * roof_total / total : 0.0);
}

void op_profile_destroy(OpProfile *p) { free(p); }
