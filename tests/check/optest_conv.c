/* optest_conv.c — optest handlers for the convolution / linear family:
 * "conv3x3", "dwconv7", "convT", "convT_add" (convT_forward_add, forward only), "linear";
 * "dwconv7_layernorm" (forward only, below).
 *
 * Input tensors (F32, shapes as in backend.h, activations NHWC):
 *   in, w, b (b optional for linear only), dout
 *   din_init, dw_init, db_init (optional): starting values of the gradient buffers, so the
 *     test can verify that backward ACCUMULATES (result = init + gradient), or for linear's db
 *     that it OVERWRITES (result = gradient).
 * Attributes:
 *   conv3x3: B H W Ci Co stride      dwconv7: B H W C
 *   convT:   B H W Ci Co k           linear:  N Ci Co
 *   no_din = "1" (optional): pass din = NULL to backward and do not write "din".
 * Outputs: out, din (unless no_din), dw, db (unless linear without bias).
 */
#include <string.h>

#include "check.h"
#include "optest.h"

static int want_din(const StFile *in) {
    const char *v = st_meta_get(in, "no_din");
    return !(v && strcmp(v, "1") == 0);
}

/* Register gradient output `name` of the given shape, starting from tensor `init_name` when
 * the input file has one (checked to have the same element count). */
static float *grad_out(StFile *out, const StFile *in, const char *name, const char *init_name,
                       int ndim, const int64_t *shape) {
    float *p = ot_out(out, name, ndim, shape);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    if (st_find(in, init_name)) memcpy(p, ot_f32(in, init_name, numel), numel * sizeof(float));
    return p;
}

static void run_conv3x3(Backend *be, const StFile *in, StFile *out) {
    int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    int Ci = (int)ot_int(in, "Ci"), Co = (int)ot_int(in, "Co"), s = (int)ot_int(in, "stride");
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    const float *x = ot_f32(in, "in", (size_t)B * H * W * Ci);        /* (B, H, W, Ci) */
    const float *w = ot_f32(in, "w", (size_t)Co * Ci * 9);            /* (Co, Ci, 3, 3) */
    const float *b = ot_f32(in, "b", (size_t)Co);                     /* (Co) */
    const float *dout = ot_f32(in, "dout", (size_t)B * Ho * Wo * Co); /* (B, Ho, Wo, Co) */
    int64_t so[4] = {B, Ho, Wo, Co}, si[4] = {B, H, W, Ci}, sw[4] = {Co, Ci, 3, 3}, sb[1] = {Co};
    float *y = ot_out(out, "out", 4, so);
    float *din = want_din(in) ? grad_out(out, in, "din", "din_init", 4, si) : NULL;
    float *dw = grad_out(out, in, "dw", "dw_init", 4, sw);
    float *db = grad_out(out, in, "db", "db_init", 1, sb);
    be->conv3x3_forward(be, (Act *)y, (const Act *)x, w, b, B, H, W, Ci, Co, s);
    be->conv3x3_backward(be, (Act *)din, dw, db, (const Act *)dout, (const Act *)x, w, B, H, W, Ci, Co, s);
}

static void run_dwconv7(Backend *be, const StFile *in, StFile *out) {
    int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    int C = (int)ot_int(in, "C");
    size_t n = (size_t)B * H * W * C;
    const float *x = ot_f32(in, "in", n);             /* (B, H, W, C) */
    const float *w = ot_f32(in, "w", (size_t)C * 49); /* (C, 1, 7, 7) */
    const float *b = ot_f32(in, "b", (size_t)C);      /* (C) */
    const float *dout = ot_f32(in, "dout", n);        /* (B, H, W, C) */
    int64_t sx[4] = {B, H, W, C}, sw[4] = {C, 1, 7, 7}, sb[1] = {C};
    float *y = ot_out(out, "out", 4, sx);
    float *din = want_din(in) ? grad_out(out, in, "din", "din_init", 4, sx) : NULL;
    float *dw = grad_out(out, in, "dw", "dw_init", 4, sw);
    float *db = grad_out(out, in, "db", "db_init", 1, sb);
    be->dwconv7_forward(be, (Act *)y, (const Act *)x, w, b, B, H, W, C);
    be->dwconv7_backward(be, (Act *)din, dw, db, (const Act *)dout, (const Act *)x, w, B, H, W, C);
}

/* dwconv7_layernorm (forward only: the op has no backward of its own): in (B, H, W, C), w (C, 1, 7,
 * 7), b (C), g (C), beta (C); attrs B H W C eps → out (the conv), ln, mean, rstd */
