/* blas_tune.h — make OpenBLAS use the kernels the CPU can run.
 *
 * OpenBLAS picks its kernels from the CPUID model when the library loads. On virtual machines
 * whose CPU model it does not know (a common case on cloud and cluster nodes) it falls back
 * to SSE3 "Prescott" kernels, which are 4-7x slower than the AVX2 ones the CPU supports. The
 * choice can only be changed through OPENBLAS_CORETYPE before the library loads, so when
 * OpenBLAS reports a pre-AVX2 core on a CPU with AVX2 and FMA, the process re-executes
 * itself once with OPENBLAS_CORETYPE=Haswell. A user's own OPENBLAS_CORETYPE is never
 * overridden; UNET_BLAS_AUTOTUNE=0 turns this off. */
#ifndef UNET_BLAS_TUNE_H
#define UNET_BLAS_TUNE_H

/* Returns only if no re-execution was needed (or it failed, which is harmless). */
void blas_tune_or_reexec(char **argv);

#endif
