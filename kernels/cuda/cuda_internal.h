/* cuda_internal.h — state shared by the CUDA backend's files (the .cu files of kernels/cuda) and the op
 * entry points each file provides. Signatures and semantics are those of src/base/backend_ops.h. */
#ifndef UNET_CUDA_INTERNAL_H
#define UNET_CUDA_INTERNAL_H

#include <cublasLt.h>
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
 * and the storage of Acts (src/base/backend.h), fixed when the backend is created. Everything else
 * (LayerNorm, softmax, loss, reductions, Adam) computes in fp32 in every mode, and parameters,
 * gradients and optimiser state are fp32 in every mode.
 *   FP32: plain fp32 FMA, no tensor cores: the exact-comparison mode against the CPU reference;
 *   TF32: tensor cores with inputs rounded to TF32 (10-bit mantissa), fp32 accumulation;
 *   BF16: Acts stored as bf16 (7 stored mantissa bits; see act.cuh), cuBLAS GEMMs on bf16 operands with
 *         fp32 accumulation, weight gradients accumulated into fp32; convolutions as TF32 on fp32
 *         copies of their bf16 operands (conv_cudnn.cu). The mixed-precision product mode. */
typedef enum { CUDA_PREC_FP32 = 0, CUDA_PREC_TF32 = 1, CUDA_PREC_BF16 = 2 } CudaPrecision;

/* The convolutions cuDNN runs (conv_cudnn.cu): the 3x3 on fp32 data, the 3x3 on bf16 data (its
 * "bf16" implementation), the depthwise 7x7 on fp32 data (dwconv7's "cudnn"). */
enum { CONV_VARIANT_F32 = 0, CONV_VARIANT_BF16 = 1, CONV_VARIANT_DW7 = 2 };

/* One cached cuDNN algorithm choice for a conv3x3 shape (chosen once, see conv_cudnn.cu). The
 * cache needs no precision key: one backend has one precision for its whole life. */
