/* window_attention.c — Swin windowed multi-head self-attention on an already padded and
 * rolled NHWC map (see backend.h for the exact contract).
 *
 * Work unit: one (batch, window, head). Its q, k, v (n = w² tokens × hd channels) are
 * gathered from the NHWC map into small contiguous per-thread buffers (the window's tokens
 * are not uniformly strided in the map, and a gather costs O(n·hd) against O(n²·hd) of
 * arithmetic). The n×n score matrix is built in place in the saved `probs` slot.
 *
 * The small matrix products (n = 49..400, hd = 32) use a register-tiled hand GEMM (wa_gemm)
 * rather than cblas_sgemm: Debian's OpenBLAS is the pthread build, which would start its own
 * threads inside our OpenMP region for the larger windows (oversubscription), and per-call
 * overhead dominates at these sizes. The softmax uses a vectorised exp. The hot kernels are
 * compiled twice (x86-64-v3 = AVX2+FMA, and the baseline) and picked at run time by
 * target_clones, since the project builds for x86-64-v2.
 *
 * Backward: windows and heads touch disjoint (token, channel) entries of dqkv, so the dqkv
 * scatter needs no synchronisation. dtable is a reduction over all windows: the windows are
 * cut into a fixed number of chunks (depending only on the problem size), each (chunk, head)
 * task sums into its own partial table (double), and the partials are added in chunk order,
 * so the result is deterministic and independent of the thread count. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

/* ISO C mode (-std=c11) turns off FMA contraction; the GEMM tiles below rely on it to use
 * fused multiply-adds in the x86-64-v3 clone (rounding differs from mul+add by < 1 ulp). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WA_CLONES
#endif

/* Round a byte count up to a 64-byte multiple so carved workspace blocks stay aligned. */
static size_t wa_align(size_t bytes) { return (bytes + 63) / 64 * 64; }

/* Swin's relative_position_index: rel[i*n + j] = (yi − yj + w − 1)(2w − 1) + (xi − xj + w − 1). */
static void wa_rel_index(int *rel /* (n, n) */, int w) {
    const int n = w * w;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int dy = i / w - j / w, dx = i % w - j % w;
            rel[i * n + j] = (dy + w - 1) * (2 * w - 1) + (dx + w - 1);
        }
}

/* Shift-mask region of a coordinate along one axis of length L: Swin's slices
 * (0 : L−w) → 0, (L−w : L−s) → 1, (L−s : L) → 2. */
static inline int wa_axis_region(int v, int L, int w, int s) { return v < L - w ? 0 : (v < L - s ? 1 : 2); }

/* Region id (3·row_region + col_region) of every token of window (wy, wx); returns 1 if the
 * window holds more than one region (i.e. the mask is not all zero). */
static int wa_regions(int *reg /* (n) */, int wy, int wx, int Hp, int Wp, int w, int s) {
    int mixed = 0;
    for (int yi = 0; yi < w; yi++)
        for (int xi = 0; xi < w; xi++) {
            int r = 3 * wa_axis_region(wy * w + yi, Hp, w, s) + wa_axis_region(wx * w + xi, Wp, w, s);
            reg[yi * w + xi] = r;
            if (r != reg[0]) mixed = 1;
        }
    return mixed;
}

/* Copy one head's slice (hd channels starting at channel `off` of each 3C-wide token) of
 * window (b, wy, wx) into dst (n, hd), multiplied by `mul`. */
static void wa_gather(float *dst /* (n, hd) */, const float *qkv /* (B, Hp, Wp, 3C) */, int b, int wy, int wx,
                      int Hp, int Wp, int C3, int w, int off, int hd, float mul) {
    for (int yi = 0; yi < w; yi++) {
        const float *row = qkv + (((size_t)b * Hp + (size_t)wy * w + yi) * Wp + (size_t)wx * w) * C3 + off;
        for (int xi = 0; xi < w; xi++) {
            const float *src = row + (size_t)xi * C3;
            float *d = dst + (size_t)(yi * w + xi) * hd;
            for (int j = 0; j < hd; j++) d[j] = src[j] * mul;
        }
    }
}

