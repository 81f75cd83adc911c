/* main.c — `unet2022-check MODE ...`: the test harnesses, apart from the product binary
 * `unet2022` (as ggml keeps test-backend-ops apart from its tools). Built with the tests
 * (UNET_BUILD_TESTS) into the build directory's top level, next to unet2022. */
#include <stdio.h>
#include <string.h>

#include "blas_tune.h"
#include "check_modes.h"

static void usage(FILE *fp) {
    fprintf(fp, "unet2022-check — test harnesses of unet2022 (for the test suite and the GPU check)\n\n"
                "usage: unet2022-check MODE [ARGS]\n\n"
                "modes:\n"
                "  gpu-check-ops  CUDA backend against the CPU reference (ops, --steps, --nccl);\n"
                "                 exit 77 (skipped) without a CUDA device or a CUDA build\n"
                "  augment-apply  one augmentation transform with fixed parameters\n"
                "  optest         OP IN.safetensors OUT.safetensors: one backend op, forward and\n"
                "                 backward, on tensors written by tests/reference/test_ops_*.py\n\n"
                "Run `unet2022-check MODE --help` for a mode's options.\n");
}

int main(int argc, char **argv) {
    /* OpenBLAS on the kernels unet2022 itself runs (kernels/cpu/blas_tune.h): the CPU reference
     * computes here as it does in the product. */
    blas_tune_or_reexec(argv);
    /* Line-buffered even into a file (the GPU check's logs): a run killed by a time limit keeps
     * every line it printed. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "gpu-check-ops")) {
#ifdef UNET_HAVE_CUDA
        return cmd_gpu_check_ops(argc - 2, argv + 2);
#else
        printf("built without CUDA: skipped\n");
        return 77;
#endif
    }
    if (!strcmp(mode, "augment-apply")) return cmd_augment_apply(argc - 2, argv + 2);
    if (!strcmp(mode, "optest")) return cmd_optest(argc - 2, argv + 2);
    fprintf(stderr, "unet2022-check: error: unknown mode '%s'\n\n", mode);
    usage(stderr);
    return 1;
}
