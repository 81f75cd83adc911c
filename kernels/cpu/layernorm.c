/* layernorm.c — LayerNorm over the channel (last, contiguous) dim, as torch.nn.LayerNorm:
 * biased variance, y = (x - mean) * rstd * g + b, rstd = 1 / sqrt(var + eps).
 *
 * Row sums use `omp simd` reductions (vectorised, fixed order for a given build, so still
 * deterministic). Statistics are computed in double with two passes (mean, then centred sum of squares):
 * channel counts are small (≤ 768) so the extra pass is cheap, and it avoids the
 * cancellation of E[x²] − E[x]² for inputs with a large mean (residual streams).
 *
 * The parameter gradients dg, db are reductions over all N rows. To be thread-safe AND
 * bit-for-bit deterministic regardless of the thread count, rows are cut into a fixed
 * number of chunks that depends only on N; each chunk writes its own partial sums into
 * the workspace, and the partials are then added in chunk order.
 *
 * Also the GELU → LayerNorm pair (gelu_layernorm_forward, layernorm_backward_gelu): the unfused
 * op sequences, with gelu.c's GELU. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

/* Rows per chunk of the dg/db reduction: at least 64 rows, at most 1024 chunks. */
static size_t ln_rows_per_chunk(size_t N) {
    size_t r = (N + 1023) / 1024;
    return r < 64 ? 64 : r;
}

void cpu_layernorm_forward(Backend *be, Act *out_act, /* (N, C) */ float *mean, /* (N) */
                           float *rstd, /* (N) */ const Act *in_act, /* (N, C) */
                           const float *g, /* (C) */ const float *b, /* (C) */ size_t N, int C,
                           float eps) {
    float *out = (float *)out_act;           /* (N, C) */
    const float *in = (const float *)in_act; /* (N, C) */
    (void)be;
#pragma omp parallel for schedule(static)
    for (ptrdiff_t r = 0; r < (ptrdiff_t)N; r++) {
        const float *x = in + (size_t)r * C; /* (C) */
        float *y = out + (size_t)r * C;      /* (C) */
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += x[c];
        double mu = s / C;
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) {
            double d = x[c] - mu;
            ss += d * d;
        }
        double rs = 1.0 / sqrt(ss / C + (double)eps);
        float muf = (float)mu, rsf = (float)rs;
        mean[r] = muf;
        rstd[r] = rsf;
        for (int c = 0; c < C; c++) y[c] = (x[c] - muf) * rsf * g[c] + b[c];
    }
}

/* din += rstd * (dxh - mean(dxh) - xh * mean(dxh * xh)),  dxh = dout * g, xh = (x - mean) * rstd
 * dg  += sum_rows dout * xh,  db += sum_rows dout                                                */
void cpu_layernorm_backward(Backend *be, Act *din_act, /* (N, C) or NULL */ float *dg, /* (C) */
                            float *db, /* (C) */ const Act *dout_act, /* (N, C) */
                            const Act *in_act, /* (N, C) */ const float *mean, /* (N) */
                            const float *rstd, /* (N) */ const float *g, /* (C) */ size_t N, int C) {
    float *din = (float *)din_act;               /* (N, C) or NULL */
    const float *dout = (const float *)dout_act; /* (N, C) */
    const float *in = (const float *)in_act;     /* (N, C) */
    if (N == 0 || C <= 0) return;
    const int want_params = dg != NULL || db != NULL;
    const size_t rows_per = ln_rows_per_chunk(N);
    const size_t nchunks = (N + rows_per - 1) / rows_per;
    /* partial[k] = (dg partial (C), db partial (C)) of chunk k, in double */
    double *partial = want_params ? cpu_workspace(be, nchunks * 2 * (size_t)C * sizeof(double)) : NULL;

#pragma omp parallel for schedule(static)
    for (ptrdiff_t k = 0; k < (ptrdiff_t)nchunks; k++) {
        double *pg = partial ? partial + (size_t)k * 2 * C : NULL; /* (C) */
        double *pb = partial ? pg + C : NULL;                      /* (C) */
        if (partial) memset(pg, 0, 2 * (size_t)C * sizeof(double));
        size_t r0 = (size_t)k * rows_per, r1 = r0 + rows_per < N ? r0 + rows_per : N;
        for (size_t r = r0; r < r1; r++) {
            const float *x = in + r * C;    /* (C) */
            const float *dy = dout + r * C; /* (C) */
            const float mu = mean[r], rs = rstd[r];
            if (din) {
                double a = 0, bsum = 0; /* sum dxh, sum dxh * xh */
#pragma omp simd reduction(+ : a, bsum)
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - mu) * rs;
                    float dxh = dy[c] * g[c];
                    a += dxh;
                    bsum += (double)dxh * xh;
                }
                const float ma = (float)(a / C), mb = (float)(bsum / C);
                float *dx = din + r * C; /* (C) */
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - mu) * rs;
                    dx[c] += rs * (dy[c] * g[c] - ma - xh * mb);
                }
            }
            if (partial) {
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - mu) * rs;
                    pg[c] += (double)dy[c] * xh;
                    pb[c] += dy[c];
                }
            }
        }
    }
    if (!partial) return;
    /* Fixed-order reduction over chunks; parallel over channels (each writes its own dg[c]). */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sg = 0, sb = 0;
        for (size_t k = 0; k < nchunks; k++) {
            sg += partial[k * 2 * C + c];
            sb += partial[k * 2 * C + C + c];
        }
        if (dg) dg[c] += (float)sg;
        if (db) db[c] += (float)sb;
    }
}

