/* optest_norm.c — optest handlers for the norm family: layernorm (and its residual-branch
 * backward, layernorm_backward_residual_branch), gelu, gelu_layernorm (the fused pair), pad_roll,
 * roll_crop, window_attention, channel_scale, sample_scale, add (with accumulate).
 *
 * Every handler runs the forward, then the backward with the upstream gradient "dout".
 * Gradient outputs start from the optional input tensor "<grad>_init" when present (else
 * zero), so the Python tests can check that backward ops ACCUMULATE rather than overwrite.
 * Sizes come from the metadata attributes named in each handler. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"
#include "optest.h"

/* Element count of a tensor that must exist. */
static size_t numel_of(const StFile *in, const char *name) {
    const StTensor *t = st_find(in, name);
    if (!t) die("%s: no tensor '%s'", in->path, name);
    return t->nbytes / st_dtype_size(t->dtype);
}

/* Register a gradient output; copy "<name>_init" into it when the input file has one. */
static float *grad_out(StFile *out, const StFile *in, const char *name, int ndim, const int64_t *shape) {
    float *p = ot_out(out, name, ndim, shape);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    char key[128];
    snprintf(key, sizeof key, "%s_init", name);
    if (st_find(in, key)) memcpy(p, ot_f32(in, key, n), n * sizeof(float));
    return p;
}

/* layernorm: x (N, C), g (C), b (C), dout (N, C); attrs N, C, eps → out, mean, rstd, dx, dg, db */
static void run_layernorm(Backend *be, const StFile *in, StFile *out) {
    const long N = ot_int(in, "N"), C = ot_int(in, "C");
    const float eps = (float)ot_float(in, "eps");
    const float *x = ot_f32(in, "x", (size_t)(N * C));
    const float *g = ot_f32(in, "g", (size_t)C);
    const float *b = ot_f32(in, "b", (size_t)C);
    const float *dout = ot_f32(in, "dout", (size_t)(N * C));
    const int64_t sNC[2] = {N, C}, sN[1] = {N}, sC[1] = {C};
    float *y = ot_out(out, "out", 2, sNC);
    float *mean = ot_out(out, "mean", 1, sN);
    float *rstd = ot_out(out, "rstd", 1, sN);
    float *dx = grad_out(out, in, "dx", 2, sNC);
    float *dg = grad_out(out, in, "dg", 1, sC);
    float *db = grad_out(out, in, "db", 1, sC);
    cpu_layernorm_forward(be, (Act *)y, mean, rstd, (const Act *)x, g, b, (size_t)N, (int)C, eps);
    cpu_layernorm_backward(be, (Act *)dx, dg, db, (const Act *)dout, (const Act *)x, mean, rstd, g, (size_t)N, (int)C);
}

/* layernorm_residual_branch: the PI block's x1 = res + s_b·(gamma·y) feeding both the residual
 * path (gradient dres) and a LayerNorm (gradient dout), through layernorm_backward_residual_branch.
 * x1 (N, C) (the LayerNorm's input), g (C), b (C), dres (N, C), dout (N, C), y (N, C), optional
 * gamma (C) and scale (B); attrs B, per, C, eps → out (the LayerNorm, for its statistics), dx, dy,
 * dg, db, dgamma (dgamma only with gamma) */
static void run_layernorm_residual_branch(Backend *be, const StFile *in, StFile *out) {
    const long B = ot_int(in, "B"), per = ot_int(in, "per"), C = ot_int(in, "C"), N = B * per / C;
    const float eps = (float)ot_float(in, "eps");
    const float *x1 = ot_f32(in, "x1", (size_t)(N * C));
    const float *g = ot_f32(in, "g", (size_t)C);
    const float *b = ot_f32(in, "b", (size_t)C);
    const float *dres = ot_f32(in, "dres", (size_t)(N * C));
    const float *dout = ot_f32(in, "dout", (size_t)(N * C));
    const float *y = ot_f32(in, "y", (size_t)(N * C));
    const float *gamma = st_find(in, "gamma") ? ot_f32(in, "gamma", (size_t)C) : NULL;
    const float *scale = st_find(in, "scale") ? ot_f32(in, "scale", (size_t)B) : NULL;
    const int64_t sNC[2] = {N, C}, sC[1] = {C};
    float *u = ot_out(out, "out", 2, sNC);
    float *mean = ot_scratch((size_t)N), *rstd = ot_scratch((size_t)N);
    float *dx = grad_out(out, in, "dx", 2, sNC);
    float *dy = grad_out(out, in, "dy", 2, sNC); /* overwritten: a dy_init must not show */
    float *dg = grad_out(out, in, "dg", 1, sC);
    float *db = grad_out(out, in, "db", 1, sC);
    float *dgamma = gamma ? grad_out(out, in, "dgamma", 1, sC) : NULL;
    cpu_layernorm_forward(be, (Act *)u, mean, rstd, (const Act *)x1, g, b, (size_t)N, (int)C, eps);
    cpu_layernorm_backward_residual_branch(be, (Act *)dx, (Act *)dy, dg, db, dgamma, (const Act *)dres,
                                           (const Act *)dout, (const Act *)x1, mean, rstd, g, (const Act *)y, gamma,
                                           scale, (int)B, (size_t)per, (int)C);
}

