/* loss.c — nnU-Net v1 DC_and_CE_loss (soft Dice + cross-entropy) and label downsampling.
 *
 * The loss is
 *   p = softmax(logits) per pixel, y = one-hot(labels)
 *   tp_c = Σ_n p·y, fp_c = Σ_n p·(1−y), fn_c = Σ_n (1−p)·y      (batch dice: all N pixels)
 *   dc_c = (2 tp_c + s) / (2 tp_c + fp_c + fn_c + s + 1e-8),  s = 1e-5
 *   dice = −mean_{c=1..K−1} dc_c                                  (background excluded)
 *   ce   = mean_n −log p[n, y_n]
 *   total = w_dice·dice + w_ce·ce
 * Per-class sums run over up to 8·320·320 pixels, so they are accumulated in double, over a
 * fixed partition of the pixels (chunk partials summed in chunk order), which makes the
 * result independent of the number of threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

#define DICE_SMOOTH 1e-5
#define DICE_EPS 1e-8
/* Pixels per partial-sum chunk: large enough to amortise the partial, small enough that
 * 8·320·320 pixels split into ~200 chunks and balance over the threads. */
#define LOSS_CHUNK 4096

/* Per chunk we keep K entries each of Σp (psum), Σp·y (tp), Σy (count), plus the CE sum,
 * padded so chunks do not share cache lines. */
static size_t chunk_stride(int K) { return ((size_t)3 * (size_t)K + 1 + 7) / 8 * 8; }

void cpu_dice_ce_forward(Backend *be, float *loss, /* (3) */ float *probs, /* (N, K) saved softmax */
                         float *stats, /* (3, K): tp, fp, fn per class */ const Act *logits_act, /* (N, K) */
                         const int32_t *labels, /* (N) values in [0, K) */ size_t N, int K, float w_dice,
                         float w_ce) {
    const float *logits = (const float *)logits_act; /* (N, K) */
    CHECK(K >= 2, "dice_ce_forward: K = %d, need at least 2 classes (background + one)", K);
    CHECK(N > 0, "dice_ce_forward: no pixels");
    const size_t nchunks = (N + LOSS_CHUNK - 1) / LOSS_CHUNK;
    const size_t stride = chunk_stride(K);
    double *part = cpu_workspace(be, nchunks * stride * sizeof(double)); /* (nchunks, stride) */
    long long bad = -1; /* index of some out-of-range label, reported after the loop */

#pragma omp parallel for schedule(static) reduction(max : bad)
    for (size_t ch = 0; ch < nchunks; ch++) {
        double *psum = part + ch * stride; /* (K) */
        double *tp = psum + K;             /* (K) */
        double *cnt = tp + K;              /* (K) */
        double ce = 0;
        memset(psum, 0, stride * sizeof(double));
        size_t n0 = ch * LOSS_CHUNK, n1 = n0 + LOSS_CHUNK < N ? n0 + LOSS_CHUNK : N;
        for (size_t n = n0; n < n1; n++) {
            const float *x = logits + n * (size_t)K; /* (K) */
            float *p = probs + n * (size_t)K;        /* (K) */
            int32_t y = labels[n];
            if (y < 0 || y >= K) {
                if ((long long)n > bad) bad = (long long)n;
                y = 0; /* keep going; we die below with the index */
            }
            float m = x[0];
            for (int c = 1; c < K; c++) m = x[c] > m ? x[c] : m;
            float s = 0;
            for (int c = 0; c < K; c++) {
                p[c] = expf(x[c] - m);
                s += p[c];
            }
            float inv = 1.0f / s;
            for (int c = 0; c < K; c++) {
                p[c] *= inv;
                psum[c] += p[c];
            }
            tp[y] += p[y];
            cnt[y] += 1;
            /* −log softmax[y] = log Σ exp(x − m) − (x_y − m): exact even when p[y] underflows. */
            ce += (double)logf(s) - (double)(x[y] - m);
        }
        cnt[K] = ce; /* the slot after the K counts */
    }
    if (bad >= 0)
        die("dice_ce_forward: label %d at pixel %lld is outside [0, %d)", (int)labels[bad], bad, K);

    /* Fixed-order reduction of the chunk partials. */
    double tot[3 * 64 + 1];
    double *tot_heap = NULL;
    double *t = tot;
    if ((size_t)3 * (size_t)K + 1 > sizeof tot / sizeof tot[0]) t = tot_heap = xcalloc((size_t)3 * K + 1, sizeof(double));
    memset(t, 0, ((size_t)3 * K + 1) * sizeof(double));
    for (size_t ch = 0; ch < nchunks; ch++)
        for (int i = 0; i < 3 * K + 1; i++) t[i] += part[ch * stride + (size_t)i];
    const double *psum = t, *tp = t + K, *cnt = t + 2 * K;
    double ce = t[3 * K] / (double)N;

    double dc_sum = 0;
    for (int c = 0; c < K; c++) {
        double fp = psum[c] - tp[c]; /* Σ p(1−y) = Σ p − Σ p·y */
        double fn = cnt[c] - tp[c];  /* Σ (1−p)y = Σ y − Σ p·y */
        stats[0 * K + c] = (float)tp[c];
        stats[1 * K + c] = (float)fp;
        stats[2 * K + c] = (float)fn;
        if (c == 0) continue; /* do_bg = False */
        dc_sum += (2 * tp[c] + DICE_SMOOTH) / (2 * tp[c] + fp + fn + DICE_SMOOTH + DICE_EPS);
    }
    double dice = -dc_sum / (double)(K - 1);
    loss[0] = (float)((double)w_dice * dice + (double)w_ce * ce);
    loss[1] = (float)dice;
    loss[2] = (float)ce;
    free(tot_heap);
}

