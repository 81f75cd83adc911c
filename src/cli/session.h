/* session.h — what a command that computes sets up before its work: the config (a CONFIG file,
 * or the config stored in a weights file's metadata), its section.key=value overrides, the
 * Model built from it, optionally the weights, optionally the backend chosen with
 * --backend/--precision/--device/--threads. One routine, so every command reports the same
 * errors the same way (info, init, trace, bench, predict; train can adopt it). */
#ifndef UNET_SESSION_H
#define UNET_SESSION_H

#include "backend.h"
#include "config.h"
#include "model.h"

typedef struct {
    const char *command;          /* names the command in messages */
    const char *config;           /* CONFIG; NULL: the config stored in `weights` */
    const char *const *overrides; /* section.key=value, applied in order after loading */
    int n_overrides;
    const char *weights;          /* NULL: no weights loaded (params stays NULL) */
    /* The backend: selected only when backend != NULL (see backend_select.h). */
    const char *backend, *precision;
    int device, threads;
    int backend_status; /* exit status when that backend cannot be had; 0: 1 (a usage error) */
} SessionOptions;

typedef struct {
    Config cfg;
    Model model;
    float *params; /* host weights (model.params.total floats) when loaded, else NULL */
    Backend *be;   /* the selected backend, else NULL */
} Session;

/* Returns 0, or the exit status after printing "unet2022: error: ..." on stderr: backend_status
 * when the backend choice is impossible (checked first, so that mistake costs no I/O), 2 when
 * the config, an override or the weights are bad. On error nothing is left to close. */
int session_open(Session *s, const SessionOptions *o);

void session_close(Session *s);

#endif
