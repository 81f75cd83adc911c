/* weights_io.h — network weights to and from safetensors, under the released network's
 * state_dict keys, so a PyTorch state_dict loads directly and ours loads into PyTorch.
 * Loading is strict: a missing, unexpected or mis-shaped tensor, or a weight that is NaN or
 * infinite, is an error naming it.
 * The attention modules' relative_position_index buffers (int64) are accepted when
 * present and checked against the window they imply; saving writes them, so
 * `model.load_state_dict(strict=True)` accepts our files. */
#ifndef UNET_WEIGHTS_IO_H
#define UNET_WEIGHTS_IO_H

#include <stddef.h>

#include "model.h"
#include "safetensors.h"

/* Tensors whose names start with this belong to a training checkpoint's optimizer state
 * (checkpoint.h) and are skipped, so a checkpoint loads wherever a weights file does. */
#define WEIGHTS_RESERVED_PREFIX "adam."


/* params: host, m->params.total floats. Returns 0, or -1 with a message in err. */
int weights_load(const Model *m, float *params, const char *path, char *err, size_t err_len);
int weights_load_st(const Model *m, float *params, const StFile *f, char *err, size_t err_len);

/* Adds every weight (and the index buffers) to f. The index buffers are allocated here and
 * returned through *owned (free() after the file is written). */
void weights_add_to_st(const Model *m, const float *params, StFile *f, void **owned);
/* config_name: the run config's name, stored as metadata (docs/formats.md). */
int weights_save(const Model *m, const float *params, const char *config_name, const char *path, char *err,
                 size_t err_len);

#endif
