// residual.cu — the fused residual branch of a PI block (backend_ops.h: residual_forward,
// residual_layernorm_forward, residual_backward, layernorm_backward_residual,
// layernorm_backward_residual_branch).
//
// Unfused, a branch end was channel_scale → sample_scale (one launch per sample) → add → LayerNorm
// forward, and accumulate + memset + sample_scale (per sample) + memset + channel_scale (din, a
// product into scratch, two column-sum kernels) backward, with every intermediate stored and
// re-read. Here the forward is one kernel, the backward one kernel that also sums dgamma (its
// block's column partial, added in block order by the block that finishes last, last_block.cuh),
// and the LayerNorm backward starts from the residual gradient instead of a copy of it, in one
// launch with its dg/db the same way (layernorm.cu's chunked kernel, layernorm_bwd.cuh). Where a
// LayerNorm backward's input gradient only feeds a residual branch's backward (the PI block's
// d_x1), layernorm_backward_residual_branch does both in one launch, d_x1 kept in a register: one
// chunk pass gives the element outputs and the dg, db and dgamma partials, one last block sums them.
//
// Determinism and exactness: every element follows the float operations of the unfused sequence
// in the same order (__fmul_rn/__fadd_rn keep nvcc from contracting them into an fma, so the fp32
// mode computes exactly the CPU reference's values); the reductions (LayerNorm statistics, dgamma,
// dg, db) use fixed row chunks and sum in a fixed order, no atomics. Per-sample drop-path scales
// are read from device memory (the model uploads each step's draw with one queued copy), so a
// captured step reads the scales of the step being replayed, not those of the captured one.
#include <string.h>

#include "act.cuh"
#include "last_block.cuh"
#include "layernorm_bwd.cuh"
#include "check.h"

// Drop-path scales of one call: s NULL when the branch has none, else (B) in device memory.
typedef struct {
    const float *s;
    size_t rows_per_sample;
    int on;
} SampleScales;

static SampleScales sample_scales(const float *scale, int B, size_t per, int C) {
    SampleScales sc;
    memset(&sc, 0, sizeof sc);
    CHECK(C > 0 && per % (size_t)C == 0, "residual op: per-sample size %zu is not a multiple of C = %d", per, C);
    CHECK(B >= 1, "residual op: %d samples", B);
    sc.rows_per_sample = per / (size_t)C;
    sc.s = scale;
    sc.on = scale != NULL;
    return sc;
}

// The branch value of element (r, c): s_b * (gamma_c * y), as channel_scale then sample_scale.
__device__ __forceinline__ float branch_value(float y, const float *gamma, int c, const SampleScales &sc, size_t r) {
    float t = y;
    if (gamma) t = __fmul_rn(gamma[c], t);
    if (sc.on) t = __fmul_rn(t, sc.s[r / sc.rows_per_sample]);
    return t;
}

// The branch gradient of element (r, c) before gamma: sample_scale_backward into a zeroed buffer
// (a dropped sample stays +0).
__device__ __forceinline__ float branch_grad(float d, const SampleScales &sc, size_t r) {
    if (!sc.on) return d;
    const float s = sc.s[r / sc.rows_per_sample];
    return s == 0.0f ? 0.0f : __fadd_rn(0.0f, __fmul_rn(d, s));
}

__device__ __forceinline__ double res_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void k_residual_fwd(T *out /* (N, C) */, const T *res /* (N, C) */, const T *y /* (N, C) */,
                               const float *gamma /* (C) or NULL */, SampleScales sc, size_t N, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N * (size_t)C;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / C;
        const int c = (int)(i % C);
        act_store(out + i, __fadd_rn(act_load(res + i), branch_value(act_load(y + i), gamma, c, sc, r)));
    }
}

