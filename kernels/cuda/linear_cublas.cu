// linear_cublas.cu — linear layers and the kernel==stride transposed convolution, both as
// cuBLAS GEMMs on row-major matrices (same products as kernels/cpu/linear.c and convT.c).
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so every call below swaps
// the operands instead of transposing anything.
//
// Precision (cuda_internal.h, CudaPrecision):
//   FP32  cublasSgemm under the handle's CUBLAS_PEDANTIC_MATH (no tensor cores; the
//         exact-comparison path), everything fp32.
//   TF32  cublasGemmEx on fp32 A/B/C with CUBLAS_COMPUTE_32F_FAST_TF32: cuBLAS rounds the
//         inputs to TF32 for the tensor cores and accumulates in fp32. The linear forward with a
//         bias is one cuBLASLt matmul of the same types with the bias in its epilogue (below).
//   BF16  Acts are bf16 (act.cuh). cublasGemmEx with A and B CUDA_R_16BF and
//         CUBLAS_COMPUTE_32F: bf16 products accumulated in fp32, alpha/beta fp32. The weights
//         are fp32 master copies; each call rounds the one it needs to bf16 in the workspace
//         (a few MB at most, cheap next to the GEMM). C is CUDA_R_16BF where it is an Act (the
//         forward output, din += with beta = 1: one rounding of the fp32 result) and CUDA_R_32F
//         where it is fp32 (the weight gradient, accumulated with beta = 1 straight into the fp32
//         gradient; convT's fp32 scratch). The linear forward with a bias is one cuBLASLt matmul
//         of the same types with the fp32 bias added in its epilogue, before D's one rounding;
//         the linear backward's weight-gradient GEMM writes the bias gradient in its epilogue
//         (BGRADB, fp32 sums of the bf16 dout).
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "act.cuh"

static size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Row-major C (M, N) = alpha · op(A) · op(B) + beta · C, arguments as cblas_sgemm / cpu_sgemm.
// A and B hold this backend's Act type (float in FP32/TF32, bf16 in BF16: activations, or weights
// passed through gemm_weight). C is an Act array when c_act, else fp32; in FP32/TF32 both are
// float, so c_act matters only in BF16.
static void gemm_rm(Backend *be, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                    const void *B, int ldb, float beta, void *C, int c_act, int ldc) {
    if (M == 0 || N == 0) return;
    CudaState *st = cuda_state(be);
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (st->precision == CUDA_PREC_FP32) {
        CUBLAS_WORK(cublasSgemm(st->cublas, opb, opa, N, M, K, &alpha, (const float *)B, ldb, (const float *)A, lda,
                                 &beta, (float *)C, ldc));
        return;
    }
    // alpha and beta are fp32 host scalars (the handle's pointer mode) for every compute type here.
    if (st->precision == CUDA_PREC_TF32) {
        CUBLAS_WORK(cublasGemmEx(st->cublas, opb, opa, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                                  C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
        return;
    }
    CUBLAS_WORK(cublasGemmEx(st->cublas, opb, opa, N, M, K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C,
                              c_act ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// ---- cuBLASLt: a GEMM with its epilogue fused (TF32 and BF16 modes) -------------------------
// linear_forward adds the bias in the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS, an fp32 bias
// vector: in BF16 out = round(in·wᵀ + b) with b added in fp32, then one rounding) instead of a
// prefill kernel and beta = 1. In BF16 linear_backward's dW GEMM writes the bias gradient
// (CUBLASLT_EPILOGUE_BGRADB: the column sums of its B operand, dout) instead of a column-sum
// kernel. The algorithm is chosen once per key (lt_algo) with split-K
// excluded (deterministic: one dot-product sequence per element) and a workspace of at most
// CUDA_LT_WORKSPACE, the fixed one allocated at creation. When cuBLASLt offers nothing for a key
// (a type combination, an alignment), that shape keeps the unfused path, said once on stderr.

// Largest power of two (at most 256) that divides the address: what the heuristic is told.
static unsigned ptr_align(const void *p) {
    unsigned a = 256;
    while (a > 1 && (uintptr_t)p % a) a /= 2;
    return a;
}

static const char *lt_epilogue_name(unsigned e) {
    return e == CUBLASLT_EPILOGUE_BIAS ? "BIAS" : e == CUBLASLT_EPILOGUE_BGRADB ? "BGRADB" : "?";
}

// The first heuristic result without split-K (SPLITK_NUM 1, reduction scheme NONE), into e->algo.
static int lt_pick(CudaState *st, LtAlgo *e, cublasLtMatrixLayout_t c) {
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = CUDA_LT_WORKSPACE;
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE; // mask out every split-K reduction scheme
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red));
    const cublasLtMatmulPreferenceAttributes_t align_attr[3] = {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                                CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                                CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 3; i++) {
        uint32_t al = e->align[i];
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &al, sizeof al));
    }
    uint32_t al_c = e->align[2]; // C is D
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t res[8];
    int n = 0, found = 0;
    // NOT_SUPPORTED (no heuristic for the combination) is an answer here, not an error
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(st->cublaslt, e->op, e->a, e->b, c, e->d, pref, 8, res, &n);
    for (int i = 0; s == CUBLAS_STATUS_SUCCESS && i < n && !found; i++) {
        int32_t splitk = 1;
        uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > CUDA_LT_WORKSPACE) continue;
        if (cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk,
                                                 NULL) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                 sizeof scheme, NULL) != CUBLAS_STATUS_SUCCESS)
            continue;
        if (splitk > 1 || scheme != CUBLASLT_REDUCTION_SCHEME_NONE) continue;
        e->algo = res[i].algo;
        found = 1;
    }
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    return found;
}

