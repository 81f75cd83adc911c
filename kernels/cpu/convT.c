/* convT.c — transposed convolution with kernel == stride == k (k = 2 or 4), with bias
 * (NHWC; weight (Ci, Co, k, k) as PyTorch's ConvTranspose2d).
 *
 * The kernel windows do not overlap, so every input pixel produces its own k×k×Co output
 * block: one GEMM G(M, k*k*Co) = in(M, Ci) · wp(Ci, k*k*Co), M = B*H*W, then a scatter.
 * The weight is permuted per call to wp[ci][(i*k + j)*Co + co] = w[ci][co][i][j] (Ci*Co*k²
 * floats, tiny): with that column order, output row i of a pixel's block is one contiguous
 * run of k*Co floats both in G and in the NHWC output, so scatter and gather are plain copies.
 *
 *   forward : out[b, h*k+i, w*k+j, :] = G[m, (i*k+j)*Co : +Co] + bias (convT_forward_add: then + skip)
 *   backward: G = gather(dout) (same layout)
 *             dwp += inᵀ · G  → dw += unpermute(dwp)
 *             din += G · wpᵀ
 *             db  += Σ over output pixels of dout
 * Chunked over M so G stays under CONVT_BUDGET bytes.
 */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

#define CONVT_BUDGET ((size_t)256 << 20)

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* db[c] += Σ_m x[m, c]; each channel summed serially in m order in double (deterministic,
 * independent of the thread count); threads split the channels. */
static void colsum_acc(float *db,      /* (C) */
                       const float *x, /* (M, C) */
                       size_t M, int C) {
    enum { CB = 32 };
    int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        double acc[CB] = {0};
        for (size_t m = 0; m < M; m++) {
            const float *row = x + m * (size_t)C;
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) db[c] += (float)acc[c - c0];
    }
}

/* wp[ci][t*Co + co] = w[ci][co][t], t = i*k + j */
static void permute_weight(float *wp,      /* (Ci, k, k, Co) */
                           const float *w, /* (Ci, Co, k, k) */
                           int Ci, int Co, int kk) {
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < Ci; ci++)
        for (int co = 0; co < Co; co++)
            for (int t = 0; t < kk; t++)
                wp[((size_t)ci * kk + t) * Co + co] = w[((size_t)ci * Co + co) * kk + t];
}

static size_t chunk_rows(size_t M, size_t N2) {
    size_t rows = CONVT_BUDGET / (N2 * sizeof(float));
    if (rows < 1) rows = 1;
    if (rows > M) rows = M;
    if (rows > (size_t)INT_MAX / N2) rows = (size_t)INT_MAX / N2;
    return rows;
}

void cpu_convT_forward(Backend *be,
                       Act *out_act,      /* (B, H*k, W*k, Co) */
                       const Act *in_act, /* (B, H, W, Ci) */
                       const float *w,    /* (Ci, Co, k, k) */
                       const float *b,    /* (Co) */
                       int B, int H, int W, int Ci, int Co, int k) {
    float *out = (float *)out_act;           /* (B, H*k, W*k, Co) */
    const float *in = (const float *)in_act; /* (B, H, W, Ci) */
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (M == 0) return;
    size_t mc = chunk_rows(M, N2);
    size_t wp_n = align16((size_t)Ci * N2);
    float *ws = cpu_workspace(be, (wp_n + mc * N2) * sizeof(float));
    float *wp = ws;        /* (Ci, k, k, Co) */
    float *G = ws + wp_n;  /* (mc, k, k, Co) */
    permute_weight(wp, w, Ci, Co, k * k);
    size_t Wk = (size_t)W * k, rowlen = (size_t)k * Co;

    for (size_t m0 = 0; m0 < M; m0 += mc) {
        size_t m1 = m0 + mc < M ? m0 + mc : M;
        cpu_sgemm(0, 0, (int)(m1 - m0), (int)N2, Ci, 1.0f,
                    in + m0 * Ci, Ci, wp, (int)N2, 0.0f, G, (int)N2);
#pragma omp parallel for schedule(static)
        for (size_t m = m0; m < m1; m++) {
            size_t bh = m / W; /* b*H + h */
            size_t x = m % W;
            for (int i = 0; i < k; i++) {
                float *dst = out + ((bh * k + i) * Wk + x * k) * Co; /* (k, Co) contiguous */
                const float *src = G + (m - m0) * N2 + i * rowlen;
                for (int j = 0; j < k; j++)
                    for (int co = 0; co < Co; co++)
                        dst[(size_t)j * Co + co] = src[(size_t)j * Co + co] + b[co];
            }
        }
    }
}

