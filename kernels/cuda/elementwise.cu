// elementwise.cu — add, accumulate, layer scale (channel_scale), drop path (sample_scale) and
// the deterministic column sum that every bias gradient uses.
#include "cuda_internal.h"

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_add(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void k_accumulate(float *dst, const float *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i];
}
__global__ void k_axpy_acc(float *dst, const float *src, float s, size_t n) {
    GRID_STRIDE(i, n) dst[i] += src[i] * s;
}
__global__ void k_scale_copy(float *dst, const float *src, float s, size_t n) {
    GRID_STRIDE(i, n) dst[i] = src[i] * s;
}
__global__ void k_channel_scale(float *out, const float *in, const float *gamma, size_t N, int C) {
    GRID_STRIDE(i, N * (size_t)C) out[i] = gamma[i % C] * in[i];
}
__global__ void k_channel_scale_bwd_din(float *din, const float *dout, const float *gamma, size_t N, int C) {
    GRID_STRIDE(i, N * (size_t)C) din[i] += gamma[i % C] * dout[i];
}
__global__ void k_mul(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}

// Partial column sums: block (chunk) sums rows [chunk*rows, ...) for channels
// blockIdx.y*256 + threadIdx.x, in double, in row order.
__global__ void k_colsum_partial(double *part /* (nchunk, C) */, const float *x /* (M, C) */, size_t M, int C,
                                 size_t rows) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    size_t r0 = blockIdx.x * rows, r1 = r0 + rows < M ? r0 + rows : M;
    double s = 0;
    for (size_t r = r0; r < r1; r++) s += x[r * C + c];
    part[(size_t)blockIdx.x * C + c] = s;
}
// Sums the chunk partials in chunk order into acc (+=, float) or tot (=, double).
__global__ void k_colsum_finish(float *acc, double *tot, const double *part, int nchunk, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0;
    for (int k = 0; k < nchunk; k++) s += part[(size_t)k * C + c];
    if (acc) acc[c] += (float)s;
    else tot[c] = s;
}

int cuda_colsum_chunks(size_t M, int max_chunks, size_t *rows) {
    int nchunk = (int)(M < (size_t)max_chunks ? M : (size_t)max_chunks);
    *rows = (M + nchunk - 1) / nchunk;
    return (int)((M + *rows - 1) / *rows);
}

void cuda_colsum_ordered(cudaStream_t s, float *acc, double *tot, double *part, const float *x, size_t M, int C,
                         size_t rows, int nchunk) {
    dim3 grid(nchunk, (C + 255) / 256);
    k_colsum_partial<<<grid, 256, 0, s>>>(part, x, M, C, rows);
    CUDA_CHECK_LAUNCH();
    k_colsum_finish<<<(C + 255) / 256, 256, 0, s>>>(acc, tot, part, nchunk, C);
    CUDA_CHECK_LAUNCH();
}

// db[c] += Σ_m x[m, c]: a fixed partition of the rows (depends on M only), partials summed in
// order, so the result is deterministic.
void cuda_colsum_acc(Backend *be, float *db, const float *x, size_t M, int C) {
    if (M == 0 || C <= 0 || !db) return;
    size_t rows;
    int nchunk = cuda_colsum_chunks(M, 512, &rows);
    double *part = (double *)cuda_workspace(be, (size_t)nchunk * C * sizeof(double));
    cuda_colsum_ordered(cuda_state(be)->stream, db, NULL, part, x, M, C, rows, nchunk);
}

extern "C" void cu_add(Backend *be, float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    k_add<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(out, a, b, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_accumulate(Backend *be, float *dst, const float *src, size_t n) {
    if (!n) return;
    k_accumulate<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_channel_scale_forward(Backend *be, float *out, const float *in, const float *gamma, size_t N,
                                         int C) {
    if (!N) return;
    k_channel_scale<<<cuda_grid(N * C), 256, 0, cuda_state(be)->stream>>>(out, in, gamma, N, C);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_channel_scale_backward(Backend *be, float *din, float *dgamma, const float *dout,
                                          const float *in, const float *gamma, size_t N, int C) {
    if (!N || C <= 0) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (din) {
        k_channel_scale_bwd_din<<<cuda_grid(N * C), 256, 0, s>>>(din, dout, gamma, N, C);
        CUDA_CHECK_LAUNCH();
    }
    if (dgamma) {
        // dgamma[c] += Σ_n dout·in: form the product in a scratch buffer placed after the
        // column-sum partials (the workspace is one buffer, so grow it for both first).
        int nchunk = (int)(N < 512 ? N : 512);
        size_t part_bytes = ((size_t)nchunk * C * sizeof(double) + 255) / 256 * 256;
        char *ws = (char *)cuda_workspace(be, part_bytes + N * C * sizeof(float));
        float *prod = (float *)(ws + part_bytes); /* (N, C) */
        k_mul<<<cuda_grid(N * C), 256, 0, s>>>(prod, dout, in, N * C);
        CUDA_CHECK_LAUNCH();
        cuda_colsum_acc(be, dgamma, prod, N, C); // uses the first part_bytes only
    }
}

extern "C" void cu_sample_scale_forward(Backend *be, float *out, const float *in, const float *scale_host, int B,
                                        size_t per) {
    cudaStream_t s = cuda_state(be)->stream;
    for (int b = 0; b < B && per; b++) {
        k_scale_copy<<<cuda_grid(per), 256, 0, s>>>(out + b * per, in + b * per, scale_host[b], per);
        CUDA_CHECK_LAUNCH();
    }
}

extern "C" void cu_sample_scale_backward(Backend *be, float *din, const float *dout, const float *scale_host, int B,
                                         size_t per) {
    if (!din) return;
    cudaStream_t s = cuda_state(be)->stream;
    for (int b = 0; b < B && per; b++) {
        if (scale_host[b] == 0.0f) continue; // dropped sample: nothing to add
        k_axpy_acc<<<cuda_grid(per), 256, 0, s>>>(din + b * per, dout + b * per, scale_host[b], per);
        CUDA_CHECK_LAUNCH();
    }
}