static void run_dwconv7_layernorm(Backend *be, const StFile *in, StFile *out) {
    int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    int C = (int)ot_int(in, "C");
    const float eps = (float)ot_float(in, "eps");
    size_t N = (size_t)B * H * W;
    const float *x = ot_f32(in, "in", N * C);         /* (B, H, W, C) */
    const float *w = ot_f32(in, "w", (size_t)C * 49); /* (C, 1, 7, 7) */
    const float *b = ot_f32(in, "b", (size_t)C);      /* (C) */
    const float *g = ot_f32(in, "g", (size_t)C);      /* (C) */
    const float *beta = ot_f32(in, "beta", (size_t)C); /* (C) */
    int64_t sx[4] = {B, H, W, C}, sN[1] = {(int64_t)N};
    float *y = ot_out(out, "out", 4, sx);
    float *ln = ot_out(out, "ln", 4, sx);
    float *mean = ot_out(out, "mean", 1, sN);
    float *rstd = ot_out(out, "rstd", 1, sN);
    be->dwconv7_layernorm_forward(be, (Act *)y, (Act *)ln, mean, rstd, (const Act *)x, w, b, g, beta, B, H, W, C,
                                  eps);
}

static void run_convT(Backend *be, const StFile *in, StFile *out) {
    int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    int Ci = (int)ot_int(in, "Ci"), Co = (int)ot_int(in, "Co"), k = (int)ot_int(in, "k");
    const float *x = ot_f32(in, "in", (size_t)B * H * W * Ci);                 /* (B, H, W, Ci) */
    const float *w = ot_f32(in, "w", (size_t)Ci * Co * k * k);                 /* (Ci, Co, k, k) */
    const float *b = ot_f32(in, "b", (size_t)Co);                              /* (Co) */
    const float *dout = ot_f32(in, "dout", (size_t)B * H * k * W * k * Co);    /* (B, Hk, Wk, Co) */
    int64_t so[4] = {B, (int64_t)H * k, (int64_t)W * k, Co}, si[4] = {B, H, W, Ci};
    int64_t sw[4] = {Ci, Co, k, k}, sb[1] = {Co};
    float *y = ot_out(out, "out", 4, so);
    float *din = want_din(in) ? grad_out(out, in, "din", "din_init", 4, si) : NULL;
    float *dw = grad_out(out, in, "dw", "dw_init", 4, sw);
    float *db = grad_out(out, in, "db", "db_init", 1, sb);
    be->convT_forward(be, (Act *)y, (const Act *)x, w, b, B, H, W, Ci, Co, k);
    be->convT_backward(be, (Act *)din, dw, db, (const Act *)dout, (const Act *)x, w, B, H, W, Ci, Co, k);
}

/* convT_add: in, w, b, skip (B, Hk, Wk, Co); attrs as convT → out = convT_forward_add (forward only:
 * its backward is convT's and the add's) */
static void run_convT_add(Backend *be, const StFile *in, StFile *out) {
    int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    int Ci = (int)ot_int(in, "Ci"), Co = (int)ot_int(in, "Co"), k = (int)ot_int(in, "k");
    const float *x = ot_f32(in, "in", (size_t)B * H * W * Ci);                 /* (B, H, W, Ci) */
    const float *w = ot_f32(in, "w", (size_t)Ci * Co * k * k);                 /* (Ci, Co, k, k) */
    const float *b = ot_f32(in, "b", (size_t)Co);                              /* (Co) */
    const float *skip = ot_f32(in, "skip", (size_t)B * H * k * W * k * Co);    /* (B, Hk, Wk, Co) */
    int64_t so[4] = {B, (int64_t)H * k, (int64_t)W * k, Co};
    float *y = ot_out(out, "out", 4, so);
    be->convT_forward_add(be, (Act *)y, (const Act *)x, (const Act *)skip, w, b, B, H, W, Ci, Co, k);
}

static void run_linear(Backend *be, const StFile *in, StFile *out) {
    size_t N = (size_t)ot_int(in, "N");
    int Ci = (int)ot_int(in, "Ci"), Co = (int)ot_int(in, "Co");
    const float *x = ot_f32(in, "in", N * Ci);         /* (N, Ci) */
    const float *w = ot_f32(in, "w", (size_t)Co * Ci); /* (Co, Ci) */
    const float *b = st_find(in, "b") ? ot_f32(in, "b", (size_t)Co) : NULL; /* (Co) or NULL */
    const float *dout = ot_f32(in, "dout", N * Co);    /* (N, Co) */
    int64_t so[2] = {(int64_t)N, Co}, si[2] = {(int64_t)N, Ci}, sw[2] = {Co, Ci}, sb[1] = {Co};
    float *y = ot_out(out, "out", 2, so);
    float *din = want_din(in) ? grad_out(out, in, "din", "din_init", 2, si) : NULL;
    float *dw = grad_out(out, in, "dw", "dw_init", 2, sw);
    float *db = b ? grad_out(out, in, "db", "db_init", 1, sb) : NULL;
    be->linear_forward(be, (Act *)y, (const Act *)x, w, b, N, Ci, Co);
    be->linear_backward(be, (Act *)din, dw, db, (const Act *)dout, (const Act *)x, w, N, Ci, Co);
}

const OpTest optest_conv_ops[] = {
    {"conv3x3", run_conv3x3},
    {"dwconv7", run_dwconv7},
    {"dwconv7_layernorm", run_dwconv7_layernorm},
    {"convT", run_convT},
    {"convT_add", run_convT_add},
    {"linear", run_linear},
    {NULL, NULL},
};
