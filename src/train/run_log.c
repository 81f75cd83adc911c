/* run_log.c — see run_log.h. */
#include "run_log.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

int run_log_open(RunLog *log, const char *run_dir, char *err, size_t err_len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    log->metrics = fopen(path, "a");
    if (!log->metrics) {
        snprintf(err, err_len, "%s: cannot open for appending: %s", path, strerror(errno));
        return -1;
    }
    log->tty = isatty(STDOUT_FILENO);
    log->epoch_start = monotonic_seconds();
    return 0;
}

void run_log_close(RunLog *log) {
    if (log->metrics) fclose(log->metrics);
    log->metrics = NULL;
}

void run_log_step(RunLog *log, long epoch, long step_in_epoch, long steps_per_epoch, double loss) {
    if (!log->tty) return;
    int width = 30, done = steps_per_epoch ? (int)(width * step_in_epoch / steps_per_epoch) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
    bar[width] = '\0';
    printf("\repoch %ld [%s] %ld/%ld loss %.4f ", epoch, bar, step_in_epoch, steps_per_epoch, loss);
    fflush(stdout);
}

void run_log_json(RunLog *log, const char *json) {
    if (!log->metrics) return;
    fputs(json, log->metrics);
    fputc('\n', log->metrics);
    fflush(log->metrics);
}
