// emu_libs.cpp — the CPU emulator's cuBLAS, cuBLASLt, cuDNN and NCCL (tests/cuda_emu/README.md).
//
// Implements what tests/cuda_emu/include/{cublas_v2,cublasLt,cudnn,nccl}.h declare. "Device" memory is
// host memory and every call is synchronous: when a call returns, its result is in memory.
//
//   cuBLAS  SGEMM / GemmEx through OpenBLAS's cblas_sgemm (column-major, as cuBLAS). The fast
//           compute types are modelled by rounding copies of A and B (only the elements op(A)
//           and op(B) read) to TF32 or bf16 before an fp32 SGEMM. GemmEx on bf16 operands
//           (A and B CUDA_R_16BF, C CUDA_R_16BF or CUDA_R_32F) widens A and B exactly, runs the
//           same fp32 SGEMM, and rounds a bf16 C to nearest even (cuda_bf16.h) once, at the end.
//   cuBLASLt cublasLtMatmul on the same GEMMs (column-major, C == D), the BIAS epilogue added in
//           fp32 before a bf16 D's one rounding, the BGRADB epilogue's bias gradient (column sums
//           of op(B)) written beside D; the heuristic offers one split-K-free algorithm.
//   cuDNN   4-D float tensors (NCHW or NHWC), 4-D filters (KCRS or KRSC), 2-D cross-correlation
//           with pad, stride and dilation. Direct loops over packed copies of the operands, each
//           output element accumulated in double and stored as float. Tensor-op math rounds the
//           two multiplied operands to TF32 first. Grouped convolutions (group count g: x has
//           g·c channels, group i convolves its c with filters i·k/g..) one group at a time. bf16 x, w, y (fp32 compute): run on fp32
//           copies (exact), the float result rounded to nearest even into the bf16 output.
//   NCCL    one rank in one process: every collective is the identity; several ranks: the MPI
//           collective, waited for by polling, so that a peer that died is noticed
//           (ncclCommGetAsyncError: ncclRemoteError) and ncclCommAbort from another thread (the
//           transport's watchdog, comm/comm_nccl.c) ends the wait.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <vector>

#include "cublas_v2.h"
#include "cublasLt.h"
#include "cuda_runtime.h" // emu::capturing, emu::record (stream capture)
#include "cuda_bf16.h"
#include "cudnn.h"
#include "nccl.h"

namespace {

// ---- reduced-precision rounding ------------------------------------------------------------
// Round-to-nearest-even of an fp32 value to `keep` explicit mantissa bits (the fp32 exponent
// range is kept: TF32 and bf16 both have 8 exponent bits). Overflow rounds to infinity, as the
// hardware conversion does; NaN stays NaN (its quiet bit survives the truncation).
inline float round_mantissa(float f, int drop) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u) { // Inf or NaN
        if (u & 0x007fffffu) u |= 0x00400000u;
    } else {
        const uint32_t low = (1u << drop) - 1u;
        u += (low >> 1) + ((u >> drop) & 1u); // half an ulp, less one unless the kept lsb is odd
        u &= ~low;
    }
    std::memcpy(&f, &u, sizeof f);
    return f;
}

enum class Rounding { none, tf32, bf16 };

inline float round_to(float f, Rounding r) {
    switch (r) {
    case Rounding::tf32: return round_mantissa(f, 13); // 10 explicit mantissa bits
    case Rounding::bf16: return round_mantissa(f, 16); // 7 explicit mantissa bits
    default: return f;
    }
}

} // namespace

// =============================================================================================
// cuBLAS
// =============================================================================================

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};

