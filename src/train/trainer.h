/* trainer.h — a training run as a module: given a resolved config, the ranks and this rank's
 * backend, train from scratch or resume to the end of the run, writing checkpoints and
 * RUN_DIR/metrics.jsonl. The command (src/cli/cmd_train.c) parses arguments, loads the config,
 * creates the transport and the backend (backend selection lives there, so this layer needs no
 * kernels) and calls trainer_run on every rank. */
#ifndef UNET_TRAINER_H
#define UNET_TRAINER_H

#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "config.h"
#include "stop_signal.h"

/* trainer_run's results; the values are the process exit statuses the command returns. */
enum {
    TRAINER_DONE = 0,                  /* every epoch (or max_steps) done; final checkpoint written */
    TRAINER_FAILED = 2,                /* bad input or runtime error, described in err */
    TRAINER_STOPPED = UNET_EXIT_REQUEUE /* SIGUSR1/SIGTERM: stopped at a step with a checkpoint */
};

typedef struct {
    const Config *cfg;   /* resolved: overrides applied and checked, train.store and train.run_dir set */
    const char *resume;  /* "auto" (newest intact checkpoint in run_dir, else fresh), "none", or a path */
    Comm *comm;          /* all ranks call trainer_run together; rank 0 logs and writes */
    Backend *be;         /* this rank's; the trainer releases what it allocates, the caller destroys it */
    /* batch slot memory (pinned host memory for the CUDA backend: asynchronous copies); NULL: malloc/free */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *ptr);
} TrainerOptions;

typedef struct Trainer Trainer;

/* Holds the options (copied: the Config may go) and nothing else yet; cannot fail. */
Trainer *trainer_create(const TrainerOptions *opt);

/* Sets up (store, model, checkpoint or fresh weights, loader) and trains; returns
 * TRAINER_DONE, TRAINER_STOPPED, or TRAINER_FAILED with what went wrong in err. Installs the
 * SIGUSR1/SIGTERM handlers (stop_signal.h). Call it once. */
int trainer_run(Trainer *t, char *err, size_t err_len);

/* Releases everything trainer_run set up, however far it got. A failed multi-rank run should
 * abort its peers first (Comm.abort_all): they may be waiting in a collective. */
void trainer_destroy(Trainer *t);

#endif
