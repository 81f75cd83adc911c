// layernorm.cu — LayerNorm over the channel dim (biased variance, as torch.nn.LayerNorm). One
// warp per row; statistics in double with two passes, as the CPU reference. The parameter
// gradients are column reductions over fixed row chunks (partials in double, summed in order).
#include "cuda_internal.h"

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void k_ln_fwd(float *out, float *mean, float *rstd, const float *in, const float *g, const float *b,
                         size_t N, int C, float eps) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= N) return;
    const float *x = in + r * C;
    float *y = out + r * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) s += x[c];
    double mu = warp_sum(s) / C;
    double ss = 0;
    for (int c = lane; c < C; c += 32) {
        double d = x[c] - mu;
        ss += d * d;
    }
    double rs = 1.0 / sqrt(warp_sum(ss) / C + (double)eps);
    float muf = (float)mu, rsf = (float)rs;
    if (lane == 0) {
        mean[r] = muf;
        rstd[r] = rsf;
    }
    for (int c = lane; c < C; c += 32) y[c] = (x[c] - muf) * rsf * g[c] + b[c];
}

__global__ void k_ln_bwd_din(float *din, const float *dout, const float *in, const float *mean, const float *rstd,
                             const float *g, size_t N, int C) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= N) return;
    const float *x = in + r * C, *dy = dout + r * C;
    const float mu = mean[r], rs = rstd[r];
    double a = 0, bs = 0;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - mu) * rs, dxh = dy[c] * g[c];
        a += dxh;
        bs += (double)dxh * xh;
    }
    const float ma = (float)(warp_sum(a) / C), mb = (float)(warp_sum(bs) / C);
    float *dx = din + r * C;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - mu) * rs;
        dx[c] += rs * (dy[c] * g[c] - ma - xh * mb);
    }
}

// part[k][0..C) = Σ dout·xh, part[k][C..2C) = Σ dout over rows of chunk k.
__global__ void k_ln_param_partial(double *part, const float *dout, const float *in, const float *mean,
                                   const float *rstd, size_t N, int C, size_t rows) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    double sg = 0, sb = 0;
    for (size_t r = r0; r < r1; r++) {
        float dy = dout[r * C + c];
        float xh = (in[r * C + c] - mean[r]) * rstd[r];
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

extern "C" void cu_layernorm_forward(Backend *be, float *out, float *mean, float *rstd, const float *in,
                                     const float *g, const float *b, size_t N, int C, float eps) {
    if (!N || C <= 0) return;
    size_t threads = N * 32;
    k_ln_fwd<<<(unsigned)((threads + 255) / 256), 256, 0, cuda_state(be)->stream>>>(out, mean, rstd, in, g, b, N, C,
                                                                                    eps);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_layernorm_backward(Backend *be, float *din, float *dg, float *db, const float *dout,
                                      const float *in, const float *mean, const float *rstd, const float *g, size_t N,
                                      int C) {
    if (!N || C <= 0) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (din) {
        size_t threads = N * 32;
        k_ln_bwd_din<<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(din, dout, in, mean, rstd, g, N, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dg || db) {
        int nchunk = (int)(N < 512 ? N : 512);
        size_t rows = (N + nchunk - 1) / nchunk;
        nchunk = (int)((N + rows - 1) / rows);
        double *part = (double *)cuda_workspace(be, (size_t)nchunk * 2 * C * sizeof(double));
        k_ln_param_partial<<<dim3(nchunk, (C + 255) / 256), 256, 0, s>>>(part, dout, in, mean, rstd, N, C, rows);
        CUDA_CHECK_LAUNCH();
        k_ln_param_finish<<<(C + 255) / 256, 256, 0, s>>>(dg, db, part, nchunk, C);
        CUDA_CHECK_LAUNCH();
    }
}
