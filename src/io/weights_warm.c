/* weights_warm.c — see weights_warm.h. */
#include "weights_warm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "safetensors.h"
#include "weights_io.h"

const char *const weights_warm_key_maps = "none, released_pretrain";

static const char *strip(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) ? name : name + n;
}

/* The network's name for a file key under the map, into out. */
static void map_key(const char *key, int released, char *out, size_t n) {
    const char *k = strip(key, "module.");
    if (released && !strncmp(k, "encoder.", 8)) snprintf(out, n, "decoder.%s", k + 8);
    else snprintf(out, n, "%s", k);
}

static int same_shape(const StTensor *t, const ParamInfo *p) {
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* Copies every file tensor that names a parameter of the same shape; marks state[i]: 1 loaded, 2 reshaped. */
static void copy_matching(const Model *m, float *params, const StFile *f, int released, unsigned char *state,
                          FILE *report, WarmReport *r) {
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (!strncmp(t->name, WEIGHTS_RESERVED_PREFIX, sizeof WEIGHTS_RESERVED_PREFIX - 1)) continue; /* Adam state */
        char name[PARAM_NAME_MAX + 64];
        map_key(t->name, released, name, sizeof name);
        const ParamInfo *p = param_find(&m->params, name);
        if (!p) {
            if (!strstr(name, ".relative_position_index")) r->unused++; /* buffers are derived, never loaded */
            continue;
        }
        int k = (int)(p - m->params.items);
        if (!same_shape(t, p) || t->dtype != ST_F32) {
            char got[96], want[96];
            shape_text(got, sizeof got, t->ndim, t->shape);
            shape_text(want, sizeof want, p->ndim, p->shape);
            if (report)
                fprintf(report, "init_weights: %s is %s %s in the file, %s here: keeps its fresh initialisation\n",
                        p->name, st_dtype_name(t->dtype), got, want);
            state[k] = 2;
            continue;
        }
        memcpy(params + p->offset, t->data, p->numel * sizeof(float));
        state[k] = 1;
    }
}

int weights_warm_start(const Model *m, float *params, const char *path, const char *key_map, FILE *report,
                       WarmReport *r, char *err, size_t err_len) {
    WarmReport local;
    if (!r) r = &local;
    memset(r, 0, sizeof *r);
    int released = !strcmp(key_map, "released_pretrain");
    if (!released && strcmp(key_map, "none") && key_map[0])
        return error_at(err, err_len, "train.init_key_map: '%s' (expected one of: %s)", key_map, weights_warm_key_maps);
    StFile f;
    if (st_read(&f, path, err, err_len) != 0) return -1;
    unsigned char *state = xcalloc((size_t)m->params.count, 1);
    copy_matching(m, params, &f, released, state, report, r);
    r->total = m->params.count;
    for (int i = 0; i < m->params.count; i++) {
        if (state[i] == 1) r->loaded++;
        else if (state[i] == 2) r->reshaped++;
        else {
            r->missing++;
            if (report) fprintf(report, "init_weights: %s is not in the file: keeps its fresh initialisation\n",
                                m->params.items[i].name);
        }
    }
    int n_file = f.n_tensors;
    free(state);
    st_free(&f);
    if (r->loaded == 0)
        return error_at(err, err_len, "%s: train.init_weights matches none of this network's %d tensors (%d tensors in "
                        "the file, key map %s): is it a weights file of this network?", path, r->total, n_file,
                        released ? "released_pretrain" : "none");
    if (report)
        fprintf(report, "init_weights: %s: loaded %d of %d tensors (%d missing, %d with another shape, %d of the "
                "file's unused; key map %s)\n", path, r->loaded, r->total, r->missing, r->reshaped, r->unused,
                released ? "released_pretrain" : "none");
    return 0;
}
