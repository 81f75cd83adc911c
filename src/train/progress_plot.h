/* progress_plot.h — RUN_DIR/progress.png, redrawn by rank 0 after every validation by
 * scripts/plot_progress.py (matplotlib) in a child process the trainer never waits for. Plotting
 * is a convenience: when the script or Python is missing, or a drawing fails, the run prints one
 * warning and goes on; while a drawing is still running the next one is skipped (no pile-up).
 * The script: $UNET2022_PLOT_SCRIPT, else the source tree's scripts/plot_progress.py (fixed at
 * build time); Python: $UNET2022_PYTHON, else /usr/bin/python3. UNET2022_PLOT_SCRIPT="" (empty)
 * turns plotting off. */
#ifndef UNET_PROGRESS_PLOT_H
#define UNET_PROGRESS_PLOT_H

#include <sys/types.h>

typedef struct {
    char run_dir[512], script[1024], python[512];
    pid_t pid;    /* the drawing in flight, 0 if none */
    int disabled; /* after a warning: never again this run */
    int pending;  /* a validation came while drawing: the picture on disk is behind */
} ProgressPlot;

void progress_plot_init(ProgressPlot *p, const char *run_dir);
/* Starts a redraw unless one is running; reaps a finished one (a failed one warns, once). */
void progress_plot_update(ProgressPlot *p);
/* At the end of a run: waits up to max_wait_s in all for the drawing in flight and, when a
 * validation was skipped meanwhile, for one more, so the last picture is on disk when the run
 * ends; past the deadline the child is left alone (it writes atomically). */
void progress_plot_finish(ProgressPlot *p, double max_wait_s);

#endif
