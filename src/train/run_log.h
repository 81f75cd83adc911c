/* run_log.h — rank 0's account of a run: a progress bar when stdout is a terminal, one line
 * per epoch otherwise (Slurm logs), and metrics as JSON lines in RUN_DIR/metrics.jsonl. */
#ifndef UNET_RUN_LOG_H
#define UNET_RUN_LOG_H

#include <stdio.h>

typedef struct {
    FILE *metrics; /* appended: a resumed run continues the same file */
    int tty;
    double epoch_start;
} RunLog;

int run_log_open(RunLog *log, const char *run_dir, char *err, size_t err_len);
void run_log_close(RunLog *log);

/* A step inside an epoch (progress bar on a terminal only). */
void run_log_step(RunLog *log, long epoch, long step_in_epoch, long steps_per_epoch, double loss);
/* One JSON object per call: "{\"kind\":...}" built by the caller, with a newline appended and
 * flushed, so a killed run loses at most the line being written. */
void run_log_json(RunLog *log, const char *json);


#endif
