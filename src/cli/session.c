/* session.c — see session.h. */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_select.h"
#include "check.h"
#include "checkpoint.h"
#include "safetensors.h"
#include "weights_io.h"

static int fail(const char *err, int status) {
    fprintf(stderr, "unet2022: error: %s\n", err);
    return status;
}

/* The weights file's stored config (metadata "config", written by init and train). */
static int load_stored_config(Config *cfg, const StFile *f, const char *wpath, char *err, size_t err_len) {
    const char *yaml = st_meta_get(f, "config");
    if (!yaml)
        return error_at(err, err_len, "%s: no stored config (metadata 'config'): give the network's config with --config",
                        wpath);
    char name[1100];
    snprintf(name, sizeof name, "%s (stored config)", wpath);
    if (config_load_text(cfg, yaml, name, err, err_len) != 0) return -1;
    /* Weights written before predict.step existed were predicted with the step the released code
     * uses for their crop: keep predicting them that way rather than switch to the 0.5 default. */
    if (strncmp(yaml, "predict:", 8) != 0 && !strstr(yaml, "\npredict:")) {
        cfg->predict_step = cfg->net.crop[0] >= 320 ? 0.2 : cfg->net.crop[0] == 224 ? 0.3 : 0.5;
        fprintf(stderr, "unet2022: note: %s has no predict.step (written by an older version): using %g, the "
                        "released step for crop %d\n", wpath, cfg->predict_step, cfg->net.crop[0]);
    }
    return 0;
}

static int load_config(Session *s, const SessionOptions *o, const StFile *wf, char *err, size_t err_len) {
    int rc = o->config ? config_load(&s->cfg, o->config, err, err_len)
                       : load_stored_config(&s->cfg, wf, o->weights, err, err_len);
    for (int i = 0; i < o->n_overrides && rc == 0; i++) rc = config_override(&s->cfg, o->overrides[i], err, err_len);
    return rc;
}

/* A checkpoint is verified whole (its checksums) before its tensors are trusted; its Adam
 * moments are skipped by weights_load_st. */
static int open_weights(StFile *f, const char *wpath, char *err, size_t err_len) {
    if (st_read(f, wpath, err, err_len) != 0) return -1;
    if (st_meta_get(f, "unet2022_checkpoint") && checkpoint_verify(wpath, err, err_len) != 0) {
        st_free(f);
        return -1;
    }
    return 0;
}

int session_open(Session *s, const SessionOptions *o) {
    memset(s, 0, sizeof *s);
    char err[2048];
    if (o->backend) {
        s->be = backend_select(o->backend, o->precision, o->device, o->threads, err, sizeof err);
        if (!s->be) {
            fprintf(stderr, "unet2022: error: %s: %s\n", o->command, err);
            return o->backend_status ? o->backend_status : 1;
        }
    }
    if (!o->config && !o->weights) return session_close(s), fail("no config: give CONFIG or weights with one stored", 1);
    StFile wf;
    int have_wf = o->weights != NULL;
    if (have_wf && open_weights(&wf, o->weights, err, sizeof err) != 0) return session_close(s), fail(err, 2);
    if (load_config(s, o, have_wf ? &wf : NULL, err, sizeof err) != 0) {
        if (have_wf) st_free(&wf);
        return session_close(s), fail(err, 2);
    }
    model_build(&s->model, &s->cfg.net);
    if (!have_wf) return 0;
    s->params = xcalloc(s->model.params.total, sizeof(float));
    int rc = weights_load_st(&s->model, s->params, &wf, err, sizeof err);
    st_free(&wf);
    if (rc != 0) return session_close(s), fail(err, 2);
    return 0;
}

void session_close(Session *s) {
    model_free(&s->model); /* a zeroed Model frees nothing */
    free(s->params);
    if (s->be) s->be->destroy(s->be);
    memset(s, 0, sizeof *s);
}