// The cached choice for this GEMM (column-major, as cuBLASLt sees it), made on first use. The
// bias pointer is part of the descriptor the heuristic reads (for its alignment); lt_gemm sets
// the actual one at each call.
static const LtAlgo *lt_algo(Backend *be, unsigned epilogue, int transa, int transb, int m, int n, int k, int lda,
                             int ldb, int ldd, int d_act, const unsigned align[4], void *bias) {
    CudaState *st = cuda_state(be);
    for (int i = 0; i < st->n_lt_algos; i++) {
        const LtAlgo *e = &st->lt_algos[i];
        if (e->epilogue == epilogue && e->transa == transa && e->transb == transb && e->m == m && e->n == n &&
            e->k == k && e->lda == lda && e->ldb == ldb && e->ldd == ldd && e->d_act == d_act &&
            !memcmp(e->align, align, sizeof e->align))
            return e;
    }
    if (st->n_lt_algos == st->cap_lt_algos) {
        st->cap_lt_algos = st->cap_lt_algos ? 2 * st->cap_lt_algos : 32;
        st->lt_algos = (LtAlgo *)realloc(st->lt_algos, (size_t)st->cap_lt_algos * sizeof(LtAlgo));
        if (!st->lt_algos) die("out of host memory");
    }
    LtAlgo *e = &st->lt_algos[st->n_lt_algos];
    memset(e, 0, sizeof *e);
    e->epilogue = epilogue, e->transa = transa, e->transb = transb, e->m = m, e->n = n, e->k = k;
    e->lda = lda, e->ldb = ldb, e->ldd = ldd, e->d_act = d_act;
    memcpy(e->align, align, sizeof e->align);
    const int bf = st->precision == CUDA_PREC_BF16;
    const cudaDataType_t ab_type = bf ? CUDA_R_16BF : CUDA_R_32F, d_type = bf && d_act ? CUDA_R_16BF : CUDA_R_32F;
    // TF32: fp32 operands rounded to TF32 by the tensor cores; BF16: bf16 products, fp32 sums
    const cublasComputeType_t compute = bf ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->op, compute, CUDA_R_32F));
    int32_t ta = transa, tb = transb, bias_type = CUDA_R_32F; // the fp32 parameter itself
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    uint32_t ep = epilogue;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    // BGRADB's gradient has D's type (left at the default: fp32, the only D it runs with here)
    if (epilogue == CUBLASLT_EPILOGUE_BIAS)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    // A is m x k as op(A) reads it, so stored k x m when transposed; likewise B (k x n)
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->a, ab_type, transa == CUBLAS_OP_N ? m : k, transa == CUBLAS_OP_N ? k : m, lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->b, ab_type, transb == CUBLAS_OP_N ? k : n, transb == CUBLAS_OP_N ? n : k, ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->d, d_type, m, n, ldd));
    e->ok = lt_pick(st, e, e->d);
    if (!e->ok)
        fprintf(stderr,
                "CUDA backend (%s): cuBLASLt offers no split-K-free algorithm for the %s epilogue on a %dx%dx%d GEMM "
                "(op %c%c, alignments A %u B %u D %u bias %u bytes); this shape runs the unfused path (an extra "
                "launch)\n",
                cuda_precision_name(st->precision), lt_epilogue_name(epilogue), m, n, k, transa == CUBLAS_OP_N ? 'N' : 'T',
                transb == CUBLAS_OP_N ? 'N' : 'T', align[0], align[1], align[2], align[3]);
    st->n_lt_algos++;
    return e;
}

