/* cuda_internal.h — state shared by the CUDA backend's files (the .cu files of kernels/cuda) and the op
 * entry points each file provides. Signatures and semantics are those of src/backend.h. */
#ifndef UNET_CUDA_INTERNAL_H
#define UNET_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "backend.h"
#ifdef __cplusplus
}
#endif
#include "cuda_check.h"

/* The arithmetic of the GEMM-based ops (linear, convT through cuBLAS; conv3x3 through cuDNN)
 * and the storage of Acts (src/backend.h), fixed when the backend is created. Everything else
 * (LayerNorm, softmax, loss, reductions, Adam) computes in fp32 in every mode, and parameters,
 * gradients and optimiser state are fp32 in every mode.
 *   FP32: plain fp32 FMA, no tensor cores: the exact-comparison mode against the CPU reference;
 *   TF32: tensor cores with inputs rounded to TF32 (10-bit mantissa), fp32 accumulation;
 *   BF16: Acts stored as bf16 (7 stored mantissa bits; see act.cuh), cuBLAS GEMMs on bf16 operands with
 *         fp32 accumulation, weight gradients accumulated into fp32; convolutions as TF32 on fp32
 *         copies of their bf16 operands (conv_cudnn.cu). The mixed-precision product mode. */
typedef enum { CUDA_PREC_FP32 = 0, CUDA_PREC_TF32 = 1, CUDA_PREC_BF16 = 2 } CudaPrecision;

/* One cached cuDNN algorithm choice for a conv3x3 shape (chosen once, see conv_cudnn.cu). The
 * cache needs no precision key: one backend has one precision for its whole life. */
typedef struct {
    int B, H, W, Ci, Co, stride;
    int filter_nchw; /* 0: KRSC (permuted) filter, 1: PyTorch's KCRS filter as it is */
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    /* 1: tensor-op (TF32) math allowed for this shape: the TF32/BF16 modes, or FP32 mode when
     * cuDNN offered no FMA-only algorithm (conv_algo warns). 0: CUDNN_FMA_MATH throughout. */
    int tensor_math;
    int nondeterministic; /* a backward algorithm uses atomics: cuDNN offered no deterministic one */
    /* The math type cuDNN rated each algorithm under (its *AlgoPerf_t.mathType); set on the
     * descriptor before running that direction when tensor_math. */
    cudnnMathType_t fwd_math, bwd_data_math, bwd_filter_math;
} ConvAlgo;

typedef struct {
    int device;
    CudaPrecision precision; /* fixed at creation (backend_cuda_create) */
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    /* One growable workspace shared by every op (cuDNN workspaces, permuted weights,
     * partial sums); valid until the next op, since everything runs on one stream. */
    void *workspace;
    size_t workspace_bytes;
    double *host_scalar; /* (4) pinned: reductions read back to the host */
    ConvAlgo *algos;
    int n_algos, cap_algos;
    size_t live_bytes, peak_bytes;
} CudaState;

static inline CudaState *cuda_state(Backend *be) { return (CudaState *)be->impl; }

/* "fp32", "tf32" or "bf16": the name backend_cuda_create() accepts. */
static inline const char *cuda_precision_name(CudaPrecision p) {
    return p == CUDA_PREC_BF16 ? "bf16" : p == CUDA_PREC_TF32 ? "tf32" : "fp32";
}

/* At least `bytes` of device scratch (grown by free + malloc after a stream sync). */
void *cuda_workspace(Backend *be, size_t bytes);

/* Blocks of 256 threads covering n items, capped (grid-stride loops do the rest). */
static inline unsigned cuda_grid(size_t n) {
    size_t g = (n + 255) / 256;
    if (g > 65535u * 8) g = 65535u * 8;
    return (unsigned)(g ? g : 1);
}

/* db[c] += Σ_m x[m, c] for a row-major (M, C) matrix (elementwise.cu): of activations (in the
 * backend's Act storage) or of fp32 scratch. */
