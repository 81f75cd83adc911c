/* test_gradcheck_norm.c — central finite-difference checks of every gradient of the norm
 * family (layernorm dx/dg/db, gelu, pad_roll, roll_crop, window_attention dqkv/dtable with and
 * without the shift mask, channel_scale dx/dgamma, sample_scale), plus accumulation (+=)
 * semantics, the add/accumulate values, and thread-count independence of the reductions.
 *
 * Loss = sum(out · R) for a fixed random R, so dL/dout = R is what backward receives. The
 * forward runs in fp32, so differences use steps of 1e-2 (smooth ops) and a floor on the
 * gradient scale; the tolerance 1e-2 on the per-probe relative error is what fp32 forward
 * noise with these steps allows (the exact PyTorch comparisons live in test_ops_norm.py).
 *
 * The CPU backend's Acts are floats (backend.h): float arrays go to Act parameters as (Act *).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_ops.h"
#include "testutil.h"

#define FD_TOL 1e-2
#define FD_FLOOR 1e-2

static float *randv(TestRng *r, size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof(float));
    test_fill(p, n, r, lo, hi);
    return p;
}

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* ---------------------------------------------------------------- layernorm */
typedef struct {
    Backend *be;
    float *x, *g, *b, *out, *mean, *rstd;
    const float *R;
    size_t N;
    int C;
    float eps;
} LnCtx;

static double ln_loss(void *p) {
    LnCtx *c = p;
    cpu_layernorm_forward(c->be, (Act *)c->out, c->mean, c->rstd, (const Act *)c->x, c->g, c->b, c->N, c->C, c->eps);
    return dot_d(c->out, c->R, c->N * c->C);
}

static void test_layernorm(Backend *be, TestRng *r, float eps) {
    const size_t N = 9;
    const int C = 24;
    LnCtx c = {be, randv(r, N * C, -2, 2), randv(r, C, 0.5f, 1.5f), randv(r, C, -1, 1), calloc(N * C, 4),
               calloc(N, 4), calloc(N, 4), randv(r, N * C, -1, 1), N, C, eps};
    for (size_t i = 0; i < N * C; i++) c.x[i] += 3.0f; /* non-zero mean */
    float *dx = calloc(N * C, 4), *dg = calloc(C, 4), *db = calloc(C, 4);
    ln_loss(&c);
    cpu_layernorm_backward(be, (Act *)dx, dg, db, (const Act *)c.R, (const Act *)c.x, c.mean, c.rstd, c.g, N, C);
    /* accumulation: a second backward must double every gradient */
    float *dx2 = malloc(N * C * 4), *dg2 = malloc(C * 4), *db2 = malloc(C * 4);
    memcpy(dx2, dx, N * C * 4), memcpy(dg2, dg, C * 4), memcpy(db2, db, C * 4);
    cpu_layernorm_backward(be, (Act *)dx2, dg2, db2, (const Act *)c.R, (const Act *)c.x, c.mean, c.rstd, c.g, N, C);
    int acc_ok = 1;
    for (size_t i = 0; i < N * C; i++) acc_ok &= fabsf(dx2[i] - 2 * dx[i]) <= 1e-6f * (1 + fabsf(dx[i]));
    for (int i = 0; i < C; i++) acc_ok &= fabsf(dg2[i] - 2 * dg[i]) <= 1e-6f * (1 + fabsf(dg[i]));
    for (int i = 0; i < C; i++) acc_ok &= fabsf(db2[i] - 2 * db[i]) <= 1e-6f * (1 + fabsf(db[i]));
    TEST_CHECK(acc_ok, "layernorm eps=%g backward accumulates (second call doubles dx, dg, db)", eps);

    double e;
    e = test_gradcheck(c.x, dx, N * C, ln_loss, &c, 1e-2f, 60, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "layernorm eps=%g dx fd err %.2e", eps, e);
    e = test_gradcheck(c.g, dg, C, ln_loss, &c, 1e-2f, C, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "layernorm eps=%g dg fd err %.2e", eps, e);
    e = test_gradcheck(c.b, db, C, ln_loss, &c, 1e-2f, C, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "layernorm eps=%g db fd err %.2e", eps, e);
    /* din = NULL must still produce the parameter gradients */
    float *dg3 = calloc(C, 4), *db3 = calloc(C, 4);
    cpu_layernorm_backward(be, NULL, dg3, db3, (const Act *)c.R, (const Act *)c.x, c.mean, c.rstd, c.g, N, C);
    TEST_CHECK(test_rel_err(dg3, dg, C) < 1e-6 && test_rel_err(db3, db, C) < 1e-6,
               "layernorm eps=%g backward with din=NULL gives the same dg, db", eps);
    free(c.x), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd), free((void *)c.R);
    free(dx), free(dg), free(db), free(dx2), free(dg2), free(db2), free(dg3), free(db3);
}

