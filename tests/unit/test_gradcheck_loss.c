/* test_gradcheck_loss.c — finite-difference check of dice_ce_backward against
 * dice_ce_forward (d total / d logits), the += contract and dloss scaling, plus a
 * directional-derivative check at a batch size where per-element differences are too small
 * to resolve. Also times forward+backward at the training size (N = 8·320·320, K = 14).
 *
 * Precision budget: the forward hands back the loss as fp32, so a central difference of it
 * with step h carries an absolute error of about |L|·6e-8 / h (~1.5e-5 at h = 1e-2), which is
 * several 1e-3 of the smallest entries (K = 14: p/N ~ 4e-3). So each case is checked twice:
 *  (1) against our fp32 forward itself, errors measured against max(|g|, 1e-2) (the noise
 *      floor), and
 *  (2) tightly, against a float64 evaluation of the same formula (written out below), after
 *      checking that our forward agrees with that evaluation to fp32 precision.
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

typedef struct {
    Backend *be;
    float *logits; /* (N, K) */
    int32_t *labels; /* (N) */
    float *probs;  /* (N, K) scratch */
    float stats[3 * 64];
    size_t N;
    int K;
    float wd, wce;
} LossCtx;

/* The nnU-Net DC_and_CE loss in float64 (batch dice, no background, smooth 1e-5). */
static double total_loss_f64(void *p) {
    LossCtx *c = p;
    const int K = c->K;
    double psum[64] = {0}, tp[64] = {0}, cnt[64] = {0}, ce = 0;
    for (size_t n = 0; n < c->N; n++) {
        const float *x = c->logits + n * K;
        double m = x[0], s = 0;
        for (int k = 1; k < K; k++) m = fmax(m, x[k]);
        for (int k = 0; k < K; k++) s += exp((double)x[k] - m);
        int y = c->labels[n];
        for (int k = 0; k < K; k++) psum[k] += exp((double)x[k] - m) / s;
        tp[y] += exp((double)x[y] - m) / s;
        cnt[y] += 1;
        ce += log(s) - ((double)x[y] - m);
    }
    double dc = 0;
    for (int k = 1; k < K; k++) {
        double fp = psum[k] - tp[k], fn = cnt[k] - tp[k];
        dc += (2 * tp[k] + 1e-5) / (2 * tp[k] + fp + fn + 1e-5 + 1e-8);
    }
    return (double)c->wd * (-dc / (K - 1)) + (double)c->wce * ce / (double)c->N;
}

static double total_loss(void *p) {
    LossCtx *c = p;
    float loss[3];
    cpu_dice_ce_forward(c->be, loss, c->probs, c->stats, (const Act *)c->logits, c->labels, c->N, c->K, c->wd, c->wce);
    return loss[0];
}

/* labels drawn from the first n_present classes, so the others are absent (smooth-only dc). */
static void setup(LossCtx *c, Backend *be, size_t N, int K, int n_present, float scale, uint64_t seed) {
    TestRng r = {seed};
    c->be = be;
    c->N = N;
    c->K = K;
    c->wd = 1.2f;
    c->wce = 0.8f;
    c->logits = malloc(N * K * sizeof(float));
    c->probs = malloc(N * K * sizeof(float));
    c->labels = malloc(N * sizeof(int32_t));
    test_fill(c->logits, N * K, &r, -scale, scale);
    for (size_t n = 0; n < N; n++) c->labels[n] = (int32_t)(test_uniform(&r, 0, (float)n_present)) % n_present;
}

static void teardown(LossCtx *c) {
    free(c->logits);
    free(c->probs);
    free(c->labels);
}