namespace {

// The rows x cols column-major matrix M (leading dimension ld) copied compactly (leading
// dimension rows), each element rounded. Reads exactly the elements the GEMM would read.
std::vector<float> pack_rounded(const float *M, int rows, int cols, int ld, Rounding r) {
    std::vector<float> out((size_t)rows * cols);
    for (int j = 0; j < cols; j++) {
        const float *src = M + (size_t)j * ld;
        float *dst = out.data() + (size_t)j * rows;
        for (int i = 0; i < rows; i++) dst[i] = round_to(src[i], r);
    }
    return out;
}

// The argument checks cuBLAS makes before any work (handle, operations, sizes, leading
// dimensions of A and B as stored, scalars); CUBLAS_STATUS_SUCCESS means go on.
cublasStatus_t gemm_check_args(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                               int k, int lda, int ldb, int ldc, const float *alpha, const float *beta) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    auto op_ok = [](cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; };
    if (!op_ok(transa) || !op_ok(transb)) return CUBLAS_STATUS_INVALID_VALUE;
    const int a_rows = transa != CUBLAS_OP_N ? k : m, b_rows = transb != CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

// C = alpha * op(A) * op(B) + beta * C, column-major, fp32, inputs rounded by r.
cublasStatus_t gemm_f32(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                        const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                        float *C, int ldc, Rounding r) {
    const cublasStatus_t bad = gemm_check_args(h, transa, transb, m, n, k, lda, ldb, ldc, alpha, beta);
    if (bad != CUBLAS_STATUS_SUCCESS) return bad;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N; // real data: C == T
    const int a_rows = ta ? k : m, a_cols = ta ? m : k; // A as stored
    const int b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const float a = *alpha, b = *beta; // host and "device" pointer mode read alike here
    if (!C) return CUBLAS_STATUS_INVALID_VALUE;
    if (k == 0 || a == 0.0f) { // A and B are not read; C = beta * C (not read when beta == 0)
        for (int j = 0; j < n; j++) {
            float *c = C + (size_t)j * ldc;
            for (int i = 0; i < m; i++) c[i] = b == 0.0f ? 0.0f : b * c[i];
        }
        return CUBLAS_STATUS_SUCCESS;
    }
    if (!A || !B) return CUBLAS_STATUS_INVALID_VALUE;
    try {
        std::vector<float> ap, bp;
        if (r != Rounding::none) {
            ap = pack_rounded(A, a_rows, a_cols, lda, r);
            bp = pack_rounded(B, b_rows, b_cols, ldb, r);
            A = ap.data(), lda = a_rows;
            B = bp.data(), ldb = b_rows;
        }
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, a, A, lda,
                    B, ldb, b, C, ldc);
    } catch (const std::bad_alloc &) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// C = alpha * op(A) * op(B) + beta * C with A and B bf16 and C bf16 (c_bf16) or float: A and B
// widened exactly (only the elements the GEMM reads), the fp32 GEMM above (no input rounding: a
// bf16 value is already a TF32 and a bf16 value), then a bf16 C rounded to nearest even. A bf16
// C is read only when beta != 0, as cuBLAS reads it.
cublasStatus_t gemm_bf16(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                         const float *alpha, const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb,
                         const float *beta, void *C, bool c_bf16, int ldc) {
    const cublasStatus_t bad = gemm_check_args(h, transa, transb, m, n, k, lda, ldb, ldc, alpha, beta);
    if (bad != CUBLAS_STATUS_SUCCESS) return bad;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N; // real data: C == T
    const int a_rows = ta ? k : m, a_cols = ta ? m : k; // A as stored
    const int b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (!C) return CUBLAS_STATUS_INVALID_VALUE;
    const bool reads_ab = k > 0 && *alpha != 0.0f;
    if (reads_ab && (!A || !B)) return CUBLAS_STATUS_INVALID_VALUE;
    try {
        auto widen = [](const __nv_bfloat16 *M, int rows, int cols, int ld) {
            std::vector<float> out((size_t)rows * cols);
            for (int j = 0; j < cols; j++)
                for (int i = 0; i < rows; i++)
                    out[(size_t)j * rows + i] = __bfloat162float(M[(size_t)j * ld + i]);
            return out;
        };
        std::vector<float> ap, bp, cp;
        if (reads_ab) {
            ap = widen(A, a_rows, a_cols, lda);
            bp = widen(B, b_rows, b_cols, ldb);
        }
        const float *Af = reads_ab ? ap.data() : nullptr, *Bf = reads_ab ? bp.data() : nullptr;
        const int ldaf = std::max(1, a_rows), ldbf = std::max(1, b_rows);
        if (!c_bf16)
            return gemm_f32(h, transa, transb, m, n, k, alpha, Af, ldaf, Bf, ldbf, beta, (float *)C, ldc,
                            Rounding::none);
        __nv_bfloat16 *Cb = (__nv_bfloat16 *)C;
        if (*beta != 0.0f) cp = widen(Cb, m, n, ldc);
        else cp.assign((size_t)m * n, 0.0f); // not read: poisoned bytes stay out
        const cublasStatus_t st = gemm_f32(h, transa, transb, m, n, k, alpha, Af, ldaf, Bf, ldbf, beta, cp.data(), m,
                                           Rounding::none);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) Cb[(size_t)j * ldc + i] = __float2bfloat16(cp[(size_t)j * m + i]);
    } catch (const std::bad_alloc &) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// What a handle's math mode does to a plain fp32 product: TF32 tensor-op mode rounds to TF32.
Rounding handle_rounding(cublasHandle_t h) {
    return h && (h->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH ? Rounding::tf32 : Rounding::none;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new (std::nothrow) cublasContext();
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int *version) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version) return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VERSION;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
    *streamId = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t *mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
    handle->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const unsigned base = (unsigned)mode & 0xfu, flags = (unsigned)mode & ~0xfu;
    if (base > CUBLAS_TF32_TENSOR_OP_MATH || (flags & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported (by the CPU emulator)";
    case CUBLAS_STATUS_LICENSE_ERROR: return "an error was detected when checking the current licensing";
    }
    return "unknown cuBLAS status";
}

// Inside a stream capture each shim records a call to itself with every argument copied (the
// handle and descriptors by value, the host scalars alpha/beta by value, as a graph node holds
// them) and runs it at each replay, when its stream no longer captures.
cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                              const float *beta, float *C, int ldc) {
    if (handle && alpha && beta && emu::capturing(handle->stream)) {
        cublasContext h = *handle;
        const float a = *alpha, b = *beta;
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cublasSgemm_v2(&h, transa, transb, m, n, k, &a, A, lda, B, ldb, &b, C, ldc) == CUBLAS_STATUS_SUCCESS
                       ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    return gemm_f32(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, handle_rounding(handle));
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    if (handle && alpha && beta && emu::capturing(handle->stream)) {
        cublasContext h = *handle;
        const float a = *(const float *)alpha, b = *(const float *)beta; // fp32 compute types only
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cublasGemmEx(&h, transa, transb, m, n, k, &a, A, Atype, lda, B, Btype, ldb, &b, C, Ctype, ldc,
                                computeType, algo) == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    (void)algo; // every algorithm computes the same product here
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool f32 = Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F;
    const bool bf16 = Atype == CUDA_R_16BF && Btype == CUDA_R_16BF && (Ctype == CUDA_R_16BF || Ctype == CUDA_R_32F);
    if (!f32 && !bf16) return CUBLAS_STATUS_NOT_SUPPORTED;
    Rounding r;
    switch (computeType) {
    case CUBLAS_COMPUTE_32F: r = handle_rounding(handle); break;
    case CUBLAS_COMPUTE_32F_PEDANTIC: r = Rounding::none; break;
    case CUBLAS_COMPUTE_32F_FAST_TF32: r = Rounding::tf32; break;
    case CUBLAS_COMPUTE_32F_FAST_16BF: r = Rounding::bf16; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    // Compute type 32F*: alpha and beta are floats.
    if (bf16) // bf16 inputs are exact in TF32 and bf16: r changes nothing
        return gemm_bf16(handle, transa, transb, m, n, k, (const float *)alpha, (const __nv_bfloat16 *)A, lda,
                         (const __nv_bfloat16 *)B, ldb, (const float *)beta, C, Ctype == CUDA_R_16BF, ldc);
    return gemm_f32(handle, transa, transb, m, n, k, (const float *)alpha, (const float *)A, lda, (const float *)B,
                    ldb, (const float *)beta, (float *)C, ldc, r);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long int strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t algo) {
    if (batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (handle && alpha && beta && emu::capturing(handle->stream)) { // one recorded call, as eagerly
        cublasContext h = *handle;
        const float a = *(const float *)alpha, b = *(const float *)beta;
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cublasGemmStridedBatchedEx(&h, transa, transb, m, n, k, &a, A, Atype, lda, strideA, B, Btype, ldb,
                                              strideB, &b, C, Ctype, ldc, strideC, batchCount, computeType,
                                              algo) == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
    }
    auto size = [](cudaDataType t) -> size_t { return t == CUDA_R_16BF ? 2 : 4; };
    for (int i = 0; i < batchCount; i++) {
        cublasStatus_t st = cublasGemmEx(handle, transa, transb, m, n, k, alpha,
                                         (const char *)A + (size_t)i * strideA * size(Atype), Atype, lda,
                                         (const char *)B + (size_t)i * strideB * size(Btype), Btype, ldb, beta,
                                         (char *)C + (size_t)i * strideC * size(Ctype), Ctype, ldc, computeType, algo);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

// =============================================================================================
// cuBLASLt (include/cublasLt.h): cublasLtMatmul on the GEMMs above, plus the BIAS and BGRADB
// epilogues
// =============================================================================================

struct cublasLtContext {
    int unused = 0;
};

namespace {

// The descriptors live inside the real library's semi-opaque structs, so that a recorded call
// (stream capture) copies them by value, as a graph node holds what the call saw.
struct LtDesc {
    int32_t compute, scale, transa, transb;
    uint32_t epilogue;
    int32_t bias_type; // -1: D's type
    const void *bias;
};
struct LtLayout {
    int32_t type, order;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
};
struct LtPref {
    uint64_t max_ws;
    uint32_t reduction_mask;
};
static_assert(sizeof(LtDesc) <= sizeof(cublasLtMatmulDescOpaque_t), "LtDesc fits the opaque struct");
static_assert(sizeof(LtLayout) <= sizeof(cublasLtMatrixLayoutOpaque_t), "LtLayout fits the opaque struct");
static_assert(sizeof(LtPref) <= sizeof(cublasLtMatmulPreferenceOpaque_t), "LtPref fits the opaque struct");

template <typename T, typename O> T lt_get(const O *o) {
    T v;
    std::memcpy(&v, o->data, sizeof v);
    return v;
}
template <typename T, typename O> void lt_put(O *o, const T &v) { std::memcpy(o->data, &v, sizeof v); }

// An attribute value of exactly `size` bytes, as the library checks sizeInBytes.
template <typename T> bool lt_attr(T *dst, const void *buf, size_t size) {
    if (!buf || size != sizeof(T)) return false;
    std::memcpy(dst, buf, sizeof(T));
    return true;
}

// What cublasLtMatmul with these descriptors would run, or why not. m, n, k: op(A) is m x k,
// op(B) k x n, D m x n.
struct LtPlan {
    int m, n, k;
    bool bf16_ab, bf16_d, bias_bf16;
    Rounding r;
};

cublasStatus_t lt_plan(const LtDesc &d, const LtLayout &a, const LtLayout &b, const LtLayout &c, const LtLayout &dd,
                       LtPlan *p) {
    for (const LtLayout *l : {&a, &b, &c, &dd})
        if (l->order != CUBLASLT_ORDER_COL || l->batch != 1) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (c.type != dd.type || c.rows != dd.rows || c.cols != dd.cols || c.ld != dd.ld)
        return CUBLAS_STATUS_NOT_SUPPORTED; // C and D the same matrix, the one form used here
    if (d.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    auto op_ok = [](int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; };
    if (!op_ok(d.transa) || !op_ok(d.transb)) return CUBLAS_STATUS_INVALID_VALUE;
    const bool ta = d.transa == CUBLAS_OP_T, tb = d.transb == CUBLAS_OP_T;
    const uint64_t m = dd.rows, n = dd.cols, k = ta ? a.rows : a.cols;
    if ((ta ? a.cols : a.rows) != m || (tb ? b.cols : b.rows) != k || (tb ? b.rows : b.cols) != n)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return CUBLAS_STATUS_NOT_SUPPORTED;
    for (const LtLayout *l : {&a, &b, &dd})
        if (l->ld < (int64_t)std::max<uint64_t>(1, l->rows) || l->ld > INT32_MAX) return CUBLAS_STATUS_INVALID_VALUE;
    p->m = (int)m, p->n = (int)n, p->k = (int)k;
    const bool f32 = a.type == CUDA_R_32F && b.type == CUDA_R_32F && dd.type == CUDA_R_32F;
    const bool bf16 = a.type == CUDA_R_16BF && b.type == CUDA_R_16BF && (dd.type == CUDA_R_16BF || dd.type == CUDA_R_32F);
    if (!f32 && !bf16) return CUBLAS_STATUS_NOT_SUPPORTED;
    p->bf16_ab = bf16, p->bf16_d = dd.type == CUDA_R_16BF;
    switch (d.compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC: p->r = Rounding::none; break;
    case CUBLAS_COMPUTE_32F_FAST_TF32: p->r = bf16 ? Rounding::none : Rounding::tf32; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const int32_t bias_type = d.bias_type == -1 ? dd.type : d.bias_type;
    p->bias_bf16 = bias_type == CUDA_R_16BF;
    switch (d.epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT: break;
    case CUBLASLT_EPILOGUE_BIAS:
        if (bias_type != CUDA_R_32F && !(bias_type == CUDA_R_16BF && p->bf16_d)) return CUBLAS_STATUS_NOT_SUPPORTED;
        break;
    case CUBLASLT_EPILOGUE_BGRADB: // the bias gradient has D's type (cublasLt.h, BIAS_POINTER)
        if (bias_type != dd.type) return CUBLAS_STATUS_NOT_SUPPORTED;
        break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
    *lightHandle = new (std::nothrow) cublasLtContext();
    return *lightHandle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete lightHandle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
    *matLayout = new (std::nothrow) cublasLtMatrixLayoutOpaque_t();
    if (!*matLayout) return CUBLAS_STATUS_ALLOC_FAILED;
    lt_put(*matLayout, LtLayout{(int32_t)type, CUBLASLT_ORDER_COL, rows, cols, ld, 1});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    delete matLayout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    *matmulDesc = new (std::nothrow) cublasLtMatmulDescOpaque_t();
    if (!*matmulDesc) return CUBLAS_STATUS_ALLOC_FAILED;
    lt_put(*matmulDesc, LtDesc{(int32_t)computeType, (int32_t)scaleType, CUBLAS_OP_N, CUBLAS_OP_N,
                               CUBLASLT_EPILOGUE_DEFAULT, -1, nullptr});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    delete matmulDesc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes) {
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    LtDesc d = lt_get<LtDesc>(matmulDesc);
    bool ok;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: ok = lt_attr(&d.transa, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: ok = lt_attr(&d.transb, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: ok = lt_attr(&d.epilogue, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ok = lt_attr(&d.bias, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: ok = lt_attr(&d.bias_type, buf, sizeInBytes); break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED; // not emulated
    }
    if (!ok) return CUBLAS_STATUS_INVALID_VALUE;
    lt_put(matmulDesc, d);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new (std::nothrow) cublasLtMatmulPreferenceOpaque_t();
    if (!*pref) return CUBLAS_STATUS_ALLOC_FAILED;
    lt_put(*pref, LtPref{0, CUBLASLT_REDUCTION_SCHEME_MASK});
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    LtPref p = lt_get<LtPref>(pref);
    uint32_t align;
    bool ok;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: ok = lt_attr(&p.max_ws, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: ok = lt_attr(&p.reduction_mask, buf, sizeInBytes); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: ok = lt_attr(&align, buf, sizeInBytes); break; // any works here
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!ok) return CUBLAS_STATUS_INVALID_VALUE;
    lt_put(pref, p);
    return CUBLAS_STATUS_SUCCESS;
}

// One algorithm for everything cublasLtMatmul runs: no split-K (SPLITK_NUM 1, reduction scheme
// NONE, which no reduction-scheme mask can exclude), no workspace.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount || !operationDesc || !Adesc || !Bdesc ||
        !Cdesc || !Ddesc || !preference)
        return CUBLAS_STATUS_INVALID_VALUE;
    *returnAlgoCount = 0;
    LtPlan p;
    const cublasStatus_t st = lt_plan(lt_get<LtDesc>(operationDesc), lt_get<LtLayout>(Adesc), lt_get<LtLayout>(Bdesc),
                                      lt_get<LtLayout>(Cdesc), lt_get<LtLayout>(Ddesc), &p);
    if (st != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
    cublasLtMatmulHeuristicResult_t r;
    std::memset(&r, 0, sizeof r);
    r.workspaceSize = 0;
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    heuristicResultsArray[0] = r;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoConfigGetAttribute(const cublasLtMatmulAlgo_t *algo,
                                                    cublasLtMatmulAlgoConfigAttributes_t attr, void *buf,
                                                    size_t sizeInBytes, size_t *sizeWritten) {
    if (!algo) return CUBLAS_STATUS_INVALID_VALUE;
    auto put = [&](auto v) {
        if (sizeInBytes == 0) {
            if (!sizeWritten) return CUBLAS_STATUS_INVALID_VALUE;
            *sizeWritten = sizeof v;
            return CUBLAS_STATUS_SUCCESS;
        }
        if (!buf || sizeInBytes != sizeof v) return CUBLAS_STATUS_INVALID_VALUE;
        std::memcpy(buf, &v, sizeof v);
        if (sizeWritten) *sizeWritten = sizeof v;
        return CUBLAS_STATUS_SUCCESS;
    };
    switch (attr) {
    case CUBLASLT_ALGO_CONFIG_SPLITK_NUM: return put((int32_t)1);
    case CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME: return put((uint32_t)CUBLASLT_REDUCTION_SCHEME_NONE);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

// D = alpha · op(A) · op(B) + beta · C (+ bias per row of D), accumulated in fp32 into a float
// copy of D, the epilogue added in fp32, then D written once (a bf16 D rounded to nearest even).
// BGRADB: bias[j] = Σ_k op(B)[k, j] (B as stored, a bf16 B widened exactly, summed in k order in
// double, rounded once to D's type), written whatever beta; D as without an epilogue. The docs do
// not say whether alpha scales the bias gradient, so only alpha = 1 (all the project passes) is
// taken with it.
cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceSizeInBytes, cudaStream_t stream) {
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!computeDesc || !Adesc || !Bdesc || !Cdesc || !Ddesc || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (emu::capturing(stream)) { // descriptors, scalars and algorithm copied, as a graph node holds them
        cublasLtMatmulDescOpaque_t dc = *computeDesc;
        cublasLtMatrixLayoutOpaque_t ac = *Adesc, bc = *Bdesc, cc = *Cdesc, ddc = *Ddesc;
        const float a = *(const float *)alpha, b = *(const float *)beta; // scale type CUDA_R_32F only
        cublasLtMatmulAlgo_t al{};
        const bool has_algo = algo != nullptr;
        if (has_algo) al = *algo;
        cudaError_t e = emu::record(stream, [=]() mutable {
            return cublasLtMatmul(lightHandle, &dc, &a, A, &ac, B, &bc, &b, C, &cc, D, &ddc, has_algo ? &al : nullptr,
                                  workspace, workspaceSizeInBytes, stream) == CUBLAS_STATUS_SUCCESS
                       ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    const LtDesc d = lt_get<LtDesc>(computeDesc);
    const LtLayout la = lt_get<LtLayout>(Adesc), lb = lt_get<LtLayout>(Bdesc), ld = lt_get<LtLayout>(Ddesc);
    LtPlan p;
    cublasStatus_t st = lt_plan(d, la, lb, lt_get<LtLayout>(Cdesc), ld, &p);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (C != D) return CUBLAS_STATUS_NOT_SUPPORTED; // in place only (lt_plan)
    const bool bias = d.epilogue == CUBLASLT_EPILOGUE_BIAS, bgradb = d.epilogue == CUBLASLT_EPILOGUE_BGRADB;
    const cublasOperation_t ta = (cublasOperation_t)d.transa, tb = (cublasOperation_t)d.transb;
    if (bgradb) { // first: it reads B only, and a D without rows still has its n column sums
        if (p.n > 0 && !d.bias) return CUBLAS_STATUS_INVALID_VALUE;
        if (*(const float *)alpha != 1.0f) return CUBLAS_STATUS_NOT_SUPPORTED;
        for (int j = 0; j < p.n; j++) { // op(B)[kk, j] is B[j·ldb + kk] (N) or B[kk·ldb + j] (T), as stored
            double s = 0;
            for (int kk = 0; kk < p.k; kk++) {
                const size_t at = tb == CUBLAS_OP_N ? (size_t)j * lb.ld + kk : (size_t)kk * lb.ld + j;
                s += p.bf16_ab ? (double)__bfloat162float(((const __nv_bfloat16 *)B)[at]) : (double)((const float *)B)[at];
            }
            if (p.bias_bf16) ((__nv_bfloat16 *)d.bias)[j] = __float2bfloat16((float)s);
            else ((float *)d.bias)[j] = (float)s;
        }
    }
    if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;
    if (!D) return CUBLAS_STATUS_INVALID_VALUE;
    if (bias && !d.bias) return CUBLAS_STATUS_INVALID_VALUE;
    const float bta = *(const float *)beta;
    const int m = p.m, n = p.n, ldd = (int)ld.ld;
    cublasContext plain; // default math: the compute type alone decides the rounding
    try {
        std::vector<float> acc((size_t)m * n, 0.0f); // D as fp32, leading dimension m
        if (bta != 0.0f) // C (== D) is read only when beta != 0, as cuBLAS reads it
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    const size_t at = (size_t)j * ldd + i;
                    acc[(size_t)j * m + i] =
                        p.bf16_d ? __bfloat162float(((const __nv_bfloat16 *)D)[at]) : ((const float *)D)[at];
                }
        st = p.bf16_ab ? gemm_bf16(&plain, ta, tb, m, n, p.k, (const float *)alpha, (const __nv_bfloat16 *)A,
                                   (int)la.ld, (const __nv_bfloat16 *)B, (int)lb.ld, &bta, acc.data(), false, m)
                       : gemm_f32(&plain, ta, tb, m, n, p.k, (const float *)alpha, (const float *)A, (int)la.ld,
                                  (const float *)B, (int)lb.ld, &bta, acc.data(), m, p.r);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
        if (bias)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++)
                    acc[(size_t)j * m + i] += p.bias_bf16 ? __bfloat162float(((const __nv_bfloat16 *)d.bias)[i])
                                                          : ((const float *)d.bias)[i];
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                const size_t at = (size_t)j * ldd + i;
                const float v = acc[(size_t)j * m + i];
                if (p.bf16_d) ((__nv_bfloat16 *)D)[at] = __float2bfloat16(v);
                else ((float *)D)[at] = v;
            }
    } catch (const std::bad_alloc &) {
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    (void)workspace; // the algorithm needs none
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

// =============================================================================================
// cuDNN
// =============================================================================================

struct cudnnContext {
    cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
    bool set = false;
    cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    int n = 0, c = 0, h = 0, w = 0;
};

struct cudnnFilterStruct {
    bool set = false;
    cudnnDataType_t dtype = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
    int k = 0, c = 0, r = 0, s = 0;
};

struct cudnnConvolutionStruct {
    bool set = false;
    int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    int groups = 1;
};

namespace {

// Output extent of one spatial dimension, as cuDNN defines it (may be <= 0 for bad shapes).
inline long long conv_out_dim(int in, int pad, int filt, int dil, int stride) {
    return ((long long)in + 2LL * pad - (long long)dil * (filt - 1) - 1) / stride + 1;
}

// Everything a convolution needs: the shapes, the geometry, and element strides of each
// operand in its own layout (x: n c h w; y: n k p q; w: k c r s).
struct ConvGeom {
    int N, C, H, W, K, R, S, P, Q;
    int ph, pw, u, v, dh, dw;
    long long xs[4], ys[4], ws[4];
    Rounding rnd;
    int groups; // C and K above are per group; group gi: x channels gi*C.., y channels and filters gi*K..
    bool bf16; // x, w, y all CUDNN_DATA_BFLOAT16 (fp32 compute: cuDNN's pseudo-bf16 configuration)
    size_t nx, ny, nw; // elements of each operand (fully packed 4-D)
};

void tensor_strides(const cudnnTensorStruct *t, long long s[4]) {
    const long long C = t->c, H = t->h, W = t->w;
    if (t->format == CUDNN_TENSOR_NHWC) s[0] = H * W * C, s[1] = 1, s[2] = W * C, s[3] = C;
    else s[0] = C * H * W, s[1] = H * W, s[2] = W, s[3] = 1;
}

void filter_strides(const cudnnFilterStruct *f, long long s[4]) {
    const long long C = f->c, R = f->r, S = f->s;
    if (f->format == CUDNN_TENSOR_NHWC) s[0] = R * S * C, s[1] = 1, s[2] = S * C, s[3] = C; // KRSC
    else s[0] = C * R * S, s[1] = R * S, s[2] = S, s[3] = 1;                                // KCRS
}

cudnnStatus_t make_geom(const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *cv,
                        const cudnnTensorStruct *y, ConvGeom &g) {
    if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set) return CUDNN_STATUS_BAD_PARAM;
    // fp32 data, or bf16 x, w and y with fp32 compute (widened exactly, accumulated as fp32 data
    // is, the output rounded to nearest even once per element)
    const bool all_f32 = x->dtype == CUDNN_DATA_FLOAT && y->dtype == CUDNN_DATA_FLOAT && w->dtype == CUDNN_DATA_FLOAT;
    const bool all_bf16 =
        x->dtype == CUDNN_DATA_BFLOAT16 && y->dtype == CUDNN_DATA_BFLOAT16 && w->dtype == CUDNN_DATA_BFLOAT16;
    if ((!all_f32 && !all_bf16) || cv->compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    if (cv->mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_NOT_SUPPORTED;
    // grouped: the filter's c is per group, x has groups·c channels, k splits into groups
    if (x->c != w->c * cv->groups || w->k % cv->groups || y->n != x->n || y->c != w->k) return CUDNN_STATUS_BAD_PARAM;
    const long long P = conv_out_dim(x->h, cv->pad_h, w->r, cv->dil_h, cv->u);
    const long long Q = conv_out_dim(x->w, cv->pad_w, w->s, cv->dil_w, cv->v);
    if (P < 1 || Q < 1 || y->h != P || y->w != Q) return CUDNN_STATUS_BAD_PARAM;
    g.N = x->n, g.C = x->c, g.H = x->h, g.W = x->w;
    g.K = w->k / cv->groups, g.R = w->r, g.S = w->s, g.P = (int)P, g.Q = (int)Q, g.groups = cv->groups;
    g.C = w->c;
    g.ph = cv->pad_h, g.pw = cv->pad_w, g.u = cv->u, g.v = cv->v, g.dh = cv->dil_h, g.dw = cv->dil_w;
    tensor_strides(x, g.xs);
    tensor_strides(y, g.ys);
    filter_strides(w, g.ws);
    g.rnd = cv->math == CUDNN_TENSOR_OP_MATH || cv->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION ? Rounding::tf32
                                                                                                   : Rounding::none;
    g.bf16 = all_bf16;
    g.nx = (size_t)x->n * x->c * x->h * x->w;
    g.ny = (size_t)y->n * y->c * y->h * y->w;
    g.nw = (size_t)w->k * w->c * w->r * w->s;
    return CUDNN_STATUS_SUCCESS;
}

// bf16 operands: run(in0, in1, out) on fp32 copies (widening is exact; TF32 rounding of a bf16
// value changes nothing), the fp32 result (alpha·acc + beta·old, old widened) rounded to nearest
// even into the bf16 output. fp32 operands: run on them as they are.
template <class F>
void with_f32(bool bf16, const void *a, size_t na, const void *b, size_t nb, void *out, size_t nout, F run) {
    if (!bf16) {
        run((const float *)a, (const float *)b, (float *)out);
        return;
    }
    auto widen = [](const void *p, size_t n) {
        std::vector<float> v(n);
        for (size_t i = 0; i < n; i++) v[i] = __bfloat162float(((const __nv_bfloat16 *)p)[i]);
        return v;
    };
    std::vector<float> fa = widen(a, na), fb = widen(b, nb), fo = widen(out, nout);
    run(fa.data(), fb.data(), fo.data());
    for (size_t i = 0; i < nout; i++) ((__nv_bfloat16 *)out)[i] = __float2bfloat16(fo[i]);
}

// A 4-D operand (element strides s over dims d0..d3) in canonical order d0 d1 d2 d3 with d3
// contiguous, rounded; `order` maps canonical dims to the operand's own dims. Returns src itself
// when it already is in that layout and no rounding is asked for; otherwise fills buf.
const float *pack4(const float *src, const long long s[4], const int order[4], const int dims[4], Rounding r,
                   std::vector<float> &buf) {
    const long long s0 = s[order[0]], s1 = s[order[1]], s2 = s[order[2]], s3 = s[order[3]];
    const int d0 = dims[0], d1 = dims[1], d2 = dims[2], d3 = dims[3];
    if (r == Rounding::none && s3 == 1 && s2 == d3 && s1 == (long long)d2 * d3 && s0 == (long long)d1 * d2 * d3)
        return src;
    buf.resize((size_t)d0 * d1 * d2 * d3);
    float *o = buf.data();
    for (int i0 = 0; i0 < d0; i0++)
        for (int i1 = 0; i1 < d1; i1++)
            for (int i2 = 0; i2 < d2; i2++) {
                const float *p = src + i0 * s0 + i1 * s1 + i2 * s2;
                for (int i3 = 0; i3 < d3; i3++) *o++ = round_to(p[i3 * s3], r);
            }
    return buf.data();
}

// acc[0..n) += a * b[0..n), in double.
inline void axpy_d(double *acc, double a, const float *b, int n) {
    for (int i = 0; i < n; i++) acc[i] += a * (double)b[i];
}

// dst = alpha * acc + beta * dst; dst is not read when beta == 0 (cuDNN's blending rule).
inline float blend(double acc, float alpha, float beta, const float *dst) {
    double v = (double)alpha * acc;
    if (beta != 0.0f) v += (double)beta * (double)*dst;
    return (float)v;
}

// Canonical dim orders: tensors are indexed (n, c, h, w), filters (k, c, r, s).
constexpr int ORDER_NHWC[4] = {0, 2, 3, 1}; // n h w c   (tensor)
constexpr int ORDER_KRSC[4] = {0, 2, 3, 1}; // k r s c   (filter)
constexpr int ORDER_RSCK[4] = {2, 3, 1, 0}; // r s c k   (filter)

// y = alpha * conv(x, w) + beta * y
void conv_forward(const ConvGeom &g, float alpha, const float *x, const float *w, float beta, float *y) {
    std::vector<float> xb, wb;
    const int xd[4] = {g.N, g.H, g.W, g.C}, wd[4] = {g.R, g.S, g.C, g.K};
    const float *X = pack4(x, g.xs, ORDER_NHWC, xd, g.rnd, xb); // [n][h][w][c]
    const float *Wt = pack4(w, g.ws, ORDER_RSCK, wd, g.rnd, wb); // [r][s][c][k]
    std::vector<double> acc(g.K);
    for (int n = 0; n < g.N; n++)
        for (int p = 0; p < g.P; p++)
            for (int q = 0; q < g.Q; q++) {
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int r = 0; r < g.R; r++) {
                    const int hi = p * g.u - g.ph + r * g.dh;
                    if (hi < 0 || hi >= g.H) continue;
                    for (int s = 0; s < g.S; s++) {
                        const int wi = q * g.v - g.pw + s * g.dw;
                        if (wi < 0 || wi >= g.W) continue;
                        const float *xr = X + (((size_t)n * g.H + hi) * g.W + wi) * g.C;
                        const float *wr = Wt + ((size_t)r * g.S + s) * g.C * g.K;
                        for (int c = 0; c < g.C; c++) axpy_d(acc.data(), xr[c], wr + (size_t)c * g.K, g.K);
                    }
                }
                float *yo = y + n * g.ys[0] + p * g.ys[2] + q * g.ys[3];
                for (int k = 0; k < g.K; k++) {
                    float *d = yo + k * g.ys[1];
                    *d = blend(acc[k], alpha, beta, d);
                }
            }
}

// dx = alpha * convT(dy, w) + beta * dx
void conv_backward_data(const ConvGeom &g, float alpha, const float *w, const float *dy, float beta, float *dx) {
    std::vector<float> yb, wb;
    const int yd[4] = {g.N, g.P, g.Q, g.K}, wd[4] = {g.K, g.R, g.S, g.C};
    const float *Y = pack4(dy, g.ys, ORDER_NHWC, yd, g.rnd, yb); // [n][p][q][k]
    const float *Wk = pack4(w, g.ws, ORDER_KRSC, wd, g.rnd, wb); // [k][r][s][c]
    std::vector<double> acc(g.C);
    for (int n = 0; n < g.N; n++)
        for (int hi = 0; hi < g.H; hi++)
            for (int wi = 0; wi < g.W; wi++) {
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int r = 0; r < g.R; r++) {
                    const int ph = hi + g.ph - r * g.dh; // = p * u for a tap that reads x[hi]
                    if (ph < 0 || ph % g.u) continue;
                    const int p = ph / g.u;
                    if (p >= g.P) continue;
                    for (int s = 0; s < g.S; s++) {
                        const int qw = wi + g.pw - s * g.dw;
                        if (qw < 0 || qw % g.v) continue;
                        const int q = qw / g.v;
                        if (q >= g.Q) continue;
                        const float *yr = Y + (((size_t)n * g.P + p) * g.Q + q) * g.K;
                        for (int k = 0; k < g.K; k++)
                            axpy_d(acc.data(), yr[k], Wk + (((size_t)k * g.R + r) * g.S + s) * g.C, g.C);
                    }
                }
                float *xo = dx + n * g.xs[0] + hi * g.xs[2] + wi * g.xs[3];
                for (int c = 0; c < g.C; c++) {
                    float *d = xo + c * g.xs[1];
                    *d = blend(acc[c], alpha, beta, d);
                }
            }
}

// dw = alpha * corr(x, dy) + beta * dw
void conv_backward_filter(const ConvGeom &g, float alpha, const float *x, const float *dy, float beta, float *dw) {
    std::vector<float> xb, yb;
    const int xd[4] = {g.N, g.H, g.W, g.C}, yd[4] = {g.N, g.P, g.Q, g.K};
    const float *X = pack4(x, g.xs, ORDER_NHWC, xd, g.rnd, xb);  // [n][h][w][c]
    const float *Y = pack4(dy, g.ys, ORDER_NHWC, yd, g.rnd, yb); // [n][p][q][k]
    std::vector<double> acc((size_t)g.K * g.R * g.S * g.C, 0.0); // [k][r][s][c]
    for (int n = 0; n < g.N; n++)
        for (int p = 0; p < g.P; p++)
            for (int q = 0; q < g.Q; q++) {
                const float *yr = Y + (((size_t)n * g.P + p) * g.Q + q) * g.K;
                for (int r = 0; r < g.R; r++) {
                    const int hi = p * g.u - g.ph + r * g.dh;
                    if (hi < 0 || hi >= g.H) continue;
                    for (int s = 0; s < g.S; s++) {
                        const int wi = q * g.v - g.pw + s * g.dw;
                        if (wi < 0 || wi >= g.W) continue;
                        const float *xr = X + (((size_t)n * g.H + hi) * g.W + wi) * g.C;
                        for (int k = 0; k < g.K; k++)
                            axpy_d(acc.data() + (((size_t)k * g.R + r) * g.S + s) * g.C, yr[k], xr, g.C);
                    }
                }
            }
    const double *a = acc.data();
    for (int k = 0; k < g.K; k++)
        for (int r = 0; r < g.R; r++)
            for (int s = 0; s < g.S; s++)
                for (int c = 0; c < g.C; c++) {
                    float *d = dw + k * g.ws[0] + c * g.ws[1] + r * g.ws[2] + s * g.ws[3];
                    *d = blend(*a++, alpha, beta, d);
                }
}

bool format_ok(cudnnTensorFormat_t f) { return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC; }

template <class Perf, class Algo>
cudnnStatus_t one_algo(cudnnHandle_t handle, cudnnStatus_t geom, const cudnnConvolutionStruct *cv, int requested,
                       int *returned, Perf *perf, Algo algo) {
    if (!handle || !returned || !perf || requested < 1) return CUDNN_STATUS_BAD_PARAM;
    if (geom != CUDNN_STATUS_SUCCESS) return geom;
    std::memset(perf, 0, sizeof *perf);
    perf->algo = algo;
    perf->status = CUDNN_STATUS_SUCCESS;
    perf->time = 0.0f;
    perf->memory = 0;
    perf->determinism = CUDNN_DETERMINISTIC;
    perf->mathType = cv->math;
    *returned = 1;
    return CUDNN_STATUS_SUCCESS;
}

// Runs a convolution; the scratch vectors' allocation failure becomes cuDNN's status, not an exception
// through a C caller.
template <class F>
cudnnStatus_t host_memory_guard(F run) {
    try {
        run();
    } catch (const std::bad_alloc &) {
        return CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    }
    return CUDNN_STATUS_SUCCESS;
}

} // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_INVALID_VALUE: return "CUDNN_STATUS_INVALID_VALUE";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: break;
    }
    switch ((int)status / 1000 * 1000) {
    case CUDNN_STATUS_NOT_INITIALIZED / 1000 * 1000: return "CUDNN_STATUS_NOT_INITIALIZED (category)";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (category)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (category)";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR (category)";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED (category)";
    default: return "CUDNN_STATUS_UNKNOWN";
    }
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    *handle = new (std::nothrow) cudnnContext();
    return *handle ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    delete handle; // a null handle is fine
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM;
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *streamId) {
    if (!handle || !streamId) return CUDNN_STATUS_BAD_PARAM;
    *streamId = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

// ---- tensor and filter descriptors ----

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) {
    if (!tensorDesc) return CUDNN_STATUS_BAD_PARAM;
    *tensorDesc = new (std::nothrow) cudnnTensorStruct();
    return *tensorDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
    if (!tensorDesc || n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
    if ((long long)n * c * h * w > 0x7fffffffLL) return CUDNN_STATUS_BAD_PARAM; // cuDNN's int element count
    if (!format_ok(format)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (dataType != CUDNN_DATA_FLOAT && dataType != CUDNN_DATA_BFLOAT16) return CUDNN_STATUS_NOT_SUPPORTED;
    *tensorDesc = cudnnTensorStruct{true, dataType, format, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
    delete tensorDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) {
    if (!filterDesc) return CUDNN_STATUS_BAD_PARAM;
    *filterDesc = new (std::nothrow) cudnnFilterStruct();
    return *filterDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
    if (!filterDesc || k <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
    if ((long long)k * c * h * w > 0x7fffffffLL) return CUDNN_STATUS_BAD_PARAM;
    if (!format_ok(format)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (dataType != CUDNN_DATA_FLOAT && dataType != CUDNN_DATA_BFLOAT16) return CUDNN_STATUS_NOT_SUPPORTED;
    *filterDesc = cudnnFilterStruct{true, dataType, format, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetFilter4dDescriptor(const cudnnFilterDescriptor_t filterDesc, cudnnDataType_t *dataType,
                                         cudnnTensorFormat_t *format, int *k, int *c, int *h, int *w) {
    if (!filterDesc || !filterDesc->set || !dataType || !format || !k || !c || !h || !w)
        return CUDNN_STATUS_BAD_PARAM;
    *dataType = filterDesc->dtype, *format = filterDesc->format;
    *k = filterDesc->k, *c = filterDesc->c, *h = filterDesc->r, *w = filterDesc->s;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
    delete filterDesc;
    return CUDNN_STATUS_SUCCESS;
}

// ---- convolution descriptors ----

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) {
    if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
    *convDesc = new (std::nothrow) cudnnConvolutionStruct();
    return *convDesc ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
    delete convDesc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
    if (!convDesc) return CUDNN_STATUS_BAD_PARAM;
    if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
        mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
        return CUDNN_STATUS_BAD_PARAM;
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t *mathType) {
    if (!convDesc || !mathType) return CUDNN_STATUS_BAD_PARAM;
    *mathType = convDesc->math;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
    if (!convDesc || groupCount < 1) return CUDNN_STATUS_BAD_PARAM;
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int *groupCount) {
    if (!convDesc || !groupCount) return CUDNN_STATUS_BAD_PARAM;
    *groupCount = convDesc->groups;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
    if (!convDesc || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
    // The emulator implements cross-correlation (what every framework calls convolution) in fp32 only.
    if (mode != CUDNN_CROSS_CORRELATION || computeType != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    convDesc->set = true;
    convDesc->pad_h = pad_h, convDesc->pad_w = pad_w, convDesc->u = u, convDesc->v = v;
    convDesc->dil_h = dilation_h, convDesc->dil_w = dilation_w;
    convDesc->mode = mode, convDesc->compute = computeType;
    return CUDNN_STATUS_SUCCESS; // math type and group count are kept, as in cuDNN
}

cudnnStatus_t cudnnGetConvolution2dDescriptor(const cudnnConvolutionDescriptor_t convDesc, int *pad_h, int *pad_w,
                                              int *u, int *v, int *dilation_h, int *dilation_w,
                                              cudnnConvolutionMode_t *mode, cudnnDataType_t *computeType) {
    if (!convDesc || !convDesc->set || !pad_h || !pad_w || !u || !v || !dilation_h || !dilation_w || !mode ||
        !computeType)
        return CUDNN_STATUS_BAD_PARAM;
    *pad_h = convDesc->pad_h, *pad_w = convDesc->pad_w, *u = convDesc->u, *v = convDesc->v;
    *dilation_h = convDesc->dil_h, *dilation_w = convDesc->dil_w;
    *mode = convDesc->mode, *computeType = convDesc->compute;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int *n, int *c, int *h,
                                                    int *w) {
    if (!convDesc || !inputTensorDesc || !filterDesc || !convDesc->set || !inputTensorDesc->set ||
        !filterDesc->set || !n || !c || !h || !w)
        return CUDNN_STATUS_BAD_PARAM;
    if (inputTensorDesc->c != filterDesc->c) return CUDNN_STATUS_BAD_PARAM;
    const long long P = conv_out_dim(inputTensorDesc->h, convDesc->pad_h, filterDesc->r, convDesc->dil_h, convDesc->u);
    const long long Q = conv_out_dim(inputTensorDesc->w, convDesc->pad_w, filterDesc->s, convDesc->dil_w, convDesc->v);
    if (P < 1 || Q < 1) return CUDNN_STATUS_BAD_PARAM;
    *n = inputTensorDesc->n, *c = filterDesc->k, *h = (int)P, *w = (int)Q;
    return CUDNN_STATUS_SUCCESS;
}

// ---- algorithm heuristics, workspace sizes ----

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int *count) {
    if (!handle || !count) return CUDNN_STATUS_BAD_PARAM;
    *count = 1;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int *count) {
    return cudnnGetConvolutionForwardAlgorithmMaxCount(handle, count);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int *count) {
    return cudnnGetConvolutionForwardAlgorithmMaxCount(handle, count);
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    ConvGeom g;
    return one_algo(handle, make_geom(srcDesc, filterDesc, convDesc, destDesc, g), convDesc, requestedAlgoCount,
                    returnedAlgoCount, perfResults, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t filterDesc,
                                                          const cudnnTensorDescriptor_t diffDesc,
                                                          const cudnnConvolutionDescriptor_t convDesc,
                                                          const cudnnTensorDescriptor_t gradDesc,
                                                          const int requestedAlgoCount, int *returnedAlgoCount,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perfResults) {
    ConvGeom g;
    return one_algo(handle, make_geom(gradDesc, filterDesc, convDesc, diffDesc, g), convDesc, requestedAlgoCount,
                    returnedAlgoCount, perfResults, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle,
                                                            const cudnnTensorDescriptor_t srcDesc,
                                                            const cudnnTensorDescriptor_t diffDesc,
                                                            const cudnnConvolutionDescriptor_t convDesc,
                                                            const cudnnFilterDescriptor_t gradDesc,
                                                            const int requestedAlgoCount, int *returnedAlgoCount,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t *perfResults) {
    ConvGeom g;
    return one_algo(handle, make_geom(srcDesc, gradDesc, convDesc, diffDesc, g), convDesc, requestedAlgoCount,
                    returnedAlgoCount, perfResults, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    if (!handle || !sizeInBytes || (int)algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(xDesc, wDesc, convDesc, yDesc, g);
    if (s == CUDNN_STATUS_SUCCESS) *sizeInBytes = 0;
    return s;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
                                                           const cudnnTensorDescriptor_t dyDesc,
                                                           const cudnnConvolutionDescriptor_t convDesc,
                                                           const cudnnTensorDescriptor_t dxDesc,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t *sizeInBytes) {
    if (!handle || !sizeInBytes || (int)algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(dxDesc, wDesc, convDesc, dyDesc, g);
    if (s == CUDNN_STATUS_SUCCESS) *sizeInBytes = 0;
    return s;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle,
                                                             const cudnnTensorDescriptor_t xDesc,
                                                             const cudnnTensorDescriptor_t dyDesc,
                                                             const cudnnConvolutionDescriptor_t convDesc,
                                                             const cudnnFilterDescriptor_t gradDesc,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t *sizeInBytes) {
    if (!handle || !sizeInBytes || (int)algo < 0 || algo >= CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(xDesc, gradDesc, convDesc, dyDesc, g);
    if (s == CUDNN_STATUS_SUCCESS) *sizeInBytes = 0;
    return s;
}

// ---- convolutions ----

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y) {
    if (handle && alpha && beta && xDesc && wDesc && convDesc && yDesc && emu::capturing(handle->stream)) {
        cudnnContext h = *handle;
        cudnnTensorStruct xd = *xDesc, yd = *yDesc;
        cudnnFilterStruct wd = *wDesc;
        cudnnConvolutionStruct cd = *convDesc;
        const float a = *(const float *)alpha, b = *(const float *)beta;
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cudnnConvolutionForward(&h, &a, &xd, x, &wd, w, &cd, algo, workSpace, workSpaceSizeInBytes, &b, &yd,
                                           y) == CUDNN_STATUS_SUCCESS ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    (void)workSpace, (void)workSpaceSizeInBytes;
    if (!handle || !alpha || !beta || !x || !w || !y || (int)algo < 0 || algo >= CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(xDesc, wDesc, convDesc, yDesc, g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    return host_memory_guard([&] {
        with_f32(g.bf16, x, g.nx, w, g.nw, y, g.ny, [&](const float *fx, const float *fw, float *fy) {
            for (int gi = 0; gi < g.groups; gi++)
                conv_forward(g, *(const float *)alpha, fx + gi * g.C * g.xs[1], fw + gi * g.K * g.ws[0],
                             *(const float *)beta, fy + gi * g.K * g.ys[1]);
        });
    });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void *w,
                                           const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
                                           size_t workSpaceSizeInBytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxDesc, void *dx) {
    if (handle && alpha && beta && wDesc && dyDesc && convDesc && dxDesc && emu::capturing(handle->stream)) {
        cudnnContext h = *handle;
        cudnnTensorStruct dyd = *dyDesc, dxd = *dxDesc;
        cudnnFilterStruct wd = *wDesc;
        cudnnConvolutionStruct cd = *convDesc;
        const float a = *(const float *)alpha, b = *(const float *)beta;
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cudnnConvolutionBackwardData(&h, &a, &wd, w, &dyd, dy, &cd, algo, workSpace, workSpaceSizeInBytes,
                                                &b, &dxd, dx) == CUDNN_STATUS_SUCCESS ? cudaSuccess
                                                                                      : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    (void)workSpace, (void)workSpaceSizeInBytes;
    if (!handle || !alpha || !beta || !w || !dy || !dx || (int)algo < 0 ||
        algo >= CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(dxDesc, wDesc, convDesc, dyDesc, g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    return host_memory_guard([&] {
        with_f32(g.bf16, w, g.nw, dy, g.ny, dx, g.nx, [&](const float *fw, const float *fdy, float *fdx) {
            for (int gi = 0; gi < g.groups; gi++)
                conv_backward_data(g, *(const float *)alpha, fw + gi * g.K * g.ws[0], fdy + gi * g.K * g.ys[1],
                                   *(const float *)beta, fdx + gi * g.C * g.xs[1]);
        });
    });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void *x,
                                             const cudnnTensorDescriptor_t dyDesc, const void *dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *workSpace,
                                             size_t workSpaceSizeInBytes, const void *beta,
                                             const cudnnFilterDescriptor_t dwDesc, void *dw) {
    if (handle && alpha && beta && xDesc && dyDesc && convDesc && dwDesc && emu::capturing(handle->stream)) {
        cudnnContext h = *handle;
        cudnnTensorStruct xd = *xDesc, dyd = *dyDesc;
        cudnnFilterStruct dwd = *dwDesc;
        cudnnConvolutionStruct cd = *convDesc;
        const float a = *(const float *)alpha, b = *(const float *)beta;
        cudaError_t e = emu::record(handle->stream, [=]() mutable {
            return cudnnConvolutionBackwardFilter(&h, &a, &xd, x, &dyd, dy, &cd, algo, workSpace,
                                                  workSpaceSizeInBytes, &b, &dwd, dw) == CUDNN_STATUS_SUCCESS
                       ? cudaSuccess : cudaErrorLaunchFailure;
        });
        return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED;
    }
    emu_count_work();
    (void)workSpace, (void)workSpaceSizeInBytes;
    if (!handle || !alpha || !beta || !x || !dy || !dw || (int)algo < 0 ||
        algo >= CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT)
        return CUDNN_STATUS_BAD_PARAM;
    ConvGeom g;
    cudnnStatus_t s = make_geom(xDesc, dwDesc, convDesc, dyDesc, g);
    if (s != CUDNN_STATUS_SUCCESS) return s;
    return host_memory_guard([&] {
        with_f32(g.bf16, x, g.nx, dy, g.ny, dw, g.nw, [&](const float *fx, const float *fdy, float *fdw) {
            for (int gi = 0; gi < g.groups; gi++)
                conv_backward_filter(g, *(const float *)alpha, fx + gi * g.C * g.xs[1], fdy + gi * g.K * g.ys[1],
                                     *(const float *)beta, fdw + gi * g.K * g.ws[0]);
        });
    });
}

} // extern "C"

// =============================================================================================
// NCCL: one rank, or several over MPI
// =============================================================================================
// Device memory is host memory here, so with several ranks (several processes under mpirun, as
// the project launches them) a collective is the matching MPI collective on MPI_COMM_WORLD, which
// comm/comm_nccl.c has initialised to bootstrap NCCL anyway. Every call completes before it
// returns, and the ranks issue collectives in the same order (NCCL requires that too).

struct ncclComm {
    int nranks = 1, rank = 0;
    // Failure detection, as NCCL's proxy thread does it for a closed socket: the pids of the
    // peers on this host (0 for this rank and for peers elsewhere), checked while a collective
    // waits; async_error is what ncclCommGetAsyncError reports, aborted ends any wait.
    std::vector<long> peer_pids;
    std::atomic<int> async_error{0}, aborted{0};
};

#ifdef UNET_HAVE_MPI
#define OMPI_SKIP_MPICXX 1 /* the C API only: no MPI C++ bindings to link */
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

namespace {
// Every rank's host name and pid; peer_pids keeps those on this host (a dead process is seen
// with kill(pid, 0); ranks on other hosts are left to the launcher and MPI).
void nccl_learn_peers(ncclComm *c) {
    struct Who {
        char host[64];
        long pid;
    } me{}, *all = new Who[c->nranks];
    gethostname(me.host, sizeof me.host - 1);
    me.pid = (long)getpid();
    MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    c->peer_pids.assign(c->nranks, 0);
    for (int r = 0; r < c->nranks; r++)
        if (r != c->rank && !std::strcmp(all[r].host, me.host)) c->peer_pids[r] = all[r].pid;
    delete[] all;
}

double nccl_now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Waits for a started MPI collective as a GPU stream waits for NCCL's kernel: until it completes,
// or until ncclCommAbort. A dead peer does not end the wait (NCCL's kernel would spin too); it is
// reported through ncclCommGetAsyncError, for the watchdog to act on.
ncclResult_t nccl_wait(ncclComm *c, MPI_Request *req) {
    double next_check = nccl_now() + 0.05;
    for (long spins = 0;; spins++) {
        int done = 0;
        if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
            c->async_error = ncclSystemError;
            return ncclSystemError;
        }
        if (done) return ncclSuccess;
        if (c->aborted) return ncclRemoteError; // the request is abandoned with the communicator
        if (spins < 1000) continue;
        timespec pause = {0, 50000}; // 50 us: leave the cores to the peers being waited for
        nanosleep(&pause, nullptr);
        if (nccl_now() < next_check) continue;
        next_check = nccl_now() + 0.05;
        for (int r = 0; r < c->nranks; r++)
            if (c->peer_pids[r] > 0 && kill((pid_t)c->peer_pids[r], 0) != 0 && errno == ESRCH) {
                if (!c->async_error.exchange(ncclRemoteError))
                    std::fprintf(stderr, "unet2022: CUDA emulator: NCCL rank %d: peer rank %d (pid %ld) is gone\n",
                                 c->rank, r, c->peer_pids[r]);
                c->peer_pids[r] = 0;
            }
    }
}
} // namespace
#endif

namespace {

thread_local int nccl_group_depth = 0; // NCCL groups are per thread

// A collective a graph replays: on a GPU its kernel just ends when the communicator is aborted or
// a peer is lost (the graph launch does not fail; ncclCommGetAsyncError and the transport's
// watchdog report it). The same here: only a call the recording got wrong fails the launch.
cudaError_t replayed_collective(ncclResult_t r) {
    if (r == ncclSuccess) return cudaSuccess;
    if (r == ncclRemoteError || r == ncclSystemError) {
        std::fprintf(stderr, "unet2022: CUDA emulator: a replayed NCCL collective ended early (%s)\n",
                     ncclGetErrorString(r));
        return cudaSuccess;
    }
    return cudaErrorLaunchFailure;
}

// Bytes per element of an NCCL data type; 0 for an invalid one.
size_t nccl_type_size(ncclDataType_t t) {
    switch (t) {
    case ncclInt8:
    case ncclUint8:
    case ncclFloat8e4m3:
    case ncclFloat8e5m2: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
    default: return 0;
    }
}

// With one rank, every collective moves count elements from sendbuff to recvbuff.
ncclResult_t nccl_identity(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclComm_t comm) {
    if (!comm) return ncclInvalidArgument;
    const size_t es = nccl_type_size(datatype);
    if (!es) return ncclInvalidArgument;
    if (count && (!sendbuff || !recvbuff)) return ncclInvalidArgument;
    if (count && sendbuff != recvbuff) std::memmove(recvbuff, sendbuff, count * es);
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version) {
    if (!version) return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) {
    if (!uniqueId) return ncclInvalidArgument;
    static std::atomic<unsigned long long> serial{0};
    std::memset(uniqueId->internal, 0, sizeof uniqueId->internal);
    std::snprintf(uniqueId->internal, sizeof uniqueId->internal, "unet2022-cuda-emu-nccl-%llu", (unsigned long long)++serial);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank) {
    (void)commId;
    if (!comm) return ncclInvalidArgument;
    if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    if (nranks != 1) {
#ifdef UNET_HAVE_MPI
        int init = 0, size = 0, me = -1;
        MPI_Initialized(&init);
        if (init) MPI_Comm_size(MPI_COMM_WORLD, &size), MPI_Comm_rank(MPI_COMM_WORLD, &me);
        if (!init || size != nranks || me != rank) {
            std::fprintf(stderr,
                         "unet2022: CUDA emulator: NCCL with %d ranks runs over MPI_COMM_WORLD, which must have "
                         "that size and this rank (%d): MPI %s, size %d, rank %d\n",
                         nranks, rank, init ? "initialised" : "not initialised", size, me);
            return ncclInvalidUsage;
        }
#else
        std::fprintf(stderr,
                     "unet2022: CUDA emulator: NCCL supports one rank only in a build without MPI "
                     "(ncclCommInitRank with nranks = %d, rank %d)\n",
                     nranks, rank);
        return ncclInvalidUsage;
#endif
    }
    *comm = new (std::nothrow) ncclComm();
    if (!*comm) return ncclSystemError;
    (*comm)->nranks = nranks;
    (*comm)->rank = rank;
#ifdef UNET_HAVE_MPI
    if (nranks > 1) nccl_learn_peers(*comm);
#endif
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
    // Another thread may be waiting in a collective of this communicator (the watchdog aborts
    // while the training thread is blocked): mark it aborted, which ends that wait, and leave
    // the memory to the process's exit.
    if (comm) comm->aborted = 1;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!comm || !asyncError) return ncclInvalidArgument;
    *asyncError = (ncclResult_t)comm->async_error.load();
    return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
    if (!comm || !count) return ncclInvalidArgument;
    *count = comm->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
    if (!comm || !rank) return ncclInvalidArgument;
    *rank = comm->rank;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result) {
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage (the CPU emulator's NCCL: one rank, or MPI_COMM_WORLD's ranks)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm) {
    (void)comm;
    return "";
}

#ifdef UNET_HAVE_MPI
// The MPI twin of an NCCL type / reduction; MPI_DATATYPE_NULL / MPI_OP_NULL when there is none.
static MPI_Datatype mpi_type_of(ncclDataType_t t) {
    switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}
static MPI_Op mpi_op_of(ncclRedOp_t op) {
    switch (op) {
    case ncclSum: return MPI_SUM;
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_OP_NULL; // ncclAvg has no MPI twin; the project never uses it
    }
}
#endif

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    if (emu::capturing(stream)) { // NCCL >= 2.9 records collectives into a graph
        cudaError_t e = emu::record(stream, [=]() {
            return replayed_collective(ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream));
        });
        return e == cudaSuccess ? ncclSuccess : ncclInvalidUsage;
    }
    emu_count_work();
    if ((int)op < 0 || op >= ncclNumOps) return ncclInvalidArgument; // no custom (ncclRedOpCreate*) ops here
    if (!comm || comm->nranks == 1) return nccl_identity(sendbuff, recvbuff, count, datatype, comm);
#ifdef UNET_HAVE_MPI
    MPI_Datatype mt = mpi_type_of(datatype);
    MPI_Op mo = mpi_op_of(op);
    if (mt == MPI_DATATYPE_NULL || mo == MPI_OP_NULL) return ncclInvalidArgument;
    const size_t es = nccl_type_size(datatype), chunk = (size_t)1 << 28; // MPI counts are int
    for (size_t off = 0; off < count; off += chunk) {
        int n = (int)(count - off < chunk ? count - off : chunk);
        char *recv = (char *)recvbuff + off * es;
        const void *send = sendbuff == recvbuff ? MPI_IN_PLACE : (const void *)((const char *)sendbuff + off * es);
        MPI_Request req;
        if (MPI_Iallreduce(send, recv, n, mt, mo, MPI_COMM_WORLD, &req) != MPI_SUCCESS) return ncclSystemError;
        if (ncclResult_t r = nccl_wait(comm, &req); r != ncclSuccess) return r;
    }
    return ncclSuccess;
#else
    return ncclInvalidUsage;
#endif
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
    if (emu::capturing(stream)) {
        cudaError_t e = emu::record(stream, [=]() {
            return replayed_collective(ncclBroadcast(sendbuff, recvbuff, count, datatype, root, comm, stream));
        });
        return e == cudaSuccess ? ncclSuccess : ncclInvalidUsage;
    }
    emu_count_work();
    if (comm && (root < 0 || root >= comm->nranks)) return ncclInvalidArgument;
    if (!comm || comm->nranks == 1) return nccl_identity(sendbuff, recvbuff, count, datatype, comm);
#ifdef UNET_HAVE_MPI
    const size_t es = nccl_type_size(datatype);
    if (!es) return ncclInvalidArgument;
    if (comm->rank == root && sendbuff != recvbuff) std::memmove(recvbuff, sendbuff, count * es);
    const size_t bytes = count * es, chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        int n = (int)(bytes - off < chunk ? bytes - off : chunk);
        MPI_Request req;
        if (MPI_Ibcast((char *)recvbuff + off, n, MPI_BYTE, root, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
            return ncclSystemError;
        if (ncclResult_t r = nccl_wait(comm, &req); r != ncclSuccess) return r;
    }
    return ncclSuccess;
#else
    return ncclInvalidUsage;
#endif
}

ncclResult_t ncclBcast(void *buff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm,
                       cudaStream_t stream) {
    return ncclBroadcast(buff, buff, count, datatype, root, comm, stream);
}

ncclResult_t ncclGroupStart(void) {
    nccl_group_depth++;
    return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
    if (nccl_group_depth <= 0) return ncclInvalidUsage;
    nccl_group_depth--;
    return ncclSuccess; // the grouped operations already completed (the emulator is synchronous)
}

} // extern "C"