// One warp per row: the residual sum is stored first (rounded to T), then normalised from the
// stored values, as the unfused LayerNorm reads them. Each lane re-reads only the elements it
// wrote itself, so no barrier is needed between the two. Statistics in double, two passes, as
// layernorm.cu and the CPU reference.
template <typename T>
__global__ void k_residual_ln_fwd(T *out /* (N, C) */, T *ln /* (N, C) */, float *mean /* (N) */, float *rstd /* (N) */,
                                  const T *res /* (N, C) */, const T *y /* (N, C) */, const float *gamma /* (C) */,
                                  SampleScales sc, const float *g /* (C) */, const float *b /* (C) */, size_t N,
                                  int C, float eps) {
    const size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (r >= N) return;
    T *x = out + r * C, *o = ln + r * C;
    const T *rs_row = res + r * C, *y_row = y + r * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) {
        act_store(x + c, __fadd_rn(act_load(rs_row + c), branch_value(act_load(y_row + c), gamma, c, sc, r)));
        s += act_load(x + c);
    }
    const double mu = res_warp_sum(s) / C;
    double ss = 0;
    for (int c = lane; c < C; c += 32) {
        const double d = act_load(x + c) - mu;
        ss += d * d;
    }
    const double rs = 1.0 / sqrt(res_warp_sum(ss) / C + (double)eps);
    const float muf = (float)mu, rsf = (float)rs;
    if (lane == 0) {
        mean[r] = muf;
        rstd[r] = rsf;
    }
    for (int c = lane; c < C; c += 32) act_store(o + c, (act_load(x + c) - muf) * rsf * g[c] + b[c]);
}

template <typename T>
__global__ void k_residual_bwd(T *dres /* (N, C) or NULL */, T *dy /* (N, C) */, const T *dout /* (N, C) */,
                               const float *gamma /* (C) or NULL */, SampleScales sc, size_t N, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N * (size_t)C;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / C;
        const int c = (int)(i % C);
        const float d = act_load(dout + i);
        if (dres) act_store(dres + i, __fadd_rn(act_load(dres + i), d));
        const float t = branch_grad(d, sc, r);
        act_store(dy + i, gamma ? __fadd_rn(0.0f, __fmul_rn(gamma[c], t)) : t);
    }
}

#define RES_MAX_BLOCKS 512 // row chunks of the dgamma / dg, db sums: a function of N only

// residual_backward with dgamma in one launch: block k takes the rows of chunk k (rows each),
// one thread per column: each element as k_residual_bwd, and part[k][c] = Σ over the chunk's rows
// of (s_b·dout)·y in double, in row order; the last block to arrive adds Σ_k part[k][c], k in
// order, into dgamma. Each element's inputs are read before its outputs are written.
template <typename T>
__global__ void k_residual_bwd_dgamma(T *dres /* (N, C) or NULL */, T *dy /* (N, C) */, float *dgamma /* (C) */,
                                      double *part /* (nchunk, C) */, unsigned *arrivals, const T *dout /* (N, C) */,
                                      const T *y /* (N, C) */, const float *gamma /* (C) */, SampleScales sc, size_t N,
                                      int C, size_t rows) {
    const size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double s = 0;
        for (size_t r = r0; r < r1; r++) {
            const size_t i = r * C + c;
            const float d = act_load(dout + i), yv = act_load(y + i), t = branch_grad(d, sc, r);
            s += (double)t * yv;
            if (dres) act_store(dres + i, __fadd_rn(act_load(dres + i), d));
            act_store(dy + i, __fadd_rn(0.0f, __fmul_rn(gamma[c], t)));
        }
        part[(size_t)blockIdx.x * C + c] = s;
    }
    if (!cuda_last_block(arrivals)) return;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double s = 0;
        for (int k = 0; k < (int)gridDim.x; k++) s += cuda_load_cg(part + (size_t)k * C + c);
        dgamma[c] += (float)s;
    }
}

#define LN_RES_BLOCK 256 // threads per block of k_ln_bwd_residual_branch (8 warps)

