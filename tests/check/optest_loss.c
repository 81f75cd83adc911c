/* optest_loss.c — optest handlers for the loss and optimiser ops (see optest.h), driven by
 * tests/reference/test_ops_loss.py and tests/reference/test_safetensors_interop.py. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "adam_coefs.h"
#include "check.h"
#include "optest.h"

static size_t numel_of(const StTensor *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

static const StTensor *need(const StFile *in, const char *name) {
    const StTensor *t = st_find(in, name);
    if (!t) die("%s: no tensor '%s'", in->path, name);
    return t;
}

/* dice_ce: logits (N, K), labels (N) I32; attrs w_dice, w_ce, dloss; optional "dlogits_in"
 * (N, K) that the backward accumulates onto (checks the += contract).
 * Out: loss (3) = {total, dice, ce}, probs (N, K), stats (3, K), dlogits (N, K). */
static void run_dice_ce(Backend *be, const StFile *in, StFile *out) {
    const StTensor *lt = need(in, "logits");
    if (lt->ndim != 2) die("%s: logits must be (N, K)", in->path);
    size_t N = (size_t)lt->shape[0];
    int K = (int)lt->shape[1];
    const float *logits = ot_f32(in, "logits", N * (size_t)K);
    const int32_t *labels = ot_i32(in, "labels", N);
    float w_dice = (float)ot_float(in, "w_dice"), w_ce = (float)ot_float(in, "w_ce");
    float dloss = (float)ot_float(in, "dloss");
    float *loss = ot_out(out, "loss", 1, (int64_t[]){3});
    float *probs = ot_out(out, "probs", 2, (int64_t[]){(int64_t)N, K});
    float *stats = ot_out(out, "stats", 2, (int64_t[]){3, K});
    float *dlogits = ot_out(out, "dlogits", 2, (int64_t[]){(int64_t)N, K});
    if (st_find(in, "dlogits_in"))
        memcpy(dlogits, ot_f32(in, "dlogits_in", N * (size_t)K), N * (size_t)K * sizeof(float));
    be->dice_ce_forward(be, loss, probs, stats, (const Act *)logits, labels, N, K, w_dice, w_ce);
    be->dice_ce_backward(be, (Act *)dlogits, probs, stats, labels, N, K, w_dice, w_ce, dloss);
}

/* downsample_labels: labels (B, H, W) I32; attr f. Out: out (B, H/f, W/f) I32. */
static void run_downsample_labels(Backend *be, const StFile *in, StFile *out) {
    const StTensor *t = need(in, "labels");
    if (t->ndim != 3) die("%s: labels must be (B, H, W)", in->path);
    int B = (int)t->shape[0], H = (int)t->shape[1], W = (int)t->shape[2];
    const int32_t *lab = ot_i32(in, "labels", (size_t)B * H * W);
    int f = (int)ot_int(in, "f");
    int64_t shape[3] = {B, H / f, W / f};
    int32_t *o = xcalloc((size_t)B * (H / f) * (W / f) + 1, sizeof(int32_t)); /* lives until exit */
    be->downsample_labels(be, o, lab, B, H, W, f);
    st_add(out, "out", ST_I32, 3, shape, o);
}

/* adam: param, m, v (n); grads (S, n); attrs lr, beta1, beta2, eps, first_step.
 * Runs S consecutive steps (first_step, first_step+1, ...). Out: param, m, v. */
