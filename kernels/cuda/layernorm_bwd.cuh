// layernorm_bwd.cuh — the chunked LayerNorm backward that layernorm.cu ("warp") and residual.cu
// (layernorm_backward_residual and its branch form) share: the row means of the input gradient,
// the per-chunk column partials of dg/db (plus an op's own third column sum), the last block's
// finish; and the launcher of layernorm.cu's chunked kernel, which residual.cu calls too.
//
// Rows are cut into fixed chunks (cuda_colsum_chunks: a function of N only), block k taking
// chunk k. One warp per row gives the row's two means (in double, across lanes in a fixed
// butterfly order); one thread per column sums the chunk's rows in row order (double) into
// part[k]; the block that arrives last adds the chunks in order (last_block.cuh). No atomics on
// values, so the result has the same bits whatever order the blocks run in.
#ifndef UNET_CUDA_LAYERNORM_BWD_CUH
#define UNET_CUDA_LAYERNORM_BWD_CUH

#include "act.cuh"
#include "last_block.cuh"

// A call rather than inlined: inlined into the vec backward (layernorm.cu), its live values made
// the bf16 NV = 3 instance spill (ptxas -v, sm_90); the CPU emulator (no __CUDACC__) has no
// __noinline__.
#ifdef __CUDACC__
#define LN_NOINLINE __noinline__
#else
#define LN_NOINLINE
#endif

__device__ __forceinline__ double ln_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The two means the input gradient of one row needs, over the warp's lanes: ma = mean_c(dxh),
// mb = mean_c(dxh·xh), dxh = dout·g, xh = (x − mu)·rs. Every lane gets both.
template <typename T>
__device__ __forceinline__ void ln_row_means(float *ma, float *mb, const T *x /* (C) */, const T *dout /* (C) */,
                                             const float *g /* (C) */, float mu, float rs, int C, int lane) {
    double a = 0, bs = 0;
    for (int c = lane; c < C; c += 32) {
        const float xh = (act_load(x + c) - mu) * rs, dxh = act_load(dout + c) * g[c];
        a += dxh;
        bs += (double)dxh * xh;
    }
    *ma = (float)(ln_warp_sum(a) / C);
    *mb = (float)(ln_warp_sum(bs) / C);
}

// LayerNorm's input gradient of one element: rs·(dout·g − ma − xh·mb), as the CPU reference.
__device__ __forceinline__ float ln_din_term(float dout, float g, float xh, float rs, float ma, float mb) {
    return rs * (dout * g - ma - xh * mb);
}

// The column pass's per-element hook of a plain LayerNorm backward: nothing (two column sums).
struct LnNoTail {
    static constexpr int parts = 2;
    __device__ double operator()(size_t, int, float, float, float) const { return 0.0; }
};

// The chunk's column partials, one thread per column, rows in order (double):
// pt[c] = Σ dout·xh, pt[C + c] = Σ dout; with Tail::parts = 3 also pt[2C + c] = Σ of what
// tail(r, c, dout, xh, rs) returns for each element (the hook may also write that element's
// outputs: it is called once per element of the chunk).
template <typename T, typename Tail>
__device__ __forceinline__ void ln_chunk_partials(double *pt /* (Tail::parts·C) */, const Tail &tail,
                                                  const T *dout /* (N, C) */, const T *in /* (N, C) */,
                                                  const float *mean /* (N) */, const float *rstd /* (N) */,
                                                  size_t r0, size_t r1, int C) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double sg = 0, sb = 0, st = 0;
        for (size_t r = r0; r < r1; r++) {
            const float dy = act_load(dout + r * C + c), rs = rstd[r];
            const float xh = (act_load(in + r * C + c) - mean[r]) * rs;
            sg += (double)dy * xh;
            sb += dy;
            if (Tail::parts > 2) st += tail(r, c, dy, xh, rs);
        }
        pt[c] = sg;
        pt[C + c] = sb;
        if (Tail::parts > 2) pt[2 * C + c] = st;
    }
}

// out_j[c] += Σ_k part[k][j·C + c], k in order, for j < nparts (out_j NULL: skipped); part rows
// are nparts·C long. Run by the block that arrived last (last_block.cuh).
static __device__ LN_NOINLINE void ln_param_finish(float *dg, float *db, float *dt, const double *part /* (nblk, nparts·C) */,
                                             int nparts, int nblk, int C) {
    float *outs[3] = {dg, db, dt};
    const size_t stride = (size_t)nparts * C;
    for (int j = 0; j < nparts; j++) {
        if (!outs[j]) continue;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            double s = 0;
            for (int k = 0; k < nblk; k++) s += cuda_load_cg(part + (size_t)k * stride + (size_t)j * C + c);
            outs[j][c] += (float)s;
        }
    }
}

// din = base + LayerNorm's input gradient, base = dres (din may be dres; dres = din accumulates)
// or 0 (dres NULL); din NULL: none. dg, db += (either may be NULL). The chunked "warp" kernel of
// layernorm.cu, one launch: layernorm_backward's "warp" implementation and residual.cu's
// layernorm_backward_residual.
void ln_bwd_chunked(Backend *be, Act *din /* (N, C) or NULL */, float *dg /* (C) or NULL */,
                    float *db /* (C) or NULL */, const Act *dres /* (N, C) or NULL */, const Act *dout /* (N, C) */,
                    const Act *in /* (N, C) */, const float *mean /* (N) */, const float *rstd /* (N) */,
                    const float *g /* (C) */, size_t N, int C);

#endif
