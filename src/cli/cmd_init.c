/* cmd_init.c — `unet2022 init CONFIG --out W.safetensors [--seed S]`: fresh weights with
 * PyTorch's default initialisation (as the released code trains from), saved under the
 * state_dict keys so PyTorch can load them too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "config.h"
#include "model.h"
#include "weights_io.h"

int cmd_init(int argc, char **argv) {
    const char *cfg_path = NULL, *out = NULL;
    unsigned long long seed = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (argv[i][0] != '-' && !cfg_path) cfg_path = argv[i];
        else cfg_path = NULL, out = NULL, i = argc;
    }
    if (!cfg_path || !out) {
        fprintf(stderr, "usage: unet2022 init CONFIG --out W.safetensors [--seed S]\n");
        return 1;
    }
    Config cfg;
    char err[1024];
    if (config_load(&cfg, cfg_path, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    Model m;
    model_build(&m, &cfg.net);
    float *params = xcalloc(m.params.total, sizeof(float));
    model_init_params(&m, params, seed);
    int rc = weights_save(&m, params, cfg.name, out, err, sizeof err);
    if (rc != 0) fprintf(stderr, "unet2022: error: %s\n", err);
    else printf("init: %zu parameters (seed %llu) -> %s\n", m.params.total, seed, out);
    free(params);
    model_free(&m);
    return rc == 0 ? 0 : 2;
}
