/* gemm.c — every GEMM of the CPU backend, parallelised by us rather than by OpenBLAS.
 *
 * OpenBLAS's own threads synchronise by spinning in sched_yield. Next to our OpenMP loops, the
 * loader's worker threads and any other process on the node, that spinning livelocked training
 * steps for minutes in measurements on a loaded 2-core machine. So OpenBLAS runs single-threaded
 * (backend_cpu.c) and this wrapper splits C into one block per OpenMP thread, along its longer
 * side, each block a full-K single-threaded sgemm: no reductions, so results do not depend on
 * the thread count, and idle threads sleep in OpenMP's barrier instead of spinning in BLAS. */
#include <cblas.h>
#include <omp.h>

#include "cpu_ops.h"

/* Row-major C (M, N) = alpha · op(A) · op(B) + beta · C, as cblas_sgemm. */
void cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int align = 16; /* block edges on cache-line-friendly multiples */
    if (T <= 1 || (double)M * N * K < 2e6) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_rows = M >= N;
    int len = split_rows ? M : N;
    int chunk = ((len + T - 1) / T + align - 1) / align * align;
#pragma omp parallel for schedule(static) num_threads(T)
    for (int t = 0; t < T; t++) {
        int lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;
        if (lo >= hi) continue;
        if (split_rows) { /* rows lo..hi of op(A) and of C */
            const float *a = trans_a ? A + lo : A + (size_t)lo * lda;
            cblas_sgemm(CblasRowMajor, ta, tb, hi - lo, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        } else { /* columns lo..hi of op(B) and of C */
            const float *b = trans_b ? B + (size_t)lo * ldb : B + lo;
            cblas_sgemm(CblasRowMajor, ta, tb, M, hi - lo, K, alpha, A, lda, b, ldb, beta, C + lo, ldc);
        }
    }
}