static void check_fd(Backend *be, size_t N, int K, int n_present, float scale, float dloss, uint64_t seed) {
    LossCtx c;
    setup(&c, be, N, K, n_present, scale, seed);
    float loss[3];
    size_t NK = N * (size_t)K;
    float *grad = calloc(NK, sizeof(float));
    float *acc = malloc(NK * sizeof(float));
    cpu_dice_ce_forward(be, loss, c.probs, c.stats, (const Act *)c.logits, c.labels, N, K, c.wd, c.wce);
    cpu_dice_ce_backward(be, (Act *)grad, c.probs, c.stats, c.labels, N, K, c.wd, c.wce, 1.0f);

    /* += contract and dloss scaling: acc = 0.25 + dloss * grad */
    for (size_t i = 0; i < NK; i++) acc[i] = 0.25f;
    cpu_dice_ce_backward(be, (Act *)acc, c.probs, c.stats, c.labels, N, K, c.wd, c.wce, dloss);
    double num = 0, den = 0;
    for (size_t i = 0; i < NK; i++) {
        double want = 0.25 + (double)dloss * grad[i];
        num += (acc[i] - want) * (acc[i] - want);
        den += want * want;
    }
    double e_acc = sqrt(num / den);
    TEST_CHECK(e_acc < 1e-6, "N=%zu K=%d: backward accumulates and scales by dloss=%g (rel err %.2e)", N, K,
               (double)dloss, e_acc);

    /* (1) against our fp32 forward: noise ~1.5e-5 absolute, measured against a 1e-2 floor. */
    double worst = test_gradcheck(c.logits, grad, NK, total_loss, &c, 1e-2f, (int)NK, 1e-2);
    TEST_CHECK(worst < 3e-3, "N=%zu K=%d present=%d scale=%g: FD of our fp32 forward vs analytic, max err %.2e "
               "(floor 1e-2; loss %.5f dice %.5f ce %.5f)",
               N, K, n_present, (double)scale, worst, (double)loss[0], (double)loss[1], (double)loss[2]);
    /* (2) our forward == the float64 formula, then FD of the float64 formula (h = 1e-3: O(h²)
     * truncation ~1e-6, fp32 step rounding ulp(x)/h ~ 2e-4 at |x| ~ 3). */
    double l64 = total_loss_f64(&c);
    double e_fwd = fabs((double)loss[0] - l64) / fabs(l64);
    TEST_CHECK(e_fwd < 1e-6, "N=%zu K=%d: forward %.8f vs float64 formula %.8f (rel %.2e)", N, K,
               (double)loss[0], l64, e_fwd);
    double worst64 = test_gradcheck(c.logits, grad, NK, total_loss_f64, &c, 1e-3f, (int)NK, 1e-6);
    TEST_CHECK(worst64 < 1e-3, "N=%zu K=%d present=%d: FD of the float64 loss vs analytic, max rel err %.2e", N, K,
               n_present, worst64);
    free(grad);
    free(acc);
    teardown(&c);
}

/* Directional derivative: (L(x + h d) − L(x − h d)) / 2h vs <grad, d> for a random d over all
 * N·K logits. Covers the batch-wide Dice sums at a size where single entries are too small. */
