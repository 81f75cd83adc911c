/* dwconv7.c — depthwise 7x7 convolution, zero pad 3, stride 1, with bias (NHWC; weight
 * (C, 1, 7, 7) as PyTorch's Conv2d(groups=C)).
 *
 * With NHWC the channel dimension is innermost, so every tap is an elementwise multiply-add
 * of two contiguous C-vectors: the kernels below loop over channels innermost (the compiler
 * vectorises it) against a transposed weight table wt[tap][c], with small register tiles
 * (pixels × channels, or taps × channels) so that accumulators are not re-loaded and
 * re-stored per tap. Threads split image rows (b, y); each writes only its own output row.
 *
 * Backward:
 *   din = the same correlation with the kernel flipped by 180°, gathered per din row;
 *   dw[c][tap] = Σ_{b,y,x} dout[b,y,x,c] · in[b, y+i-3, x+j-3, c], db[c] = Σ dout[.., c].
 * The dw/db reductions use a FIXED partition of the rows into DW_CHUNKS chunks, one partial
 * per chunk, summed in chunk order afterwards: deterministic and independent of the thread
 * count.
 *
 * dwconv7_layernorm_forward is dwconv7_forward, then layernorm_forward (layernorm.c).
 */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

#define DW_CHUNKS 32

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* wt[t][c] = w[c][t], and when flip: wt[t][c] = w[c][48 - t] (the 180° rotated kernel,
 * since tap (i, j) ↦ (6 - i, 6 - j) is t ↦ 48 - t). */
static void transpose_weight(float *wt,      /* (49, C) */
                             const float *w, /* (C, 1, 7, 7) */
                             int C, int flip) {
    for (int t = 0; t < 49; t++)
        for (int c = 0; c < C; c++) wt[(size_t)t * C + c] = w[(size_t)c * 49 + (flip ? 48 - t : t)];
}

/* dst[x, c] += Σ_{i,j} src[y + i - 3, x + j - 3, c] · wt[i*7 + j, c] for one output row y
 * of one image (zero outside the image).
 *
 * Register blocking: a tile of XB output pixels × CB channels is accumulated in registers
 * over all 49 taps and stored once (the plain "row += shifted row · w" form re-loads and
 * re-stores the output for every tap, and is load/store bound). Each weight vector load is
 * shared by the XB pixels. Tiles whose taps may fall outside the row take the checked path;
 * `check` is a compile-time constant in each call, so the interior path has no branches. */
enum { XB = 4, CB = 8 };

static inline void tile(float *restrict dst, const float *restrict src, const float *restrict wt,
                        int y, int H, int W, int C, int x0, int c0, int check) {
    float acc[XB][CB];
    for (int u = 0; u < XB; u++)
        for (int c = 0; c < CB; c++) acc[u][c] = dst[(size_t)(x0 + u) * C + c0 + c];
    for (int i = 0; i < 7; i++) {
        int yy = y + i - 3;
        if (yy < 0 || yy >= H) continue;
        const float *srow = src + (size_t)yy * W * C + c0;
        for (int j = 0; j < 7; j++) {
            const float *wv = wt + (size_t)(i * 7 + j) * C + c0;
            for (int u = 0; u < XB; u++) {
                int xx = x0 + u + j - 3;
                if (check && (xx < 0 || xx >= W)) continue;
                const float *s = srow + (size_t)xx * C;
                for (int c = 0; c < CB; c++) acc[u][c] += s[c] * wv[c];
            }
        }
    }
    for (int u = 0; u < XB; u++)
        for (int c = 0; c < CB; c++) dst[(size_t)(x0 + u) * C + c0 + c] = acc[u][c];
}

static void row_correlate(float *restrict dst,       /* (W, C) */
                          const float *restrict src, /* (H, W, C) one image */
                          const float *restrict wt,  /* (49, C) */
                          int y, int H, int W, int C) {
    int cfull = C / CB * CB, xfull = W / XB * XB;
    for (int x0 = 0; x0 < xfull; x0 += XB) {
        int interior = x0 >= 3 && x0 + XB - 1 + 3 < W;
        for (int c0 = 0; c0 < cfull; c0 += CB) {
            if (interior) tile(dst, src, wt, y, H, W, C, x0, c0, 0);
            else tile(dst, src, wt, y, H, W, C, x0, c0, 1);
        }
    }
    /* Leftover pixels (x >= xfull) and channels (c >= cfull): plain checked loops. */
    for (int i = 0; i < 7; i++) {
        int yy = y + i - 3;
        if (yy < 0 || yy >= H) continue;
        const float *srow = src + (size_t)yy * W * C;
        for (int j = 0; j < 7; j++) {
            const float *wv = wt + (size_t)(i * 7 + j) * C;
            for (int x = 0; x < W; x++) {
                int xx = x + j - 3;
                if (xx < 0 || xx >= W) continue;
                float *d = dst + (size_t)x * C;
                const float *s = srow + (size_t)xx * C;
                for (int c = (x < xfull ? cfull : 0); c < C; c++) d[c] += s[c] * wv[c];
            }
        }
    }
}

