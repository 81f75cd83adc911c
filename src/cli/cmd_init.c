/* cmd_init.c — `unet2022 init CONFIG --out W.safetensors [--seed S] [section.key=value ...]`:
 * fresh weights with PyTorch's default initialisation (as the released code trains from), saved
 * under the state_dict keys so PyTorch can load them too. */
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "check.h"
#include "commands.h"
#include "session.h"
#include "weights_io.h"

int cmd_init(int argc, char **argv) {
    const char *cfg_path = NULL, *out = NULL, *overrides[ARGS_MAX_OVERRIDES];
    int n_overrides = 0;
    unsigned long long seed = 0;
    const ArgPos pos[] = {{"CONFIG", &cfg_path, 1}};
    const ArgOpt opts[] = {
        OPT_REQUIRED("--out", &out, "W.safetensors", "where the weights go"),
        OPT_U64("--seed", &seed, "S", "initialisation seed (default 0)"),
    };
    const ArgSpec spec = {"init", "  fresh weights (PyTorch's default initialisation) as safetensors", pos, ARGS_N(pos),
                          opts, ARGS_N(opts), overrides, &n_overrides, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "init", .config = cfg_path, .overrides = overrides, .n_overrides = n_overrides};
    if ((st = session_open(&s, &so)) != 0) return st;
    char err[1024];
    float *params = xcalloc(s.model.params.total, sizeof(float));
    model_init_params(&s.model, params, seed);
    int rc = weights_save(&s.model, params, s.cfg.name, out, err, sizeof err);
    if (rc != 0) fprintf(stderr, "unet2022: error: %s\n", err);
    else printf("init: %zu parameters (seed %llu) -> %s\n", s.model.params.total, seed, out);
    free(params);
    session_close(&s);
    return rc == 0 ? 0 : 2;
}
