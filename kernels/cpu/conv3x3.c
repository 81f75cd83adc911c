/* conv3x3.c — 3x3 convolution, zero pad 1, stride 1 or 2, with bias (NHWC activations,
 * PyTorch weight layout (Co, Ci, 3, 3)).
 *
 * Both directions are im2col + one cblas_sgemm per chunk of output pixels.
 *
 * Column order. A row of the im2col matrix holds the receptive field of one output pixel
 * in (kh, kw, ci) order: with NHWC input each tap is then one contiguous Ci-float copy,
 * which is several times cheaper than the strided scatter the (ci, kh, kw) order of the
 * PyTorch weight rows would need. The price is a permuted copy of the weight,
 * wp (Co, 3, 3, Ci), of only Co*Ci*9 floats (83k for 96→96), made per call.
 *
 *   forward : out(M, Co)  = col(M, K) · wpᵀ + b          K = 9*Ci, M = B*Ho*Wo
 *   backward: dwp(Co, K) += doutᵀ · col      → dw += unpermute(dwp)
 *             db         += Σ_m dout
 *             dcol(M, K)  = dout · wp        → din += col2im(dcol)   (gather, race-free)
 *
 * Chunking. The im2col matrix is M*K floats (177 MB for 96 channels at 80x80, batch 8;
 * 354 MB for the 48-channel stem conv at 160x160, batch 8), so output pixels are processed in
 * chunks whose column buffers stay under CONV_COL_BUDGET bytes. All temporaries live in the
 * backend workspace (one allocation, carved up below).
 */
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

/* Upper bound for the im2col (+ dcol) buffers of one chunk. */
#define CONV_COL_BUDGET ((size_t)256 << 20)

/* Round a float count up to a multiple of 16 floats (64 bytes) so carved buffers stay aligned. */
static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* db[c] += Σ_m x[m, c] for a row-major (M, C) matrix. Each channel is summed serially in
 * m order (in double), so the result does not depend on the thread count; threads split
 * the channels. */
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

/* wp[co][(kh*3 + kw)*Ci + ci] = w[co][ci][kh][kw] */
static void permute_weight(float *wp,      /* (Co, 3, 3, Ci) */
                           const float *w, /* (Co, Ci, 3, 3) */
                           int Ci, int Co) {
#pragma omp parallel for schedule(static)
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < Ci; ci++)
            for (int t = 0; t < 9; t++)
                wp[(size_t)co * 9 * Ci + (size_t)t * Ci + ci] = w[((size_t)co * Ci + ci) * 9 + t];
}

/* Output pixels per chunk so that `nbuf` (M_chunk, K) buffers fit the budget. */
static size_t chunk_rows(size_t M, size_t K, int nbuf) {
    size_t rows = CONV_COL_BUDGET / (K * sizeof(float) * (size_t)nbuf);
    if (rows < 1) rows = 1;
    if (rows > M) rows = M;
    /* cblas takes int sizes; K*rows is the largest leading product we form. */
    if (rows > (size_t)INT_MAX / K) rows = (size_t)INT_MAX / K;
    return rows;
}

/* col[m - m0][(kh*3 + kw)*Ci + ci] = in[b, oy*s - 1 + kh, ox*s - 1 + kw, ci] (0 outside). */
static void im2col(float *col,       /* (m1 - m0, 9*Ci) */
                   const float *in,  /* (B, H, W, Ci) */
                   size_t m0, size_t m1, int H, int W, int Ci, int Ho, int Wo, int s) {
    size_t K = (size_t)9 * Ci;
#pragma omp parallel for schedule(static)
    for (size_t m = m0; m < m1; m++) {
        size_t b = m / ((size_t)Ho * Wo);
        int oy = (int)(m / Wo % Ho), ox = (int)(m % Wo);
        float *dst = col + (m - m0) * K;
        for (int kh = 0; kh < 3; kh++) {
            int iy = oy * s - 1 + kh;
            int ix0 = ox * s - 1;
            /* The 3 taps of a kernel row are 3 adjacent input pixels: away from the border
             * they are one contiguous 3*Ci run, in the same order as the column. */
            if (iy >= 0 && iy < H && ix0 >= 0 && ix0 + 2 < W) {
                memcpy(dst + (size_t)kh * 3 * Ci, in + (((b * H + iy) * W) + ix0) * Ci,
                       (size_t)3 * Ci * sizeof(float));
                continue;
            }
            for (int kw = 0; kw < 3; kw++) {
                int ix = ox * s - 1 + kw;
                float *d = dst + (size_t)(kh * 3 + kw) * Ci;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                    memset(d, 0, (size_t)Ci * sizeof(float));
                else
                    memcpy(d, in + (((b * H + iy) * W) + ix) * Ci, (size_t)Ci * sizeof(float));
            }
        }
    }
}