// layernorm_backward_residual + residual_backward in one launch (the ConvNeXt half's residual
// gradient, backend_ops.h): block k takes the rows of chunk k (rows each). First one warp per row
// stores the row's two LayerNorm means (ma, mb) in rowm; after the barrier one thread per column
// goes down the chunk's rows (ln_chunk_partials) and per element computes d = dres + LayerNorm's
// input gradient in a register (d_x1, never stored), then residual_backward's outputs from it:
// dx += d, dy = gamma·(s_b·d), and the third column sum Σ (s_b·d)·y for dgamma next to dg's and
// db's. The last block to arrive adds the chunks into dg, db and dgamma in order.
// One implementation, not layernorm.cu's tuned pair: the op it replaces (layernorm_backward_residual)
// never had a "vec" form, and one would hold x̂, dout and three per-lane partials (5·NV·VW floats,
// past the 4·NV·VW at which layernorm.cu's vec backward starts to spill) besides dres and y.
template <typename T> struct LnBranchTail {
    T *dx, *dy;
    const T *dres, *y;
    const float *gamma, *g, *rowm; // rowm (N, 2): ma, mb of each row
    SampleScales sc;
    int C;
    static constexpr int parts = 3;
    __device__ double operator()(size_t r, int c, float dout, float xh, float rs) const {
        const size_t i = r * C + c;
        const float d = act_load(dres + i) + ln_din_term(dout, g[c], xh, rs, rowm[2 * r], rowm[2 * r + 1]);
        act_store(dx + i, __fadd_rn(act_load(dx + i), d));
        const float t = branch_grad(d, sc, r);
        act_store(dy + i, gamma ? __fadd_rn(0.0f, __fmul_rn(gamma[c], t)) : t);
        return gamma ? (double)t * act_load(y + i) : 0.0;
    }
};

template <typename T>
__global__ void __launch_bounds__(LN_RES_BLOCK)
    k_ln_bwd_residual_branch(LnBranchTail<T> tail, float *dg /* (C) or NULL */, float *db /* (C) or NULL */,
                             float *dgamma /* (C) or NULL */, double *part /* (nchunk, 3C) */,
                             float *rowm /* (N, 2) */, unsigned *arrivals, const T *dout /* (N, C) */,
                             const T *in /* (N, C) */, const float *mean /* (N) */, const float *rstd /* (N) */,
                             const float *g /* (C) */, size_t N, int C, size_t rows) {
    const int lane = threadIdx.x & 31;
    const size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    for (size_t r = r0 + threadIdx.x / 32; r < r1; r += LN_RES_BLOCK / 32) {
        float ma, mb;
        ln_row_means(&ma, &mb, in + r * C, dout + r * C, g, mean[r], rstd[r], C, lane);
        if (lane == 0) rowm[2 * r] = ma, rowm[2 * r + 1] = mb;
    }
    __syncthreads(); // the block's own rows' means, written above, are visible to all its threads
    ln_chunk_partials(part + (size_t)blockIdx.x * 3 * C, tail, dout, in, mean, rstd, r0, r1, C);
    if (!dg && !db && !dgamma) return;
    if (!cuda_last_block(arrivals)) return;
    ln_param_finish(dg, db, dgamma, part, 3, (int)gridDim.x, C);
}

