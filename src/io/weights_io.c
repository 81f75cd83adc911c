/* weights_io.c — see weights_io.h. */
#include "weights_io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"

static void shape_text(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static const char INDEX_SUFFIX[] = ".relative_position_index";
static const char TABLE_SUFFIX[] = ".relative_position_bias_table";

/* The bias table that an index buffer belongs to, or NULL. */
static const ParamInfo *table_of_index(const Model *m, const char *index_name) {
    size_t n = strlen(index_name), s = sizeof INDEX_SUFFIX - 1;
    if (n <= s || strcmp(index_name + n - s, INDEX_SUFFIX) != 0) return NULL;
    char table[PARAM_NAME_MAX + 32];
    snprintf(table, sizeof table, "%.*s%s", (int)(n - s), index_name, TABLE_SUFFIX);
    return param_find(&m->params, table);
}

static int window_of_table(const ParamInfo *t) {
    int side = 1;
    while ((int64_t)side * side < t->shape[0]) side++; /* table rows = (2w - 1)² */
    return (side + 1) / 2;
}

static int check_index(const Model *m, const StTensor *t, const ParamInfo *table, const char *path, char *err,
                       size_t err_len) {
    int w = window_of_table(table);
    int64_t n = (int64_t)w * w;
    if (t->dtype != ST_I64 || t->ndim != 2 || t->shape[0] != n || t->shape[1] != n)
        return error_at(err, err_len, "%s: tensor '%s' must be I64 [%lld, %lld] for window %d", path, t->name,
                    (long long)n, (long long)n, w);
    int64_t *expect = xmalloc((size_t)(n * n) * sizeof(int64_t));
    model_relative_position_index(expect, w);
    int same = memcmp(expect, t->data, (size_t)(n * n) * sizeof(int64_t)) == 0;
    free(expect);
    if (!same) return error_at(err, err_len, "%s: tensor '%s' does not hold Swin's relative position index for window %d", path, t->name, w);
    return 0;
}

int weights_load_st(const Model *m, float *params, const StFile *f, char *err, size_t err_len) {
    unsigned char *found = xcalloc((size_t)m->params.count, 1);
    int rc = 0;
    for (int i = 0; i < f->n_tensors && rc == 0; i++) {
        const StTensor *t = &f->tensors[i];
        if (strncmp(t->name, WEIGHTS_RESERVED_PREFIX, sizeof WEIGHTS_RESERVED_PREFIX - 1) == 0) continue;
        const ParamInfo *p = param_find(&m->params, t->name);
        if (!p) {
            const ParamInfo *table = table_of_index(m, t->name);
            if (table) rc = check_index(m, t, table, f->path, err, err_len);
            else rc = error_at(err, err_len, "%s: unexpected tensor '%s' (not a parameter of this network: check the config)", f->path, t->name);
            continue;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char got[96], want[96];
            shape_text(got, sizeof got, t->ndim, t->shape);
            shape_text(want, sizeof want, p->ndim, p->shape);
            rc = error_at(err, err_len, "%s: tensor '%s' has shape %s, expected %s", f->path, t->name, got, want);
        } else if (t->dtype != ST_F32) {
            rc = error_at(err, err_len, "%s: tensor '%s' is %s, expected F32", f->path, t->name, st_dtype_name(t->dtype));
        } else {
            /* a single NaN or infinity spreads through every later layer, and argmax of NaN
             * logits is class 0: predict would exit 0 with an all-background volume */
            float *dst = params + p->offset;
            memcpy(dst, t->data, p->numel * sizeof(float));
            for (size_t j = 0; j < p->numel && rc == 0; j++)
                if (!isfinite(dst[j]))
                    rc = error_at(err, err_len, "%s: tensor '%s' holds a non-finite value (%f at flat index %zu): "
                                  "the weights are damaged or came from a diverged run", f->path, t->name,
                                  (double)dst[j], j);
            found[p - m->params.items] = 1;
        }
    }
    for (int i = 0; i < m->params.count && rc == 0; i++)
        if (!found[i]) rc = error_at(err, err_len, "%s: missing tensor '%s'", f->path, m->params.items[i].name);
    free(found);
    return rc;
}

int weights_load(const Model *m, float *params, const char *path, char *err, size_t err_len) {
    StFile f;
    if (st_read(&f, path, err, err_len) != 0) return -1; /* regular files only: a FIFO blocks */
    int rc = weights_load_st(m, params, &f, err, err_len);
    st_free(&f);
    return rc;
}

void weights_add_to_st(const Model *m, const float *params, StFile *f, void **owned) {
    /* one allocation for every index buffer, so the caller frees a single pointer */
    size_t total = 0;
    for (int i = 0; i < m->params.count; i++) {
        const ParamInfo *p = &m->params.items[i];
        size_t n = strlen(p->name), s = sizeof TABLE_SUFFIX - 1;
        if (n > s && strcmp(p->name + n - s, TABLE_SUFFIX) == 0) {
            size_t w = (size_t)window_of_table(p);
            total += w * w * w * w;
        }
    }
    int64_t *idx = xmalloc((total ? total : 1) * sizeof(int64_t));
    size_t used = 0;
    for (int i = 0; i < m->params.count; i++) {
        const ParamInfo *p = &m->params.items[i];
        st_add(f, p->name, ST_F32, p->ndim, p->shape, params + p->offset);
        size_t n = strlen(p->name), s = sizeof TABLE_SUFFIX - 1;
        if (n > s && strcmp(p->name + n - s, TABLE_SUFFIX) == 0) {
            int w = window_of_table(p);
            int64_t shape[2] = {(int64_t)w * w, (int64_t)w * w};
            char name[PARAM_NAME_MAX + 32];
            snprintf(name, sizeof name, "%.*s%s", (int)(n - s), p->name, INDEX_SUFFIX);
            model_relative_position_index(idx + used, w);
            st_add(f, name, ST_I64, 2, shape, idx + used);
            used += (size_t)(shape[0] * shape[1]);
        }
    }
    *owned = idx;
}

int weights_save(const Model *m, const float *params, const char *config_name, const char *path, char *err,
                 size_t err_len) {
    StFile f;
    void *owned;
    st_init(&f);
    st_add_meta(&f, "format", "pt");
    st_add_meta(&f, "network", "unet2022");
    st_add_meta(&f, "config_name", config_name);
    weights_add_to_st(m, params, &f, &owned);
    int rc = st_write_file(&f, path, err, err_len);
    st_free(&f);
    free(owned);
    return rc;
}
