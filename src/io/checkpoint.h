/* checkpoint.h — everything a resume needs, in one safetensors file (docs/formats.md,
 * "Checkpoint"): the weights under their state_dict keys (so PyTorch reads them directly),
 * the Adam moments as two flat tensors, and the training state, the resolved config and a
 * CRC-32 of all tensor bytes in the metadata. Written atomically; verified on load; the
 * newest checkpoint that verifies is what `--resume auto` takes. */
#ifndef UNET_CHECKPOINT_H
#define UNET_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* 2: adds meta_crc32, the checksum of the metadata; version 1 files still load (docs/formats.md) */
#define CHECKPOINT_FORMAT_VERSION 2

typedef struct {
    uint64_t step;        /* optimizer steps completed */
    uint64_t epoch;       /* the epoch the next step belongs to */
    uint64_t epoch_step;  /* steps already taken in that epoch: the data position */
    uint64_t seed;        /* the run's seed (shuffles, augmentation, drop path) */
    int world_size;       /* ranks that wrote it (informational: resuming on others is exact) */
    double best_metric;   /* best validation EMA pseudo-Dice so far (-1: none yet) */
    double ema_metric;    /* current EMA pseudo-Dice (-1: none yet) */
} TrainState;

/* Host buffers of m->params.total floats each. config_yaml is the resolved config (stored
 * verbatim with its hash; a resume compares it key by key: config_resume_diff). */
int checkpoint_save(const char *path, const Model *m, const float *params, const float *adam_m, const float *adam_v,
                    const TrainState *st, const char *config_yaml, char *err, size_t err_len);

/* Verifies the checksum and the tensors against the model, then fills the buffers and state.
 * *config_yaml (optional) receives a malloc'd copy of the stored config. */
int checkpoint_load(const char *path, const Model *m, float *params, float *adam_m, float *adam_v, TrainState *st,
                    char **config_yaml, char *err, size_t err_len);

/* Only checks that a file is an intact checkpoint (parses, checksum matches). */
int checkpoint_verify(const char *path, char *err, size_t err_len);

/* Checkpoint file name for a step: DIR/ckpt-00001234.safetensors */
void checkpoint_path(char *out, size_t n, const char *dir, uint64_t step);

/* The newest checkpoint in dir that verifies; older ones are tried when newer ones are
 * damaged, and each rejection is reported on stderr. Returns 0 and the path, or -1 if none. */
int checkpoint_find_latest(const char *dir, char *path_out, size_t n);

/* Removes the temporary files of writes that were killed (never a complete checkpoint). */
void checkpoint_remove_stale_temporaries(const char *dir);

/* Removes all but the newest keep_last step checkpoints (best.safetensors is separate). */
void checkpoint_prune(const char *dir, int keep_last);

/* FNV-1a 64-bit hash of a text, as 16 hex digits (the stored config's config_hash). */
void checkpoint_text_hash(char out[17], const char *text);

#endif