/* gelu: x (n), dout (n) → out, dx */
static void run_gelu(Backend *be, const StFile *in, StFile *out) {
    const size_t n = numel_of(in, "x");
    const float *x = ot_f32(in, "x", n);
    const float *dout = ot_f32(in, "dout", n);
    const int64_t s[1] = {(int64_t)n};
    float *y = ot_out(out, "out", 1, s);
    float *dx = grad_out(out, in, "dx", 1, s);
    cpu_gelu_forward(be, (Act *)y, (const Act *)x, n);
    cpu_gelu_backward(be, (Act *)dx, (const Act *)dout, (const Act *)x, n);
}

/* gelu_layernorm: x (N, C), g (C), b (C), dout (N, C); attrs N, C, eps → ge = GELU(x), out, mean,
 * rstd (LayerNorm of ge), dx, dg, db (layernorm_backward_gelu) */
static void run_gelu_layernorm(Backend *be, const StFile *in, StFile *out) {
    const long N = ot_int(in, "N"), C = ot_int(in, "C");
    const float eps = (float)ot_float(in, "eps");
    const float *x = ot_f32(in, "x", (size_t)(N * C));
    const float *g = ot_f32(in, "g", (size_t)C);
    const float *b = ot_f32(in, "b", (size_t)C);
    const float *dout = ot_f32(in, "dout", (size_t)(N * C));
    const int64_t sNC[2] = {N, C}, sN[1] = {N}, sC[1] = {C};
    float *ge = ot_out(out, "ge", 2, sNC);
    float *y = ot_out(out, "out", 2, sNC);
    float *mean = ot_out(out, "mean", 1, sN);
    float *rstd = ot_out(out, "rstd", 1, sN);
    float *dx = grad_out(out, in, "dx", 2, sNC);
    float *dg = grad_out(out, in, "dg", 1, sC);
    float *db = grad_out(out, in, "db", 1, sC);
    cpu_gelu_layernorm_forward(be, (Act *)y, (Act *)ge, mean, rstd, (const Act *)x, g, b, (size_t)N, (int)C, eps);
    cpu_layernorm_backward_gelu(be, (Act *)dx, dg, db, (const Act *)dout, (const Act *)ge, (const Act *)x, mean,
                                rstd, g, (size_t)N, (int)C);
}

/* pad_roll: x (B, H, W, C), dout (B, Hp, Wp, C); attrs B, H, W, C, Hp, Wp, shift → out, dx */
static void run_pad_roll(Backend *be, const StFile *in, StFile *out) {
    const int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    const int C = (int)ot_int(in, "C"), Hp = (int)ot_int(in, "Hp"), Wp = (int)ot_int(in, "Wp");
    const int s = (int)ot_int(in, "shift");
    const float *x = ot_f32(in, "x", (size_t)B * H * W * C);
    const float *dout = ot_f32(in, "dout", (size_t)B * Hp * Wp * C);
    const int64_t so[4] = {B, Hp, Wp, C}, si[4] = {B, H, W, C};
    float *y = ot_out(out, "out", 4, so);
    float *dx = grad_out(out, in, "dx", 4, si);
    cpu_pad_roll_forward(be, (Act *)y, (const Act *)x, B, H, W, C, Hp, Wp, s);
    cpu_pad_roll_backward(be, (Act *)dx, (const Act *)dout, B, H, W, C, Hp, Wp, s);
}

/* roll_crop: x (B, Hp, Wp, C), dout (B, H, W, C); attrs as pad_roll → out, dx */
static void run_roll_crop(Backend *be, const StFile *in, StFile *out) {
    const int B = (int)ot_int(in, "B"), H = (int)ot_int(in, "H"), W = (int)ot_int(in, "W");
    const int C = (int)ot_int(in, "C"), Hp = (int)ot_int(in, "Hp"), Wp = (int)ot_int(in, "Wp");
    const int s = (int)ot_int(in, "shift");
    const float *x = ot_f32(in, "x", (size_t)B * Hp * Wp * C);
    const float *dout = ot_f32(in, "dout", (size_t)B * H * W * C);
    const int64_t so[4] = {B, H, W, C}, si[4] = {B, Hp, Wp, C};
    float *y = ot_out(out, "out", 4, so);
    float *dx = grad_out(out, in, "dx", 4, si);
    cpu_roll_crop_forward(be, (Act *)y, (const Act *)x, B, H, W, C, Hp, Wp, s);
    cpu_roll_crop_backward(be, (Act *)dx, (const Act *)dout, B, H, W, C, Hp, Wp, s);
}

/* window_attention: qkv (B, Hp, Wp, 3C), table ((2w-1)^2, heads), dout (B, Hp, Wp, C);
 * attrs B, Hp, Wp, C, heads, window, shift → out, probs, dqkv, dtable */