void cuda_lt_free(CudaState *st) {
    for (int i = 0; i < st->n_lt_algos; i++) {
        LtAlgo *e = &st->lt_algos[i];
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->a));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->b));
        CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(e->d));
        CUBLAS_CHECK(cublasLtMatmulDescDestroy(e->op));
    }
    free(st->lt_algos);
    st->lt_algos = NULL;
    st->n_lt_algos = st->cap_lt_algos = 0;
}

// gemm_rm's product (same arguments, same operand swap, alpha 1) as one cuBLASLt matmul with
// `epilogue` on `bias` (fp32): CUBLASLT_EPILOGUE_BIAS reads N elements, one per column of the
// row-major C; CUBLASLT_EPILOGUE_BGRADB writes M elements, one per row of the row-major C (a column
// of cuBLAS's D), each the sum over K of the row-major A read transposed (cuBLAS's B): with
// ta = 1, Σ_k A[k][row]. 1: queued; 0: nothing queued (FP32 mode, or no algorithm for this key):
// the caller runs its unfused path.
static int lt_gemm_rm(Backend *be, unsigned epilogue, int ta, int tb, int M, int N, int K, const void *A, int lda,
                      const void *B, int ldb, float beta, void *C, int c_act, int ldc, void *bias) {
    CudaState *st = cuda_state(be);
    if (!st->cublaslt) return 0;
    const int opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N; // swapped, as gemm_rm
    const unsigned align[4] = {ptr_align(B), ptr_align(A), ptr_align(C), ptr_align(bias)};
    const LtAlgo *e = lt_algo(be, epilogue, opa, opb, N, M, K, ldb, lda, ldc, c_act, align, bias);
    if (!e->ok) return 0;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    const float alpha = 1.0f;
    CUBLAS_WORK(cublasLtMatmul(st->cublaslt, e->op, &alpha, B, e->a, A, e->b, &beta, C, e->d, C, e->d, &e->algo,
                               st->lt_workspace, CUDA_LT_WORKSPACE, st->stream));
    return 1;
}

// The weights_prepare copy of w (n elements) when w lies in the prepared range, else NULL.
static const void *prepared_weight(Backend *be, const float *w, size_t n) {
    CudaState *st = cuda_state(be);
    if (!st->wsrc || w < st->wsrc || w + n > st->wsrc + st->wn) return NULL;
    return (const bf16 *)st->wshadow + (w - st->wsrc);
}

// The GEMM operand for fp32 weight w (n elements): w itself in FP32/TF32; in BF16 its bf16
// rounding: the weights_prepare copy when w is in it, else written to slot (n bf16 of workspace
// the caller carved).
static const void *gemm_weight(Backend *be, void *slot, const float *w, size_t n) {
    if (!cuda_act_is_bf16(be)) return w;
    const void *pw = prepared_weight(be, w, n);
    if (pw) return pw;
    cu_act_from_f32(be, (Act *)slot, w, n); /* a bf16 Act array is exactly the bf16 GEMM operand */
    return slot;
}

// Workspace bytes gemm_weight needs for an n-element weight (none outside BF16 or when prepared).
static size_t gemm_weight_bytes(Backend *be, const float *w, size_t n) {
    return cuda_act_is_bf16(be) && !prepared_weight(be, w, n) ? align256(n * sizeof(bf16)) : 0;
}