/* Same, transposed: dst (hd, n). */
static void wa_gather_t(float *dst /* (hd, n) */, const float *qkv /* (B, Hp, Wp, 3C) */, int b, int wy, int wx,
                        int Hp, int Wp, int C3, int w, int off, int hd) {
    const int n = w * w;
    for (int yi = 0; yi < w; yi++) {
        const float *row = qkv + (((size_t)b * Hp + (size_t)wy * w + yi) * Wp + (size_t)wx * w) * C3 + off;
        for (int xi = 0; xi < w; xi++) {
            const float *src = row + (size_t)xi * C3;
            int t = yi * w + xi;
            for (int j = 0; j < hd; j++) dst[(size_t)j * n + t] = src[j];
        }
    }
}

/* dst[token, off + j] += src[token, j] over the window's tokens (map row stride `cs`). */
static void wa_scatter_add(float *map /* (B, Hp, Wp, cs) */, const float *src /* (n, hd) */, int b, int wy,
                           int wx, int Hp, int Wp, int cs, int w, int off, int hd) {
    for (int yi = 0; yi < w; yi++) {
        float *row = map + (((size_t)b * Hp + (size_t)wy * w + yi) * Wp + (size_t)wx * w) * cs + off;
        for (int xi = 0; xi < w; xi++) {
            float *d = row + (size_t)xi * cs;
            const float *s = src + (size_t)(yi * w + xi) * hd;
            for (int j = 0; j < hd; j++) d[j] += s[j];
        }
    }
}

/* Overwriting variant of the above, for the forward output. */
static void wa_scatter(float *map /* (B, Hp, Wp, cs) */, const float *src /* (n, hd) */, int b, int wy, int wx,
                       int Hp, int Wp, int cs, int w, int off, int hd) {
    for (int yi = 0; yi < w; yi++) {
        float *row = map + (((size_t)b * Hp + (size_t)wy * w + yi) * Wp + (size_t)wx * w) * cs + off;
        for (int xi = 0; xi < w; xi++)
            memcpy(row + (size_t)xi * cs, src + (size_t)(yi * w + xi) * hd, (size_t)hd * sizeof(float));
    }
}

/* ---- the small GEMM ------------------------------------------------------------------
 * C (m, n) = alpha · op(A) · B  (+ C if `accumulate`), row-major with leading dims;
 * op(A) = A (m, k) or, when transA, the transpose of A stored (k, m).
 * Register tiles of 4 rows × 16 columns held in GCC vector-extension accumulators (8 floats
 * each: two AVX registers per row in the x86-64-v3 clone, SSE pairs in the baseline one);
 * each step of k loads one 16-wide row of B and broadcasts 4 entries of A.
 * Ragged edges (n = 49, 100... are not multiples of 16) run the same tile: rows past m
 * re-read row m−1 and are not stored, columns past n read beyond the row — so every B
 * passed here must have WA_SLACK readable floats after its last element (the workspace
 * carving below guarantees it) — and only the valid columns are stored. */
typedef float wa_v8 __attribute__((vector_size(32)));

#define WA_SLACK 16

static inline void wa_ld(wa_v8 *v, const float *p) { memcpy(v, p, sizeof *v); }

/* Store one tile row (16 floats in two vectors) to cp[0..nw): scaled, optionally added. */
static inline void wa_st_row(float *cp, const wa_v8 *lo, const wa_v8 *hi, int nw, float alpha, int accumulate) {
    wa_v8 r0 = *lo * alpha, r1 = *hi * alpha;
    if (nw == 16) {
        if (accumulate) {
            wa_v8 o0, o1;
            wa_ld(&o0, cp), wa_ld(&o1, cp + 8);
            r0 += o0, r1 += o1;
        }
        memcpy(cp, &r0, sizeof r0), memcpy(cp + 8, &r1, sizeof r1);
    } else {
        float t[16];
        memcpy(t, &r0, sizeof r0), memcpy(t + 8, &r1, sizeof r1);
        for (int j = 0; j < nw; j++) cp[j] = accumulate ? cp[j] + t[j] : t[j];
    }
}

