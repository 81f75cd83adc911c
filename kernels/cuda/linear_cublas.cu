// linear_cublas.cu — linear layers and the kernel==stride transposed convolution, both as
// cuBLAS GEMMs on row-major fp32 matrices (same products as kernels/cpu/linear.c and convT.c).
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so every call below swaps
// the operands instead of transposing anything.
//
// Precision (cuda_internal.h, CudaPrecision): FP32 runs cublasSgemm under the handle's
// CUBLAS_PEDANTIC_MATH (no tensor cores; exactly the exact-comparison path it always was).
// TF32 and BF16 run cublasGemmEx on the same fp32 A/B/C (CUDA_R_32F) with a "fast" fp32 compute
// type: cuBLAS may round the inputs to TF32 (CUBLAS_COMPUTE_32F_FAST_TF32) or bf16
// (CUBLAS_COMPUTE_32F_FAST_16BF) for the tensor cores and accumulates in fp32; C stays fp32. So
// BF16 mode needs no bf16 copies of weights or activations: the down-conversion happens inside
// the GEMM, master weights and gradients remain fp32.
#include <limits.h>

#include "cuda_internal.h"

// Row-major C (M, N) = alpha · op(A) · op(B) + beta · C, arguments as cblas_sgemm / cpu_sgemm.
static void sgemm_rm(Backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    if (M == 0 || N == 0) return;
    CudaState *st = cuda_state(be);
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (st->precision == CUDA_PREC_FP32) {
        CUBLAS_CHECK(cublasSgemm(st->cublas, opb, opa, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
        return;
    }
    // Compute type 32F_FAST_*: alpha and beta are fp32 host scalars (the handle's pointer mode).
    cublasComputeType_t ct = st->precision == CUDA_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF;
    CUBLAS_CHECK(cublasGemmEx(st->cublas, opb, opa, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                              CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT));
}

__global__ void k_fill_rows(float *out, const float *b, size_t N, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N * C; i += (size_t)gridDim.x * blockDim.x)
        out[i] = b[i % C];
}

extern "C" void cu_linear_forward(Backend *be, float *out, const float *in, const float *w, const float *b, size_t N,
                                  int Ci, int Co) {
    if (!N) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    if (b) { // prefill with the bias; the GEMM adds onto it (beta = 1)
        k_fill_rows<<<cuda_grid(N * Co), 256, 0, cuda_state(be)->stream>>>(out, b, N, Co);
        CUDA_CHECK_LAUNCH();
    }
    sgemm_rm(be, 0, 1, (int)N, Co, Ci, 1.0f, in, Ci, w, Ci, b ? 1.0f : 0.0f, out, Co);
}

extern "C" void cu_linear_backward(Backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                                   const float *w, size_t N, int Ci, int Co) {
    if (!N) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    if (din) sgemm_rm(be, 0, 0, (int)N, Ci, Co, 1.0f, dout, Co, w, Ci, 1.0f, din, Ci); // din += dout · w
    sgemm_rm(be, 1, 0, Co, Ci, (int)N, 1.0f, dout, Co, in, Ci, 1.0f, dw, Ci);          // dw += doutᵀ · in
    if (db) cuda_colsum_acc(be, db, dout, N, Co);
}

// ---- transposed convolution, kernel == stride == k ------------------------------------------
// wp[ci][t*Co + co] = w[ci][co][t]; G (M, k*k*Co) = in · wp; out block rows are runs of G.

__global__ void k_convT_permute(float *wp, const float *w, int Ci, int Co, int kk) {
    size_t n = (size_t)Ci * Co * kk;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i % kk), co = (int)(i / kk % Co), ci = (int)(i / ((size_t)kk * Co));
        wp[((size_t)ci * kk + t) * Co + co] = w[i];
    }
}

