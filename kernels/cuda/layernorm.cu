// layernorm.cu — LayerNorm over the channel dim (biased variance, as torch.nn.LayerNorm). One
// warp per row; statistics in double with two passes, as the CPU reference. The parameter
// gradients are column reductions over fixed row chunks (partials in double, summed in order).
// in/out/dout/din are Acts (templates on the storage type T, act.cuh); mean/rstd, g/b, dg/db float.
#include "act.cuh"

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void k_ln_fwd(T *out, float *mean, float *rstd, const T *in, const float *g, const float *b, size_t N,
                         int C, float eps) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= N) return;
    const T *x = in + r * C;
    T *y = out + r * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) s += act_load(x + c);
    double mu = warp_sum(s) / C;
    double ss = 0;
    for (int c = lane; c < C; c += 32) {
        double d = act_load(x + c) - mu;
        ss += d * d;
    }
    double rs = 1.0 / sqrt(warp_sum(ss) / C + (double)eps);
    float muf = (float)mu, rsf = (float)rs;
    if (lane == 0) {
        mean[r] = muf;
        rstd[r] = rsf;
    }
    for (int c = lane; c < C; c += 32) act_store(y + c, (act_load(x + c) - muf) * rsf * g[c] + b[c]);
}

template <typename T>
__global__ void k_ln_bwd_din(T *din, const T *dout, const T *in, const float *mean, const float *rstd, const float *g,
                             size_t N, int C) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= N) return;
    const T *x = in + r * C, *dy = dout + r * C;
    const float mu = mean[r], rs = rstd[r];
    double a = 0, bs = 0;
    for (int c = lane; c < C; c += 32) {
        float xh = (act_load(x + c) - mu) * rs, dxh = act_load(dy + c) * g[c];
        a += dxh;
        bs += (double)dxh * xh;
    }
    const float ma = (float)(warp_sum(a) / C), mb = (float)(warp_sum(bs) / C);
    T *dx = din + r * C;
    for (int c = lane; c < C; c += 32) {
        float xh = (act_load(x + c) - mu) * rs;
        act_store(dx + c, act_load(dx + c) + rs * (act_load(dy + c) * g[c] - ma - xh * mb));
    }
}

// part[k][0..C) = Σ dout·xh, part[k][C..2C) = Σ dout over rows of chunk k.
template <typename T>
__global__ void k_ln_param_partial(double *part, const T *dout, const T *in, const float *mean, const float *rstd,
                                   size_t N, int C, size_t rows) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    double sg = 0, sb = 0;
    for (size_t r = r0; r < r1; r++) {
        float dy = act_load(dout + r * C + c);
        float xh = (act_load(in + r * C + c) - mean[r]) * rstd[r];
        sg += (double)dy * xh;
        sb += dy;
    }
    part[(size_t)blockIdx.x * 2 * C + c] = sg;
    part[(size_t)blockIdx.x * 2 * C + C + c] = sb;
}

__global__ void k_ln_param_finish(float *dg, float *db, const double *part, int nchunk, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sg = 0, sb = 0;
    for (int k = 0; k < nchunk; k++) {
        sg += part[(size_t)k * 2 * C + c];
        sb += part[(size_t)k * 2 * C + C + c];
    }
    if (dg) dg[c] += (float)sg;
    if (db) db[c] += (float)sb;
}

extern "C" void cu_layernorm_forward(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                                     const float *b, size_t N, int C, float eps) {
    if (!N || C <= 0) return;
    size_t threads = N * 32;
    const unsigned grid = (unsigned)((threads + 255) / 256);
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_ln_fwd<T><<<grid, 256, 0, s>>>((T *)out, mean, rstd, (const T *)in, g, b, N, C, eps));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_layernorm_backward(Backend *be, Act *din, float *dg, float *db, const Act *dout, const Act *in,
                                      const float *mean, const float *rstd, const float *g, size_t N, int C) {
    if (!N || C <= 0) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (din) {
        size_t threads = N * 32;
        const unsigned grid = (unsigned)((threads + 255) / 256);
        CUDA_ACT_DISPATCH(be, T,
                          k_ln_bwd_din<T><<<grid, 256, 0, s>>>((T *)din, (const T *)dout, (const T *)in, mean, rstd,
                                                               g, N, C));
        CUDA_CHECK_LAUNCH();
    }
    if (dg || db) {
        int nchunk = (int)(N < 512 ? N : 512);
        size_t rows = (N + nchunk - 1) / nchunk;
        nchunk = (int)((N + rows - 1) / rows);
        double *part = (double *)cuda_workspace(be, (size_t)nchunk * 2 * C * sizeof(double));
        const dim3 grid(nchunk, (C + 255) / 256);
        CUDA_ACT_DISPATCH(be, T,
                          k_ln_param_partial<T><<<grid, 256, 0, s>>>(part, (const T *)dout, (const T *)in, mean, rstd,
                                                                     N, C, rows));
        CUDA_CHECK_LAUNCH();
        k_ln_param_finish<<<(C + 255) / 256, 256, 0, s>>>(dg, db, part, nchunk, C);
        CUDA_CHECK_LAUNCH();
    }
}