/* pw[(i*7 + j), c] += Σ_{x in [xa, xb)} g[x, c] · srow[x + j - 3, c] for the 7 taps j of one
 * kernel row i, channels [c0, c0 + DCB). The 7 tap accumulators of a channel block stay in
 * registers across the pixel loop (the plain form re-loads and re-stores them per pixel).
 * `check` (a constant in each call) guards taps that fall outside the row. */
enum { DCB = 4 };

static inline void dw_tile(float *restrict pw, const float *restrict g, const float *restrict srow,
                           int i, int W, int C, int xa, int xb, int c0, int check) {
    float a[7][DCB];
    for (int j = 0; j < 7; j++)
        for (int c = 0; c < DCB; c++) a[j][c] = pw[(size_t)(i * 7 + j) * C + c0 + c];
    for (int x = xa; x < xb; x++) {
        const float *gv = g + (size_t)x * C + c0;
        for (int j = 0; j < 7; j++) {
            int xx = x + j - 3;
            if (check && (xx < 0 || xx >= W)) continue;
            const float *sv = srow + (size_t)xx * C + c0;
            for (int c = 0; c < DCB; c++) a[j][c] += gv[c] * sv[c];
        }
    }
    for (int j = 0; j < 7; j++)
        for (int c = 0; c < DCB; c++) pw[(size_t)(i * 7 + j) * C + c0 + c] = a[j][c];
}

/* One dout row g against input row srow (kernel row i), all channels, into the partial pw. */
static void dw_row(float *restrict pw,                                   /* (49, C) */
                   const float *restrict g, const float *restrict srow, /* (W, C) each */
                   int i, int W, int C) {
    enum { XBLK = 16 }; /* pixels per pass: keeps the two row slices L1-resident */
    int cfull = C / DCB * DCB;
    for (int xb0 = 0; xb0 < W; xb0 += XBLK) {
        int xe = xb0 + XBLK < W ? xb0 + XBLK : W;
        /* [lo, hi): pixels whose 7 taps are all inside the row */
        int lo = xb0 > 3 ? xb0 : 3, hi = xe < W - 3 ? xe : W - 3;
        if (hi < lo) lo = hi = xe;
        for (int c0 = 0; c0 < cfull; c0 += DCB) {
            dw_tile(pw, g, srow, i, W, C, xb0, lo, c0, 1);
            dw_tile(pw, g, srow, i, W, C, lo, hi, c0, 0);
            dw_tile(pw, g, srow, i, W, C, hi, xe, c0, 1);
        }
        for (int j = 0; j < 7; j++) { /* leftover channels */
            float *acc = pw + (size_t)(i * 7 + j) * C;
            for (int x = xb0; x < xe; x++) {
                int xx = x + j - 3;
                if (xx < 0 || xx >= W) continue;
                for (int c = cfull; c < C; c++) acc[c] += g[(size_t)x * C + c] * srow[(size_t)xx * C + c];
            }
        }
    }
}

/* dst (W, C) = row y of image img's conv: the bias, then the 49 taps (wt: transpose_weight's). */
static void conv_row(float *dst, const float *img, const float *wt, const float *b, int y, int H, int W, int C) {
    for (int x = 0; x < W; x++) memcpy(dst + (size_t)x * C, b, (size_t)C * sizeof(float));
    row_correlate(dst, img, wt, y, H, W, C);
}

void cpu_dwconv7_forward(Backend *be,
                         Act *out_act,      /* (B, H, W, C) */
                         const Act *in_act, /* (B, H, W, C) */
                         const float *w,    /* (C, 1, 7, 7) */
                         const float *b,    /* (C) */
                         int B, int H, int W, int C) {
    float *out = (float *)out_act;           /* (B, H, W, C) */
    const float *in = (const float *)in_act; /* (B, H, W, C) */
    float *wt = cpu_workspace(be, (size_t)49 * C * sizeof(float)); /* (49, C) */
    transpose_weight(wt, w, C, 0);
    size_t img = (size_t)H * W * C;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < (long)B * H; r++) {
        int bi = (int)(r / H), y = (int)(r % H);
        conv_row(out + (size_t)r * W * C, in + bi * img, wt, b, y, H, W, C);
    }
}

/* out += conv(in): each thread's output row of the conv into its own row of the workspace, then
 * added (out + conv, the add op's float sum of the dwconv7_forward + add sequence). */
void cpu_dwconv7_forward_add(Backend *be,
                             Act *out_act,      /* (B, H, W, C) */
                             const Act *in_act, /* (B, H, W, C) */
                             const float *w,    /* (C, 1, 7, 7) */
                             const float *b,    /* (C) */
                             int B, int H, int W, int C) {
    float *out = (float *)out_act;           /* (B, H, W, C) */
    const float *in = (const float *)in_act; /* (B, H, W, C) */
    const int nt = omp_get_max_threads();
    size_t wt_n = align16((size_t)49 * C), row_n = align16((size_t)W * C);
    float *ws = cpu_workspace(be, (wt_n + (size_t)nt * row_n) * sizeof(float));
    float *wt = ws; /* (49, C) */
    transpose_weight(wt, w, C, 0);
    size_t img = (size_t)H * W * C;
#pragma omp parallel num_threads(nt)
    {
        float *tmp = ws + wt_n + (size_t)omp_get_thread_num() * row_n; /* (W, C) this thread's conv row */
#pragma omp for schedule(static)
        for (long r = 0; r < (long)B * H; r++) {
            int bi = (int)(r / H), y = (int)(r % H);
            float *dst = out + (size_t)r * W * C; /* (W, C) */
            conv_row(tmp, in + bi * img, wt, b, y, H, W, C);
            for (size_t i = 0; i < (size_t)W * C; i++) dst[i] = dst[i] + tmp[i];
        }
    }
}