__global__ void k_convT_unpermute_acc(float *dw, const float *dwp, int Ci, int Co, int kk) {
    size_t n = (size_t)Ci * Co * kk;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i % kk), co = (int)(i / kk % Co), ci = (int)(i / ((size_t)kk * Co));
        dw[i] += dwp[((size_t)ci * kk + t) * Co + co];
    }
}

// scatter (G → out, + bias) when to_out, else gather (dout → G). One thread per out element.
__global__ void k_convT_move(float *out, float *G, const float *b, int B, int H, int W, int Co, int k, int to_out) {
    int Hk = H * k, Wk = W * k;
    size_t n = (size_t)B * Hk * Wk * Co;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int co = (int)(i % Co);
        size_t p = i / Co;
        int X = (int)(p % Wk), Y = (int)(p / Wk % Hk), bi = (int)(p / ((size_t)Wk * Hk));
        size_t m = ((size_t)bi * H + Y / k) * W + X / k;
        size_t g = m * (size_t)k * k * Co + ((size_t)(Y % k) * k + X % k) * Co + co;
        if (to_out) out[i] = G[g] + b[co];
        else G[g] = out[i];
    }
}

extern "C" void cu_convT_forward(Backend *be, float *out, const float *in, const float *w, const float *b, int B,
                                 int H, int W, int Ci, int Co, int k) {
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (!M) return;
    CHECK(M <= (size_t)INT_MAX && N2 <= (size_t)INT_MAX, "convT: %zu pixels x %zu outputs exceed the BLAS int range", M, N2);
    cudaStream_t s = cuda_state(be)->stream;
    size_t wp_n = ((size_t)Ci * N2 + 63) / 64 * 64;
    float *ws = (float *)cuda_workspace(be, (wp_n + M * N2) * sizeof(float));
    float *wp = ws, *G = ws + wp_n;
    k_convT_permute<<<cuda_grid((size_t)Ci * N2), 256, 0, s>>>(wp, w, Ci, Co, k * k);
    CUDA_CHECK_LAUNCH();
    sgemm_rm(be, 0, 0, (int)M, (int)N2, Ci, 1.0f, in, Ci, wp, (int)N2, 0.0f, G, (int)N2);
    k_convT_move<<<cuda_grid(M * N2), 256, 0, s>>>(out, G, b, B, H, W, Co, k, 1);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_convT_backward(Backend *be, float *din, float *dw, float *db, const float *dout, const float *in,
                                  const float *w, int B, int H, int W, int Ci, int Co, int k) {
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (!M) return;
    cudaStream_t s = cuda_state(be)->stream;
    int kk = k * k;
    cuda_colsum_acc(be, db, dout, M * kk, Co); // before the workspace is carved below
    size_t wp_n = ((size_t)Ci * N2 + 63) / 64 * 64;
    float *ws = (float *)cuda_workspace(be, (2 * wp_n + M * N2) * sizeof(float));
    float *wp = ws, *dwp = ws + wp_n, *G = ws + 2 * wp_n;
    k_convT_move<<<cuda_grid(M * N2), 256, 0, s>>>((float *)dout, G, NULL, B, H, W, Co, k, 0);
    CUDA_CHECK_LAUNCH();
    sgemm_rm(be, 1, 0, Ci, (int)N2, (int)M, 1.0f, in, Ci, G, (int)N2, 0.0f, dwp, (int)N2); // dwp = inᵀ G
    k_convT_unpermute_acc<<<cuda_grid((size_t)Ci * N2), 256, 0, s>>>(dw, dwp, Ci, Co, kk);
    CUDA_CHECK_LAUNCH();
    if (din) {
        k_convT_permute<<<cuda_grid((size_t)Ci * N2), 256, 0, s>>>(wp, w, Ci, Co, kk);
        CUDA_CHECK_LAUNCH();
        sgemm_rm(be, 0, 1, (int)M, Ci, (int)N2, 1.0f, G, (int)N2, wp, (int)N2, 1.0f, din, Ci); // din += G wpᵀ
    }
}
