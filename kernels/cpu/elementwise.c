/* elementwise.c — add, accumulate, layer scale (channel_scale) and drop path (sample_scale).
 * All are memory-bound streams; they are parallelised over the flat element range. The one
 * reduction (dgamma of channel_scale) uses fixed row chunks with partials summed in chunk
 * order so the result does not depend on the thread count. */
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

void cpu_add(Backend *be, Act *out_act /* (n) */, const Act *a_act /* (n) */, const Act *b_act /* (n) */, size_t n) {
    float *out = (float *)out_act; /* (n) */
    const float *a = (const float *)a_act; /* (n) */
    const float *b = (const float *)b_act; /* (n) */
    (void)be;
    /* element i reads a[i], b[i] before writing out[i]: safe when out aliases a or b */
#pragma omp parallel for schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) out[i] = a[i] + b[i];
}

void cpu_accumulate(Backend *be, Act *dst_act /* (n) */, const Act *src_act /* (n) */, size_t n) {
    float *dst = (float *)dst_act; /* (n) */
    const float *src = (const float *)src_act; /* (n) */
    (void)be;
#pragma omp parallel for schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) dst[i] += src[i];
}

void cpu_channel_scale_forward(Backend *be, Act *out_act /* (N, C) */, const Act *in_act /* (N, C) */,
                               const float *gamma /* (C) */, size_t N, int C) {
    float *out = (float *)out_act; /* (N, C) */
    const float *in = (const float *)in_act; /* (N, C) */
    (void)be;
#pragma omp parallel for schedule(static)
    for (ptrdiff_t r = 0; r < (ptrdiff_t)N; r++) {
        const float *x = in + (size_t)r * C; /* (C) */
        float *y = out + (size_t)r * C;      /* (C) */
        for (int c = 0; c < C; c++) y[c] = gamma[c] * x[c];
    }
}

/* Rows per chunk of the dgamma reduction: depends on N only (determinism), ≤ 1024 chunks. */
static size_t cs_rows_per_chunk(size_t N) {
    size_t r = (N + 1023) / 1024;
    return r < 64 ? 64 : r;
}

void cpu_channel_scale_backward(Backend *be, Act *din_act /* (N, C) */, float *dgamma /* (C) */,
                                const Act *dout_act /* (N, C) */, const Act *in_act /* (N, C) */,
                                const float *gamma /* (C) */, size_t N, int C) {
    float *din = (float *)din_act; /* (N, C) */
    const float *dout = (const float *)dout_act; /* (N, C) */
    const float *in = (const float *)in_act; /* (N, C) */
    if (N == 0 || C <= 0) return;
    const size_t rows_per = cs_rows_per_chunk(N);
    const size_t nchunks = (N + rows_per - 1) / rows_per;
    double *partial = dgamma ? cpu_workspace(be, nchunks * (size_t)C * sizeof(double)) : NULL; /* (nchunks, C) */
#pragma omp parallel for schedule(static)
    for (ptrdiff_t k = 0; k < (ptrdiff_t)nchunks; k++) {
        size_t r0 = (size_t)k * rows_per, r1 = r0 + rows_per < N ? r0 + rows_per : N;
        double *pg = partial ? partial + (size_t)k * C : NULL; /* (C) */
        if (pg) memset(pg, 0, (size_t)C * sizeof(double));
        for (size_t r = r0; r < r1; r++) {
            const float *dy = dout + r * C; /* (C) */
            if (din) {
                float *dx = din + r * C; /* (C) */
                for (int c = 0; c < C; c++) dx[c] += gamma[c] * dy[c];
            }
            if (pg) {
                const float *x = in + r * C; /* (C) */
                for (int c = 0; c < C; c++) pg[c] += (double)dy[c] * x[c];
            }
        }
    }
    if (!partial) return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t k = 0; k < nchunks; k++) s += partial[k * C + c];
        dgamma[c] += (float)s;
    }
}

void cpu_sample_scale_forward(Backend *be, Act *out_act /* (B, per) */, const Act *in_act /* (B, per) */,
                              const float *scale /* (B) */, int B, size_t per) {
    float *out = (float *)out_act; /* (B, per) */
    const float *in = (const float *)in_act; /* (B, per) */
    (void)be;
    for (int b = 0; b < B; b++) {
        const float s = scale[b];
        const float *x = in + (size_t)b * per; /* (per) */
        float *y = out + (size_t)b * per;      /* (per) */
#pragma omp parallel for schedule(static)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)per; i++) y[i] = x[i] * s;
    }
}

void cpu_sample_scale_backward(Backend *be, Act *din_act /* (B, per) */, const Act *dout_act /* (B, per) */,
                               const float *scale /* (B) */, int B, size_t per) {
    float *din = (float *)din_act; /* (B, per) */
    const float *dout = (const float *)dout_act; /* (B, per) */
    (void)be;
    if (!din) return;
    for (int b = 0; b < B; b++) {
        const float s = scale[b];
        if (s == 0.0f) continue; /* dropped sample: its gradient is exactly zero, nothing to add */
        const float *dy = dout + (size_t)b * per; /* (per) */
        float *dx = din + (size_t)b * per;        /* (per) */
#pragma omp parallel for schedule(static)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)per; i++) dx[i] += dy[i] * s;
    }
}

