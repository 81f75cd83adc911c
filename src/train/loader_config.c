/* loader_config.c — LoaderOptions from a run's Config (the augment and loader sections). */
#include <stdio.h>

#include "config.h"
#include "loader_config.h"

int loader_options_from_config(LoaderOptions *o, const Config *cfg, int rank, int world, char *err, size_t err_len) {
    loader_options_default(o, cfg->net.crop[0], cfg->net.crop[1], cfg->batch_size);
    o->aug = cfg->aug; /* the config holds the data layer's own parameters */
    augment_params_set_patch(&o->aug, cfg->net.crop[0], cfg->net.crop[1]);
    o->workers = cfg->loader.workers, o->prefetch = cfg->loader.prefetch;
    o->rank = rank, o->world = world;
    o->seed = (uint64_t)cfg->seed;
    char msg[400];
    if (augment_params_check(&o->aug, msg, sizeof msg) != 0) { /* the pairs: each key alone was checked at load */
        snprintf(err, err_len, "%s: %s", cfg->path, msg);
        return -1;
    }
    return 0;
}