/* ---------------------------------------------------------------- gelu */
typedef struct {
    Backend *be;
    float *x, *out;
    const float *R;
    size_t n;
} GeluCtx;

static double gelu_loss(void *p) {
    GeluCtx *c = p;
    cpu_gelu_forward(c->be, (Act *)c->out, (const Act *)c->x, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_gelu(Backend *be, TestRng *r) {
    const size_t n = 300;
    GeluCtx c = {be, randv(r, n, -5, 5), calloc(n, 4), randv(r, n, -1, 1), n};
    float *dx = calloc(n, 4);
    cpu_gelu_backward(be, (Act *)dx, (const Act *)c.R, (const Act *)c.x, n);
    double e = test_gradcheck(c.x, dx, n, gelu_loss, &c, 1e-2f, (int)n, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "gelu dx fd err %.2e", e);
    /* known values: gelu(1) = 0.8413447, gelu(-1) = -0.1586553, gelu'(0) = 0.5 */
    float xs[3] = {1, -1, 0}, ys[3], d1[3] = {0, 0, 1}, dd[3] = {0};
    cpu_gelu_forward(be, (Act *)ys, (const Act *)xs, 3);
    cpu_gelu_backward(be, (Act *)dd, (const Act *)d1, (const Act *)xs, 3);
    TEST_CHECK(fabsf(ys[0] - 0.8413447f) < 1e-6f && fabsf(ys[1] + 0.1586553f) < 1e-6f && ys[2] == 0 &&
                   fabsf(dd[2] - 0.5f) < 1e-7f,
               "gelu known values: gelu(1)=%.7f gelu(-1)=%.7f gelu'(0)=%.7f", ys[0], ys[1], dd[2]);
    free(c.x), free(c.out), free((void *)c.R), free(dx);
}

/* ---------------------------------------------------------------- pad_roll / roll_crop */
typedef struct {
    Backend *be;
    float *x, *out;
    const float *R;
    int B, H, W, C, Hp, Wp, s, inverse;
} RollCtx;

static double roll_loss(void *p) {
    RollCtx *c = p;
    size_t nout;
    if (!c->inverse) {
        cpu_pad_roll_forward(c->be, (Act *)c->out, (const Act *)c->x, c->B, c->H, c->W, c->C, c->Hp, c->Wp, c->s);
        nout = (size_t)c->B * c->Hp * c->Wp * c->C;
    } else {
        cpu_roll_crop_forward(c->be, (Act *)c->out, (const Act *)c->x, c->B, c->H, c->W, c->C, c->Hp, c->Wp, c->s);
        nout = (size_t)c->B * c->H * c->W * c->C;
    }
    return dot_d(c->out, c->R, nout);
}

static void test_roll(Backend *be, TestRng *r, int inverse, int H, int W, int Hp, int Wp, int s) {
    const int B = 2, C = 3;
    size_t nsmall = (size_t)B * H * W * C, nbig = (size_t)B * Hp * Wp * C;
    size_t nin = inverse ? nbig : nsmall, nout = inverse ? nsmall : nbig;
    RollCtx c = {be, randv(r, nin, -1, 1), calloc(nout, 4), randv(r, nout, -1, 1), B, H, W, C, Hp, Wp, s, inverse};
    float *dx = calloc(nin, 4);
    if (!inverse) cpu_pad_roll_backward(be, (Act *)dx, (const Act *)c.R, B, H, W, C, Hp, Wp, s);
    else cpu_roll_crop_backward(be, (Act *)dx, (const Act *)c.R, B, H, W, C, Hp, Wp, s);
    /* linear op: differences are exact up to fp32 rounding, so probe every entry */
    double e = test_gradcheck(c.x, dx, nin, roll_loss, &c, 1e-2f, (int)nin, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "%s %dx%d<->%dx%d s=%d dx fd err %.2e", inverse ? "roll_crop" : "pad_roll", H, W, Hp, Wp,
               s, e);
    free(c.x), free(c.out), free((void *)c.R), free(dx);
}

/* ---------------------------------------------------------------- window attention */
typedef struct {
    Backend *be;
    float *qkv, *table, *out, *probs;
    const float *R;
    int B, Hp, Wp, C, heads, w, s;
} WaCtx;

static double wa_loss(void *p) {
    WaCtx *c = p;
    cpu_window_attention_forward(c->be, (Act *)c->out, (Act *)c->probs, (const Act *)c->qkv, c->table, c->B, c->Hp,
                                 c->Wp, c->C, c->heads, c->w, c->s);
    return dot_d(c->out, c->R, (size_t)c->B * c->Hp * c->Wp * c->C);
}

static void test_window_attention(Backend *be, TestRng *r, int Hp, int Wp, int C, int heads, int w, int s) {
    const int B = 2, n = w * w, T = (2 * w - 1) * (2 * w - 1), nWin = (Hp / w) * (Wp / w);
    const size_t nq = (size_t)B * Hp * Wp * 3 * C, no = (size_t)B * Hp * Wp * C, nt = (size_t)T * heads;
    WaCtx c = {be, randv(r, nq, -1.5f, 1.5f), randv(r, nt, -1.5f, 1.5f), calloc(no, 4),
               calloc((size_t)B * nWin * heads * n * n, 4), randv(r, no, -1, 1), B, Hp, Wp, C, heads, w, s};
    float *dqkv = calloc(nq, 4), *dtable = calloc(nt, 4);
    wa_loss(&c);
    cpu_window_attention_backward(be, (Act *)dqkv, dtable, (const Act *)c.R, (const Act *)c.qkv, (const Act *)c.probs,
                                  B, Hp, Wp, C, heads, w, s);
    double e = test_gradcheck(c.qkv, dqkv, nq, wa_loss, &c, 1e-2f, 150, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "window_attention %dx%d C=%d h=%d w=%d s=%d dqkv fd err %.2e", Hp, Wp, C, heads, w, s, e);
    e = test_gradcheck(c.table, dtable, nt, wa_loss, &c, 1e-2f, (int)nt, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "window_attention %dx%d C=%d h=%d w=%d s=%d dtable fd err %.2e (all %zu entries)", Hp, Wp,
               C, heads, w, s, e, nt);

    /* accumulation and thread-count independence: backward with 1 thread onto a copy of the
     * 2-thread result must give exactly twice it (same reduction order → bitwise equal) */
    wa_loss(&c); /* restore probs for the unperturbed inputs */
    float *dq2 = malloc(nq * 4), *dt2 = malloc(nt * 4);
    memcpy(dq2, dqkv, nq * 4), memcpy(dt2, dtable, nt * 4);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    cpu_window_attention_backward(be, (Act *)dq2, dt2, (const Act *)c.R, (const Act *)c.qkv, (const Act *)c.probs, B,
                                  Hp, Wp, C, heads, w, s);
    omp_set_num_threads(saved);
    int exact = 1;
    for (size_t i = 0; i < nq; i++) exact &= dq2[i] == 2 * dqkv[i];
    for (size_t i = 0; i < nt; i++) exact &= dt2[i] == 2 * dtable[i];
    TEST_CHECK(exact, "window_attention w=%d s=%d backward accumulates, bitwise independent of thread count", w, s);

    /* probabilities: rows sum to 1; with the shift mask, cross-region entries are ~0 */
    double worst = 0;
    for (size_t row = 0; row < (size_t)B * nWin * heads * n; row++) {
        double sum = 0;
        for (int j = 0; j < n; j++) sum += c.probs[row * n + j];
        worst = fmax(worst, fabs(sum - 1));
    }
    TEST_CHECK(worst < 1e-5, "window_attention w=%d s=%d softmax rows sum to 1 (worst %.1e)", w, s, worst);
    free(c.qkv), free(c.table), free(c.out), free(c.probs), free((void *)c.R);
    free(dqkv), free(dtable), free(dq2), free(dt2);
}

/* ---------------------------------------------------------------- channel_scale / sample_scale */
typedef struct {
    Backend *be;
    float *x, *gamma, *out;
    const float *R;
    size_t N;
    int C;
} CsCtx;

static double cs_loss(void *p) {
    CsCtx *c = p;
    cpu_channel_scale_forward(c->be, (Act *)c->out, (const Act *)c->x, c->gamma, c->N, c->C);
    return dot_d(c->out, c->R, c->N * c->C);
}

static void test_channel_scale(Backend *be, TestRng *r) {
    const size_t N = 200; /* > one 64-row reduction chunk */
    const int C = 8;
    CsCtx c = {be, randv(r, N * C, -1, 1), randv(r, C, -1, 1), calloc(N * C, 4), randv(r, N * C, -1, 1), N, C};
    float *dx = calloc(N * C, 4), *dg = calloc(C, 4);
    cpu_channel_scale_backward(be, (Act *)dx, dg, (const Act *)c.R, (const Act *)c.x, c.gamma, N, C);
    double e = test_gradcheck(c.x, dx, N * C, cs_loss, &c, 1e-2f, 100, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "channel_scale dx fd err %.2e", e);
    e = test_gradcheck(c.gamma, dg, C, cs_loss, &c, 1e-2f, C, FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "channel_scale dgamma fd err %.2e", e);
    free(c.x), free(c.gamma), free(c.out), free((void *)c.R), free(dx), free(dg);
}

typedef struct {
    Backend *be;
    float *x, *out;
    const float *scale, *R;
    int B;
    size_t per;
} SsCtx;

static double ss_loss(void *p) {
    SsCtx *c = p;
    cpu_sample_scale_forward(c->be, (Act *)c->out, (const Act *)c->x, c->scale, c->B, c->per);
    return dot_d(c->out, c->R, (size_t)c->B * c->per);
}

static void test_sample_scale(Backend *be, TestRng *r) {
    const int B = 3;
    const size_t per = 50;
    const float scale[3] = {1.25f, 0.0f, 1.25f};
    SsCtx c = {be, randv(r, B * per, -1, 1), calloc(B * per, 4), scale, randv(r, B * per, -1, 1), B, per};
    float *dx = calloc(B * per, 4);
    cpu_sample_scale_backward(be, (Act *)dx, (const Act *)c.R, scale, B, per);
    double e = test_gradcheck(c.x, dx, B * per, ss_loss, &c, 1e-2f, (int)(B * per), FD_FLOOR);
    TEST_CHECK(e < FD_TOL, "sample_scale dx fd err %.2e", e);
    free(c.x), free(c.out), free((void *)c.R), free(dx);
}

static void test_add(Backend *be, TestRng *r) {
    const size_t n = 333;
    float *a = randv(r, n, -1, 1), *b = randv(r, n, -1, 1), *o = malloc(n * 4), *a2 = malloc(n * 4);
    cpu_add(be, (Act *)o, (const Act *)a, (const Act *)b, n);
    memcpy(a2, a, n * 4);
    cpu_add(be, (Act *)a2, (const Act *)a2, (const Act *)b, n); /* aliased output */
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= o[i] == a[i] + b[i] && a2[i] == o[i];
    memcpy(a2, a, n * 4);
    cpu_accumulate(be, (Act *)a2, (const Act *)b, n);
    for (size_t i = 0; i < n; i++) ok &= a2[i] == o[i];
    TEST_CHECK(ok, "add (plain and aliased) and accumulate are exact elementwise sums");
    free(a), free(b), free(o), free(a2);
}

int main(void) {
    Backend *be = backend_cpu_create(0);
    TestRng r = {12345};
    test_layernorm(be, &r, 1e-5f);
    test_layernorm(be, &r, 1e-6f);
    test_gelu(be, &r);
    test_roll(be, &r, 0, 5, 7, 8, 8, 3);
    test_roll(be, &r, 0, 6, 6, 6, 6, 0);
    test_roll(be, &r, 1, 5, 7, 8, 8, 3);
    test_roll(be, &r, 1, 6, 6, 6, 6, 2);
    test_window_attention(be, &r, 8, 12, 16, 2, 4, 0);
    test_window_attention(be, &r, 8, 12, 16, 2, 4, 2); /* shifted: masked windows */
    test_window_attention(be, &r, 6, 9, 10, 2, 3, 1);  /* odd n, hd = 5, shifted */
    test_window_attention(be, &r, 10, 10, 12, 3, 5, 2);
    test_channel_scale(be, &r);
    test_sample_scale(be, &r);
    test_add(be, &r);
    be->destroy(be);
    return test_summary("test_gradcheck_norm");
}