/* ---- the fused residual branch (backend_ops.h): each function performs, element for element,
 * the float operations of the unfused op sequence it replaces, in the same order (the build is
 * ISO C11, so nothing is contracted into an fma), so the CPU results are those of the sequence
 * bit for bit. ---- */

/* Rows per drop-path sample: per is a whole number of C-channel rows. */
static size_t res_rows_per_sample(size_t per, int C) {
    CHECK(C > 0 && per % (size_t)C == 0, "residual op: per-sample size %zu is not a multiple of C = %d", per, C);
    return per / (size_t)C;
}

void cpu_residual_forward(Backend *be, Act *out_act /* (N, C) */, const Act *res_act /* (N, C) */,
                          const Act *y_act /* (N, C) */, const float *gamma /* (C) or NULL */,
                          const float *scale /* (B) or NULL */, int B, size_t per, int C) {
    float *out = (float *)out_act;             /* (N, C) */
    const float *res = (const float *)res_act; /* (N, C) */
    const float *y = (const float *)y_act;     /* (N, C) */
    (void)be;
    const size_t rps = res_rows_per_sample(per, C), N = rps * (size_t)B;
#pragma omp parallel for schedule(static)
    for (ptrdiff_t r = 0; r < (ptrdiff_t)N; r++) {
        const float s = scale ? scale[(size_t)r / rps] : 1.0f;
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)r * C + c;
            float t = y[i];
            if (gamma) t = gamma[c] * t; /* channel_scale_forward */
            if (scale) t = t * s;   /* sample_scale_forward */
            out[i] = res[i] + t;         /* add */
        }
    }
}

void cpu_residual_layernorm_forward(Backend *be, Act *out /* (N, C) */, Act *ln /* (N, C) */, float *mean /* (N) */,
                                    float *rstd /* (N) */, const Act *res /* (N, C) */, const Act *y /* (N, C) */,
                                    const float *gamma /* (C) or NULL */, const float *scale /* (B) or NULL */,
                                    const float *g /* (C) */, const float *b /* (C) */, int B, size_t per, int C,
                                    float eps) {
    cpu_residual_forward(be, out, res, y, gamma, scale, B, per, C);
    cpu_layernorm_forward(be, ln, mean, rstd, out, g, b, res_rows_per_sample(per, C) * (size_t)B, C, eps);
}

void cpu_residual_backward(Backend *be, Act *dres_act /* (N, C) or NULL */, Act *dy_act /* (N, C) */,
                           float *dgamma /* (C) or NULL */, const Act *dout_act /* (N, C) */,
                           const Act *y_act /* (N, C) or NULL */, const float *gamma /* (C) or NULL */,
                           const float *scale /* (B) or NULL */, int B, size_t per, int C) {
    float *dres = (float *)dres_act;             /* (N, C) or NULL */
    float *dy = (float *)dy_act;                 /* (N, C) */
    const float *dout = (const float *)dout_act; /* (N, C) */
    const float *y = (const float *)y_act;       /* (N, C) or NULL */
    const size_t rps = res_rows_per_sample(per, C), N = rps * (size_t)B;
    if (N == 0) return;
    if (!gamma) dgamma = NULL;
    CHECK(!dgamma || y, "residual_backward: dgamma needs y");
    /* dy may be dout (layernorm_backward_residual_branch): each element's dout is read before its
     * dy is written */
    /* dgamma as channel_scale_backward: the same row chunks, partials in double, in chunk order */
    const size_t rows_per = cs_rows_per_chunk(N);
    const size_t nchunks = (N + rows_per - 1) / rows_per;
    double *partial = dgamma ? cpu_workspace(be, nchunks * (size_t)C * sizeof(double)) : NULL; /* (nchunks, C) */
#pragma omp parallel for schedule(static)
    for (ptrdiff_t k = 0; k < (ptrdiff_t)nchunks; k++) {
        size_t r0 = (size_t)k * rows_per, r1 = r0 + rows_per < N ? r0 + rows_per : N;
        double *pg = partial ? partial + (size_t)k * C : NULL; /* (C) */
        if (pg) memset(pg, 0, (size_t)C * sizeof(double));
        for (size_t r = r0; r < r1; r++) {
            const float s = scale ? scale[r / rps] : 1.0f;
            for (int c = 0; c < C; c++) {
                size_t i = r * C + c;
                if (dres) dres[i] += dout[i]; /* accumulate (the residual path) */
                /* sample_scale_backward into a zeroed buffer: a dropped sample stays +0 */
                float t = dout[i];
                if (scale) t = s == 0.0f ? 0.0f : 0.0f + dout[i] * s;
                /* channel_scale_backward into a zeroed buffer */
                dy[i] = gamma ? 0.0f + gamma[c] * t : t;
                if (pg) pg[c] += (double)t * y[i];
            }
        }
    }
    if (!partial) return;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t k = 0; k < nchunks; k++) s += partial[k * C + c];
        dgamma[c] += (float)s;
    }
}