/* layernorm_backward into a buffer that held dres: the copy, then the accumulating op, exactly
 * as the unfused sequence (so the CPU result is that sequence's bit for bit). */
void cpu_layernorm_backward_residual(Backend *be, Act *din /* (N, C) */, float *dg /* (C) */, float *db /* (C) */,
                                     const Act *dres /* (N, C) or NULL */,
                                     const Act *dout /* (N, C) */, const Act *in /* (N, C) */, const float *mean /* (N) */,
                                     const float *rstd /* (N) */, const float *g /* (C) */, size_t N, int C) {
    if (N == 0 || C <= 0) return;
    if (!dres) memset(din, 0, N * (size_t)C * sizeof(float));
    else if (din != dres) memmove(din, dres, N * (size_t)C * sizeof(float));
    cpu_layernorm_backward(be, din, dg, db, dout, in, mean, rstd, g, N, C);
}

/* layernorm_backward_residual into dy as the temporary d (the op overwrites dy), then
 * residual_backward reading d from there: each element's d is read before its dy is written, so dy
 * may be residual_backward's dout. The float operations of the two ops, bit for bit. */
void cpu_layernorm_backward_residual_branch(Backend *be, Act *dx /* (N, C) */, Act *dy /* (N, C) */, float *dg /* (C) */,
                                            float *db /* (C) */, float *dgamma /* (C) or NULL */,
                                            const Act *dres /* (N, C) */, const Act *dout /* (N, C) */,
                                            const Act *in /* (N, C) */, const float *mean /* (N) */,
                                            const float *rstd /* (N) */, const float *g /* (C) */,
                                            const Act *y /* (N, C) or NULL */, const float *gamma /* (C) or NULL */,
                                            const float *scale /* (B) or NULL */, int B, size_t per, int C) {
    CHECK(C > 0 && per % (size_t)C == 0, "layernorm_backward_residual_branch: per %zu is not a multiple of C = %d", per,
          C);
    CHECK(dx && dres, "layernorm_backward_residual_branch: needs dx and dres");
    const size_t N = per / (size_t)C * (size_t)B;
    cpu_layernorm_backward_residual(be, dy, dg, db, dres, dout, in, mean, rstd, g, N, C);
    cpu_residual_backward(be, dx, dy, dgamma, dy, y, gamma, scale, B, per, C);
}

/* GELU, then the LayerNorm of its output: exactly the gelu_forward + layernorm_forward sequence. */
void cpu_gelu_layernorm_forward(Backend *be, Act *out /* (N, C) */, Act *ge /* (N, C) */, float *mean /* (N) */,
                                float *rstd /* (N) */, const Act *in /* (N, C) */, const float *g /* (C) */,
                                const float *b /* (C) */, size_t N, int C, float eps) {
    cpu_gelu_forward(be, ge, in, N * (size_t)C);
    cpu_layernorm_forward(be, out, mean, rstd, ge, g, b, N, C, eps);
}

/* The layernorm_backward (into a zeroed temporary) + gelu_backward sequence, bit for bit. The
 * temporary is the workspace, which the LayerNorm's parameter partials need too: its din pass runs
 * first without them (din and the partials are independent per row, so the same values), the
 * GELU backward consumes the temporary, and then a second pass without din takes dg, db. */
void cpu_layernorm_backward_gelu(Backend *be, Act *din /* (N, C) or NULL */, float *dg /* (C) */,
                                 float *db /* (C) */, const Act *dout /* (N, C) */, const Act *ge /* (N, C) */,
                                 const Act *in /* (N, C) */, const float *mean /* (N) */,
                                 const float *rstd /* (N) */, const float *g /* (C) */, size_t N, int C) {
    if (N == 0 || C <= 0) return;
    if (din) {
        size_t n = N * (size_t)C;
        float *tmp = cpu_workspace(be, n * sizeof(float)); /* (N, C) the LayerNorm's din */
        memset(tmp, 0, n * sizeof(float));
        cpu_layernorm_backward(be, (Act *)tmp, NULL, NULL, dout, ge, mean, rstd, g, N, C);
        cpu_gelu_backward(be, din, (const Act *)tmp, in, n);
    }
    if (dg || db) cpu_layernorm_backward(be, NULL, dg, db, dout, ge, mean, rstd, g, N, C);
}
