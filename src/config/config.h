/* config.h — run configuration read from YAML (libyaml) against a strict schema.
 *
 * An unknown key, a wrong type or an out-of-range value is an error reported as
 * FILE:LINE:COLUMN: section.key: what was expected. The schema (fields, types, ranges,
 * defaults, whether a key may change on resume) is the table in config.c; the augment rows
 * come from data/augment.h's AUGMENT_SETTINGS. docs/configs.md describes it for users. */
#ifndef UNET_CONFIG_H
#define UNET_CONFIG_H

#include <stddef.h>

#include "augment.h"
#include "net_config.h"

typedef struct {
    char path[512];
    char name[64];

    NetConfig net;         /* network: what the model is built from (src/model/net_config.h) */

    /* train: */
    int batch_size;        /* global batch, split across ranks */
    double lr;
    int epochs;
    long max_steps;        /* stop after this many steps in total (0: run all epochs) */
    long seed;             /* shuffles, augmentation, drop path, fresh weights */
    char store[512];       /* the slice store directory (unet2022 prepare) */
    char train_split[16];
    char val_split[16];
    char run_dir[512];     /* checkpoints, logs; default runs/<name> */
    int keep_last;         /* step checkpoints kept, besides best.safetensors */
    long checkpoint_every; /* steps between checkpoints (0: at each epoch end) */
    int val_every;         /* epochs between validations (0: never) */
    int val_max_slices;    /* validation slices per evaluation (0: all) */
    int val_at_start;      /* validate the fresh network before the first step (a baseline) */
    int log_every;         /* steps between per-step metric lines (0: per epoch only) */
    double ema_alpha;      /* EMA of the validation pseudo-Dice (nnU-Net v1: 0.9) */
    char backend[8];       /* cpu | cuda */
    char precision[8];     /* auto | fp32 | tf32 | bf16: CUDA GEMM/conv arithmetic (config_precision) */
    int threads;           /* CPU threads per rank (0: all cores / ranks per node) */
    double grad_bucket_mb; /* gradient all-reduce bucket, MiB (0: one bucket after backward): grad_sync.h */
    double comm_timeout_s; /* NCCL watchdog: seconds a collective may stay incomplete (0: off): comm_nccl.h */
    char kernels[256];     /* cuda: "auto" (timed on the card, kernels/cuda/tune.h) or "op=impl,..." forced */
    char cuda_graph[8];    /* cuda: auto | on | off: the step captured once and replayed (src/train/step_graph.h) */
    char init_weights[512]; /* warm start: a safetensors file loaded by tensor name before step 0 ("": none) */
    char init_key_map[32];  /* how init_weights names tensors: none | released_pretrain (src/io/weights_warm.h) */

    /* augment: the data layer's own parameters (data/augment.h owns their defaults and bounds).
     * aug.patch stays 0 here; it and any aug.enlarged axis of 0 (the recipe's rule) follow
     * network.crop when the loader is set up (src/train/loader_config.c). */
    AugmentParams aug;

    /* loader: (data/loader.h) how batches are made, never what they contain */
    struct {
        int workers;       /* augmentation threads per rank */
        int prefetch;      /* batch slots in the queue */
    } loader;

    /* predict: (src/infer/predict.h) */
    double predict_step;  /* sliding-window step as a fraction of the crop (nnU-Net: 0.5; the
                             released recipes: 0.2 at crop 320, 0.3 at 224) */
} Config;

/* Loads and validates; on error returns -1 with "file:line:col: message" in err. */
int config_load(Config *cfg, const char *path, char *err, size_t err_len);

/* The same from YAML text (e.g. the config stored in a checkpoint); name labels messages. */
int config_load_text(Config *cfg, const char *text, const char *name, char *err, size_t err_len);

/* Applies one "section.key=value" override (as given on a command line) with the same
 * validation as the file; returns -1 with a message naming the override on error. */
int config_override(Config *cfg, const char *assignment, char *err, size_t err_len);

/* Checks cross-field rules (crop divisible by P·8, heads divide dims, tf32/bf16 need cuda, ...). */
int config_validate(const Config *cfg, char *err, size_t err_len);
/* train.backend and train.precision together (tf32/bf16 need cuda); checked after all overrides. */
int config_check_backend(const Config *cfg, char *err, size_t err_len);

/* train.precision resolved: "fp32", "tf32" or "bf16" (auto: bf16 on the cuda backend, the
 * mixed-precision product mode; fp32 on cpu, which computes nothing else). The string is a
 * literal or cfg's own field: valid as long as cfg is. Pass it to backend_cuda_create(). */
const char *config_precision(const Config *cfg);

/* Prints the resolved configuration as YAML (what the run will actually use), every key of the
 * table in its order; the text loads back to the same Config. */
void config_print(const Config *cfg, void *file /* FILE* */);

/* Resume: compares a checkpoint's stored config with the current one, key by key, skipping the
 * keys the table marks as free to change on resume (run length, logging, threads, backend...).
 * Returns how many keys differ and lists them in out as "train.lr: 0.001 in the checkpoint,
 * 0.0001 now; ..." (truncated to out_len). */
int config_resume_diff(const Config *stored, const Config *now, char *out, size_t out_len);

#endif