/* din[b, iy, ix, :] += Σ over taps whose output pixel m lies in [m0, m1) of dcol[m - m0][tap].
 * Written as a gather over input pixels so that threads never write the same element. */
static void col2im_acc(float *din,        /* (B, H, W, Ci) */
                       const float *dcol, /* (m1 - m0, 9*Ci) */
                       size_t m0, size_t m1, int H, int W, int Ci, int Ho, int Wo, int s) {
    size_t K = (size_t)9 * Ci;
    /* Input rows (flattened b*H + iy) that the chunk's output pixels can reach. */
    size_t HoWo = (size_t)Ho * Wo;
    size_t bf = m0 / HoWo, bl = (m1 - 1) / HoWo;
    int oyf = (int)(m0 / Wo % Ho), oyl = (int)((m1 - 1) / Wo % Ho);
    long r_lo = (long)(bf * H) + (oyf * s - 1 > 0 ? oyf * s - 1 : 0);
    long r_hi = (long)(bl * H) + (oyl * s + 1 < H - 1 ? oyl * s + 1 : H - 1);
#pragma omp parallel for schedule(static)
    for (long r = r_lo; r <= r_hi; r++) {
        size_t b = (size_t)r / H;
        int iy = (int)(r % H);
        for (int ix = 0; ix < W; ix++) {
            float *dst = din + ((size_t)r * W + ix) * Ci;
            for (int kh = 0; kh < 3; kh++) {
                int ty = iy + 1 - kh; /* = oy * s */
                if (ty < 0 || ty % s) continue;
                int oy = ty / s;
                if (oy >= Ho) continue;
                for (int kw = 0; kw < 3; kw++) {
                    int tx = ix + 1 - kw;
                    if (tx < 0 || tx % s) continue;
                    int ox = tx / s;
                    if (ox >= Wo) continue;
                    size_t m = (b * Ho + oy) * Wo + ox;
                    if (m < m0 || m >= m1) continue;
                    const float *src = dcol + (m - m0) * K + (size_t)(kh * 3 + kw) * Ci;
                    for (int ci = 0; ci < Ci; ci++) dst[ci] += src[ci];
                }
            }
        }
    }
}