// weights_prepare: in BF16 one rounding pass over the whole flat buffer, which every linear of
// the following passes then reads (instead of a conversion launch per call); nothing otherwise.
// Nothing either when the copy is fresh: the last adam_update rewrote it with the params
// (optim.cu), and nothing else wrote them since (weights_touch, backend_cuda.cu).
extern "C" void cu_weights_prepare(Backend *be, const float *params, size_t n) {
    CudaState *st = cuda_state(be);
    if (cuda_act_is_bf16(be) && params && n && st->wsrc == params && st->wn == n && st->wfresh) return;
    st->wsrc = NULL;
    st->wfresh = 0;
    if (!cuda_act_is_bf16(be) || !params || !n) return;
    if (n > st->wcap) {
        cuda_not_capturing(st, "the bf16 weight copy grows");
        if (st->wshadow) {
            CUDA_SYNC(cudaStreamSynchronize(st->stream)); // queued GEMMs may still read the old copy
            cuda_label_report(st);
            CUDA_CHECK(cudaFree(st->wshadow));
            st->wshadow = NULL;
            st->mem_gen++; // a recorded step read the old copy (graph.cu)
        }
        CUDA_CHECK(cudaMalloc(&st->wshadow, n * sizeof(bf16)));
        st->wcap = n;
    }
    cu_act_from_f32(be, (Act *)st->wshadow, params, n);
    st->wsrc = params;
    st->wn = n;
    st->wfresh = 1;
}

template <typename T> __global__ void k_fill_rows(T *out, const float *b, size_t N, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N * C; i += (size_t)gridDim.x * blockDim.x)
        act_store(out + i, b[i % C]);
}

// out = in · wᵀ + b. TF32/BF16: one cuBLASLt matmul, the fp32 bias added in its epilogue (in BF16
// out = round(in·wᵀ + b), b not rounded to bf16). FP32, or a shape cuBLASLt has no algorithm for:
// the bias is prefilled into out and the GEMM adds onto it (beta = 1); in BF16 that rounds b to
// bf16 like w, and out is still rounded once, in the GEMM.
extern "C" void cu_linear_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, size_t N,
                                  int Ci, int Co) {
    if (!N) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    cudaStream_t s = cuda_state(be)->stream;
    size_t nw = (size_t)Co * Ci;
    size_t wb_bytes = gemm_weight_bytes(be, w, nw);
    void *slot = wb_bytes ? cuda_workspace(be, wb_bytes) : NULL;
    const void *wg = gemm_weight(be, slot, w, nw);
    if (b && Co > 0 && lt_gemm_rm(be, CUBLASLT_EPILOGUE_BIAS, 0, 1, (int)N, Co, Ci, in, Ci, wg, Ci, 0.0f, out, 1, Co,
                                  (void *)b))
        return;
    if (b) {
        CUDA_ACT_DISPATCH(be, T, k_fill_rows<T><<<cuda_grid(N * Co), 256, 0, s>>>((T *)out, b, N, Co));
        CUDA_CHECK_LAUNCH();
    }
    gemm_rm(be, 0, 1, (int)N, Co, Ci, 1.0f, in, Ci, wg, Ci, b ? 1.0f : 0.0f, out, 1, Co);
}

// linear_gelu_forward's epilogue: p = gemm + b[c] (fp32), pre = round(p) (what backward reads), out =
// GELU(pre) from the stored value, as gelu_forward would read it. src is fp32: pre itself when the
// Acts are floats (in place), else the GEMM's fp32 output in workspace (so pre is rounded once).
#define MLP_INV_SQRT2 0.70710678118654752440f
template <typename T>
__global__ void k_bias_gelu(T *out, T *pre, const float *src, const float *b, size_t N, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N * C; i += (size_t)gridDim.x * blockDim.x) {
        act_store(pre + i, src[i] + b[i % C]);
        float x = act_load(pre + i);
        act_store(out + i, 0.5f * x * (1.0f + erff(x * MLP_INV_SQRT2)));
    }
}

// pre = in · wᵀ (no bias prefill), then one kernel adds the bias, saves pre and applies GELU.
extern "C" void cu_linear_gelu_forward(Backend *be, Act *out, Act *pre, const Act *in, const float *w, const float *b,
                                       size_t N, int Ci, int Co) {
    if (!N) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    CHECK(b, "linear_gelu_forward: the bias is required");
    cudaStream_t s = cuda_state(be)->stream;
    size_t nw = (size_t)Co * Ci;
    size_t wb_bytes = gemm_weight_bytes(be, w, nw);
    int bf = cuda_act_is_bf16(be);
    size_t tmp_bytes = bf ? align256(N * (size_t)Co * sizeof(float)) : 0;
    char *ws = (wb_bytes || tmp_bytes) ? (char *)cuda_workspace(be, wb_bytes + tmp_bytes) : NULL;
    const void *wg = gemm_weight(be, wb_bytes ? ws : NULL, w, nw);
    float *acc = bf ? (float *)(ws + wb_bytes) : (float *)pre;
    gemm_rm(be, 0, 1, (int)N, Co, Ci, 1.0f, in, Ci, wg, Ci, 0.0f, acc, bf ? 0 : 1, Co);
    CUDA_ACT_DISPATCH(be, T, k_bias_gelu<T><<<cuda_grid(N * Co), 256, 0, s>>>((T *)out, (T *)pre, acc, b, N, Co));
    CUDA_CHECK_LAUNCH();
}