WA_CLONES
static void wa_gemm(float *restrict Cm, int ldc, const float *restrict A, int lda, int transA,
                    const float *restrict Bm, int ldb, int m, int n, int k, float alpha, int accumulate) {
    for (int i = 0; i < m; i += 4) {
        const int nr = m - i < 4 ? m - i : 4;
        /* rows of this tile, clamped to m−1 (their results are discarded) */
        const int i1 = nr > 1 ? i + 1 : i, i2 = nr > 2 ? i + 2 : i, i3 = nr > 3 ? i + 3 : i;
        for (int j = 0; j < n; j += 16) {
            wa_v8 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            for (int kk = 0; kk < k; kk++) {
                wa_v8 b0, b1;
                wa_ld(&b0, Bm + (size_t)kk * ldb + j);
                wa_ld(&b1, Bm + (size_t)kk * ldb + j + 8);
                float a0, a1, a2, a3;
                if (transA) {
                    const float *ap = A + (size_t)kk * lda;
                    a0 = ap[i], a1 = ap[i1], a2 = ap[i2], a3 = ap[i3];
                } else {
                    a0 = A[(size_t)i * lda + kk], a1 = A[(size_t)i1 * lda + kk];
                    a2 = A[(size_t)i2 * lda + kk], a3 = A[(size_t)i3 * lda + kk];
                }
                c00 += a0 * b0, c01 += a0 * b1;
                c10 += a1 * b0, c11 += a1 * b1;
                c20 += a2 * b0, c21 += a2 * b1;
                c30 += a3 * b0, c31 += a3 * b1;
            }
            const int nw = n - j < 16 ? n - j : 16;
            float *cp = Cm + (size_t)i * ldc + j;
            wa_st_row(cp, &c00, &c01, nw, alpha, accumulate);
            if (nr > 1) wa_st_row(cp + ldc, &c10, &c11, nw, alpha, accumulate);
            if (nr > 2) wa_st_row(cp + 2 * (size_t)ldc, &c20, &c21, nw, alpha, accumulate);
            if (nr > 3) wa_st_row(cp + 3 * (size_t)ldc, &c30, &c31, nw, alpha, accumulate);
        }
    }
}

/* exp(x) for x ≤ 0 (softmax arguments after the max is subtracted), vectorised by hand
 * (libm's expf is a scalar call and was a quarter of the forward; the compiler would not
 * vectorise the branchy scalar form). Cephes' expf: x = k·ln2 + r with a two-constant
 * Cody–Waite split of ln2, a degree-6 polynomial for e^r on |r| ≤ ln2/2 (relative error
 * ≈ 2e-7), then 2^k assembled in the exponent bits. Arguments below −87 (e^x < 2^-125)
 * give exactly 0. The scalar form handles row tails with the same arithmetic. */
#define WA_EXP_LO (-87.0f)
#define WA_EXP_BIG 12582912.0f /* 1.5·2^23: adding and subtracting it rounds to an integer */
#define WA_EXP_POLY(p, r)                                                                          \
    do {                                                                                           \
        p = r * 1.9875691500e-4f + 1.3981999507e-3f;                                               \
        p = p * r + 8.3334519073e-3f;                                                              \
        p = p * r + 4.1665795894e-2f;                                                              \
        p = p * r + 1.6666665459e-1f;                                                              \
        p = p * r + 5.0000001201e-1f;                                                              \
        p = p * r * r + r + 1.0f;                                                                  \
    } while (0)