extern "C" void cu_residual_forward(Backend *be, Act *out, const Act *res, const Act *y, const float *gamma,
                                    const float *scale, int B, size_t per, int C) {
    const SampleScales sc = sample_scales(scale, B, per, C);
    const size_t N = sc.rows_per_sample * (size_t)B;
    if (!N) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_residual_fwd<T><<<cuda_grid(N * C), 256, 0, s>>>((T *)out, (const T *)res, (const T *)y,
                                                                         gamma, sc, N, C));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_residual_layernorm_forward(Backend *be, Act *out, Act *ln, float *mean, float *rstd,
                                              const Act *res, const Act *y, const float *gamma,
                                              const float *scale, const float *g, const float *b, int B,
                                              size_t per, int C, float eps) {
    const SampleScales sc = sample_scales(scale, B, per, C);
    const size_t N = sc.rows_per_sample * (size_t)B;
    if (!N) return;
    const unsigned grid = (unsigned)((N * 32 + 255) / 256);
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_residual_ln_fwd<T><<<grid, 256, 0, s>>>((T *)out, (T *)ln, mean, rstd, (const T *)res,
                                                                (const T *)y, gamma, sc, g, b, N, C, eps));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_residual_backward(Backend *be, Act *dres, Act *dy, float *dgamma, const Act *dout, const Act *y,
                                     const float *gamma, const float *scale, int B, size_t per, int C) {
    const SampleScales sc = sample_scales(scale, B, per, C);
    const size_t N = sc.rows_per_sample * (size_t)B;
    if (!N) return;
    if (!gamma) dgamma = NULL;
    CHECK(!dgamma || y, "residual_backward: dgamma needs y");
    cudaStream_t s = cuda_state(be)->stream;
    if (!dgamma) {
        CUDA_ACT_DISPATCH(be, T,
                          k_residual_bwd<T><<<cuda_grid(N * C), 256, 0, s>>>((T *)dres, (T *)dy, (const T *)dout,
                                                                             gamma, sc, N, C));
        CUDA_CHECK_LAUNCH();
        return;
    }
    size_t rows;
    const int nchunk = cuda_colsum_chunks(N, RES_MAX_BLOCKS, &rows);
    double *part = (double *)cuda_workspace(be, (size_t)nchunk * C * sizeof(double));
    const int threads = C < 256 ? (C + 31) / 32 * 32 : 256; // one thread per column up to 256
    CUDA_ACT_DISPATCH(be, T,
                      k_residual_bwd_dgamma<T><<<nchunk, threads, 0, s>>>((T *)dres, (T *)dy, dgamma, part,
                                                                          cuda_state(be)->arrivals, (const T *)dout,
                                                                          (const T *)y, gamma, sc, N, C, rows));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_layernorm_backward_residual(Backend *be, Act *din, float *dg, float *db, const Act *dres,
                                               const Act *dout, const Act *in, const float *mean, const float *rstd,
                                               const float *g, size_t N, int C) {
    if (!N || C <= 0) return;
    ln_bwd_chunked(be, din, dg, db, dres, dout, in, mean, rstd, g, N, C); /* layernorm.cu's chunked kernel */
}

extern "C" void cu_layernorm_backward_residual_branch(Backend *be, Act *dx, Act *dy, float *dg, float *db,
                                                      float *dgamma, const Act *dres, const Act *dout, const Act *in,
                                                      const float *mean, const float *rstd, const float *g,
                                                      const Act *y, const float *gamma, const float *scale, int B,
                                                      size_t per, int C) {
    const SampleScales sc = sample_scales(scale, B, per, C);
    const size_t N = sc.rows_per_sample * (size_t)B;
    if (!N) return;
    if (!gamma) dgamma = NULL;
    CHECK(dx && dres, "layernorm_backward_residual_branch: needs dx and dres");
    CHECK(!gamma || y, "layernorm_backward_residual_branch: gamma needs y");
    cudaStream_t s = cuda_state(be)->stream;
    size_t rows;
    const int nchunk = cuda_colsum_chunks(N, RES_MAX_BLOCKS, &rows);
    // the chunks' partials, then the rows' two means
    const size_t part_bytes = (size_t)nchunk * 3 * C * sizeof(double);
    char *ws = (char *)cuda_workspace(be, part_bytes + N * 2 * sizeof(float));
    double *part = (double *)ws;
    float *rowm = (float *)(ws + part_bytes);
    CUDA_ACT_DISPATCH(be, T, {
        const LnBranchTail<T> tail = {(T *)dx, (T *)dy, (const T *)dres, (const T *)y, gamma, g, rowm, sc, C};
        k_ln_bwd_residual_branch<T><<<nchunk, LN_RES_BLOCK, 0, s>>>(tail, dg, db, dgamma, part, rowm,
                                                                    cuda_state(be)->arrivals, (const T *)dout,
                                                                    (const T *)in, mean, rstd, g, N, C, rows);
    });
    CUDA_CHECK_LAUNCH();
}