// din_beta 1: din += dout · w (linear_backward); 0: din = dout · w (linear_backward_first: the
// GEMM overwrites, so the caller's memset goes). dw accumulates (beta 1); db is OVERWRITTEN
// (backend_ops.h): in BF16 by the dW GEMM's BGRADB epilogue (db = Σ_rows dout, the bf16 dout
// summed in fp32 by cuBLASLt: one launch less), else, and for a shape cuBLASLt refuses, by the
// overwriting column sum (TF32 keeps it: an epilogue may sum TF32-rounded inputs; FP32 is the
// exact-comparison path).
static void linear_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                            const float *w, size_t N, int Ci, int Co, float din_beta) {
    if (!N) { // the gradient of no rows: db = 0 (overwritten), din and dw unchanged
        if (db && Co > 0)
            CUDA_WORK(cudaMemsetAsync(db, 0, (size_t)Co * sizeof(float), cuda_state(be)->stream));
        return;
    }
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    if (din) { // din = dout · w + din_beta · din
        size_t nw = (size_t)Co * Ci;
        size_t wb_bytes = gemm_weight_bytes(be, w, nw);
        void *slot = wb_bytes ? cuda_workspace(be, wb_bytes) : NULL;
        const void *wg = gemm_weight(be, slot, w, nw);
        gemm_rm(be, 0, 0, (int)N, Ci, Co, 1.0f, dout, Co, wg, Ci, din_beta, din, 1, Ci);
    }
    // dw += doutᵀ · in (fp32); in BF16 with db also db = Σ_rows dout (cuBLAS's B is dout read
    // transposed, k = N: BGRADB sums it over the tokens, one element per output channel)
    if (db && Co > 0 && cuda_state(be)->precision == CUDA_PREC_BF16 &&
        lt_gemm_rm(be, CUBLASLT_EPILOGUE_BGRADB, 1, 0, Co, Ci, (int)N, dout, Co, in, Ci, 1.0f, dw, 0, Ci, db))
        return;
    gemm_rm(be, 1, 0, Co, Ci, (int)N, 1.0f, dout, Co, in, Ci, 1.0f, dw, 0, Ci);
    // (cuda_workspace syncs the stream before it ever frees the buffer the din GEMM read)
    if (db) cuda_colsum_set(be, db, dout, N, Co);
}

extern "C" void cu_linear_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                   const float *w, size_t N, int Ci, int Co) {
    linear_backward(be, din, dw, db, dout, in, w, N, Ci, Co, 1.0f);
}

extern "C" void cu_linear_backward_first(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                         const float *w, size_t N, int Ci, int Co) {
    linear_backward(be, din, dw, db, dout, in, w, N, Ci, Co, 0.0f);
}

// ---- transposed convolution, kernel == stride == k ------------------------------------------
// PyTorch's weight w (Ci, Co, k, k) read as a row-major (Ci, Co*kk) matrix is already the GEMM
// operand: G (M, Co*kk) = in · w, column co*kk + t holding tap t of output channel co, and the out
// block rows are gathered from G's runs. No permuted copy of w in either direction: in BF16 the
// operand is w's bf16 rounding (gemm_weight: the weights_prepare copy), the weight gradient
// dw += inᵀ · G accumulates straight into the fp32 gradient (beta = 1), and din += G · wᵀ.
// Forward: G fp32, out = round(G + b) once in the scatter (convT_forward_add: round(G + b + skip),
// the decoder's skip added before that one rounding). Backward: G is dout gathered (exact).

// Index in G (M, Co*kk) of out element i (B, H*k, W*k, Co).
__device__ __forceinline__ size_t convT_g_index(size_t i, int H, int W, int Co, int k) {
    int Hk = H * k, Wk = W * k;
    int co = (int)(i % Co);
    size_t p = i / Co;
    int X = (int)(p % Wk), Y = (int)(p / Wk % Hk), bi = (int)(p / ((size_t)Wk * Hk));
    size_t m = ((size_t)bi * H + Y / k) * W + X / k;
    return m * (size_t)k * k * Co + (size_t)co * k * k + (size_t)(Y % k) * k + X % k;
}

