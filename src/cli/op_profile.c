/* op_profile.c — where a training step's time goes, op by op (see op_profile.h). */
#include "op_profile.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clock.h"

/* Every op of backend.h that does work; alloc/release/synchronize/destroy pass through. */
#define PROFILED_OPS(X)                                                                              \
    X(upload) X(upload_async) X(download) X(zero) X(copy) X(act_from_f32) X(act_to_f32)              \
    X(conv3x3_forward) X(conv3x3_backward) X(dwconv7_forward) X(dwconv7_backward) X(convT_forward)   \
    X(convT_backward) X(linear_forward) X(linear_backward) X(layernorm_forward)                      \
    X(layernorm_backward) X(gelu_forward) X(gelu_backward) X(pad_roll_forward) X(pad_roll_backward)  \
    X(roll_crop_forward) X(roll_crop_backward) X(window_attention_forward)                           \
    X(window_attention_backward) X(add) X(accumulate) X(channel_scale_forward)                       \
    X(channel_scale_backward) X(sample_scale_forward) X(sample_scale_backward) X(dice_ce_forward)    \
    X(dice_ce_backward) X(downsample_labels) X(sum_squares) X(scale) X(adam_update)

enum {
#define X(name) OP_##name,
    PROFILED_OPS(X)
#undef X
    N_OPS
};

