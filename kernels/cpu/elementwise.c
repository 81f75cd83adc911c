/* elementwise.c — add, accumulate, layer scale (channel_scale) and drop path (sample_scale).
 * All are memory-bound streams; they are parallelised over the flat element range. The one
 * reduction (dgamma of channel_scale) uses fixed row chunks with partials summed in chunk
 * order so the result does not depend on the thread count. */
#include <string.h>

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
