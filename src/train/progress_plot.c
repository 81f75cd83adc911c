/* progress_plot.c — see progress_plot.h. */
#include "progress_plot.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

extern char **environ;

#ifndef UNET_PLOT_SCRIPT
#define UNET_PLOT_SCRIPT ""
#endif

static void warn(ProgressPlot *p, const char *why) {
    if (!p->disabled) fprintf(stderr, "warning: progress.png will not be drawn this run: %s\n", why);
    p->disabled = 1;
}

void progress_plot_init(ProgressPlot *p, const char *run_dir) {
    memset(p, 0, sizeof *p);
    snprintf(p->run_dir, sizeof p->run_dir, "%s", run_dir);
    const char *s = getenv("UNET2022_PLOT_SCRIPT"), *py = getenv("UNET2022_PYTHON");
    snprintf(p->script, sizeof p->script, "%s", s ? s : UNET_PLOT_SCRIPT);
    snprintf(p->python, sizeof p->python, "%s", py && *py ? py : "/usr/bin/python3");
    if (!p->script[0]) p->disabled = 1; /* turned off: no warning */
}

/* A finished drawing: 1 if it has exited (warning when it failed), 0 if still running. */
static int reap(ProgressPlot *p, int options) {
    int status;
    pid_t r = waitpid(p->pid, &status, options);
    if (r == 0) return 0;
    p->pid = 0;
    if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[2200];
        snprintf(why, sizeof why, "%s %s failed (its messages: %s/progress_plot.log)", p->python, p->script,
                 p->run_dir);
        warn(p, why);
    }
    return 1;
}

void progress_plot_update(ProgressPlot *p) {
    if (p->pid && !reap(p, WNOHANG)) {
        p->pending = 1; /* still drawing the previous one: no pile-up, drawn later */
        return;
    }
    p->pending = 0;
    if (p->disabled) return;
    if (access(p->script, R_OK) != 0 || access(p->python, X_OK) != 0) {
        char why[1700];
        snprintf(why, sizeof why, "%s: %s", access(p->script, R_OK) ? p->script : p->python, strerror(errno));
        warn(p, why);
        return;
    }
    char log[600];
    snprintf(log, sizeof log, "%s/progress_plot.log", p->run_dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    char *argv[] = {p->python, p->script, p->run_dir, NULL};
    int rc = posix_spawn(&p->pid, p->python, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        p->pid = 0;
        warn(p, strerror(rc));
    }
}

static int wait_until(ProgressPlot *p, double deadline) {
    while (p->pid && !reap(p, WNOHANG)) {
        if (monotonic_seconds() > deadline) return -1;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    return 0;
}

void progress_plot_finish(ProgressPlot *p, double max_wait_s) {
    double deadline = monotonic_seconds() + max_wait_s;
    if (wait_until(p, deadline) != 0) return;
    if (!p->pending) return;
    progress_plot_update(p);
    wait_until(p, deadline);
}
