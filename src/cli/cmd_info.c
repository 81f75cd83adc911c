/* cmd_info.c — `unet2022 info CONFIG [--batch N] [section.key=value ...]`: the resolved network,
 * its parameter count, and the memory a training step needs at a batch size, with fp32 and
 * with bf16 activation storage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "config.h"
#include "model.h"
#include "session.h"

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

int cmd_info(int argc, char **argv) {
    const char *cfg_path = NULL, *overrides[ARGS_MAX_OVERRIDES];
    int n_overrides = 0, batch = 0; /* 0: the config's train.batch_size */
    const ArgPos pos[] = {{"CONFIG", &cfg_path, 1}};
    const ArgOpt opts[] = {
        OPT_INT("--batch", &batch, "N", "batch size of the estimate (default: train.batch_size)", 1, 4096),
    };
    const ArgSpec spec = {"info",
                          "  prints the resolved network, its parameter count and a memory estimate for one\n"
                          "  training step, with fp32 and bf16 activation storage",
                          pos, ARGS_N(pos), opts, ARGS_N(opts), overrides, &n_overrides, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "info", .config = cfg_path, .overrides = overrides, .n_overrides = n_overrides};
    if ((st = session_open(&s, &so)) != 0) return st;
    const Config *cfg = &s.cfg;
    const Model *m = &s.model;
    if (batch == 0) batch = cfg->batch_size;
    printf("config: %s (%s)\n", cfg->name, cfg->path);
    model_print(m, stdout);
    /* Activations are fp32 on the CPU and in CUDA's fp32/tf32 modes, bf16 in its bf16 mode; a plan
     * reads nothing of its Backend but act_bytes. */
    Backend bf16_plan = {.name = "plan", .act_bytes = 2};
    ModelActs *plan[2] = {model_acts_create(m, NULL, batch, cfg->net.crop[0], cfg->net.crop[1], 1),
                          model_acts_create(m, &bf16_plan, batch, cfg->net.crop[0], cfg->net.crop[1], 1)};
    size_t fwd[2], bwd[2];
    for (int k = 0; k < 2; k++) {
        fwd[k] = model_acts_bytes_forward(plan[k]);
        bwd[k] = model_acts_bytes_backward(plan[k]);
        model_acts_free(plan[k]);
    }
    size_t state = m->params.total * sizeof(float) * 4; /* weights, gradients, Adam m and v */
    printf("memory for one training step at batch %d, %d x %d (GiB, by activation storage):\n", batch, cfg->net.crop[0],
           cfg->net.crop[1]);
    printf("                                     fp32     bf16\n");
    printf("  activations kept for backward  %8.2f %8.2f\n", gib(fwd[0]), gib(fwd[1]));
    printf("  gradient buffers and scratch   %8.2f %8.2f\n", gib(bwd[0]), gib(bwd[1]));
    printf("  weights, gradients, Adam state %8.2f %8.2f\n", gib(state), gib(state));
    printf("  total                          %8.2f %8.2f\n", gib(fwd[0] + bwd[0] + state),
           gib(fwd[1] + bwd[1] + state));
    session_close(&s);
    return 0;
}
