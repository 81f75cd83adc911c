/* blas_tune.c — see blas_tune.h. */
#include "blas_tune.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS core names without AVX2 kernels. */
static int is_pre_avx2_core(const char *core) {
    static const char *slow[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
                                 "Coppermine", "Northwood", "Banias", "Sandybridge", "Unknown"};
    for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++)
        if (core && strcmp(core, slow[i]) == 0) return 1;
    return 0;
}

void blas_tune_or_reexec(char **argv) {
#if defined(__x86_64__) && defined(__GNUC__)
    const char *opt = getenv("UNET_BLAS_AUTOTUNE");
    if ((opt && strcmp(opt, "0") == 0) || getenv("OPENBLAS_CORETYPE")) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    if (!is_pre_avx2_core(openblas_get_corename())) return;
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    execv("/proc/self/exe", argv); /* on failure: carry on with the slow kernels */
    unsetenv("OPENBLAS_CORETYPE");
#else
    (void)argv;
#endif
}
