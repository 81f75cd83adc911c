// bf16_check.cpp — the emulator's bf16 conversions and bf16 cublasGemmEx, as a filter for
// tests/cuda_emu/test_bf16.py, which feeds it inputs and compares its answers with torch.
//
//   bf16_check convert   stdin: float bit patterns (hex, one a line)
//                        stdout: "<bf16 bits of __float2bfloat16> <float bits of __bfloat162float of it>"
//   bf16_check gemm      stdin: "transa transb m n k lda ldb ldc alpha beta ctype" (ops 0/1 = N/T,
//                        ctype 16 = CUDA_R_16BF or 32 = CUDA_R_32F; alpha and beta as float bits),
//                        then lda*cols(A) and ldb*cols(B) bf16 bit patterns, then ldc*n C bit
//                        patterns (bf16 or float), all hex, column-major as cuBLAS
//                        stdout: the cublasGemmEx status, then the ldc*n C bit patterns after it
//   bf16_check status    the status of a few unsupported type combinations (one a line)
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h" // emu::capturing, emu::record (stubs below)

// The bits of a bf16 (the type keeps them private, as the real header does).
static __nv_bfloat16 from_bits(uint32_t bits) {
    const unsigned short b = (unsigned short)bits;
    __nv_bfloat16 h;
    memcpy((void *)&h, &b, 2);
    return h;
}
static unsigned short bits_of(__nv_bfloat16 h) {
    unsigned short b;
    memcpy(&b, &h, 2);
    return b;
}

static uint32_t read_hex() {
    unsigned long v;
    if (scanf("%lx", &v) != 1) {
        fprintf(stderr, "bf16_check: short input\n");
        exit(2);
    }
    return (uint32_t)v;
}

static int convert() {
    unsigned long v;
    while (scanf("%lx", &v) == 1) {
        const uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        const __nv_bfloat16 h = __float2bfloat16(f), h_rn = __float2bfloat16_rn(f);
        unsigned short hb, hb_rn;
        memcpy(&hb, &h, 2);
        memcpy(&hb_rn, &h_rn, 2);
        if (hb != hb_rn) {
            fprintf(stderr, "bf16_check: __float2bfloat16_rn differs from __float2bfloat16 at %08" PRIx32 "\n", u);
            return 1;
        }
        const float back = __bfloat162float(h);
        uint32_t bb;
        memcpy(&bb, &back, 4);
        printf("%04x %08" PRIx32 "\n", hb, bb);
    }
    return 0;
}

static int gemm() {
    int ta = (int)read_hex(), tb = (int)read_hex();
    int m = (int)read_hex(), n = (int)read_hex(), k = (int)read_hex();
    int lda = (int)read_hex(), ldb = (int)read_hex(), ldc = (int)read_hex();
    uint32_t ab = read_hex(), bb = read_hex();
    int ctype = (int)read_hex();
    float alpha, beta;
    memcpy(&alpha, &ab, 4);
    memcpy(&beta, &bb, 4);
    const int a_cols = ta ? m : k, b_cols = tb ? k : n;
    std::vector<__nv_bfloat16> A((size_t)lda * a_cols), B((size_t)ldb * b_cols), Cb;
    std::vector<float> Cf;
    for (auto &x : A) x = from_bits(read_hex());
    for (auto &x : B) x = from_bits(read_hex());
    if (ctype == 16) {
        Cb.resize((size_t)ldc * n);
        for (auto &x : Cb) x = from_bits(read_hex());
    } else {
        Cf.resize((size_t)ldc * n);
        for (auto &x : Cf) {
            const uint32_t u = read_hex();
            memcpy(&x, &u, 4);
        }
    }
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    void *C = ctype == 16 ? (void *)Cb.data() : (void *)Cf.data();
    const cublasStatus_t st = cublasGemmEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                                           &alpha, A.data(), CUDA_R_16BF, lda, B.data(), CUDA_R_16BF, ldb, &beta, C,
                                           ctype == 16 ? CUDA_R_16BF : CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT);
    cublasDestroy(h);
    printf("%d\n", (int)st);
    if (ctype == 16)
        for (auto x : Cb) printf("%04x\n", bits_of(x));
    else
        for (auto x : Cf) {
            uint32_t u;
            memcpy(&u, &x, 4);
            printf("%08" PRIx32 "\n", u);
        }
    return 0;
}

// Type combinations outside the model must stay CUBLAS_STATUS_NOT_SUPPORTED.
static int status() {
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    float one = 1.0f, zero = 0.0f, f[4] = {0, 0, 0, 0};
    __nv_bfloat16 b[4] = {};
    struct {
        cudaDataType a, b, c;
        cublasComputeType_t ct;
    } cases[] = {
        {CUDA_R_16BF, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
        {CUDA_R_32F, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F},
        {CUDA_R_32F, CUDA_R_32F, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
        {CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16F, CUBLAS_COMPUTE_32F},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F_FAST_16F},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F_PEDANTIC},
        {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F_FAST_16BF},
    };
    for (auto &c : cases) {
        auto ptr = [&](cudaDataType t) { return t == CUDA_R_32F ? (void *)f : (void *)b; };
        const cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 1, &one, ptr(c.a), c.a, 2,
                                               ptr(c.b), c.b, 1, &zero, ptr(c.c), c.c, 2, c.ct, CUBLAS_GEMM_DEFAULT);
        printf("%d %d %d %d %d\n", (int)c.a, (int)c.b, (int)c.c, (int)c.ct, (int)st);
    }
    cublasDestroy(h);
    return 0;
}

// emu_libs.cpp counts the work its shims queue into the runtime's counters (emu_runtime.cpp);
// this program links the shims alone.
extern "C" void emu_count_work(void) {}
// ... and asks it whether a stream captures (never, here).
namespace emu {
bool capturing(cudaStream_t) { return false; }
cudaError_t record(cudaStream_t, std::function<cudaError_t()>) { return cudaErrorInvalidValue; }
} // namespace emu

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "convert")) return convert();
    if (argc == 2 && !strcmp(argv[1], "gemm")) return gemm();
    if (argc == 2 && !strcmp(argv[1], "status")) return status();
    fprintf(stderr, "usage: bf16_check convert|gemm|status < input\n");
    return 2;
}