void cuda_colsum_acc(Backend *be, float *db /* (C) */, const Act *x /* (M, C) */, size_t M, int C);
void cuda_colsum_acc_f32(Backend *be, float *db /* (C) */, const float *x /* (M, C) */, size_t M, int C);
/* The deterministic column sum underneath: rows cut into at most max_chunks fixed chunks (a
 * function of M only), double partials, summed in chunk order into acc (+=) or tot (=). */
int cuda_colsum_chunks(size_t M, int max_chunks, size_t *rows);
void cuda_colsum_ordered(cudaStream_t s, float *acc /* (C) or NULL */, double *tot /* (C) or NULL */,
                         double *part /* (nchunk, C) */, const float *x /* (M, C) */, size_t M, int C, size_t rows,
                         int nchunk);

#ifdef __cplusplus
extern "C" {
#endif
void cu_conv3x3_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int Ci, int Co, int stride);
void cu_conv3x3_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H, int W, int Ci, int Co, int stride);
void cu_dwconv7_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int C);
void cu_dwconv7_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H, int W, int C);
void cu_convT_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H, int W, int Ci, int Co, int k);
void cu_convT_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, int B, int H, int W, int Ci, int Co, int k);
void cu_linear_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, size_t N, int Ci, int Co);
void cu_linear_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in, const float *w, size_t N, int Ci, int Co);
void cu_layernorm_forward(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g, const float *b, size_t N, int C, float eps);
void cu_layernorm_backward(Backend *be, Act *din, float *dg, float *db, const Act *dout, const Act *in, const float *mean, const float *rstd, const float *g, size_t N, int C);
void cu_gelu_forward(Backend *be, Act *out, const Act *in, size_t n);
void cu_gelu_backward(Backend *be, Act *din, const Act *dout, const Act *in, size_t n);
void cu_pad_roll_forward(Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp, int shift);
void cu_pad_roll_backward(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp, int Wp, int shift);
void cu_roll_crop_forward(Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp, int shift);
void cu_roll_crop_backward(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp, int Wp, int shift);
void cu_window_attention_forward(Backend *be, Act *out, Act *probs, const Act *qkv, const float *table, int B, int Hp, int Wp, int C, int heads, int window, int shift);
void cu_window_attention_backward(Backend *be, Act *dqkv, float *dtable, const Act *dout, const Act *qkv, const Act *probs, int B, int Hp, int Wp, int C, int heads, int window, int shift);
void cu_add(Backend *be, Act *out, const Act *a, const Act *b, size_t n);
void cu_accumulate(Backend *be, Act *dst, const Act *src, size_t n);
void cu_channel_scale_forward(Backend *be, Act *out, const Act *in, const float *gamma, size_t N, int C);
void cu_channel_scale_backward(Backend *be, Act *din, float *dgamma, const Act *dout, const Act *in, const float *gamma, size_t N, int C);
void cu_sample_scale_forward(Backend *be, Act *out, const Act *in, const float *scale_host, int B, size_t per);
void cu_sample_scale_backward(Backend *be, Act *din, const Act *dout, const float *scale_host, int B, size_t per);
void cu_dice_ce_forward(Backend *be, float *loss_host, float *probs, float *stats, const Act *logits, const int32_t *labels, size_t N, int K, float w_dice, float w_ce);
void cu_dice_ce_backward(Backend *be, Act *dlogits, const float *probs, const float *stats, const int32_t *labels, size_t N, int K, float w_dice, float w_ce, float dloss);
void cu_downsample_labels(Backend *be, int32_t *out, const int32_t *in, int B, int H, int W, int f);
void cu_act_from_f32(Backend *be, Act *out, const float *in, size_t n);
void cu_act_to_f32(Backend *be, float *out, const Act *in, size_t n);
void cu_sum_squares(Backend *be, double *out_host, const float *x, size_t n);
void cu_scale(Backend *be, float *x, float s, size_t n);
void cu_adam_update(Backend *be, float *param, float *m, float *v, const float *grad, size_t n, double lr, double beta1, double beta2, double eps, int step);
#ifdef __cplusplus
}
#endif

#endif