// scatter G → out, + bias [+ skip: (G + b) + skip, the convT_forward + add sequence's float sums].
// One thread per out element.
template <typename T>
__global__ void k_convT_scatter(T *out, const float *G, const float *b, const T *skip, int B, int H, int W, int Co,
                                int k) {
    size_t n = (size_t)B * H * k * W * k * Co;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = G[convT_g_index(i, H, W, Co, k)] + b[i % Co];
        if (skip) v += act_load(skip + i);
        act_store(out + i, v);
    }
}

// gather dout → G (same element type: widening and re-rounding is an exact copy).
template <typename T> __global__ void k_convT_gather(T *G, const T *dout, int B, int H, int W, int Co, int k) {
    size_t n = (size_t)B * H * k * W * k * Co;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        act_store(G + convT_g_index(i, H, W, Co, k), act_load(dout + i));
}

// convT_forward (skip NULL) and convT_forward_add: the GEMM, then one scatter.
static void convT_forward(Backend *be, Act *out, const Act *in, const Act *skip, const float *w, const float *b,
                          int B, int H, int W, int Ci, int Co, int k) {
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (!M) return;
    CHECK(M <= (size_t)INT_MAX && N2 <= (size_t)INT_MAX, "convT: %zu pixels x %zu outputs exceed the BLAS int range", M, N2);
    cudaStream_t s = cuda_state(be)->stream;
    size_t nw = (size_t)Ci * N2, wb_bytes = gemm_weight_bytes(be, w, nw);
    char *ws = (char *)cuda_workspace(be, wb_bytes + M * N2 * sizeof(float));
    const void *wg = gemm_weight(be, ws, w, nw);
    float *G = (float *)(ws + wb_bytes);
    gemm_rm(be, 0, 0, (int)M, (int)N2, Ci, 1.0f, in, Ci, wg, (int)N2, 0.0f, G, 0, (int)N2);
    CUDA_ACT_DISPATCH(be, T,
                      k_convT_scatter<T><<<cuda_grid(M * N2), 256, 0, s>>>((T *)out, G, b, (const T *)skip, B, H, W,
                                                                           Co, k));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_convT_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B,
                                 int H, int W, int Ci, int Co, int k) {
    convT_forward(be, out, in, NULL, w, b, B, H, W, Ci, Co, k);
}

extern "C" void cu_convT_forward_add(Backend *be, Act *out, const Act *in, const Act *skip, const float *w,
                                     const float *b, int B, int H, int W, int Ci, int Co, int k) {
    convT_forward(be, out, in, skip, w, b, B, H, W, Ci, Co, k);
}

extern "C" void cu_convT_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                  const float *w, int B, int H, int W, int Ci, int Co, int k) {
    CHECK(k >= 1, "convT: kernel %d", k);
    size_t M = (size_t)B * H * W, N2 = (size_t)k * k * Co;
    if (!M) return;
    CHECK(M <= (size_t)INT_MAX && N2 <= (size_t)INT_MAX, "convT: %zu pixels x %zu outputs exceed the BLAS int range", M, N2);
    cudaStream_t s = cuda_state(be)->stream;
    cuda_colsum_acc(be, db, dout, M * k * k, Co); // before the workspace is carved below
    size_t nw = (size_t)Ci * N2, wb_bytes = din ? gemm_weight_bytes(be, w, nw) : 0;
    char *ws = (char *)cuda_workspace(be, wb_bytes + M * N2 * be->act_bytes);
    void *G = ws + wb_bytes;
    CUDA_ACT_DISPATCH(be, T, k_convT_gather<T><<<cuda_grid(M * N2), 256, 0, s>>>((T *)G, (const T *)dout, B, H, W, Co, k));
    CUDA_CHECK_LAUNCH();
    gemm_rm(be, 1, 0, Ci, (int)N2, (int)M, 1.0f, in, Ci, G, (int)N2, 1.0f, dw, 0, (int)N2); // dw += inᵀ G (fp32)
    if (din) {
        const void *wg = gemm_weight(be, ws, w, nw);
        gemm_rm(be, 0, 1, (int)M, Ci, (int)N2, 1.0f, G, (int)N2, wg, (int)N2, 1.0f, din, 1, Ci); // din += G wᵀ
    }
}
