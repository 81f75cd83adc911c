/* optim.c — the optimiser's ops: squared norm (for global gradient-norm clipping), in-place
 * scaling, and the Adam update as torch.optim.Adam computes it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "cpu_ops.h"

/* Elements per partial sum of sum_squares. The partition depends only on n, never on the
 * thread count, and the partials are added in order: the norm (and therefore whether and how
 * much we clip) is bit-for-bit reproducible across runs and thread counts. */
#define SUMSQ_CHUNK 16384

void cpu_sum_squares(Backend *be, double *out /* (1) */, const float *x /* (n) */, size_t n) {
    if (n == 0) {
        *out = 0;
        return;
    }
    const size_t nchunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = cpu_workspace(be, nchunks * sizeof(double)); /* (nchunks) */
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < nchunks; ch++) {
        size_t i0 = ch * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
        /* Eight independent accumulators (fixed lanes, fixed combine order) break the
         * add-latency chain without giving up determinism. */
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t i = i0;
        for (; i + 8 <= i1; i += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
        for (int l = 0; i < i1; i++, l++) acc[l] += (double)x[i] * (double)x[i];
        part[ch] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    double s = 0;
    for (size_t ch = 0; ch < nchunks; ch++) s += part[ch];
    *out = s;
}

void cpu_scale(Backend *be, float *x /* (n) */, float s, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* The arithmetic the trainer did on the host before the clip moved into the backend (the CUDA
 * backend does the same on the device): sqrt and the division in double, one rounding to float. */
void cpu_clip_by_norm(Backend *be, float *x /* (n) */, double *norm /* (1) */, const double *sumsq /* (1) */,
                      double max_norm, size_t n) {
    const double nrm = sqrt(*sumsq);
    const double coef = max_norm / (nrm + 1e-6);
    *norm = nrm;
    if (coef < 1.0) cpu_scale(be, x, (float)coef, n);
}

/* torch.optim.Adam, single-tensor (non-fused, non-capturable) path, in its operation order:
 *   m.mul_(b1).add_(g, alpha=1-b1)
 *   v.mul_(b2).addcmul_(g, g, value=1-b2)
 *   bc1 = 1 - b1**t; bc2 = 1 - b2**t                  (Python floats = double)
 *   step_size = lr / bc1; bc2_sqrt = sqrt(bc2)
 *   denom = (v.sqrt() / bc2_sqrt).add_(eps)
 *   p.addcdiv_(m, denom, value=-step_size)            (p + (-step_size * m) / denom)
 * Every Python scalar is cast to fp32 when it meets an fp32 tensor, as below. */
void cpu_adam_update(Backend *be, float *param /* (n) */, float *m /* (n) */, float *v /* (n) */,
                     const float *grad /* (n) */, size_t n, double beta1, double beta2, double eps,
                     const float *coef /* (2): adam_coefs() */) {
    (void)be;
    const double b1 = beta1, b2 = beta2;
    const float f_b1 = (float)b1, f_omb1 = (float)(1.0 - b1);
    const float f_b2 = (float)b2, f_omb2 = (float)(1.0 - b2);
    const float f_neg_step = coef[0]; /* (float)(-(lr / bc1)) */
    const float f_bc2_sqrt = coef[1]; /* (float)sqrt(bc2) */
    const float f_eps = (float)eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = m[i] * f_b1 + f_omb1 * g;
        float vi = v[i] * f_b2 + (f_omb2 * g) * g;
        float denom = sqrtf(vi) / f_bc2_sqrt + f_eps;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] + (f_neg_step * mi) / denom;
    }
}
