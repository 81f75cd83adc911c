/* cublasLt.h — the part of cuBLASLt the CPU emulator provides (tests/cuda_emu/README.md).
 *
 * Only what kernels/cuda/linear_cublas.cu calls. Names, enum values, struct layouts and
 * signatures follow CUDA 13's cublasLt.h. Implemented in tests/cuda_emu/emu_libs.cpp on the same
 * GEMM as cublasGemmEx (cublas_v2.h): every call is synchronous and "device" pointers are host
 * pointers.
 *
 * What cublasLtMatmul computes here: D = alpha · op(A) · op(B) + beta · C (+ bias), column-major
 * (CUBLASLT_ORDER_COL, batch count 1), C and D the same matrix (C == D, same layout: the only
 * in-place form the project uses), alpha/beta fp32 host scalars (scale type CUDA_R_32F, pointer
 * mode host), under the precision model of cublasGemmEx for the compute type:
 *   A, B, D CUDA_R_32F with CUBLAS_COMPUTE_32F[_PEDANTIC] (plain fp32) or _FAST_TF32 (A, B
 *   rounded to TF32 first);
 *   A, B CUDA_R_16BF with D CUDA_R_16BF or CUDA_R_32F, CUBLAS_COMPUTE_32F: A, B widened exactly,
 *   fp32 accumulation, a bf16 D rounded to nearest even once, after the epilogue.
 * Epilogues: CUBLASLT_EPILOGUE_DEFAULT; CUBLASLT_EPILOGUE_BIAS: bias[i] (a packed vector of
 * D's rows, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE CUDA_R_32F, or D's type when left at -1) added in
 * fp32 to every column of D before D's rounding; CUBLASLT_EPILOGUE_BGRADB: the bias gradient
 * bias[j] = Σ_k op(B)[k, j] (a packed vector of D's columns, of D's type: BIAS_DATA_TYPE -1 or
 * D's type), B read as stored (bf16 widened exactly), summed in double, rounded once, written
 * (never read) whatever beta; D computed as without an epilogue; alpha must be 1 (the docs do not
 * say whether it scales the gradient). Anything else is CUBLAS_STATUS_NOT_SUPPORTED, both from the
 * heuristic (no algorithm) and from cublasLtMatmul.
 * cublasLtMatmulAlgoGetHeuristic returns one algorithm (no split-K: SPLITK_NUM 1, reduction scheme
 * NONE, which no reduction-scheme mask excludes; workspace 0) when the operation is one of the
 * above, else no result and CUBLAS_STATUS_NOT_SUPPORTED. Alignment preferences are accepted and
 * ignored (any address works here). cublasLtMatmul counts as one launch (emu_count_work) and is
 * recorded, descriptors copied, while its stream captures. C-compatible. */
#ifndef UNET_EMU_CUBLASLT_H
#define UNET_EMU_CUBLASLT_H

#include <stddef.h>
#include <stdint.h>

#include "cublas_v2.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cublasLtContext;
typedef struct cublasLtContext *cublasLtHandle_t;

typedef struct {
    uint64_t data[8];
} cublasLtMatrixLayoutOpaque_t;
typedef cublasLtMatrixLayoutOpaque_t *cublasLtMatrixLayout_t;

typedef struct {
    uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    uint64_t data[32];
} cublasLtMatmulDescOpaque_t;
typedef cublasLtMatmulDescOpaque_t *cublasLtMatmulDesc_t;

typedef struct {
    uint64_t data[8];
} cublasLtMatmulPreferenceOpaque_t;
typedef cublasLtMatmulPreferenceOpaque_t *cublasLtMatmulPreference_t;

typedef enum { CUBLASLT_ORDER_COL = 0, CUBLASLT_ORDER_ROW = 1 } cublasLtOrder_t;

typedef enum {
    CUBLASLT_MATRIX_LAYOUT_TYPE = 0,
    CUBLASLT_MATRIX_LAYOUT_ORDER = 1,
    CUBLASLT_MATRIX_LAYOUT_ROWS = 2,
    CUBLASLT_MATRIX_LAYOUT_COLS = 3,
    CUBLASLT_MATRIX_LAYOUT_LD = 4,
    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5
} cublasLtMatrixLayoutAttribute_t;

typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0, /* int32_t cublasComputeType_t */
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,   /* int32_t cudaDataType */
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2, /* int32_t, default host */
    CUBLASLT_MATMUL_DESC_TRANSA = 3,       /* int32_t cublasOperation_t, default CUBLAS_OP_N */
    CUBLASLT_MATMUL_DESC_TRANSB = 4,       /* int32_t cublasOperation_t, default CUBLAS_OP_N */
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,     /* uint32_t cublasLtEpilogue_t, default CUBLASLT_EPILOGUE_DEFAULT */
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8, /* void *, default NULL */
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26 /* int32_t cudaDataType, default -1 (D's type) */
} cublasLtMatmulDescAttributes_t;

typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_RELU = 2,
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_BGRADA = 256,
    CUBLASLT_EPILOGUE_BGRADB = 512
} cublasLtEpilogue_t;

typedef enum {
    CUBLASLT_REDUCTION_SCHEME_NONE = 0,
    CUBLASLT_REDUCTION_SCHEME_INPLACE = 1,
    CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2,
    CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4,
    CUBLASLT_REDUCTION_SCHEME_MASK = 0x7
} cublasLtReductionScheme_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,     /* uint64_t, default 0 */
    CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3,   /* uint32_t, default CUBLASLT_REDUCTION_SCHEME_MASK */
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,   /* uint32_t, default 256 */
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8
} cublasLtMatmulPreferenceAttributes_t;

typedef enum {
    CUBLASLT_ALGO_CONFIG_ID = 0,
    CUBLASLT_ALGO_CONFIG_TILE_ID = 1,
    CUBLASLT_ALGO_CONFIG_SPLITK_NUM = 2,       /* int32_t, default 1 */
    CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME = 3  /* uint32_t, default CUBLASLT_REDUCTION_SCHEME_NONE */
} cublasLtMatmulAlgoConfigAttributes_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle);

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld);
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout);

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType);
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc);
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t sizeInBytes);

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref);
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t sizeInBytes);

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                              cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                              int *returnAlgoCount);
cublasStatus_t cublasLtMatmulAlgoConfigGetAttribute(const cublasLtMatmulAlgo_t *algo,
                                                    cublasLtMatmulAlgoConfigAttributes_t attr, void *buf,
                                                    size_t sizeInBytes, size_t *sizeWritten);

cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
                              const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceSizeInBytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