static const char *const OP_NAMES[N_OPS] = {
#define X(name) #name,
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

#define TIMED(op, PARAMS, ARGS)                                                                    \
    static void timed_##op PARAMS {                                                                \
        OpProfile *p = owner(be);                                                                  \
        double t0 = op_begin(p);                                                                   \
        p->inner->op ARGS;                                                                         \
        op_end(p, OP_##op, t0);                                                                    \
    }

TIMED(upload, (Backend *be, void *dst, const void *src, size_t n), (p->inner, dst, src, n))
TIMED(upload_async, (Backend *be, void *dst, const void *src, size_t n), (p->inner, dst, src, n))
TIMED(download, (Backend *be, void *dst, const void *src, size_t n), (p->inner, dst, src, n))
TIMED(zero, (Backend *be, void *dst, size_t n), (p->inner, dst, n))
TIMED(copy, (Backend *be, void *dst, const void *src, size_t n), (p->inner, dst, src, n))
TIMED(act_from_f32, (Backend *be, Act *out, const float *in, size_t n), (p->inner, out, in, n))
TIMED(act_to_f32, (Backend *be, float *out, const Act *in, size_t n), (p->inner, out, in, n))
TIMED(conv3x3_forward,
      (Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int Ci, int Co,
       int s),
      (p->inner, out, in, w, b, B, H, W, Ci, Co, s))
TIMED(conv3x3_backward,
      (Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H,
       int W, int Ci, int Co, int s),
      (p->inner, din, dw, db, dout, in, w, B, H, W, Ci, Co, s))
TIMED(dwconv7_forward, (Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int C),
      (p->inner, out, in, w, b, B, H, W, C))
TIMED(dwconv7_backward,
      (Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H,
       int W, int C),
      (p->inner, din, dw, db, dout, in, w, B, H, W, C))
TIMED(convT_forward,
      (Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int Ci, int Co,
       int k),
      (p->inner, out, in, w, b, B, H, W, Ci, Co, k))
TIMED(convT_backward,
      (Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H,
       int W, int Ci, int Co, int k),
      (p->inner, din, dw, db, dout, in, w, B, H, W, Ci, Co, k))
TIMED(linear_forward, (Backend *be, Act *out, const Act *in, const float *w, const float *b, size_t N, int Ci, int Co),
      (p->inner, out, in, w, b, N, Ci, Co))
TIMED(linear_backward,
      (Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, size_t N,
       int Ci, int Co),
      (p->inner, din, dw, db, dout, in, w, N, Ci, Co))
TIMED(layernorm_forward,
      (Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g, const float *b, size_t N,
       int C, float eps),
      (p->inner, out, mean, rstd, in, g, b, N, C, eps))
TIMED(layernorm_backward,
      (Backend *be, Act *din, float *dg, float *db, const Act *dout, const Act *in, const float *mean,
       const float *rstd, const float *g, size_t N, int C),
      (p->inner, din, dg, db, dout, in, mean, rstd, g, N, C))
TIMED(gelu_forward, (Backend *be, Act *out, const Act *in, size_t n), (p->inner, out, in, n))
TIMED(gelu_backward, (Backend *be, Act *din, const Act *dout, const Act *in, size_t n), (p->inner, din, dout, in, n))
TIMED(pad_roll_forward, (Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp, int s),
      (p->inner, out, in, B, H, W, C, Hp, Wp, s))
TIMED(pad_roll_backward, (Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp, int Wp, int s),
      (p->inner, din, dout, B, H, W, C, Hp, Wp, s))
TIMED(roll_crop_forward, (Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp, int s),
      (p->inner, out, in, B, H, W, C, Hp, Wp, s))
TIMED(roll_crop_backward, (Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp, int Wp, int s),
      (p->inner, din, dout, B, H, W, C, Hp, Wp, s))
TIMED(window_attention_forward,
      (Backend *be, Act *out, Act *probs, const Act *qkv, const float *table, int B, int Hp, int Wp, int C,
       int heads, int window, int shift),
      (p->inner, out, probs, qkv, table, B, Hp, Wp, C, heads, window, shift))
TIMED(window_attention_backward,
      (Backend *be, Act *dqkv, float *dtable, const Act *dout, const Act *qkv, const Act *probs, int B, int Hp,
       int Wp, int C, int heads, int window, int shift),
      (p->inner, dqkv, dtable, dout, qkv, probs, B, Hp, Wp, C, heads, window, shift))
TIMED(add, (Backend *be, Act *out, const Act *a, const Act *b, size_t n), (p->inner, out, a, b, n))
TIMED(accumulate, (Backend *be, Act *dst, const Act *src, size_t n), (p->inner, dst, src, n))
TIMED(channel_scale_forward, (Backend *be, Act *out, const Act *in, const float *gamma, size_t N, int C),
      (p->inner, out, in, gamma, N, C))
TIMED(channel_scale_backward,
      (Backend *be, Act *din, float *dgamma, const Act *dout, const Act *in, const float *gamma, size_t N, int C),
      (p->inner, din, dgamma, dout, in, gamma, N, C))
TIMED(sample_scale_forward, (Backend *be, Act *out, const Act *in, const float *scale_host, int B, size_t per),
      (p->inner, out, in, scale_host, B, per))
TIMED(sample_scale_backward, (Backend *be, Act *din, const Act *dout, const float *scale_host, int B, size_t per),
      (p->inner, din, dout, scale_host, B, per))
TIMED(dice_ce_forward,
      (Backend *be, float *loss_host, float *probs, float *stats, const Act *logits, const int32_t *labels, size_t N,
       int K, float w_dice, float w_ce),
      (p->inner, loss_host, probs, stats, logits, labels, N, K, w_dice, w_ce))
TIMED(dice_ce_backward,
      (Backend *be, Act *dlogits, const float *probs, const float *stats, const int32_t *labels, size_t N, int K,
       float w_dice, float w_ce, float dloss),
      (p->inner, dlogits, probs, stats, labels, N, K, w_dice, w_ce, dloss))
TIMED(downsample_labels, (Backend *be, int32_t *out, const int32_t *in, int B, int H, int W, int f),
      (p->inner, out, in, B, H, W, f))
TIMED(sum_squares, (Backend *be, double *out_host, const float *x, size_t n), (p->inner, out_host, x, n))
TIMED(scale, (Backend *be, float *x, float s, size_t n), (p->inner, x, s, n))
TIMED(adam_update,
      (Backend *be, float *param, float *m, float *v, const float *grad, size_t n, double lr, double beta1, double beta2,
       double eps, int step),
      (p->inner, param, m, v, grad, n, lr, beta1, beta2, eps, step))

OpProfile *op_profile_create(Backend *inner) {
    OpProfile *p = xcalloc(1, sizeof *p);
    p->inner = inner;
    p->profiled.be = *inner;
    p->profiled.p = p;
    Backend *b = &p->profiled.be;
#define X(name) b->name = timed_##name;
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