void cpu_conv3x3_forward(Backend *be,
                         Act *out_act,      /* (B, Ho, Wo, Co) */
                         const Act *in_act, /* (B, H, W, Ci) */
                         const float *w,    /* (Co, Ci, 3, 3) */
                         const float *b,    /* (Co) */
                         int B, int H, int W, int Ci, int Co, int stride) {
    float *out = (float *)out_act;           /* (B, Ho, Wo, Co) */
    const float *in = (const float *)in_act; /* (B, H, W, Ci) */
    CHECK(stride == 1 || stride == 2, "conv3x3: stride %d not supported", stride);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t M = (size_t)B * Ho * Wo, K = (size_t)9 * Ci;
    if (M == 0) return;
    size_t mc = chunk_rows(M, K, 1);
    size_t wp_n = align16((size_t)Co * K);
    float *ws = cpu_workspace(be, (wp_n + mc * K) * sizeof(float));
    float *wp = ws;        /* (Co, 3, 3, Ci) */
    float *col = ws + wp_n; /* (mc, K) */
    permute_weight(wp, w, Ci, Co);

    for (size_t m0 = 0; m0 < M; m0 += mc) {
        size_t m1 = m0 + mc < M ? m0 + mc : M;
        float *o = out + m0 * Co; /* (m1 - m0, Co) */
        im2col(col, in, m0, m1, H, W, Ci, Ho, Wo, stride);
        /* Prefill with the bias and let the GEMM add onto it (beta = 1): saves a pass. */
#pragma omp parallel for schedule(static)
        for (size_t m = 0; m < m1 - m0; m++) memcpy(o + m * Co, b, (size_t)Co * sizeof(float));
        cpu_sgemm(0, 1, (int)(m1 - m0), Co, (int)K, 1.0f, col,
                    (int)K, wp, (int)K, 1.0f, o, Co);
    }
}

void cpu_conv3x3_backward(Backend *be,
                          Act *din_act,        /* (B, H, W, Ci) or NULL */
                          float *dw,           /* (Co, Ci, 3, 3) */
                          float *db,           /* (Co) */
                          const Act *dout_act, /* (B, Ho, Wo, Co) */
                          const Act *in_act,   /* (B, H, W, Ci) */
                          const float *w,      /* (Co, Ci, 3, 3) */
                          int B, int H, int W, int Ci, int Co, int stride) {
    float *din = (float *)din_act;               /* (B, H, W, Ci) or NULL */
    const float *dout = (const float *)dout_act; /* (B, Ho, Wo, Co) */
    const float *in = (const float *)in_act;     /* (B, H, W, Ci) */
    CHECK(stride == 1 || stride == 2, "conv3x3: stride %d not supported", stride);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t M = (size_t)B * Ho * Wo, K = (size_t)9 * Ci;
    if (M == 0) return;
    size_t mc = chunk_rows(M, K, din ? 2 : 1);
    size_t wp_n = align16((size_t)Co * K), col_n = align16(mc * K);
    float *ws = cpu_workspace(be, (2 * wp_n + col_n + (din ? col_n : 0)) * sizeof(float));
    float *wp = ws;                  /* (Co, 3, 3, Ci) permuted weight */
    float *dwp = ws + wp_n;          /* (Co, 3, 3, Ci) weight gradient, permuted */
    float *col = ws + 2 * wp_n;      /* (mc, K) */
    float *dcol = col + col_n;       /* (mc, K), only when din is wanted */
    if (din) permute_weight(wp, w, Ci, Co);

    colsum_acc(db, dout, M, Co);
    for (size_t m0 = 0; m0 < M; m0 += mc) {
        size_t m1 = m0 + mc < M ? m0 + mc : M;
        int mcur = (int)(m1 - m0);
        const float *g = dout + m0 * Co; /* (mcur, Co) */
        im2col(col, in, m0, m1, H, W, Ci, Ho, Wo, stride);
        /* dwp = Σ_chunks gᵀ · col; the first chunk overwrites the (dirty) workspace. */
        cpu_sgemm(1, 0, Co, (int)K, mcur, 1.0f, g, Co, col,
                    (int)K, m0 == 0 ? 0.0f : 1.0f, dwp, (int)K);
        if (din) {
            cpu_sgemm(0, 0, mcur, (int)K, Co, 1.0f, g, Co,
                        wp, (int)K, 0.0f, dcol, (int)K);
            col2im_acc(din, dcol, m0, m1, H, W, Ci, Ho, Wo, stride);
        }
    }
    /* dw[co][ci][kh][kw] += dwp[co][(kh*3 + kw)*Ci + ci] */
#pragma omp parallel for schedule(static)
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < Ci; ci++)
            for (int t = 0; t < 9; t++)
                dw[((size_t)co * Ci + ci) * 9 + t] += dwp[(size_t)co * K + (size_t)t * Ci + ci];
}