/* out = convT(in) + skip: the convT_forward + add(out, out, skip) sequence (the add's float sum,
 * commutative: the same bits as add(sum, t, skip)). */
void cpu_convT_forward_add(Backend *be, Act *out /* (B, H*k, W*k, Co) */, const Act *in /* (B, H, W, Ci) */,
                           const Act *skip /* (B, H*k, W*k, Co) */, const float *w /* (Ci, Co, k, k) */,
                           const float *b /* (Co) */, int B, int H, int W, int Ci, int Co, int k) {
    cpu_convT_forward(be, out, in, w, b, B, H, W, Ci, Co, k);
    cpu_add(be, out, out, skip, (size_t)B * H * k * W * k * Co);
}

void cpu_convT_backward(Backend *be,
                        Act *din_act,        /* (B, H, W, Ci) or NULL */
                        float *dw,           /* (Ci, Co, k, k) */
                        float *db,           /* (Co) */
                        const Act *dout_act, /* (B, H*k, W*k, Co) */
                        const Act *in_act,   /* (B, H, W, Ci) */
                        const float *w,      /* (Ci, Co, k, k) */
                        int B, int H, int W, int Ci, int Co, int k) {
    float *din = (float *)din_act;               /* (B, H, W, Ci) or NULL */
    const float *dout = (const float *)dout_act; /* (B, H*k, W*k, Co) */
    const float *in = (const float *)in_act;     /* (B, H, W, Ci) */
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (M == 0) return;
    int kk = k * k;
    size_t mc = chunk_rows(M, N2);
    size_t wp_n = align16((size_t)Ci * N2);
    float *ws = cpu_workspace(be, (2 * wp_n + mc * N2) * sizeof(float));
    float *wp = ws;           /* (Ci, k, k, Co) permuted weight */
    float *dwp = ws + wp_n;   /* (Ci, k, k, Co) permuted weight gradient */
    float *G = ws + 2 * wp_n; /* (mc, k, k, Co) gathered dout */
    if (din) permute_weight(wp, w, Ci, Co, kk);
    size_t Wk = (size_t)W * k, rowlen = (size_t)k * Co;

    colsum_acc(db, dout, M * kk, Co);
    for (size_t m0 = 0; m0 < M; m0 += mc) {
        size_t m1 = m0 + mc < M ? m0 + mc : M;
        int mcur = (int)(m1 - m0);
#pragma omp parallel for schedule(static)
        for (size_t m = m0; m < m1; m++) {
            size_t bh = m / W, x = m % W;
            for (int i = 0; i < k; i++)
                memcpy(G + (m - m0) * N2 + i * rowlen, dout + ((bh * k + i) * Wk + x * k) * Co,
                       rowlen * sizeof(float));
        }
        /* dwp = Σ_chunks inᵀ · G; the first chunk overwrites the (dirty) workspace. */
        cpu_sgemm(1, 0, Ci, (int)N2, mcur, 1.0f, in + m0 * Ci,
                    Ci, G, (int)N2, m0 == 0 ? 0.0f : 1.0f, dwp, (int)N2);
        if (din)
            cpu_sgemm(0, 1, mcur, Ci, (int)N2, 1.0f, G,
                        (int)N2, wp, (int)N2, 1.0f, din + m0 * Ci, Ci);
    }
    /* dw[ci][co][t] += dwp[ci][t][co] */
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < Ci; ci++)
        for (int co = 0; co < Co; co++)
            for (int t = 0; t < kk; t++)
                dw[((size_t)ci * Co + co) * kk + t] += dwp[((size_t)ci * kk + t) * Co + co];
}