static void run_adam(Backend *be, const StFile *in, StFile *out) {
    const StTensor *pt = need(in, "param");
    size_t n = numel_of(pt);
    const StTensor *gt = need(in, "grads");
    if (gt->ndim < 1 || numel_of(gt) % (n ? n : 1) != 0) die("%s: grads must be (S, n)", in->path);
    int S = (int)gt->shape[0];
    const float *grads = ot_f32(in, "grads", (size_t)S * n);
    float *p = ot_out(out, "param", pt->ndim, pt->shape);
    float *m = ot_out(out, "m", pt->ndim, pt->shape);
    float *v = ot_out(out, "v", pt->ndim, pt->shape);
    memcpy(p, ot_f32(in, "param", n), n * sizeof(float));
    memcpy(m, ot_f32(in, "m", n), n * sizeof(float));
    memcpy(v, ot_f32(in, "v", n), n * sizeof(float));
    double lr = ot_float(in, "lr"), b1 = ot_float(in, "beta1"), b2 = ot_float(in, "beta2");
    double eps = ot_float(in, "eps");
    int first = (int)ot_int(in, "first_step");
    for (int s = 0; s < S; s++) {
        float coef[2]; /* the CPU backend's memory is host memory */
        adam_coefs(lr, b1, b2, first + s, coef);
        be->adam_update(be, p, m, v, grads + (size_t)s * n, n, b1, b2, eps, coef);
    }
}

/* sum_squares: x (any shape, F32). Out: sum (1) F32, and sum_bits (1) I64 holding the
 * double result's bit pattern so the test can compare the full double. */
static void run_sum_squares(Backend *be, const StFile *in, StFile *out) {
    const StTensor *t = need(in, "x");
    size_t n = numel_of(t);
    const float *x = ot_f32(in, "x", 0);
    double s = 0;
    be->sum_squares(be, &s, x, n);
    float *o = ot_out(out, "sum", 1, (int64_t[]){1});
    o[0] = (float)s;
    int64_t *bits = xcalloc(1, sizeof(int64_t));
    memcpy(bits, &s, sizeof s);
    st_add(out, "sum_bits", ST_I64, 1, (int64_t[]){1}, bits);
}

/* clip_grad: every F32 tensor in the input is a gradient; attr max_norm. Composes the ops as
 * the trainer does: total = Σ sum_squares, norm = sqrt(total), coef = max_norm/(norm + 1e-6),
 * scale every gradient by coef when coef < 1. Out: each gradient under its own name, and
 * "total_norm" (1). */
static void run_clip_grad(Backend *be, const StFile *in, StFile *out) {
    double max_norm = ot_float(in, "max_norm");
    double total = 0;
    for (int i = 0; i < in->n_tensors; i++) {
        const StTensor *t = &in->tensors[i];
        if (t->dtype != ST_F32) continue;
        double s;
        be->sum_squares(be, &s, t->data, numel_of(t));
        total += s;
    }
    double norm = sqrt(total);
    double coef = max_norm / (norm + 1e-6);
    for (int i = 0; i < in->n_tensors; i++) {
        const StTensor *t = &in->tensors[i];
        if (t->dtype != ST_F32) continue;
        float *g = ot_out(out, t->name, t->ndim, t->shape);
        memcpy(g, t->data, t->nbytes);
        if (coef < 1.0) be->scale(be, g, (float)coef, numel_of(t));
    }
    float *o = ot_out(out, "total_norm", 1, (int64_t[]){1});
    o[0] = (float)norm;
}

/* copy_tensors: every tensor and metadata entry of the input, unchanged (safetensors interop). */
static void run_copy_tensors(Backend *be, const StFile *in, StFile *out) {
    for (int i = 0; i < in->n_meta; i++) st_add_meta(out, in->meta[i].key, in->meta[i].value);
    for (int i = 0; i < in->n_tensors; i++) {
        const StTensor *t = &in->tensors[i];
        st_add(out, t->name, t->dtype, t->ndim, t->shape, t->data); /* in outlives the write */
    }
}

const OpTest optest_loss_ops[] = {
    {"dice_ce", run_dice_ce},
    {"downsample_labels", run_downsample_labels},
    {"adam", run_adam},
    {"sum_squares", run_sum_squares},
    {"clip_grad", run_clip_grad},
    {"copy_tensors", run_copy_tensors},
    {NULL, NULL},
};