static inline float wa_exp_neg(float x) {
    if (x < WA_EXP_LO) return 0.0f;
    float k = (x * 1.44269504088896341f + WA_EXP_BIG) - WA_EXP_BIG;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p;
    WA_EXP_POLY(p, r);
    union { int32_t i; float f; } two_k;
    two_k.i = ((int32_t)k + 127) * (1 << 23); /* k in [-126, 0]: a normal 2^k */
    return p * two_k.f;
}

typedef int32_t wa_v8i __attribute__((vector_size(32)));


/* p[0..8) = exp(p[0..8) − mx); adds the 8 results into *acc. */
static inline void wa_exp8(float *p, float mx, wa_v8 *acc) {
    const wa_v8 lo = {WA_EXP_LO, WA_EXP_LO, WA_EXP_LO, WA_EXP_LO, WA_EXP_LO, WA_EXP_LO, WA_EXP_LO, WA_EXP_LO};
    wa_v8 x;
    wa_ld(&x, p);
    x = x - mx;
    const wa_v8i under = x < lo;                                  /* all-ones lanes: result 0 */
    x = (wa_v8)(((wa_v8i)x & ~under) | ((wa_v8i)lo & under));     /* clamp */
    wa_v8 k = (x * 1.44269504088896341f + WA_EXP_BIG) - WA_EXP_BIG;
    wa_v8 r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    wa_v8 q;
    WA_EXP_POLY(q, r);
    const wa_v8i ki = __builtin_convertvector(k, wa_v8i);
    const wa_v8 two_k = (wa_v8)((ki + 127) << 23);
    wa_v8 y = (wa_v8)((wa_v8i)(q * two_k) & ~under);
    memcpy(p, &y, sizeof y);
    *acc += y;
}

/* Scores of one (window, head) → softmax probabilities, in place in S (n, n):
 * S = Qs·Kᵀ (Qs pre-scaled) + bias (the head's gathered table, (n, n)) (+ −100 across
 * regions), then a numerically stable row softmax (max subtracted, exp, normalised). */
WA_CLONES
static void wa_softmax_rows(float *restrict S /* (n, n) */, const float *restrict bias /* (n, n) */,
                            const int *reg /* (n) or NULL */, int n) {
    for (int i = 0; i < n; i++) {
        float *s = S + (size_t)i * n;
        const float *bi = bias + (size_t)i * n;
        for (int j = 0; j < n; j++) s[j] += bi[j];
        if (reg) {
            const int gi = reg[i];
            for (int j = 0; j < n; j++) s[j] += reg[j] != gi ? -100.0f : 0.0f;
        }
        float mx = s[0];
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
        wa_v8 acc = {0};
        int j = 0;
        for (; j + 8 <= n; j += 8) wa_exp8(s + j, mx, &acc);
        float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; j < n; j++) {
            s[j] = wa_exp_neg(s[j] - mx);
            sum += s[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) s[j] *= inv;
    }
}

/* Softmax backward in place: dP (n, n) → dS = P ∘ (dP − rowsum(P ∘ dP)). */
WA_CLONES
static void wa_softmax_backward(float *restrict dP /* (n, n) */, const float *restrict P /* (n, n) */, int n) {
    for (int i = 0; i < n; i++) {
        float *g = dP + (size_t)i * n;
        const float *p = P + (size_t)i * n;
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < n; j++) dot += p[j] * g[j];
        for (int j = 0; j < n; j++) g[j] = p[j] * (g[j] - dot);
    }
}

static void wa_check(int Hp, int Wp, int C, int heads, int w, int shift) {
    CHECK(w > 0 && Hp % w == 0 && Wp % w == 0, "window_attention: map %dx%d is not a multiple of window %d", Hp,
          Wp, w);
    CHECK(heads > 0 && C % heads == 0, "window_attention: C=%d not divisible by heads=%d", C, heads);
    CHECK(shift >= 0 && shift < w, "window_attention: shift %d outside [0, %d)", shift, w);
}

