/* loader_config.h — the data loader's options from a run's settings. The loader (data/) knows
 * nothing of the application's Config; this is where the two meet. */
#ifndef UNET_LOADER_CONFIG_H
#define UNET_LOADER_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "loader.h"

/* From a run's config (network.crop, train.batch_size, train.seed, the augment and loader
 * sections), for rank `rank` of `world`; -1 with "CONFIG: augment.key: ..." on a bad range. */
int loader_options_from_config(LoaderOptions *o, const Config *cfg, int rank, int world, char *err, size_t err_len);

#endif
