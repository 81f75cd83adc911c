/* weights_warm.h — a warm start (train.init_weights): a safetensors file's tensors copied into
 * freshly initialised weights by name, leniently. Tensors this network lacks are ignored; this
 * network's tensors the file lacks, or holds with another shape or dtype, keep their fresh
 * values (e.g. heads for another class count). A file that matches nothing is an error.
 *
 * Key maps (train.init_key_map) rename the file's keys before matching:
 *   none               the file's keys as they are (ours, a converted state_dict, a checkpoint),
 *                      a leading "module." (DataParallel) removed;
 *   released_pretrain  the released code's pre-trained files, which name the decoder's tensors
 *                      "encoder.<rest>" where the network has "decoder.<rest>": that prefix is
 *                      renamed; "module." removed as above. */
#ifndef UNET_WEIGHTS_WARM_H
#define UNET_WEIGHTS_WARM_H

#include <stddef.h>
#include <stdio.h>

#include "model.h"

typedef struct {
    int loaded, missing, reshaped, unused; /* tensors: copied; network's not in the file; shape/dtype differs;
                                              file's matching no parameter */
    int total;                             /* the network's tensors */
} WarmReport;

/* Names the valid key maps, for messages. */
extern const char *const weights_warm_key_maps;

/* Copies the matching tensors of path into params (host, m->params.total floats, already
 * initialised). report (may be NULL) gets one line per missing or reshaped tensor and a summary.
 * Returns 0, or -1 with a message (unreadable file, unknown key map, nothing matched). */
int weights_warm_start(const Model *m, float *params, const char *path, const char *key_map, FILE *report,
                       WarmReport *r, char *err, size_t err_len);

#endif
