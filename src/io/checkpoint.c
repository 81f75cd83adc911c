/* checkpoint.c — see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "safetensors.h"
#include "weights_io.h"

void checkpoint_text_hash(char out[17], const char *text) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) h = (h ^ *p) * 1099511628211ull;
    snprintf(out, 17, "%016" PRIx64, h);
}

/* CRC-32 (zlib) of every tensor's bytes in file order = the whole data region. */
static uint32_t tensors_crc(const StFile *f) {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < f->n_tensors; i++) {
        const unsigned char *p = f->tensors[i].data;
        size_t left = f->tensors[i].nbytes;
        while (left) { /* zlib takes uInt lengths */
            uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
            crc = crc32(crc, p, chunk);
            p += chunk;
            left -= chunk;
        }
    }
    return (uint32_t)crc;
}

/* The metadata a checkpoint's meta_crc32 covers: every key but the two checksums, sorted by
 * key (JSON order is not part of the format), each as key NUL value NUL. The tensor CRC alone
 * let one flipped bit in `epoch_step` pass as a valid data position. */
static int by_key(const void *a, const void *b) {
    return strcmp((*(const StMeta *const *)a)->key, (*(const StMeta *const *)b)->key);
}
static uint32_t meta_crc(const StFile *f) {
    const StMeta **order = xmalloc((size_t)(f->n_meta ? f->n_meta : 1) * sizeof *order);
    int n = 0;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, "crc32") != 0 && strcmp(f->meta[i].key, "meta_crc32") != 0) order[n++] = &f->meta[i];
    qsort(order, (size_t)n, sizeof *order, by_key);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        crc = crc32(crc, (const Bytef *)order[i]->key, (uInt)strlen(order[i]->key) + 1);
        crc = crc32(crc, (const Bytef *)order[i]->value, (uInt)strlen(order[i]->value) + 1);
    }
    free(order);
    return (uint32_t)crc;
}

void checkpoint_path(char *out, size_t n, const char *dir, uint64_t step) {
    snprintf(out, n, "%s/ckpt-%08" PRIu64 ".safetensors", dir, step);
}

int checkpoint_save(const char *path, const Model *m, const float *params, const float *adam_m, const float *adam_v,
                    const TrainState *st, const char *config_yaml, char *err, size_t err_len) {
    StFile f;
    void *owned;
    st_init(&f);
    weights_add_to_st(m, params, &f, &owned);
    int64_t n = (int64_t)m->params.total;
    st_add(&f, "adam.m", ST_F32, 1, &n, adam_m);
    st_add(&f, "adam.v", ST_F32, 1, &n, adam_v);

    char buf[64], hash[17];
    st_add_meta(&f, "format", "pt");
    st_add_meta(&f, "unet2022_checkpoint", "1");
    snprintf(buf, sizeof buf, "%d", CHECKPOINT_FORMAT_VERSION);
    st_add_meta(&f, "format_version", buf);
#define META_U64(key, v) (snprintf(buf, sizeof buf, "%" PRIu64, (uint64_t)(v)), st_add_meta(&f, key, buf))
    META_U64("step", st->step);
    META_U64("epoch", st->epoch);
    META_U64("epoch_step", st->epoch_step);
    META_U64("seed", st->seed);
    META_U64("world_size", st->world_size);
    META_U64("adam_step", st->step);
#undef META_U64
    snprintf(buf, sizeof buf, "%.17g", st->best_metric);
    st_add_meta(&f, "best_metric", buf);
    snprintf(buf, sizeof buf, "%.17g", st->ema_metric);
    st_add_meta(&f, "ema_metric", buf);
    st_add_meta(&f, "config", config_yaml);
    checkpoint_text_hash(hash, config_yaml);
    st_add_meta(&f, "config_hash", hash);
    snprintf(buf, sizeof buf, "%08" PRIx32, tensors_crc(&f));
    st_add_meta(&f, "crc32", buf);
    snprintf(buf, sizeof buf, "%08" PRIx32, meta_crc(&f)); /* last: it covers every key above */
    st_add_meta(&f, "meta_crc32", buf);
    int rc = st_write_file(&f, path, err, err_len);
    st_free(&f);
    free(owned);
    return rc;
}

static int meta_u64(const StFile *f, const char *key, uint64_t *out, char *err, size_t err_len) {
    const char *v = st_meta_get(f, key);
    char *end;
    if (!v) return error_at(err, err_len, "%s: not a checkpoint (no metadata '%s')", f->path, key);
    *out = strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0') return error_at(err, err_len, "%s: metadata '%s' = '%s' is not a number", f->path, key, v);
    return 0;
}

/* best_metric / ema_metric: absent (older files) is -1, "none yet"; present, a whole finite number.
 * strtod alone took "nan" (an EMA that stays NaN: `ema > best` never holds again, so a resumed
 * run never wrote best.safetensors) and "0.5x" or "" (as 0.5 and 0). */
static int meta_metric(const StFile *f, const char *key, double *out, char *err, size_t err_len) {
    const char *v = st_meta_get(f, key);
    char *end;
    *out = -1;
    if (!v) return 0;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !isfinite(d))
        return error_at(err, err_len, "%s: metadata '%s' = '%s' is not a finite number", f->path, key, v);
    *out = d;
    return 0;
}

/* Parses and checks both checksums; on success f is open (caller frees). Format version 1
 * files predate meta_crc32: their metadata is not covered, and the resume's own checks of the
 * position (trainer.c) are all that guards it. From version 2 on it is required. */
