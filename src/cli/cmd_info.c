/* cmd_info.c — `unet2022 info CONFIG [--batch N] [key=value ...]`: the resolved network,
 * its parameter count, and the memory a training step needs at a batch size, with fp32 and
 * with bf16 activation storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "model.h"

static void usage(void) {
    fprintf(stderr, "usage: unet2022 info CONFIG [--batch N] [section.key=value ...]\n"
                    "  prints the resolved network, its parameter count and a memory estimate\n"
                    "  for one training step at batch N (default: train.batch_size), with fp32 and bf16\n"
                    "  activation storage\n");
}

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

int cmd_info(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        usage();
        return argc < 1 ? 1 : 0;
    }
    Config cfg;
    char err[1024];
    if (config_load(&cfg, argv[0], err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    int batch = cfg.batch_size;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            char *end;
            long b = strtol(argv[++i], &end, 10);
            if (*end || b < 1 || b > 4096) {
                fprintf(stderr, "unet2022: error: --batch: expected an integer in [1, 4096], got '%s'\n", argv[i]);
                return 1;
            }
            batch = (int)b;
        } else if (strchr(argv[i], '=')) {
            if (config_override(&cfg, argv[i], err, sizeof err) != 0) {
                fprintf(stderr, "unet2022: error: %s\n", err);
                return 2;
            }
        } else {
            usage();
            return 1;
        }
    }
    Model m;
    model_build(&m, &cfg.net);
    printf("config: %s (%s)\n", cfg.name, cfg.path);
    model_print(&m, stdout);
    /* Activations are fp32 on the CPU and in CUDA's fp32/tf32 modes, bf16 in its bf16 mode; a plan
     * reads nothing of its Backend but act_bytes. */
    Backend bf16_plan = {.name = "plan", .act_bytes = 2};
    ModelActs *plan[2] = {model_acts_create(&m, NULL, batch, cfg.net.crop[0], cfg.net.crop[1], 1),
                          model_acts_create(&m, &bf16_plan, batch, cfg.net.crop[0], cfg.net.crop[1], 1)};
    size_t fwd[2], bwd[2];
    for (int k = 0; k < 2; k++) {
        fwd[k] = model_acts_bytes_forward(plan[k]);
        bwd[k] = model_acts_bytes_backward(plan[k]);
        model_acts_free(plan[k]);
    }
    size_t state = m.params.total * sizeof(float) * 4; /* weights, gradients, Adam m and v */
    printf("memory for one training step at batch %d, %d x %d (GiB, by activation storage):\n", batch, cfg.net.crop[0],
           cfg.net.crop[1]);
    printf("                                     fp32     bf16\n");
    printf("  activations kept for backward  %8.2f %8.2f\n", gib(fwd[0]), gib(fwd[1]));
    printf("  gradient buffers and scratch   %8.2f %8.2f\n", gib(bwd[0]), gib(bwd[1]));
    printf("  weights, gradients, Adam state %8.2f %8.2f\n", gib(state), gib(state));
    printf("  total                          %8.2f %8.2f\n", gib(fwd[0] + bwd[0] + state),
           gib(fwd[1] + bwd[1] + state));
    model_free(&m);
    return 0;
}