/* d total / d logits, through the softmax:
 *   d dc_c / d p[n,c] = (2 y[n,c] den_c − num_c) / den_c²   (den_c = 2tp+fp+fn+s+1e-8, num_c = 2tp+s)
 *   g[n,c] = d total / d p[n,c] (Dice part) = −w_dice/(K−1) · that, for c ≥ 1; 0 for c = 0
 *   dlogits[n,j] += dloss · ( p_j (g_j − Σ_k p_k g_k) + w_ce (p_j − y_j) / N )                 */
void cpu_dice_ce_backward(Backend *be, Act *dlogits_act, /* (N, K) */ const float *probs, /* (N, K) */
                          const float *stats, /* (3, K) */ const int32_t *labels, /* (N) */ size_t N, int K,
                          float w_dice, float w_ce, float dloss) {
    float *dlogits = (float *)dlogits_act; /* (N, K) */
    CHECK(K >= 2, "dice_ce_backward: K = %d, need at least 2 classes", K);
    /* Per class: g = gb[c] + (y == c ? gy[c] : 0). Coefficients in double, applied in float. */
    float *gb = cpu_workspace(be, 2 * (size_t)K * sizeof(float)); /* (K) */
    float *gy = gb + K;                                            /* (K) */
    const double wd = -(double)w_dice / (double)(K - 1);
    gb[0] = gy[0] = 0;
    for (int c = 1; c < K; c++) {
        double tp = stats[c], fp = stats[K + c], fn = stats[2 * K + c];
        double num = 2 * tp + DICE_SMOOTH;
        double den = 2 * tp + fp + fn + DICE_SMOOTH + DICE_EPS;
        gb[c] = (float)(wd * -num / (den * den));
        gy[c] = (float)(wd * 2.0 / den);
    }
    const float ce_scale = (float)((double)w_ce / (double)N);
    long long bad = -1;

#pragma omp parallel for schedule(static) reduction(max : bad)
    for (size_t n = 0; n < N; n++) {
        const float *p = probs + n * (size_t)K; /* (K) */
        float *d = dlogits + n * (size_t)K;     /* (K) */
        int32_t y = labels[n];
        if (y < 0 || y >= K) {
            if ((long long)n > bad) bad = (long long)n;
            continue;
        }
        float dot = 0; /* Σ_k p_k g_k */
        for (int c = 0; c < K; c++) dot += p[c] * gb[c];
        dot += p[y] * gy[y];
        for (int c = 0; c < K; c++) {
            float g = gb[c] + (c == y ? gy[c] : 0.0f);
            float ce = ce_scale * (p[c] - (c == y ? 1.0f : 0.0f));
            d[c] += dloss * (p[c] * (g - dot) + ce);
        }
    }
    if (bad >= 0)
        die("dice_ce_backward: label %d at pixel %lld is outside [0, %d)", (int)labels[bad], bad, K);
}

void cpu_downsample_labels(Backend *be, int32_t *out /* (B, H/f, W/f) */, const int32_t *in /* (B, H, W) */,
                           int B, int H, int W, int f) {
    CHECK(f >= 1, "downsample_labels: factor %d < 1", f);
    const int Ho = H / f, Wo = W / f, o = f / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < Ho; y++) {
            const int32_t *src = in + ((size_t)b * H + (size_t)y * f + o) * (size_t)W + o; /* row, first pick */
            int32_t *dst = out + ((size_t)b * Ho + y) * (size_t)Wo;                         /* (Wo) */
            for (int x = 0; x < Wo; x++) dst[x] = src[(size_t)x * f];
        }
}

/* The deep-supervision total (backend_ops.h): the arithmetic model_loss did on the host, in the
 * same order, so the CPU backend's loss is the one it printed before. */
void cpu_loss_total(Backend *be, float *out /* (3) */, const float *stats /* (n_out, 3, K) + (n_out, 3) */,
                    int n_out, int K, float w_dice, float w_ce, float lw0, float lw1, float lw2) {
    (void)be;
    const float lw[3] = {lw0, lw1, lw2};
    const float *terms = stats + (size_t)n_out * 3 * (size_t)K;
    double total = 0.0;
    for (int k = 0; k < n_out; k++) {
        const float *s = stats + (size_t)k * 3 * (size_t)K;
        double dc_sum = 0;
        for (int c = 1; c < K; c++) {
            double tp = s[c], fp = s[K + c], fn = s[2 * K + c];
            dc_sum += (2 * tp + DICE_SMOOTH) / (2 * tp + fp + fn + DICE_SMOOTH + DICE_EPS);
        }
        double dice = -dc_sum / (K - 1), ce = (double)terms[3 * k + 2];
        total += lw[k] * (w_dice * dice + w_ce * ce);
        if (k == 0) {
            out[1] = (float)dice;
            out[2] = (float)ce;
        }
    }
    out[0] = (float)total;
}