static void run_window_attention(Backend *be, const StFile *in, StFile *out) {
    const int B = (int)ot_int(in, "B"), Hp = (int)ot_int(in, "Hp"), Wp = (int)ot_int(in, "Wp");
    const int C = (int)ot_int(in, "C"), heads = (int)ot_int(in, "heads"), w = (int)ot_int(in, "window");
    const int s = (int)ot_int(in, "shift");
    CHECK(w > 0 && Hp % w == 0 && Wp % w == 0, "window_attention optest: bad sizes");
    const int n = w * w, T = (2 * w - 1) * (2 * w - 1), nWin = (Hp / w) * (Wp / w);
    const float *qkv = ot_f32(in, "qkv", (size_t)B * Hp * Wp * 3 * C);
    const float *table = ot_f32(in, "table", (size_t)T * heads);
    const float *dout = ot_f32(in, "dout", (size_t)B * Hp * Wp * C);
    const int64_t so[4] = {B, Hp, Wp, C}, sq[4] = {B, Hp, Wp, 3 * C}, st[2] = {T, heads};
    const int64_t sp[5] = {B, nWin, heads, n, n};
    float *y = ot_out(out, "out", 4, so);
    float *probs = ot_out(out, "probs", 5, sp);
    float *dqkv = grad_out(out, in, "dqkv", 4, sq);
    float *dtable = grad_out(out, in, "dtable", 2, st);
    cpu_window_attention_forward(be, (Act *)y, (Act *)probs, (const Act *)qkv, table, B, Hp, Wp, C, heads, w, s);
    cpu_window_attention_backward(be, (Act *)dqkv, dtable, (const Act *)dout, (const Act *)qkv, (const Act *)probs, B,
                                  Hp, Wp, C, heads, w, s);
}

/* channel_scale: x (N, C), gamma (C), dout (N, C); attrs N, C → out, dx, dgamma */
static void run_channel_scale(Backend *be, const StFile *in, StFile *out) {
    const long N = ot_int(in, "N"), C = ot_int(in, "C");
    const float *x = ot_f32(in, "x", (size_t)(N * C));
    const float *gamma = ot_f32(in, "gamma", (size_t)C);
    const float *dout = ot_f32(in, "dout", (size_t)(N * C));
    const int64_t sNC[2] = {N, C}, sC[1] = {C};
    float *y = ot_out(out, "out", 2, sNC);
    float *dx = grad_out(out, in, "dx", 2, sNC);
    float *dgamma = grad_out(out, in, "dgamma", 1, sC);
    cpu_channel_scale_forward(be, (Act *)y, (const Act *)x, gamma, (size_t)N, (int)C);
    cpu_channel_scale_backward(be, (Act *)dx, dgamma, (const Act *)dout, (const Act *)x, gamma, (size_t)N, (int)C);
}

/* sample_scale: x (B, per), scale (B), dout (B, per); attrs B, per → out, dx */
static void run_sample_scale(Backend *be, const StFile *in, StFile *out) {
    const long B = ot_int(in, "B"), per = ot_int(in, "per");
    const float *x = ot_f32(in, "x", (size_t)(B * per));
    const float *scale = ot_f32(in, "scale", (size_t)B);
    const float *dout = ot_f32(in, "dout", (size_t)(B * per));
    const int64_t s[2] = {B, per};
    float *y = ot_out(out, "out", 2, s);
    float *dx = grad_out(out, in, "dx", 2, s);
    cpu_sample_scale_forward(be, (Act *)y, (const Act *)x, scale, (int)B, (size_t)per);
    cpu_sample_scale_backward(be, (Act *)dx, (const Act *)dout, scale, (int)B, (size_t)per);
}

/* add: a (n), b (n) → out = a + b, alias = add() with out aliasing a, acc = a then += b
 * via accumulate() */
static void run_add(Backend *be, const StFile *in, StFile *out) {
    const size_t n = numel_of(in, "a");
    const float *a = ot_f32(in, "a", n);
    const float *b = ot_f32(in, "b", n);
    const int64_t s[1] = {(int64_t)n};
    float *y = ot_out(out, "out", 1, s);
    float *alias = ot_out(out, "alias", 1, s);
    float *acc = ot_out(out, "acc", 1, s);
    cpu_add(be, (Act *)y, (const Act *)a, (const Act *)b, n);
    memcpy(alias, a, n * sizeof(float));
    cpu_add(be, (Act *)alias, (const Act *)alias, (const Act *)b, n);
    memcpy(acc, a, n * sizeof(float));
    cpu_accumulate(be, (Act *)acc, (const Act *)b, n);
}

const OpTest optest_norm_ops[] = {
    {"layernorm", run_layernorm},
    {"layernorm_residual_branch", run_layernorm_residual_branch},
    {"gelu", run_gelu},
    {"gelu_layernorm", run_gelu_layernorm},
    {"pad_roll", run_pad_roll},
    {"roll_crop", run_roll_crop},
    {"window_attention", run_window_attention},
    {"channel_scale", run_channel_scale},
    {"sample_scale", run_sample_scale},
    {"add", run_add},
    {NULL, NULL},
};