void cpu_window_attention_forward(Backend *be, Act *out_act, /* (B, Hp, Wp, C) */
                                  Act *probs_act,            /* (B, nWin, heads, w*w, w*w) */
                                  const Act *qkv_act,        /* (B, Hp, Wp, 3C) */
                                  const float *table,        /* ((2w-1)^2, heads) */
                                  int B, int Hp, int Wp, int C, int heads, int window, int shift) {
    float *out = (float *)out_act;             /* (B, Hp, Wp, C) */
    float *probs = (float *)probs_act;         /* (B, nWin, heads, w*w, w*w) */
    const float *qkv = (const float *)qkv_act; /* (B, Hp, Wp, 3C) */
    wa_check(Hp, Wp, C, heads, window, shift);
    const int w = window, n = w * w, hd = C / heads, C3 = 3 * C;
    const int nWx = Wp / w, nWin = (Hp / w) * nWx;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t tasks = (size_t)B * nWin * heads;
    const int nt = omp_get_max_threads();

    /* workspace: rel (n², int) | bias (heads, n, n) | per thread: Qs (n, hd), Kt (hd, n),
     * V (n, hd), O (n, hd) (each followed by WA_SLACK floats for the GEMM), reg (n, int).
     * The bias of each head is gathered from the table once per call so the softmax reads
     * it contiguously. */
    const size_t rel_bytes = wa_align((size_t)n * n * sizeof(int));
    const size_t bias_bytes = wa_align((size_t)heads * n * n * sizeof(float));
    const size_t blk = wa_align(((size_t)n * hd + WA_SLACK) * sizeof(float)); /* one (n, hd) + slack */
    const size_t per_thread = 4 * blk + wa_align((size_t)n * sizeof(int));
    char *ws = cpu_workspace(be, rel_bytes + bias_bytes + (size_t)nt * per_thread);
    int *rel = (int *)ws;
    float *bias = (float *)(ws + rel_bytes); /* (heads, n, n) */
    wa_rel_index(rel, w);
#pragma omp parallel for schedule(static)
    for (int hi = 0; hi < heads * n; hi++) {
        const int h = hi / n, i = hi % n;
        for (int j = 0; j < n; j++) bias[(size_t)hi * n + j] = table[(size_t)rel[i * n + j] * heads + h];
    }

#pragma omp parallel num_threads(nt)
    {
        char *mine = ws + rel_bytes + bias_bytes + (size_t)omp_get_thread_num() * per_thread;
        float *Qs = (float *)mine;             /* (n, hd) q · scale */
        float *Kt = (float *)(mine + blk);     /* (hd, n) */
        float *V = (float *)(mine + 2 * blk);  /* (n, hd) */
        float *O = (float *)(mine + 3 * blk);  /* (n, hd) */
        int *reg = (int *)(mine + 4 * blk);    /* (n) */
#pragma omp for schedule(static)
        for (ptrdiff_t t = 0; t < (ptrdiff_t)tasks; t++) {
            const int h = (int)(t % heads);
            const size_t g = (size_t)t / heads; /* b * nWin + win */
            const int b = (int)(g / nWin), win = (int)(g % nWin), wy = win / nWx, wx = win % nWx;
            float *S = probs + (size_t)t * n * n; /* (n, n) this (b, win, h) slot */
            wa_gather(Qs, qkv, b, wy, wx, Hp, Wp, C3, w, h * hd, hd, scale);
            wa_gather_t(Kt, qkv, b, wy, wx, Hp, Wp, C3, w, C + h * hd, hd);
            wa_gather(V, qkv, b, wy, wx, Hp, Wp, C3, w, 2 * C + h * hd, hd, 1.0f);
            const int masked = shift > 0 && wa_regions(reg, wy, wx, Hp, Wp, w, shift);
            wa_gemm(S, n, Qs, hd, 0, Kt, n, n, n, hd, 1.0f, 0); /* S = (q·scale) kᵀ */
            wa_softmax_rows(S, bias + (size_t)h * n * n, masked ? reg : NULL, n);
            wa_gemm(O, hd, S, n, 0, V, hd, n, hd, n, 1.0f, 0); /* O = P v */
            wa_scatter(out, O, b, wy, wx, Hp, Wp, C, w, h * hd, hd);
        }
    }
}