static int open_verified(StFile *f, const char *path, char *err, size_t err_len) {
    if (st_read(f, path, err, err_len) != 0) return -1; /* regular files only: a FIFO blocks */
    const char *crc = st_meta_get(f, "crc32"), *mcrc = st_meta_get(f, "meta_crc32");
    const char *version = st_meta_get(f, "format_version");
    if (!st_meta_get(f, "unet2022_checkpoint") || !crc) {
        st_free(f);
        return error_at(err, err_len, "%s: not a unet2022 checkpoint (no checkpoint metadata)", path);
    }
    char now[16];
    snprintf(now, sizeof now, "%08" PRIx32, tensors_crc(f));
    if (strcmp(now, crc) != 0) {
        error_at(err, err_len, "%s: checksum mismatch (stored %.8s, computed %s): the file is damaged", path, crc, now);
        st_free(f); /* after formatting: crc points into f */
        return -1;
    }
    if (!mcrc && !(version && strcmp(version, "1") == 0)) {
        st_free(f);
        return error_at(err, err_len, "%s: no metadata checksum 'meta_crc32' (required from format version 2): the "
                        "file is damaged", path);
    }
    if (mcrc) { /* present: must match, whatever the version says (a flipped bit may have changed it) */
        snprintf(now, sizeof now, "%08" PRIx32, meta_crc(f));
        if (strcmp(now, mcrc) != 0) {
            error_at(err, err_len, "%s: metadata checksum mismatch (stored %.8s, computed %s): the metadata (step, "
                     "epoch, config...) is damaged", path, mcrc, now);
            st_free(f);
            return -1;
        }
    }
    return 0;
}

int checkpoint_verify(const char *path, char *err, size_t err_len) {
    StFile f;
    if (open_verified(&f, path, err, err_len) != 0) return -1;
    st_free(&f);
    return 0;
}

int checkpoint_load(const char *path, const Model *m, float *params, float *adam_m, float *adam_v, TrainState *st,
                    char **config_yaml, char *err, size_t err_len) {
    StFile f;
    if (open_verified(&f, path, err, err_len) != 0) return -1;
    int rc = -1;
    uint64_t version = 0, ws = 0;
    if (meta_u64(&f, "format_version", &version, err, err_len) != 0) goto out;
    if (version < 1 || version > CHECKPOINT_FORMAT_VERSION) {
        error_at(err, err_len, "%s: checkpoint format version %" PRIu64 ", this build reads versions 1 to %d", path,
                 version, CHECKPOINT_FORMAT_VERSION);
        goto out;
    }
    if (weights_load_st(m, params, &f, err, err_len) != 0) goto out;
    const char *names[2] = {"adam.m", "adam.v"};
    float *dst[2] = {adam_m, adam_v};
    for (int i = 0; i < 2; i++) {
        const StTensor *t = st_find(&f, names[i]);
        if (!t || t->dtype != ST_F32 || t->nbytes != m->params.total * sizeof(float)) {
            error_at(err, err_len, "%s: tensor '%s' missing or not F32 [%zu]", path, names[i], m->params.total);
            goto out;
        }
        memcpy(dst[i], t->data, t->nbytes);
    }
    memset(st, 0, sizeof *st);
    if (meta_u64(&f, "step", &st->step, err, err_len) || meta_u64(&f, "epoch", &st->epoch, err, err_len) ||
        meta_u64(&f, "epoch_step", &st->epoch_step, err, err_len) || meta_u64(&f, "seed", &st->seed, err, err_len) ||
        meta_u64(&f, "world_size", &ws, err, err_len))
        goto out;
    st->world_size = (int)ws;
    if (meta_metric(&f, "best_metric", &st->best_metric, err, err_len) ||
        meta_metric(&f, "ema_metric", &st->ema_metric, err, err_len))
        goto out;
    if (config_yaml) {
        const char *c = st_meta_get(&f, "config");
        *config_yaml = xmalloc(strlen(c ? c : "") + 1);
        strcpy(*config_yaml, c ? c : "");
    }
    rc = 0;
out:
    st_free(&f);
    return rc;
}

/* Steps of the ckpt-NNNNNNNN.safetensors files in dir, newest first. */
static int list_steps(const char *dir, uint64_t **steps_out) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 16;
    uint64_t *steps = xmalloc((size_t)cap * sizeof(uint64_t));
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t s;
        char tail[32];
        if (sscanf(e->d_name, "ckpt-%" SCNu64 "%31s", &s, tail) == 2 && strcmp(tail, ".safetensors") == 0) {
            if (n == cap) steps = realloc(steps, (size_t)(cap *= 2) * sizeof(uint64_t));
            CHECK(steps, "out of memory");
            steps[n++] = s;
        }
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            uint64_t t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    *steps_out = steps;
    return n;
}

int checkpoint_find_latest(const char *dir, char *path_out, size_t n) {
    uint64_t *steps = NULL;
    int count = list_steps(dir, &steps);
    int rc = -1;
    for (int i = 0; i < count && rc != 0; i++) {
        char err[1024];
        checkpoint_path(path_out, n, dir, steps[i]);
        if (checkpoint_verify(path_out, err, sizeof err) == 0) rc = 0;
        else fprintf(stderr, "unet2022: warning: skipping damaged checkpoint: %s\n", err);
    }
    free(steps);
    return rc;
}

void checkpoint_remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) /* a writer killed mid-write leaves NAME.safetensors.tmp.PID */
        if (strncmp(e->d_name, "ckpt-", 5) == 0 || strncmp(e->d_name, "best.", 5) == 0)
            if (strstr(e->d_name, ".safetensors.tmp.")) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
    closedir(d);
}

void checkpoint_prune(const char *dir, int keep_last) {
    uint64_t *steps = NULL;
    int count = list_steps(dir, &steps);
    for (int i = keep_last; i < count; i++) {
        char path[4096];
        checkpoint_path(path, sizeof path, dir, steps[i]);
        unlink(path);
    }
    free(steps);
}
