/* main.c — `unet2022 COMMAND ...`: dispatches to the subcommands in cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "blas_tune.h"
#include "commands.h"
#ifdef UNET_HAVE_CUDA
#include "device_info.h"
#endif

#define UNET_VERSION "0.1.0"

static void usage(FILE *fp) {
    fprintf(fp, "unet2022 %s — UNet-2022 medical image segmentation, training and inference\n\n"
                "usage: unet2022 COMMAND [ARGS]\n\n"
                "commands:\n"
                "  train CONFIG     train (resumes automatically from the run's checkpoints)\n"
                "  info CONFIG      resolved network, parameter count, memory estimate\n"
                "  trace CONFIG     run one training computation on a given batch and dump\n"
                "                   outputs, loss and gradients (for checking against PyTorch)\n"
                "  init CONFIG      fresh weights (PyTorch default initialisation) as safetensors\n"
                "  bench CONFIG     time forward+backward on the CPU against the sgemm rate\n"
                "  evaluate         DSC, IoU, HD95 of predictions against ground truth\n"
                "  predict          sliding-window inference on NIfTI volumes or a store split\n"
                "  synth            write the built-in phantom dataset (raw BTCV layout)\n"
                "  prepare DATASET  import a dataset into a slice store\n"
                "  check-store DIR  read every slice of a store, verifying checksums\n"
                "  bench-store DIR  random slice reads per second, one thread and many\n"
                "  bench-loader     augmentation loader throughput (samples/s per core)\n"
                "  devices          list the CUDA devices this process sees\n"
                "  version          print the version and what this build has (MPI, CUDA)\n\n"
                "Run `unet2022 COMMAND --help` for a command's options.\n",
            UNET_VERSION);
}

/* What this build has, one "name: value" line each (the tests skip what a build lacks). */
static void print_build_features(void) {
#ifdef UNET_HAVE_MPI
    printf("mpi: yes\n");
#else
    printf("mpi: no\n");
#endif
#if defined(UNET_CUDA_EMULATOR)
    printf("cuda: emulator\n");
#elif defined(UNET_HAVE_CUDA)
    printf("cuda: yes\n");
#else
    printf("cuda: no\n");
#endif
}

static int cmd_devices(void) {
#ifdef UNET_HAVE_CUDA
    char desc[2048];
    int n = cuda_describe_devices(desc, sizeof desc);
    printf("CUDA devices: %d: %s\n", n, desc);
#else
    printf("CUDA devices: built without CUDA (configure with -DUNET_WITH_CUDA=ON)\n");
#endif
    return 0;
}

int main(int argc, char **argv) {
    blas_tune_or_reexec(argv);
    /* Line-buffered even into a file (Slurm output, the GPU check's logs): progress shows as it
     * happens, and a run killed by a time limit keeps every line it printed. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "trace")) return cmd_trace(argc - 2, argv + 2);
    if (!strcmp(cmd, "init")) return cmd_init(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "evaluate")) return cmd_evaluate(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "prepare")) return cmd_prepare(argc - 2, argv + 2);
    if (!strcmp(cmd, "synth")) return cmd_synth(argc - 2, argv + 2);
    if (!strcmp(cmd, "check-store")) return cmd_check_store(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench-store")) return cmd_bench_store(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench-loader")) return cmd_bench_loader(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return cmd_devices();
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("unet2022 %s\n", UNET_VERSION);
        print_build_features();
        return 0;
    }
    fprintf(stderr, "unet2022: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 1;
}
