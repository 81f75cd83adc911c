/* augment_intensity.c — the per-channel intensity transforms: Gaussian noise, Gaussian blur,
 * multiplicative brightness, contrast, gamma. Each follows batchgenerators' function of the
 * same name (formulas, clipping, epsilons); means and deviations are accumulated in double. */
#include <math.h>
#include <string.h>

#include "augment.h"
#include "rng.h"

void aug_noise(float *x, size_t n, double std, uint64_t key) {
    for (size_t i = 0; i < n; i++) x[i] += (float)(std * rng_normal(rng_key(key, 0, i)));
}

void aug_scale(float *x, size_t n, double mult) {
    float m = (float)mult;
    for (size_t i = 0; i < n; i++) x[i] *= m;
}

static double mean_of(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return n ? s / (double)n : 0.0;
}

/* population standard deviation (numpy's default ddof 0) */
static double std_of(const float *x, size_t n, double mean) {
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        s += d * d;
    }
    return n ? sqrt(s / (double)n) : 0.0;
}

static void min_max(const float *x, size_t n, float *lo, float *hi) {
    float a = x[0], b = x[0];
    for (size_t i = 1; i < n; i++) {
        a = x[i] < a ? x[i] : a;
        b = x[i] > b ? x[i] : b;
    }
    *lo = a, *hi = b;
}

void aug_contrast(float *x, size_t n, double factor) {
    if (n == 0) return;
    float mn = (float)mean_of(x, n), lo, hi;
    min_max(x, n, &lo, &hi);
    float f = (float)factor;
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mn) * f + mn;
        x[i] = v < lo ? lo : (v > hi ? hi : v);
    }
}

void aug_gamma(float *x, size_t n, double gamma, int invert, int retain_stats) {
    if (n == 0) return;
    if (invert)
        for (size_t i = 0; i < n; i++) x[i] = -x[i];
    double mn = 0, sd = 0;
    if (retain_stats) {
        mn = mean_of(x, n);
        sd = std_of(x, n, mn);
    }
    float lo, hi;
    min_max(x, n, &lo, &hi);
    const double eps = 1e-7;
    float rnge = (float)((double)(hi - lo) + eps), g = (float)gamma;
    for (size_t i = 0; i < n; i++) x[i] = powf((x[i] - lo) / rnge, g) * rnge + lo;
    if (retain_stats) {
        double m2 = mean_of(x, n);
        for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] - m2);
        double s2 = std_of(x, n, mean_of(x, n));
        float k = (float)(sd / (s2 + 1e-8));
        for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] * k + mn);
    }
    if (invert)
        for (size_t i = 0; i < n; i++) x[i] = -x[i];
}

/* scipy's 'reflect' (half-sample symmetric): -1 -> 0, n -> n-1. */
static inline int reflect_index(int k, int n) {
    int period = 2 * n;
    k %= period;
    if (k < 0) k += period;
    return k < n ? k : period - 1 - k;
}

void aug_blur(float *x, int H, int W, double sigma, float *scratch) {
    int r = (int)(4.0 * sigma + 0.5);
    if (r < 1 || r > 64) return;
    double wd[129], sum = 0;
    for (int k = -r; k <= r; k++) sum += (wd[k + r] = exp(-0.5 / (sigma * sigma) * k * k));
    float wk[129];
    for (int k = 0; k <= 2 * r; k++) wk[k] = (float)(wd[k] / sum);
    /* axis 0 (down the columns) into scratch, vectorised across each row */
    for (int y = 0; y < H; y++) {
        float *o = scratch + (size_t)y * W;
        for (int xx = 0; xx < W; xx++) o[xx] = 0.0f;
        for (int k = -r; k <= r; k++) {
            const float *src = x + (size_t)reflect_index(y + k, H) * W;
            float wgt = wk[k + r];
            for (int xx = 0; xx < W; xx++) o[xx] += wgt * src[xx];
        }
    }
    /* axis 1 (along the rows) back into x, through a reflect-padded line */
    float line[8192 + 130];
    if (W > 8192) return;
    for (int y = 0; y < H; y++) {
        const float *s = scratch + (size_t)y * W;
        for (int k = -r; k < W + r; k++) line[k + r] = s[reflect_index(k, W)];
        float *o = x + (size_t)y * W;
        for (int xx = 0; xx < W; xx++) {
            float acc = 0.0f;
            for (int k = 0; k <= 2 * r; k++) acc += wk[k] * line[xx + k];
            o[xx] = acc;
        }
    }
}
