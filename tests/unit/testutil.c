/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int n_pass, n_fail;

void test_check(int ok, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok) printf("  (%s:%d)", file, line);
    printf("\n");
    fflush(stdout);
    if (ok) n_pass++;
    else n_fail++;
}

int test_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, n_pass, n_fail);
    return (n_fail == 0 && n_pass > 0) ? 0 : 1;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float test_uniform(TestRng *r, float lo, float hi) {
    double u = (double)(splitmix64(&r->state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

void test_fill(float *x, size_t n, TestRng *r, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = test_uniform(r, lo, hi);
}

double test_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

double test_gradcheck(float *x, const float *analytic, size_t n, TestLossFn loss, void *ctx,
                      float eps, int probes, double floor) {
    double worst = 0;
    size_t step = n / (size_t)probes;
    if (step == 0) step = 1;
    for (size_t i = 0; i < n; i += step) {
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double fd = (lp - lm) / (2.0 * (double)eps);
        double an = analytic[i];
        double scale = fmax(fmax(fabs(fd), fabs(an)), floor);
        double err = fabs(fd - an) / scale;
        if (err > worst) worst = err;
    }
    return worst;
}
