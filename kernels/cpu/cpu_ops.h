/* cpu_ops.h — the CPU reference backend's ops; signatures and semantics are those of
 * src/base/backend_ops.h (read the comments there), from which the declarations below are made.
 *
 * The CPU backend's Acts are floats (act_bytes 4): each op views its Act arguments as
 * float arrays at its entry point (`float *out = (float *)out_act`), and everything below
 * the entry point, helpers included, works on floats. */
#ifndef UNET_CPU_OPS_H
#define UNET_CPU_OPS_H

#include "backend.h"

/* A per-backend scratch buffer of at least `bytes`, grown on demand; valid until the
 * next call. Ops use it for im2col and similar temporaries. */
void *cpu_workspace(Backend *be, size_t bytes);

/* Row-major sgemm with the same arguments as cblas_sgemm (trans flags 0/1), split across
 * OpenMP threads by output blocks (gemm.c); OpenBLAS itself stays single-threaded. */
void cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

/* cpu_<op> for every op of backend_ops.h: the entries of the CPU backend's table. Each lives
 * in the kernels/cpu/ file named after its family (the element type conversions in
 * backend_cpu.c). */
#define CPU_OP_DECLARE(name, params, args) void cpu_##name params;
UNET_BACKEND_OPS(CPU_OP_DECLARE)
#undef CPU_OP_DECLARE

#endif