static void check_directional(Backend *be, size_t N, int K, int n_present, uint64_t seed) {
    LossCtx c;
    setup(&c, be, N, K, n_present, 3.0f, seed);
    size_t NK = N * (size_t)K;
    float *grad = calloc(NK, sizeof(float));
    float *d = malloc(NK * sizeof(float));
    float *x0 = malloc(NK * sizeof(float));
    float loss[3];
    TestRng r = {seed + 99};
    test_fill(d, NK, &r, -1, 1);
    memcpy(x0, c.logits, NK * sizeof(float));
    cpu_dice_ce_forward(be, loss, c.probs, c.stats, (const Act *)c.logits, c.labels, N, K, c.wd, c.wce);
    cpu_dice_ce_backward(be, (Act *)grad, c.probs, c.stats, c.labels, N, K, c.wd, c.wce, 1.0f);
    double an = 0;
    for (size_t i = 0; i < NK; i++) an += (double)grad[i] * d[i];
    const float h = 1e-2f;
    for (size_t i = 0; i < NK; i++) c.logits[i] = x0[i] + h * d[i];
    double lp = total_loss(&c), lp64 = total_loss_f64(&c);
    for (size_t i = 0; i < NK; i++) c.logits[i] = x0[i] - h * d[i];
    double lm = total_loss(&c), lm64 = total_loss_f64(&c);
    double fd = (lp - lm) / (2.0 * h), fd64 = (lp64 - lm64) / (2.0 * h);
    double err = fabs(fd - an) / fmax(fabs(fd), fabs(an));
    double err64 = fabs(fd64 - an) / fmax(fabs(fd64), fabs(an));
    /* <grad, d> ~ 6e-3 here; the fp32 loss's rounding (|L|·6e-8/h ~ 1.5e-5) bounds (1) near
     * 3e-3; the float64 loss leaves only fp32 rounding of x ± h·d and O(h²) terms. */
    TEST_CHECK(err < 3e-3, "N=%zu K=%d: directional derivative of our fp32 forward %.6e vs analytic %.6e, rel err %.2e",
               N, K, fd, an, err);
    TEST_CHECK(err64 < 1e-4, "N=%zu K=%d: directional derivative of the float64 loss %.6e vs analytic %.6e, rel err %.2e",
               N, K, fd64, an, err64);
    free(grad);
    free(d);
    free(x0);
    teardown(&c);
}

static void time_training_size(Backend *be) {
    const size_t N = 8 * 320 * 320;
    const int K = 14;
    LossCtx c;
    setup(&c, be, N, K, K, 3.0f, 7);
    float *grad = calloc(N * K, sizeof(float));
    float loss[3];
    /* warm-up (page faults, workspace growth) */
    cpu_dice_ce_forward(be, loss, c.probs, c.stats, (const Act *)c.logits, c.labels, N, K, c.wd, c.wce);
    cpu_dice_ce_backward(be, (Act *)grad, c.probs, c.stats, c.labels, N, K, c.wd, c.wce, 1.0f);
    const int reps = 5;
    double tf = 1e30, tb = 1e30; /* best of reps: the build machine is shared */
    for (int i = 0; i < reps; i++) {
        double t0 = omp_get_wtime();
        cpu_dice_ce_forward(be, loss, c.probs, c.stats, (const Act *)c.logits, c.labels, N, K, c.wd, c.wce);
        double t1 = omp_get_wtime();
        cpu_dice_ce_backward(be, (Act *)grad, c.probs, c.stats, c.labels, N, K, c.wd, c.wce, 1.0f);
        double t2 = omp_get_wtime();
        tf = fmin(tf, t1 - t0);
        tb = fmin(tb, t2 - t1);
    }
    printf("timing: dice_ce N=8*320*320 K=14 with %d threads, best of %d: forward %.2f ms, backward %.2f ms, "
           "total %.2f ms\n", omp_get_max_threads(), reps, 1e3 * tf, 1e3 * tb, 1e3 * (tf + tb));
    TEST_CHECK(isfinite(loss[0]), "training-size loss is finite (%.5f)", (double)loss[0]);
    free(grad);
    teardown(&c);
}

int main(void) {
    Backend *be = backend_cpu_create(0);
    check_fd(be, 8, 2, 2, 2.0f, 0.5f, 1);
    check_fd(be, 8, 2, 1, 2.0f, 1.0f, 2);   /* foreground absent */
    check_fd(be, 12, 4, 4, 2.0f, 1.5f, 3);
    check_fd(be, 12, 4, 2, 3.0f, 1.0f, 4);  /* classes 2, 3 absent */
    check_fd(be, 16, 14, 14, 2.0f, 2.0f, 5);
    check_fd(be, 16, 14, 5, 2.0f, 1.0f, 6); /* most classes absent */
    check_directional(be, 2 * 32 * 32, 14, 14, 7);
    check_directional(be, 2 * 32 * 32, 4, 2, 8);
    time_training_size(be);
    be->destroy(be);
    return test_summary("test_gradcheck_loss");
}
