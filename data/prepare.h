/* prepare.h — `unet2022 prepare DATASET`: dispatch to the importer of a dataset. */
#ifndef UNET_PREPARE_H
#define UNET_PREPARE_H

#include <stddef.h>

#include "import_common.h"

/* The dataset names prepare knows, for usage messages. */
extern const char *const prepare_datasets;
/* Runs o->dataset's importer. 0, or -1 with a message (no store is left at o->out). */
int prepare_run(const PrepareOptions *o, char *err, size_t err_len);

#endif