void cpu_window_attention_backward(Backend *be, Act *dqkv_act, /* (B, Hp, Wp, 3C) */
                                   float *dtable,              /* ((2w-1)^2, heads) */
                                   const Act *dout_act,        /* (B, Hp, Wp, C) */
                                   const Act *qkv_act,         /* (B, Hp, Wp, 3C) */
                                   const Act *probs_act,       /* (B, nWin, heads, w*w, w*w) */
                                   int B, int Hp, int Wp, int C, int heads, int window, int shift) {
    float *dqkv = (float *)dqkv_act;               /* (B, Hp, Wp, 3C) */
    const float *dout = (const float *)dout_act;   /* (B, Hp, Wp, C) */
    const float *qkv = (const float *)qkv_act;     /* (B, Hp, Wp, 3C) */
    const float *probs = (const float *)probs_act; /* (B, nWin, heads, w*w, w*w) */
    wa_check(Hp, Wp, C, heads, window, shift);
    if (!dqkv && !dtable) return;
    const int w = window, n = w * w, hd = C / heads, C3 = 3 * C, T = (2 * w - 1) * (2 * w - 1);
    const int nWx = Wp / w, nWin = (Hp / w) * nWx;
    const size_t G = (size_t)B * nWin; /* windows in the batch */
    const float scale = 1.0f / sqrtf((float)hd);
    const int nt = omp_get_max_threads();
    /* Fixed window chunking (a function of G only) for the deterministic dtable reduction. */
    const size_t K = G < 64 ? G : 64;
    const size_t tasks = K * (size_t)heads;

    /* workspace: rel (n², int) | partial tables (K, heads, T, double) |
     * per thread: Qs, K, Vt, dO, dQ, dK, dV (each n·hd + slack), dP (n, n) and dB (n, n),
     * the chunk's summed dS (contiguous adds), scattered into the partial table once per
     * chunk */
    const size_t rel_bytes = wa_align((size_t)n * n * sizeof(int));
    const size_t part_bytes = dtable ? wa_align(K * heads * (size_t)T * sizeof(double)) : 0;
    const size_t blk = wa_align(((size_t)n * hd + WA_SLACK) * sizeof(float)); /* one (n, hd) + slack */
    const size_t per_thread = 7 * blk + 2 * wa_align((size_t)n * n * sizeof(float));
    char *ws = cpu_workspace(be, rel_bytes + part_bytes + (size_t)nt * per_thread);
    int *rel = (int *)ws;
    double *part = dtable ? (double *)(ws + rel_bytes) : NULL;
    wa_rel_index(rel, w);
    if (part) memset(part, 0, K * heads * (size_t)T * sizeof(double));

#pragma omp parallel num_threads(nt)
    {
        char *mine = ws + rel_bytes + part_bytes + (size_t)omp_get_thread_num() * per_thread;
        float *Qs = (float *)mine;                   /* (n, hd) q · scale */
        float *Km = (float *)(mine + blk);           /* (n, hd) */
        float *Vt = (float *)(mine + 2 * blk);       /* (hd, n) */
        float *dO = (float *)(mine + 3 * blk);       /* (n, hd) */
        float *dQ = (float *)(mine + 4 * blk);       /* (n, hd) */
        float *dK = (float *)(mine + 5 * blk);       /* (n, hd) */
        float *dV = (float *)(mine + 6 * blk);       /* (n, hd) */
        float *dP = (float *)(mine + 7 * blk);       /* (n, n) */
        float *dB = dP + wa_align((size_t)n * n * sizeof(float)) / sizeof(float); /* (n, n) */
#pragma omp for schedule(dynamic, 1)
        for (ptrdiff_t task = 0; task < (ptrdiff_t)tasks; task++) {
            const int h = (int)(task % heads);
            const size_t k = (size_t)task / heads;
            double *pt = part ? part + (k * heads + h) * (size_t)T : NULL; /* (T) this task's partial */
            if (pt) memset(dB, 0, (size_t)n * n * sizeof(float));
            for (size_t g = k * G / K; g < (k + 1) * G / K; g++) {
                const int b = (int)(g / nWin), win = (int)(g % nWin), wy = win / nWx, wx = win % nWx;
                const float *P = probs + (g * heads + h) * (size_t)n * n; /* (n, n) */
                wa_gather(Qs, qkv, b, wy, wx, Hp, Wp, C3, w, h * hd, hd, scale);
                wa_gather(Km, qkv, b, wy, wx, Hp, Wp, C3, w, C + h * hd, hd, 1.0f);
                wa_gather_t(Vt, qkv, b, wy, wx, Hp, Wp, C3, w, 2 * C + h * hd, hd);
                wa_gather(dO, dout, b, wy, wx, Hp, Wp, C, w, h * hd, hd, 1.0f);
                /* dP = dO · Vᵀ, then dS = softmax backward (in place) */
                wa_gemm(dP, n, dO, hd, 0, Vt, n, n, n, hd, 1.0f, 0);
                wa_softmax_backward(dP, P, n);
                /* the bias gradient: summed over the chunk's windows, scattered below */
                if (pt)
                    for (size_t ij = 0; ij < (size_t)n * n; ij++) dB[ij] += dP[ij];
                if (dqkv) {
                    wa_gemm(dV, hd, P, n, 1, dO, hd, n, hd, n, 1.0f, 0);      /* dV = Pᵀ dO */
                    wa_gemm(dQ, hd, dP, n, 0, Km, hd, n, hd, n, scale, 0);    /* dq = scale · dS k */
                    wa_gemm(dK, hd, dP, n, 1, Qs, hd, n, hd, n, 1.0f, 0);     /* dk = dSᵀ (q · scale) */
                    wa_scatter_add(dqkv, dQ, b, wy, wx, Hp, Wp, C3, w, h * hd, hd);
                    wa_scatter_add(dqkv, dK, b, wy, wx, Hp, Wp, C3, w, C + h * hd, hd);
                    wa_scatter_add(dqkv, dV, b, wy, wx, Hp, Wp, C3, w, 2 * C + h * hd, hd);
                }
            }
            /* every dS[i][j] belongs to table row rel[i][j] of head h */
            if (pt)
                for (size_t ij = 0; ij < (size_t)n * n; ij++) pt[rel[ij]] += dB[ij];
        }
    }
    if (!dtable) return;
    /* Sum the partial tables in chunk order: deterministic for any thread count. */
#pragma omp parallel for schedule(static)
    for (int r = 0; r < T; r++)
        for (int h = 0; h < heads; h++) {
            double s = 0;
            for (size_t k = 0; k < K; k++) s += part[(k * heads + h) * (size_t)T + r];
            dtable[(size_t)r * heads + h] += (float)s;
        }
}

/* dqkv overwritten: zero, then the accumulating op (0 + x, as the caller's zero + op did). */
void cpu_window_attention_backward_first(Backend *be, Act *dqkv /* (B, Hp, Wp, 3C) */,
                                         float *dtable /* ((2w-1)^2, heads) */, const Act *dout /* (B, Hp, Wp, C) */,
                                         const Act *qkv /* (B, Hp, Wp, 3C) */,
                                         const Act *probs /* (B, nWin, heads, w*w, w*w) */, int B, int Hp, int Wp,
                                         int C, int heads, int window, int shift) {
    if (dqkv) memset(dqkv, 0, (size_t)B * Hp * Wp * 3 * C * sizeof(float));
    cpu_window_attention_backward(be, dqkv, dtable, dout, qkv, probs, B, Hp, Wp, C, heads, window, shift);
}