/* The two ops, exactly (the CUDA backend fuses them): the training is that sequence's bit for bit. */
void cpu_dwconv7_layernorm_forward(Backend *be, Act *out /* (B, H, W, C) */, Act *ln /* (B, H, W, C) */,
                                   float *mean /* (B*H*W) */, float *rstd /* (B*H*W) */,
                                   const Act *in /* (B, H, W, C) */, const float *w /* (C, 1, 7, 7) */,
                                   const float *b /* (C) */, const float *g /* (C) */, const float *beta /* (C) */,
                                   int B, int H, int W, int C, float eps) {
    cpu_dwconv7_forward(be, out, in, w, b, B, H, W, C);
    cpu_layernorm_forward(be, ln, mean, rstd, out, g, beta, (size_t)B * H * W, C, eps);
}

void cpu_dwconv7_backward(Backend *be,
                          Act *din_act,        /* (B, H, W, C) or NULL */
                          float *dw,           /* (C, 1, 7, 7) */
                          float *db,           /* (C) */
                          const Act *dout_act, /* (B, H, W, C) */
                          const Act *in_act,   /* (B, H, W, C) */
                          const float *w,      /* (C, 1, 7, 7) */
                          int B, int H, int W, int C) {
    float *din = (float *)din_act;               /* (B, H, W, C) or NULL */
    const float *dout = (const float *)dout_act; /* (B, H, W, C) */
    const float *in = (const float *)in_act;     /* (B, H, W, C) */
    long R = (long)B * H; /* image rows */
    if (R == 0) return;
    int nch = R < DW_CHUNKS ? (int)R : DW_CHUNKS;
    size_t part_n = align16((size_t)50 * C); /* 49 taps of dw + db, per chunk */
    size_t wt_n = align16((size_t)49 * C);
    float *ws = cpu_workspace(be, (wt_n + (size_t)nch * part_n) * sizeof(float));
    float *wtf = ws;          /* (49, C) flipped, transposed weight */
    float *part = ws + wt_n;  /* (nch, 50, C) */
    size_t img = (size_t)H * W * C;

    if (din) {
        transpose_weight(wtf, w, C, 1);
#pragma omp parallel for schedule(static)
        for (long r = 0; r < R; r++) {
            int bi = (int)(r / H), y = (int)(r % H);
            row_correlate(din + (size_t)r * W * C, dout + bi * img, wtf, y, H, W, C);
        }
    }

#pragma omp parallel for schedule(static)
    for (int k = 0; k < nch; k++) {
        float *restrict pw = part + (size_t)k * part_n; /* (49, C) dw partial */
        float *restrict pb = pw + (size_t)49 * C;       /* (C) db partial */
        memset(pw, 0, (size_t)50 * C * sizeof(float));
        long r0 = R * k / nch, r1 = R * (k + 1) / nch;
        for (long r = r0; r < r1; r++) {
            int bi = (int)(r / H), y = (int)(r % H);
            const float *g = dout + (size_t)r * W * C; /* (W, C) */
            const float *src = in + bi * img;
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++) pb[c] += g[(size_t)x * C + c];
            for (int i = 0; i < 7; i++) {
                int yy = y + i - 3;
                if (yy < 0 || yy >= H) continue;
                dw_row(pw, g, src + (size_t)yy * W * C, i, W, C);
            }
        }
    }

    /* Fixed-order reduction of the partials: dw[c][t] += Σ_k part[k][t][c]. */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        for (int t = 0; t < 50; t++) {
            float s = 0.0f;
            for (int k = 0; k < nch; k++) s += part[(size_t)k * part_n + (size_t)t * C + c];
            if (t < 49) dw[(size_t)c * 49 + t] += s;
            else db[c] += s;
        }
    }
}

/* din overwritten: zero, then the accumulating op (0 + x, as the caller's zero + op did). */
void cpu_dwconv7_backward_first(Backend *be, Act *din /* (B, H, W, C) */, float *dw /* (C, 1, 7, 7) */,
                                float *db /* (C) */, const Act *dout /* (B, H, W, C) */,
                                const Act *in /* (B, H, W, C) */, const float *w /* (C, 1, 7, 7) */, int B, int H,
                                int W, int C) {
    if (din) memset(din, 0, (size_t)B * H * W * C * sizeof(float));
    cpu_dwconv7_backward(be, din, dw, db, dout, in, w, B, H, W, C);
}