typedef struct {
    int B, H, W, Ci, Co, stride;
    int variant; /* CONV_VARIANT_*: which convolution and data type the entry is for */
    int unsupported; /* DW7: no FMA-only deterministic set (dwconv7 runs "direct"); BF16: no deterministic
                        bf16 set (conv3x3 runs "tf32copy"); never for CONV_VARIANT_F32 */
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

/* One cached cuBLASLt choice for a linear GEMM with a fused epilogue (linear_cublas.cu): the GEMM
 * as cuBLASLt sees it (column-major, after gemm_rm's operand swap), the epilogue and the operand
 * alignments the heuristic was told, with the descriptors built for it. Chosen once per key, so
 * a shape runs the same algorithm every time. No precision key: it is fixed per backend. */
typedef struct {
    unsigned epilogue;          /* cublasLtEpilogue_t */
    int transa, transb, m, n, k, lda, ldb, ldd;
    int d_act;                  /* D is an Act array (bf16 in BF16), else fp32 */
    unsigned align[4];          /* bytes: A, B, D (== C), bias */
    int ok;                     /* 0: no algorithm offered: the caller runs its unfused path (said once) */
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
} LtAlgo;

/* The fixed cuBLASLt workspace (allocated at creation outside FP32 mode, so a captured step
 * never allocates for it): the most any cached algorithm may use. */
#define CUDA_LT_WORKSPACE ((size_t)4 << 20)

/* CudaState.arrivals: one top counter + 4096 group counters, enough for a two-level finish of
 * sqrt(4096)² = 16 M partial rows in one reduction (last_block.cuh, cuda_tree_plan) */
#define CUDA_ARRIVALS (1 + 4096)

#define CUDA_LABEL_CHECKS 8 /* dice_ce_forward calls between two host syncs before one is forced */

typedef struct {
    int device;
    CudaPrecision precision; /* fixed at creation (backend_cuda_create) */
    cudaStream_t stream;
    cublasHandle_t cublas;
    cublasLtHandle_t cublaslt; /* the linears' fused-epilogue GEMMs (linear_cublas.cu); NULL in FP32 */
    void *lt_workspace;        /* CUDA_LT_WORKSPACE bytes, with cublaslt */
    LtAlgo *lt_algos;
    int n_lt_algos, cap_lt_algos;
    cudnnHandle_t cudnn;
    /* One growable workspace shared by every op (cuDNN workspaces, permuted weights,
     * partial sums); valid until the next op, since everything runs on one stream. */
    void *workspace;
    size_t workspace_bytes;
    double *host_scalar; /* (4) pinned: reductions read back to the host */
    /* (CUDA_ARRIVALS) device counters of the one-launch reductions (last_block.cuh): [0] the
     * one-level last block's, all of them for the two-level finishes; 0 between kernels */
    unsigned *arrivals;
    ConvAlgo *algos;
    int n_algos, cap_algos;
    size_t live_bytes, peak_bytes;
    void *tune; /* the implementation chosen per hot op and shape (tune.cu) */
    /* dice_ce_forward's label check, reported at the next host sync instead of waiting for it
     * (loss.cu): per pending call the bad pixel (-1: none, pinned), its labels and K */
    int *label_bad;
    const int32_t *label_ptr[CUDA_LABEL_CHECKS];
    int label_K[CUDA_LABEL_CHECKS], n_label_checks;
    /* weights_prepare (linear_cublas.cu): bf16 copy of the float params [wsrc, wsrc + wn),
     * wsrc NULL when there is none current; wcap elements allocated. wfresh: the copy is what
     * the params will be when the stream reaches the next weights_prepare (adam_update rewrites
     * it with the params, optim.cu), so that call converts nothing. */
    void *wshadow;
    const float *wsrc;
    size_t wn, wcap;
    int wfresh;
    /* Bumped whenever device memory is freed or moved (workspace growth, release, a new bf16
     * weight copy): a recorded step refers to addresses, so it is replayed only while this is
     * what it was at capture (graph.cu). */
    unsigned long mem_gen;
    /* The recorded step (graph.cu): NULL when there is none */
    cudaGraphExec_t graph;
    unsigned long graph_gen;           /* mem_gen at its capture */
    unsigned long long graph_launches; /* work items it replays, as the check macros counted them */
    unsigned long long capture_from;   /* unet_work_count.launches when the capture began */
    int capturing;
    /* dice_ce_forward's label checks the recorded step makes (their slots were taken at capture):
     * restored at each replay so that the next host sync reports a bad label as eagerly */
    int graph_n_labels;
    const int32_t *graph_label_ptr[CUDA_LABEL_CHECKS];
    int graph_label_K[CUDA_LABEL_CHECKS];
} CudaState;

/* After every host sync of the backend: dies with dice_ce_forward's message when a label it
 * checked since the last sync was outside [0, K) (loss.cu). */
void cuda_label_report(CudaState *st);

static inline CudaState *cuda_state(Backend *be) { return (CudaState *)be->impl; }

/* "fp32", "tf32" or "bf16": the name backend_cuda_create() accepts. */
static inline const char *cuda_precision_name(CudaPrecision p) {
    return p == CUDA_PREC_BF16 ? "bf16" : p == CUDA_PREC_TF32 ? "tf32" : "fp32";
}

/* Dies with a message naming `what` when called inside a step capture (graph.cu): allocating,
 * freeing or waiting there is illegal on a GPU, and this says which backend call did it (the
 * warm-up step before the capture should have settled it). */
static inline void cuda_not_capturing(const CudaState *st, const char *what) {
    CHECK(!st->capturing, "CUDA backend: %s inside a captured training step (train.cuda_graph); the eager step "
          "before the capture did not need it. train.cuda_graph=off runs without capture", what);
}

/* The step-capture entries of the Backend (graph.cu). */
int cuda_capture_begin(Backend *be, char *why, size_t why_len);
int cuda_capture_end(Backend *be, char *why, size_t why_len);
int cuda_replay(Backend *be);
void cuda_capture_drop(Backend *be);

/* Lets `kernel` launch with `bytes` of dynamic shared memory per block: raises the function's
 * limit when it is lower, never lowers it. The limit belongs to the function, not to a launch:
 * lowering it for a smaller shape would make the larger shape's launches that a captured step
 * already recorded fail when the graph is replayed (graph.cu), as at synapse_320, where the
 * window-20 stage's attention needs more than the window-10 stages'. */
static inline void cuda_dyn_smem_optin(const void *kernel, size_t bytes) {
    struct cudaFuncAttributes fa;
    CUDA_CHECK(cudaFuncGetAttributes(&fa, kernel));
    if (bytes > (size_t)fa.maxDynamicSharedSizeBytes)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
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
 * backend's Act storage) or of fp32 scratch. cuda_colsum_set: db[c] = Σ_m x[m, c] (the same
 * kernel and sums, db overwritten, never read: linear_backward's unfused bias gradient). */
void cuda_colsum_acc(Backend *be, float *db /* (C) */, const Act *x /* (M, C) */, size_t M, int C);
void cuda_colsum_set(Backend *be, float *db /* (C) */, const Act *x /* (M, C) */, size_t M, int C);
void cuda_colsum_acc_f32(Backend *be, float *db /* (C) */, const float *x /* (M, C) */, size_t M, int C);
/* The deterministic column sum's partition: rows cut into at most max_chunks fixed chunks (a
 * function of M only); returns their count. */
int cuda_colsum_chunks(size_t M, int max_chunks, size_t *rows);

/* Frees the cuBLASLt descriptors of the cached LtAlgo choices (linear_cublas.cu). */
void cuda_lt_free(CudaState *st);

/* dwconv7's "cudnn" implementation (conv_cudnn.cu): cuDNN grouped convolution (groups = C, 7x7,
 * pad 3, NHWC, fp32 data with FMA math in every mode: bf16 Acts through fp32 copies), with the
 * semantics of dwconv7_forward / dwconv7_backward. 0 (nothing queued) when cuDNN offers no
 * FMA-only, deterministic set of algorithms for the shape: the caller runs "direct" instead. */
int cuda_dwconv7_cudnn_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                               int W, int C);
int cuda_dwconv7_cudnn_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                const float *w, int B, int H, int W, int C);

#ifdef __cplusplus
extern "C" {
#endif
/* cu_<op> for every op of backend_ops.h: the entries of the CUDA backend's table, each defined
 * (extern "C") in the .cu file of its family. */
#define CUDA_OP_DECLARE(name, params, args) void cu_##name params;
UNET_BACKEND_OPS(CUDA_OP_DECLARE)
#undef CUDA_OP_DECLARE
#ifdef __cplusplus
}
#endif

#endif
