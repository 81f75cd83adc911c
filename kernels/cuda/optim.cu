// optim.cu — squared norm (gradient clipping), in-place scale, and torch.optim.Adam's update
// in PyTorch's operation order (see kernels/cpu/optim.c for the derivation of the constants).
#include <math.h>

#include "act.cuh"
#include "cuda_internal.h"
#include "last_block.cuh"

#define SUMSQ_CHUNK 65536

// One block per fixed chunk: per-thread double sums, then a shared-memory tree in a fixed order;
// the last block adds the chunks' sums in chunk order (last_block.cuh). Deterministic for a given n.
__global__ void k_sumsq(double *out, double *part, unsigned *arrivals, const float *x, size_t n) {
    __shared__ double sh[256];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
    double s = 0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) s += (double)x[i] * (double)x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
    if (!cuda_last_block(arrivals)) return;
    if (threadIdx.x == 0) {
        double t = 0;
        for (unsigned k = 0; k < gridDim.x; k++) t += cuda_load_cg(part + k);
        *out = n ? t : 0.0; // n = 0: one block summed nothing
    }
}

// The sum stays on the device: clip_by_norm reads it there, so the step never waits for it.
extern "C" void cu_sum_squares(Backend *be, double *out, const float *x, size_t n) {
    CudaState *st = cuda_state(be);
    size_t nb = n ? (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK : 1;
    double *part = (double *)cuda_workspace(be, nb * sizeof(double));
    k_sumsq<<<(unsigned)nb, 256, 0, st->stream>>>(out, part, st->arrivals, x, n);
    CUDA_CHECK_LAUNCH();
}

// sqrt and the division in double as the CPU backend does them on the host (both correctly
// rounded on the GPU too, and no product to contract), so every thread derives the same coef.
__device__ __forceinline__ double clip_coef(double sumsq, double max_norm) { return max_norm / (sqrt(sumsq) + 1e-6); }

__global__ void k_clip_scale(float *x, double *norm, const double *sumsq, double max_norm, size_t n) {
    const double coef = clip_coef(*sumsq, max_norm);
    const size_t i0 = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i0 == 0) *norm = sqrt(*sumsq);
    if (!(coef < 1.0)) return;
    const float c = (float)coef;
    for (size_t i = i0; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] *= c;
}

extern "C" void cu_clip_by_norm(Backend *be, float *x, double *norm, const double *sumsq, double max_norm, size_t n) {
    CHECK((const void *)norm != (const void *)sumsq, "clip_by_norm: norm and sumsq must be separate (read while written)");
    k_clip_scale<<<cuda_grid(n ? n : 1), 256, 0, cuda_state(be)->stream>>>(x, norm, sumsq, max_norm, n);
    CUDA_CHECK_LAUNCH();
}

__global__ void k_scale(float *x, float s, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

extern "C" void cu_scale(Backend *be, float *x, float s, size_t n) {
    if (!n) return;
    k_scale<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(x, s, n);
    CUDA_CHECK_LAUNCH();
}

// coef (2) in device memory: -(lr / bc1) and sqrt(bc2) of this step (adam_coefs.h), uploaded by a
// queued copy before the launch, so that a captured step reads each replay's own values.
// shadow (BF16, or NULL): the weights_prepare copy of param, rewritten with the new values, so the
// next pass's weights_prepare converts nothing (the same rounding: the bits are those it would make).
__global__ void k_adam(float *param, bf16 *shadow, float *m, float *v, const float *grad, size_t n, float b1,
                       float omb1, float b2, float omb2, const float *coef, float eps) {
    const float neg_step = coef[0], bc2_sqrt = coef[1];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = grad[i];
        // __fmul_rn/__fadd_rn: no FMA contraction, so each step rounds as PyTorch's kernels do.
        float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(omb1, g));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(omb2, g), g));
        float denom = __fadd_rn(__fdiv_rn(sqrtf(vi), bc2_sqrt), eps);
        m[i] = mi;
        v[i] = vi;
        float p = __fadd_rn(param[i], __fdiv_rn(__fmul_rn(neg_step, mi), denom));
        param[i] = p;
        if (shadow) act_store(shadow + i, p);
    }
}

extern "C" void cu_adam_update(Backend *be, float *param, float *m, float *v, const float *grad, size_t n,
                               double beta1, double beta2, double eps, const float *coef) {
    if (!n) return;
    CudaState *st = cuda_state(be);
    // The bf16 weight copy covers exactly these params: rewrite it here (fresh for the next
    // weights_prepare). Covering part of them only: it is stale after this update.
    bf16 *shadow = NULL;
    const float *a = st->wsrc;
    if (a && param == a && n == st->wn) {
        shadow = (bf16 *)st->wshadow;
        st->wfresh = 1;
    } else if (a && param < a + st->wn && a < param + n) {
        st->wfresh = 0;
    }
    k_adam<<<cuda_grid(n), 256, 0, st->stream>>>(param, shadow, m, v, grad, n, (float)beta1, (float)(1.0 - beta1),
                                                 (float)beta2, (float)(1.0 - beta2), coef, (float)eps);
    CUDA_CHECK_LAUNCH();
}
